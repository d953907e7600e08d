"""Wasserstein losses between latent clouds: S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β).

OT_ε(α, β) = min_π ⟨π, C⟩ + ε KL(π ‖ α⊗β) over couplings π of α = Σ a_i δ_{x_i} and β = Σ b_j δ_{y_j}, with the
ground cost C_ij = ½‖x_i − y_j‖² (GeomLoss's ``p=2`` cost) and temperature ε = blur². The debiased divergence
S_ε is ≥ 0, is 0 iff α = β, and tends to ½W₂²(α, β) as blur → 0 (Feydy et al., AISTATS 2019).

**The solver** (:func:`sinkhorn_divergence`) is GeomLoss's ``SamplesLoss("sinkhorn", p=2, debias=True,
backend="tensorized")`` algorithm (Feydy's thesis, Alg. 3.5; GeomLoss ``sinkhorn_divergence.sinkhorn_loop``),
written here so that it can be **warm-started**: symmetric log-domain Sinkhorn updates of the four dual potentials
f_ba, g_ab (the α↔β problem) and f_aa, g_bb (the two debiasing problems) on dense cost matrices, under ε-annealing,
then one last update with autograd on, so the gradient follows from the envelope theorem; the value is
⟨a, f_ba − f_aa⟩ + ⟨b, g_ab − g_bb⟩. Cold, it runs GeomLoss's ε schedule and agrees with GeomLoss to ≈ 1e-7
relative in value and gradient (``tests/test_edits_sinkhorn.py``). Warm, it starts from the potentials of the
previous problem — LW's clouds move little between optimiser steps — extended to the new points by one c-transform
each (a potential is a function, f(x) = −ε log Σ_j b_j exp((g_j − C(x, y_j))/ε), defined for any x), or from
potentials given on the new points themselves (``start``: LW keeps each code's potentials from the last solve it took
part in, :class:`latentedit.edits.lw.PotentialTable`, which skips the extension's four cost matmuls and log-sum-exp
passes), then updates at the final ε until one update moves the value by less than :data:`WARM_TOLERANCE`
(relative; at least :data:`MIN_WARM_ITERATIONS`, at most the cold annealing's length) instead of running the whole
annealing.
Measured against a converged solution (annealing at scaling 0.99, then 80 updates at the final ε; unit-Gaussian
clouds, the next batch drawn afresh and moved by 0.01; blur 0.25·σ_rms), as relative error of value / gradient:

    d = 64,  N = 512: cold (17 updates) 7.9e-4 / 1.8e-2;  warm 3 updates 1.2e-4 / 1.1e-2
    d = 128, N = 512: cold (17)         1.4e-4 / 4.3e-3;  warm 2          1.4e-4 / 5.0e-3
    d = 16,  N = 256: cold (17)         1.2e-3 / 8.5e-2;  warm 7          8.0e-4 / 6.0e-2
    d = 8,   N = 256: cold (17)         8.4e-4 / 1.2e-1;  warm 13         2.6e-3 / 8.5e-2

so in LW's latent spaces a warm solve is as accurate as the cold one at a fifth of its updates; in a few dimensions
(L_pres's attribute space, d ≈ 14) it needs about half of them (tolerance 1e-4: 5–6 updates at d = 64 and errors
≤ 1e-5 / 7e-3). A start from the codes' own potentials of an earlier solve against other partners (LW's tables) is
as accurate in about as many updates (``tests/test_edits_sinkhorn.py``; in LW training 4–5 updates per solve against
3–4 from the extension).

**How blur, scaling and diameter drive accuracy and cost.** GeomLoss anneals ε from diameter² down to blur²,
multiplying the blur radius by ``scaling`` after every Sinkhorn iteration, so one call runs

    n_iter = 2 + ⌈ log(diameter / blur) / log(1 / scaling) ⌉

iterations (see :func:`annealing_steps`), each a soft-min over the four dense matrices C(x,y), C(y,x), C(x,x),
C(y,y). ``diameter`` (None: the bounding-box diagonal of the two clouds) only sets the first temperature;
``scaling`` trades speed (0.5) for accuracy (0.9–0.95: closer to a converged Sinkhorn loop); ``blur`` is the
finest length scale the divergence resolves: geometry finer than ``blur`` is smoothed away, and the loss
interpolates between ½W₂² (blur → 0) and the kernel distance ½‖mean(α) − mean(β)‖² (blur → ∞).

**Choosing blur for latent codes** (:data:`DEFAULT_BLUR_FRACTION`). In d = 64 with N = 1024 codes per batch an
empirical cloud cannot resolve anything much finer than its own spread: every code is about √2·σ_rms from every
other (σ_rms² = trace of the covariance = 64 for unit-variance codes). At a blur that is a *small* fraction of the
typical distance, S_ε is then dominated by the sampling noise of minibatch OT rather than by the edit. Measured with
GeomLoss at scaling 0.8 (seed 0, unit-Gaussian codes, d = 64, N = 1024, σ_rms = 8): between two independent
samples of the *same* law (the "noise floor") S = 39.6, 28.5, 0.86, 0.10 at blur = 0.05, 0.25, 0.5, 1.0 × σ_rms,
against S = 47.8, 36.8, 8.85, 8.08 for a 0.5-per-dimension mean shift (true ½W₂² = 8); for 16 dimensions with doubled
std (true ½W₂² = 8, another draw) S = 47.8, 24.0, 7.2, 0.76 at blur = 0.25, 0.375, 0.5, 1.0 × σ_rms.
So blur = 0.5·σ_rms (4.0 for unit-std codes at d = 64, i.e. 0.5·√d) is the smallest blur whose noise floor is an
order of magnitude below the signal *in the value of the loss*, while still seeing second-order structure (at
blur = σ_rms the covariance change has all but vanished). **But the gradient is what trains the edit**, and the
debiased noise floor hardly depends on the edit: on the digits world's "add one digit" edit (1 → 2, LW without
L_pres, batch 512), blur = 0.5·σ_rms learnt an edit whose renders the image oracle counts as two digits 0.195 of
the time, blur = 0.25·σ_rms one at 0.835 (0.812 with L_pres) — the coarser blur sees the mean shift but smooths
away where the new digit goes. :data:`DEFAULT_BLUR_FRACTION` is therefore 0.25; the loss values it reports sit on
a higher noise floor (≈ 8.7 against ≈ 1.3), which early stopping handles since only changes matter.
:func:`default_blur` implements it from the within-cloud spreads (not the pooled spread, so the blur does not grow
with the edit being learnt). With a bounding-box diameter of ≈ 6.5·σ_rms the default ``scaling`` = 0.8 runs ≈ 14
iterations per call at blur 0.5·σ_rms and ≈ 17 at 0.25·σ_rms (≈ 0.25 s forward and backward for N = 1024, d = 64
on one CPU thread at 0.5·σ_rms), and its value is within 0.5 % of a converged (scaling 0.99) one. Its gradient
points the same way but is not the same vector: at blur 0.25·σ_rms and scaling 0.8 it differs from the converged
gradient by 1.5 % in relative L2 norm with 1 − cos = 1.1e-4 (measured: seed 0, N = 1024, d = 64, unit-Gaussian
source, target shifted by 0.5 per dimension; the value differs by 0.1 %) — mostly a difference of step length, which
Adam's normalisation largely absorbs, not of direction. At a blur far below the spacing of the points (e.g.
comparing with exact OT) one iteration per annealing step is not enough: the divergence then *under*-estimates the
converged value, by up to ≈ 5 % at 0.95 on 20-point clouds; use scaling ≥ 0.98 there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

# Defaults, with their reasons (the training defaults in lw.LWConfig refer to these).
DEFAULT_BLUR_FRACTION = 0.25  # blur = 0.25·σ_rms: resolves the edits of the digits world (see above)
DEFAULT_SCALING = 0.8  # ≈ 17 annealing iterations at the default blur; 0.5 is GeomLoss's fast, less exact setting
WARM_TOLERANCE = 1.0e-3  # a warm solve stops once an update moves the value by less than this, relatively
MIN_WARM_ITERATIONS = 2  # … but not before this many updates (the first one mostly absorbs the change of points)
# The semi-relaxed solves' (semi_relaxed_divergence): their damped targets' side settles more slowly, so a relative
# change of 1e-3 per update stops 2–4e-3 short of the value; 1e-4 stops within a cold solve's error
# (tests/test_edits_sinkhorn.py)
SEMI_RELAXED_WARM_TOLERANCE = 1.0e-4


def flatten_codes(z: torch.Tensor) -> torch.Tensor:
    """(N, D) codes unchanged; W+ codes (N, L, D) → (N, L·D), so the cost is the sum over layers."""
    if z.dim() == 2:
        return z
    if z.dim() == 3:
        return z.reshape(z.shape[0], -1)  # (N, L·D)
    raise ValueError(f"latent codes must be (N, D) or (N, L, D), got shape {tuple(z.shape)}")


@torch.no_grad()
def default_blur(x: torch.Tensor, y: torch.Tensor | None = None,
                 fraction: float = DEFAULT_BLUR_FRACTION) -> float:
    """blur = fraction · σ_rms, σ_rms² = mean over the given clouds of trace(Cov).

    Parameters
    ----------
    x : Tensor, shape (N, D) or (N, L, D)
        First cloud (flattened like :func:`sinkhorn_loss` does).
    y : Tensor, shape (M, D) or (M, L, D), optional
        Second cloud; its within-cloud variance is averaged with x's (the spread *between* the clouds is ignored).
    fraction : float
        Fraction of σ_rms (the RMS distance of a code to its cloud's mean, in latent units).

    Returns
    -------
    float
        The blur radius, in latent units (ε = blur²).
    """
    clouds = [flatten_codes(x)] + ([flatten_codes(y)] if y is not None else [])
    traces = [c.double().var(dim=0, unbiased=False).sum() for c in clouds]
    sigma = float(torch.stack(traces).mean().sqrt())
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError("cannot choose a blur for clouds with zero (or non-finite) spread; pass blur explicitly")
    return fraction * sigma


def annealing_steps(diameter: float, blur: float, scaling: float) -> int:
    """n_iter = 2 + ⌈log(diameter / blur) / log(1 / scaling)⌉: the length of :func:`epsilon_schedule`, the Sinkhorn
    updates of one cold solve."""
    return len(epsilon_schedule(diameter, blur, scaling))


def marginal_weights(w: torch.Tensor | None, n: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """Uniform 1/n when None; otherwise validated and normalised to sum 1. Returns shape (n,)."""
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(w).to(dtype=like.dtype, device=like.device).reshape(-1)
    if w.numel() != n:
        raise ValueError(f"{name} has {w.numel()} weights for {n} points")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"{name} sums to zero")
    return w / total


def half_squared_distances(x: torch.Tensor, y: torch.Tensor, xx: torch.Tensor | None = None,
                           yy: torch.Tensor | None = None) -> torch.Tensor:
    """C_ij = ½‖x_i − y_j‖² for (N, D) and (M, D) points → (N, M), as GeomLoss's ``p=2`` cost (clamped at 0).
    ``xx`` (N,), ``yy`` (M,): the squared norms, when the caller has them (one pass over an N×D array each)."""
    xx = (x * x).sum(-1) if xx is None else xx  # (N,)
    yy = (y * y).sum(-1) if yy is None else yy  # (M,)
    return torch.addmm(xx.unsqueeze(1) + yy.unsqueeze(0), x, y.T, alpha=-2).clamp_min(0) / 2


def _log_weights(w: torch.Tensor) -> torch.Tensor:
    """log w, with −1e5 (not −inf) for zero weights, as GeomLoss: a code of weight 0 drops out without a NaN."""
    return torch.where(w > 0, w.log(), torch.full_like(w, -100000.0))


def _dual_value(a, b, f_ba, g_ab, f_aa, g_bb) -> torch.Tensor:
    """S_ε from the dual potentials: ⟨a, f_ba − f_aa⟩ + ⟨b, g_ab − g_bb⟩ (GeomLoss ``sinkhorn_cost``, debiased)."""
    return (a * (f_ba - f_aa)).sum() + (b * (g_ab - g_bb)).sum()


def _semi_relaxed_value(a, b, f_ba, g_ab, f_aa, g_bb, rho) -> torch.Tensor:
    """The semi-relaxed divergence from its potentials: ⟨a, f_ba − f_aa⟩ + ρ ⟨b, exp(−g_bb/ρ) − exp(−g_ab/ρ)⟩."""
    return (a * (f_ba - f_aa)).sum() + rho * (b * (torch.exp(-g_bb / rho) - torch.exp(-g_ab / rho))).sum()


def _softmin(eps: float, C: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The soft c-transform f_i = −ε log Σ_j exp(h_j − C_ij / ε): (N, M) costs, (M,) log-weights → (N,)."""
    return -eps * torch.logsumexp(h.unsqueeze(0) - C / eps, dim=1)


def _settled(value: float, previous: float | None, iterations: int, tolerance: float, eps: float) -> bool:
    """A warm solve's stopping rule: at least :data:`MIN_WARM_ITERATIONS` updates, the last one moving the value by
    at most ``tolerance`` (relative; ε as the scale of a value near 0)."""
    return (iterations >= MIN_WARM_ITERATIONS and previous is not None
            and abs(value - previous) <= tolerance * max(abs(value), eps))


def _all_finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _target_damping(eps: float, rho: float | None) -> float:
    """GeomLoss's ``dampening`` factor 1/(1 + ε/ρ) of the updates on a side whose marginal is relaxed by ρ·KL
    (:func:`semi_relaxed_divergence`: the targets'); 1 for a balanced side (ρ None)."""
    return 1.0 if rho is None else 1 / (1 + eps / rho)


def _averaged_update(eps, C_xy, C_yx, C_xx, C_yy, a_log, b_log, potentials, rho=None):
    """One symmetric log-domain update of the four potentials, averaged with the old ones (Feydy's thesis,
    Fig. 3.25): the cold annealing's step, and the warm fallback's at a fixed ε. ``rho``: the targets' updates
    (g_ab, g_bb) are damped by :func:`_target_damping` (None: balanced, undamped)."""
    f_ba, g_ab, f_aa, g_bb = potentials
    ft_ba, gt_ab = _softmin(eps, C_xy, b_log + g_ab / eps), _softmin(eps, C_yx, a_log + f_ba / eps)
    ft_aa, gt_bb = _softmin(eps, C_xx, a_log + f_aa / eps), _softmin(eps, C_yy, b_log + g_bb / eps)
    if rho is not None:
        damp = _target_damping(eps, rho)
        gt_ab, gt_bb = damp * gt_ab, damp * gt_bb
    return 0.5 * (f_ba + ft_ba), 0.5 * (g_ab + gt_ab), 0.5 * (f_aa + ft_aa), 0.5 * (g_bb + gt_bb)


def _annealed_potentials(schedule, C_xy, C_yx, C_xx, C_yy, a_log, b_log, rho=None):
    """A cold solve: the four potentials started from soft-mins at the first ε, then one :func:`_averaged_update`
    per ε of the annealing ``schedule`` (GeomLoss's loop). ``rho``: the targets' updates damped (None: balanced)."""
    eps, damp = schedule[0], _target_damping(schedule[0], rho)
    potentials = (_softmin(eps, C_xy, b_log), _softmin(eps, C_yx, a_log), _softmin(eps, C_xx, a_log),
                  _softmin(eps, C_yy, b_log))
    if rho is not None:
        potentials = (potentials[0], damp * potentials[1], potentials[2], damp * potentials[3])
    for eps in schedule:
        potentials = _averaged_update(eps, C_xy, C_yx, C_xx, C_yy, a_log, b_log, potentials, rho)
    return potentials


def _log_domain_updates(eps, C_xy, C_xx, C_yy, a, b, potentials, max_iterations, tolerance, iterations=0, rho=None,
                        C_yx=None):
    """The warm solve's updates with log-sum-exp soft-mins (the cold loop's update at a fixed ε); the reference for
    :func:`_warm_updates`, and its fallback. ``iterations``: updates already run (they count towards both limits).
    ``rho``: the semi-relaxed problem's (the targets' updates damped, its value settling); ``C_yx``: C(x, y)ᵀ when the
    caller has it contiguous (None: the transposed view)."""
    a_log, b_log = _log_weights(a), _log_weights(b)
    C_yx = C_xy.T if C_yx is None else C_yx
    value = None
    while iterations < max_iterations:
        potentials = _averaged_update(eps, C_xy, C_yx, C_xx, C_yy, a_log, b_log, potentials, rho)
        iterations += 1
        previous, value = value, float(_dual_value(a, b, *potentials) if rho is None
                                       else _semi_relaxed_value(a, b, *potentials, rho))
        if _settled(value, previous, iterations, tolerance, eps):
            break
    return (*potentials, iterations)


def _stabilised_kernel(C: torch.Tensor, f: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    """K_ij = exp((f_i + g_j − C_ij) / ε): the Gibbs kernel with the potentials (f, g) absorbed (Schmitzer 2019,
    "Stabilized sparse scaling algorithms for entropy regularized transport problems", §3). Near a solution
    Σ_j b_j K_ij ≈ 1, so its entries neither overflow nor vanish row-wise in float32."""
    return (f.unsqueeze(1) + g.unsqueeze(0) - C).div_(eps).exp_()


@dataclass(frozen=True)
class _Kernels:
    """The stabilised kernels of a warm solve and the potentials absorbed into them (:func:`_stabilised_kernel`)."""
    xy: torch.Tensor  # (N, M)
    xx: torch.Tensor  # (N, N)
    yy: torch.Tensor  # (M, M)
    f_ba: torch.Tensor
    g_ab: torch.Tensor
    f_aa: torch.Tensor
    g_bb: torch.Tensor

    def scalings(self, a, b, f_ba, g_ab, f_aa, g_bb, eps):
        """The vectors the four kernel products take: weights times exp((potential − absorbed potential)/ε)."""
        return (b * torch.exp((g_ab - self.g_ab) / eps), a * torch.exp((f_ba - self.f_ba) / eps),
                a * torch.exp((f_aa - self.f_aa) / eps), b * torch.exp((g_bb - self.g_bb) / eps))

    def update(self, a, b, potentials, eps):
        """One soft-min update of the four potentials (not averaged), and the row sums of the first and third
        products (the normalisers of the plans :func:`_kernel_final_step` needs)."""
        v_ba, v_ab, v_aa, v_bb = self.scalings(a, b, *potentials, eps)
        s_ba, s_aa = self.xy @ v_ba, self.xx @ v_aa
        updated = (self.f_ba - eps * torch.log(s_ba), self.g_ab - eps * torch.log(self.xy.T @ v_ab),
                   self.f_aa - eps * torch.log(s_aa), self.g_bb - eps * torch.log(self.yy @ v_bb))
        return updated, (v_ba, s_ba, v_aa, s_aa)


def _warm_updates(eps, C_xy, C_xx, C_yy, a, b, potentials, max_iterations, tolerance):
    """The warm solve's updates at ε, as matrix-vector products: with the starting potentials (f⁰, g⁰) absorbed into
    stabilised kernels K (:func:`_stabilised_kernel`), the soft-min update f_i ← −ε log Σ_j b_j exp((g_j − C_ij)/ε)
    becomes f_i ← f⁰_i − ε log Σ_j K_ij b_j exp((g_j − g⁰_j)/ε): one pass over each N×M kernel per update (a gemv)
    instead of a log-sum-exp's several, since a warm start's potentials move little from where they began. Exactly
    the log-domain updates (:func:`_log_domain_updates`, to rounding: ``tests/test_edits_sinkhorn.py``); should a
    kernel sum leave the float range (potentials far from their start), the solve continues in the log domain.
    Returns the four averaged potentials, the number of updates and the kernels (None after a fallback)."""
    f0_ba, g0_ab, f0_aa, g0_bb = potentials
    kernels = _Kernels(_stabilised_kernel(C_xy, f0_ba, g0_ab, eps), _stabilised_kernel(C_xx, f0_aa, f0_aa, eps),
                       _stabilised_kernel(C_yy, g0_bb, g0_bb, eps), *potentials)
    value, iterations = None, 0
    while iterations < max_iterations:
        updated, _ = kernels.update(a, b, potentials, eps)
        if not _all_finite(updated):
            return (*_log_domain_updates(eps, C_xy, C_xx, C_yy, a, b, potentials, max_iterations, tolerance,
                                         iterations), None)
        potentials = tuple(0.5 * (old + new) for old, new in zip(potentials, updated, strict=True))
        iterations += 1
        previous, value = value, float(_dual_value(a, b, *potentials))
        if _settled(value, previous, iterations, tolerance, eps):
            break
    return (*potentials, iterations, kernels)


def _kernel_final_step(kernels: _Kernels, potentials, a, b, eps, x, y):
    """The last update of a warm solve and its gradient in x, from the kernels (y, a and b constant).

    The value is that of the autograd update (``sinkhorn_divergence``'s last step): S = ⟨a, f_ba − f_aa⟩ +
    ⟨b, g_ab − g_bb⟩ after one more soft-min update. Its gradient, as GeomLoss's (C(x, y) differentiated in x only,
    C(x, x) in its first argument only), is ∇_{x_i} S = a_i (Σ_k P^aa_ik x_k − Σ_j P_ij y_j), P and P^aa the
    row-stochastic soft-min weights of the update (Feydy's thesis, §3.3: ∇f(x) = x − T(x), T the barycentric map):
    two N×M×D products instead of four log-sum-exp passes forward and back. Returns the loss, whose gradient reaches
    x through ⟨x − sg(x), ∇S⟩ (sg: stop-gradient), and the updated potentials."""
    with torch.no_grad():
        updated, (v_ba, s_ba, v_aa, s_aa) = kernels.update(a, b, potentials, eps)
        if not _all_finite(updated):
            return None
        xd = x.detach()
        toward_y = (kernels.xy @ (v_ba.unsqueeze(1) * y)) / s_ba.unsqueeze(1)  # Σ_j P_ij y_j, (N, D)
        toward_x = (kernels.xx @ (v_aa.unsqueeze(1) * xd)) / s_aa.unsqueeze(1)  # Σ_k P^aa_ik x_k
        grad = a.unsqueeze(1) * (toward_x - toward_y)
        value = _dual_value(a, b, *updated)
    return value + ((x - xd) * grad).sum(), updated


def bounding_diameter(x: torch.Tensor, y: torch.Tensor) -> float:
    """The diagonal of the bounding box of both clouds (GeomLoss's default diameter). ``amin`` and ``amax`` rather than
    ``aminmax``: the same values, ≈ 10× faster over dim 0 of a (512, 1024) batch on CPU (0.18 vs 1.85 ms, one thread),
    where ``aminmax`` cost LW's warm W+ step 5 %."""
    return float((torch.maximum(x.amax(0), y.amax(0)) - torch.minimum(x.amin(0), y.amin(0))).norm())


def epsilon_schedule(diameter: float, blur: float, scaling: float) -> list[float]:
    """GeomLoss's annealing for p = 2: diameter², then ε divided by scaling² per iteration down to blur²."""
    steps = np.arange(2 * np.log(diameter), 2 * np.log(blur), 2 * np.log(scaling))
    return [diameter ** 2, *(float(np.exp(e)) for e in steps), blur ** 2]


class Potentials(NamedTuple):
    """The four dual potentials of a debiased problem: f_ba, f_aa on x (N,), g_ab, g_bb on y (M,)."""
    f_ba: torch.Tensor
    g_ab: torch.Tensor
    f_aa: torch.Tensor
    g_bb: torch.Tensor


@dataclass(frozen=True)
class SinkhornState:
    """A solved problem's points, log-weights and dual potentials at temperature ``eps`` (no gradient), from which
    :func:`sinkhorn_divergence` warm-starts the next problem."""

    x: torch.Tensor  # (N, D)
    y: torch.Tensor  # (M, D)
    a_log: torch.Tensor  # (N,)
    b_log: torch.Tensor  # (M,)
    f_ba: torch.Tensor  # (N,) potentials of the α↔β problem
    g_ab: torch.Tensor  # (M,)
    f_aa: torch.Tensor  # (N,) of the debiasing problems
    g_bb: torch.Tensor  # (M,)
    eps: float
    iterations: int  # Sinkhorn updates this solve ran (warm: until converged; cold: the annealing's length)

    def fits(self, x: torch.Tensor, y: torch.Tensor, eps: float) -> bool:
        """Whether it can warm-start a problem on points like x, y at temperature eps."""
        return (self.eps == eps and self.x.shape[1:] == x.shape[1:] and self.y.shape[1:] == y.shape[1:]
                and self.x.dtype == x.dtype and self.x.device == x.device)

    @property
    def potentials(self) -> Potentials:
        return Potentials(self.f_ba, self.g_ab, self.f_aa, self.g_bb)


@torch.no_grad()
def extended_potentials(state: SinkhornState, x: torch.Tensor, y: torch.Tensor) -> Potentials:
    """A solved problem's potentials, as functions, evaluated at new points x (N, D), y (M, D): one c-transform
    each, f(x) = −ε log Σ_j b_j exp((g_j − C(x, y_j))/ε) (four N×M×D cost matmuls and log-sum-exp passes)."""
    eps = state.eps
    return Potentials(_softmin(eps, half_squared_distances(x, state.y), state.b_log + state.g_ab / eps),
                      _softmin(eps, half_squared_distances(y, state.x), state.a_log + state.f_ba / eps),
                      _softmin(eps, half_squared_distances(x, state.x), state.a_log + state.f_aa / eps),
                      _softmin(eps, half_squared_distances(y, state.y), state.b_log + state.g_bb / eps))


def _checked_start(start: Potentials | None, n: int, m: int) -> Potentials | None:
    """Start potentials as :class:`Potentials`, checked against the problem's n and m points (None passes)."""
    if start is None:
        return None
    start = Potentials(*start)
    if not (start.f_ba.shape == start.f_aa.shape == (n,) and start.g_ab.shape == start.g_bb.shape == (m,)):
        raise ValueError(f"start potentials for {n} and {m} points have shapes {[tuple(p.shape) for p in start]}")
    return start


def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                        b: torch.Tensor | None = None, blur: float | None = None, scaling: float = DEFAULT_SCALING,
                        diameter: float | None = None, warm: SinkhornState | None = None,
                        tolerance: float = WARM_TOLERANCE, max_iterations: int | None = None,
                        start: Potentials | None = None, cost_yy: torch.Tensor | None = None,
                        ) -> tuple[torch.Tensor, SinkhornState]:
    """S_ε(Σ a_i δ_{x_i}, Σ b_j δ_{y_j}) and the state that warm-starts the next call (module docstring).

    Parameters
    ----------
    x, y, a, b, blur, scaling, diameter
        As :func:`sinkhorn_loss`.
    warm : SinkhornState, optional
        The state of a previous call on nearby clouds at the same blur, extended to x and y by one c-transform
        each (:func:`extended_potentials`); None (or a state that does not fit): a cold, annealed solve.
    start : Potentials, optional
        Potentials on x and y themselves at ε = blur² (e.g. each code's from the last solve it took part in) to
        warm-start from instead; not together with ``warm``.
    tolerance : float
        A warm solve updates at the final ε until one update moves the value by less than ``tolerance`` (relative;
        at least :data:`MIN_WARM_ITERATIONS` updates).
    cost_yy : Tensor, shape (M, M), optional
        C(y, y) = ½‖y_i − y_j‖², when the caller has it (LW's targets never move: it gathers them from the costs of
        all its targets, computed once); y must then be a constant (no gradient). None: computed here.
    max_iterations : int, optional
        Cap on a warm solve's updates; None: the length of the cold annealing, so a warm solve never runs more
        updates than a cold one.

    Returns
    -------
    loss : Tensor, shape ()
        The divergence; differentiable in x and y.
    state : SinkhornState
    """
    x, y = flatten_codes(x), flatten_codes(y)  # (N, D'), (M, D')
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"clouds live in different spaces: {tuple(x.shape)} vs {tuple(y.shape)}")
    if blur is None:
        blur = default_blur(x, y)
    a = marginal_weights(a, len(x), x, "a")
    b = marginal_weights(b, len(y), y, "b")
    a_log, b_log = _log_weights(a), _log_weights(b)
    eps_final = blur ** 2
    xd, yd = x.detach(), y.detach()
    if start is not None and warm is not None:
        raise ValueError("warm-start from a state or from potentials, not both")
    if start is None and warm is not None and warm.fits(xd, yd, eps_final):
        start = extended_potentials(warm, xd, yd)
    start = _checked_start(start, len(x), len(y))
    # a warm solve with y, a and b constant (LW's case) takes its gradient from the kernels: no autograd costs
    analytic = start is not None and not (y.requires_grad or a.requires_grad or b.requires_grad)
    costs_x = xd if analytic else x
    x2, y2 = (costs_x * costs_x).sum(-1), (y * y).sum(-1)  # squared norms (N,), (M,): once for all four costs
    x2d, y2d = x2.detach(), y2.detach()
    # the gradient reaches x through C(x, y) and C(x, x), y via C(y, x)
    C_xy = half_squared_distances(costs_x, yd, x2, y2d)

    def cost_yx() -> torch.Tensor:  # C(y, x), read by the cold loop and the autograd update, not by the kernels
        # C(x, y)ᵀ: a transpose instead of a fourth N×M×D matmul, unless y needs its own gradient
        return half_squared_distances(y, xd, y2, x2d) if y.requires_grad else C_xy.detach().T.contiguous()

    if cost_yy is not None and (y.requires_grad or cost_yy.shape != (len(y), len(y))):
        raise ValueError(f"cost_yy must be the ({len(y)}, {len(y)}) costs of a constant y, got shape "
                         f"{tuple(cost_yy.shape)}{' and y with a gradient' if y.requires_grad else ''}")
    C_xx = half_squared_distances(costs_x, xd, x2, x2d)
    C_yy = half_squared_distances(y, yd, y2, y2d) if cost_yy is None else cost_yy
    C_yx = cost_yx() if start is None else None
    kernels = None
    with torch.no_grad():
        schedule = epsilon_schedule(diameter if diameter is not None else bounding_diameter(xd, yd), blur, scaling)
        if start is not None:
            eps = eps_final
            f_ba, g_ab, f_aa, g_bb, iterations, kernels = _warm_updates(
                eps, C_xy, C_xx, C_yy, a, b, tuple(start),
                max_iterations if max_iterations is not None else len(schedule), tolerance)
        else:
            eps = schedule[-1]
            f_ba, g_ab, f_aa, g_bb = _annealed_potentials(schedule, C_xy, C_yx, C_xx, C_yy, a_log, b_log)
            iterations = len(schedule)
    final = _kernel_final_step(kernels, (f_ba, g_ab, f_aa, g_bb), a, b, eps, x, yd) if (
        analytic and kernels is not None) else None
    if final is not None:
        loss, (f_ba, g_ab, f_aa, g_bb) = final
    else:
        if analytic:  # the kernels gave out: the autograd update needs costs that reach x
            C_xy, C_xx = half_squared_distances(x, yd, None, y2d), half_squared_distances(x, xd, None, x2d)
        if C_yx is None:  # warm
            C_yx = cost_yx()
        # the last update with autograd on: the potentials above are constants (envelope theorem)
        f_ba, g_ab = _softmin(eps, C_xy, b_log + g_ab / eps), _softmin(eps, C_yx, a_log + f_ba / eps)
        f_aa, g_bb = _softmin(eps, C_xx, a_log + f_aa / eps), _softmin(eps, C_yy, b_log + g_bb / eps)
        loss = _dual_value(a, b, f_ba, g_ab, f_aa, g_bb)
    state = SinkhornState(xd, yd, a_log, b_log, f_ba.detach(), g_ab.detach(), f_aa.detach(), g_bb.detach(), eps,
                          iterations)
    return loss, state


def semi_relaxed_divergence(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                            b: torch.Tensor | None = None, blur: float | None = None, scaling: float = DEFAULT_SCALING,
                            reach: float = 1.0, diameter: float | None = None, cost_yy: torch.Tensor | None = None,
                            start: Potentials | None = None, tolerance: float = WARM_TOLERANCE,
                            max_iterations: int | None = None) -> tuple[torch.Tensor, SinkhornState]:
    """A Sinkhorn divergence that keeps α's marginal and relaxes β's by ρ·KL, ρ = reach² (a deviation from LW).

    The semi-relaxed entropic problem (Séjourné et al. 2019, "Sinkhorn divergences for unbalanced optimal transport",
    Sect. 2, with ρ = ∞ on α's side) is

        OT_ε,ρ(α, β) = min_π ⟨π, C⟩ + ε KL(π ‖ α⊗β) + ρ KL(π₂ ‖ β)   over π with first marginal α,

    so every point of α is carried in full, but α need not cover β in its proportions: a target further than about
    ``reach`` from α's points may receive less mass than its weight. Debiased by α's balanced self-transport and β's
    relaxed one,

        S = ⟨a, f_ba − f_aa⟩ + ρ ⟨b, exp(−g_bb/ρ) − exp(−g_ab/ρ)⟩,

    solved like :func:`sinkhorn_divergence` (GeomLoss's annealed, averaged log-domain updates), with β's updates
    damped by 1/(1 + ε/ρ) (GeomLoss's ``dampening``) and α's not; one last update gives the value and, from its
    soft-min weights, the gradient in x (as GeomLoss's, C(x, x) differentiated in its first argument only). Warm
    (``start``: potentials on x and y at ε = blur², e.g. each code's from the last solve it took part in), the same
    averaged updates run at the final ε until one moves the value by less than ``tolerance`` (relative), as
    :func:`sinkhorn_divergence`'s warm solves do, in the log domain. β's self-term does not depend on x, and its
    entropic mass term is left out of the value. As ρ → ∞ this is :func:`sinkhorn_divergence` (tested against
    GeomLoss). LW uses it with ``target_reach`` (:mod:`latentedit.edits.lw`): "add one digit" then need not put the
    new digit in every empty slot in the targets' proportions, a per-image choice an affine map makes badly (README
    "Relax only the targets").

    Parameters
    ----------
    x, y, a, b, blur, scaling, diameter
        As :func:`sinkhorn_loss`.
    reach : float
        In the codes' units; ρ = reach².
    cost_yy : Tensor, shape (M, M), optional
        C(y, y) of a constant y, when the caller has it.
    start, tolerance, max_iterations
        As :func:`sinkhorn_divergence` (no ``warm`` state to extend: the c-transform of a relaxed side is damped).

    Returns
    -------
    loss : Tensor, shape ()
        Differentiable in x.
    state : SinkhornState
        The points and potentials, from which the codes' next solves start (``iterations``: the updates it ran).
    """
    if not reach > 0:
        raise ValueError(f"reach must be > 0, got {reach}")
    x, y = flatten_codes(x), flatten_codes(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"clouds live in different spaces: {tuple(x.shape)} vs {tuple(y.shape)}")
    if blur is None:
        blur = default_blur(x, y)
    rho = reach ** 2
    a = marginal_weights(a, len(x), x, "a")
    b = marginal_weights(b, len(y), y, "b")
    a_log, b_log = _log_weights(a), _log_weights(b)
    xd, yd = x.detach(), y.detach()
    start = _checked_start(start, len(x), len(y))
    with torch.no_grad():
        C_xy, C_xx = half_squared_distances(xd, yd), half_squared_distances(xd, xd)
        C_yx = C_xy.T.contiguous()
        C_yy = half_squared_distances(yd, yd) if cost_yy is None else cost_yy
        schedule = epsilon_schedule(diameter if diameter is not None else bounding_diameter(xd, yd), blur, scaling)
        eps = schedule[-1]
        if start is None:
            f_ba, g_ab, f_aa, g_bb = _annealed_potentials(schedule, C_xy, C_yx, C_xx, C_yy, a_log, b_log, rho)
            iterations = len(schedule)
        else:
            f_ba, g_ab, f_aa, g_bb, iterations = _log_domain_updates(
                eps, C_xy, C_xx, C_yy, a, b, tuple(start),
                max_iterations if max_iterations is not None else len(schedule), tolerance, rho=rho, C_yx=C_yx)
        # the last update, in parallel, and its gradient in x (the potentials above are constants: envelope
        # theorem). f_ba and f_aa are soft-mins over C(x, y) and C(x, x), so ∇_{x_i} S = a_i (Σ_k P^aa_ik x_k −
        # Σ_j P_ij y_j), P and P^aa their row-stochastic soft-min weights: two N×M×D products, where autograd
        # through the two costs took four more (as sinkhorn_divergence's warm solves, _kernel_final_step)
        logits_xy, logits_xx = (b_log + g_ab / eps) - C_xy / eps, (a_log + f_aa / eps) - C_xx / eps
        g_ab = _target_damping(eps, rho) * _softmin(eps, C_yx, a_log + f_ba / eps)
        f_ba, f_aa = -eps * torch.logsumexp(logits_xy, 1), -eps * torch.logsumexp(logits_xx, 1)
        grad = a.detach().unsqueeze(1) * (torch.softmax(logits_xx, 1) @ xd - torch.softmax(logits_xy, 1) @ yd)
    loss = _semi_relaxed_value(a, b, f_ba, g_ab, f_aa, g_bb, rho) + ((x - xd) * grad).sum()
    return loss, SinkhornState(xd, yd, a_log, b_log, f_ba, g_ab, f_aa, g_bb, eps, iterations)


def sinkhorn_loss(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None,
                  blur: float | None = None, scaling: float = DEFAULT_SCALING,
                  diameter: float | None = None) -> torch.Tensor:
    """S_ε(Σ a_i δ_{x_i}, Σ b_j δ_{y_j}) with C_ij = ½‖x_i − y_j‖², ε = blur² (debiased Sinkhorn divergence).

    Parameters
    ----------
    x : Tensor, shape (N, D) or (N, L, D)
        First cloud (e.g. edited source codes); W+ codes are flattened to (N, L·D). Gradients flow to x (and y).
    y : Tensor, shape (M, D) or (M, L, D)
        Second cloud (e.g. target codes), same trailing shape as x.
    a : Tensor, shape (N,), optional
        Non-negative weights of x, normalised here to sum 1; uniform when None.
    b : Tensor, shape (M,), optional
        Same for y.
    blur : float, optional
        Finest resolved length scale, in latent units. None: :func:`default_blur` of *this* pair (convenient for
        one-off comparisons; training resolves it once so every step minimises the same function).
    scaling : float in (0, 1)
        Ratio between successive blur radii of the ε-annealing (see the module docstring).
    diameter : float, optional
        Upper bound on ‖x_i − y_j‖, the first annealing radius; None: estimated from the clouds.

    Returns
    -------
    Tensor, shape ()
        The divergence, in squared latent units (½‖·‖²).
    """
    return sinkhorn_divergence(x, y, a, b, blur, scaling, diameter)[0]


def preservation_weights(gamma_row: torch.Tensor, edited: int | None = None, absolute: bool = False) -> torch.Tensor:
    """w_l = 1 − γ_lk (or 1 − |γ_lk|), clamped to ≥ 0, with w_k = 0 for the edited attribute k.

    Parameters
    ----------
    gamma_row : Tensor, shape (L,)
        γ_lk for every classifier attribute l: how strongly attribute l is tied to the edited attribute k (e.g. the
        correlation of their labels; γ_kk = 1 already gives w_k = 0).
    edited : int, optional
        Index k of the edited attribute among the L outputs; forces w_k = 0.
    absolute : bool
        Use 1 − |γ_lk|, so that attributes *anti*-correlated with k (e.g. ``count_1`` when adding a digit) are also
        free to change; the plain formula gives them weights up to 2.

    Returns
    -------
    Tensor, shape (L,)
    """
    gamma = torch.as_tensor(gamma_row, dtype=torch.float32).reshape(-1)
    w = (1 - (gamma.abs() if absolute else gamma)).clamp_min(0)
    if edited is not None:
        w[edited] = 0
    return w


def attribute_cost_matrix(fx: torch.Tensor, fy: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """c_ij = ½ Σ_l w_l (F_l(x_i) − F_l(y_j))², with w_l = 1 − γ_lk and w_k = 0.

    Parameters
    ----------
    fx : Tensor, shape (..., N, L)
        Latent-classifier outputs F(x_i) (probabilities or logits, one scalar per attribute).
    fy : Tensor, shape (..., M, L)
        Same for y_j; leading batch dimensions must broadcast with fx's (GeomLoss passes (B, N, L), (B, M, L)).
    w : Tensor, shape (L,)
        Non-negative per-attribute weights (see :func:`preservation_weights`).

    Returns
    -------
    Tensor, shape (..., N, M)
    """
    w = torch.as_tensor(w, dtype=fx.dtype, device=fx.device)
    diff = fx.unsqueeze(-2) - fy.unsqueeze(-3)  # (..., N, M, L)
    return 0.5 * (diff.pow(2) * w).sum(-1)


def attribute_cost_loss(fx: torch.Tensor, fy: torch.Tensor, w: torch.Tensor, a: torch.Tensor | None = None,
                        b: torch.Tensor | None = None, blur: float | None = None,
                        scaling: float = DEFAULT_SCALING, diameter: float | None = None) -> torch.Tensor:
    """L_pres = S_ε(Σ a_i δ_{F(x_i)}, Σ b_j δ_{F(y_j)}) with the ground cost c_ij of :func:`attribute_cost_matrix`.

    Since c_ij = ½‖√w ∘ F(x_i) − √w ∘ F(y_j)‖², the loss is :func:`sinkhorn_loss` on the √w-scaled features — the
    same divergence as GeomLoss with ``cost=attribute_cost_matrix(·, ·, w)``, but with the standard cost routine
    and a diameter estimated in the space the cost measures (``tests/test_edits_sinkhorn.py`` checks the two agree).
    In LW, x are the edited source codes (μ'_s), y the unedited source codes (μ_s), a = b the source weights.

    Parameters
    ----------
    fx : Tensor, shape (N, L)
        Classifier outputs on the first cloud (differentiable).
    fy : Tensor, shape (M, L)
        Classifier outputs on the second cloud.
    w : Tensor, shape (L,)
        Non-negative per-attribute weights, w_k = 0 for the edited attribute.
    a, b : Tensor, shapes (N,), (M,), optional
        Weights, normalised to sum 1; uniform when None.
    blur : float, optional
        In units of the √w-scaled outputs; None: :func:`default_blur` of the scaled pair.
    scaling, diameter : see :func:`sinkhorn_loss`.

    Returns
    -------
    Tensor, shape ()
        0 when every w_l is 0 (nothing to preserve).
    """
    return attribute_cost_divergence(fx, fy, w, a, b, blur, scaling, diameter)[0]


def attribute_cost_divergence(fx: torch.Tensor, fy: torch.Tensor, w: torch.Tensor, a: torch.Tensor | None = None,
                              b: torch.Tensor | None = None, blur: float | None = None,
                              scaling: float = DEFAULT_SCALING, diameter: float | None = None,
                              warm: SinkhornState | None = None, tolerance: float = WARM_TOLERANCE,
                              start: Potentials | None = None) -> tuple[torch.Tensor, SinkhornState | None]:
    """:func:`attribute_cost_loss` and the state that warm-starts the next call (None when nothing is preserved)."""
    w = torch.as_tensor(w, dtype=fx.dtype, device=fx.device).reshape(-1)
    if (w < 0).any():
        raise ValueError("attribute weights must be non-negative")
    if fx.shape[-1] != w.numel() or fy.shape[-1] != w.numel():
        raise ValueError(f"{w.numel()} weights for outputs of widths {fx.shape[-1]} and {fy.shape[-1]}")
    if not (w > 0).any():
        return fx.sum() * 0.0, None  # keeps the graph (and the device) of fx
    root = w.sqrt()
    return sinkhorn_divergence(fx * root, fy * root, a, b, blur=blur, scaling=scaling, diameter=diameter, warm=warm,
                               tolerance=tolerance, start=start)
