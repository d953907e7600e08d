"""Edit-strength calibration: the step d at which the latent classifier reads the edit as done.

Methods measure α in different units: LW and LT are trained at α = 1 (α scales their learnt map), InterFaceGAN
moves a code by α along a unit normal (α in latent units). To compare them at comparable *target change*, every
(method, edit) gets its own step

    d = min { α ≥ 0 : rate(α) ≥ τ },   rate(α) = mean_n 1[ 1[σ(F_k(z_n + α·H(z_n))) > 0.5] = t ],

on the **validation** source codes of the edit (never the test codes that are rendered and measured), where F_k
is the latent classifier of the edited attribute k and t its target label. τ is ``render.calibration_rate``
(default 1.0: the latent classifier reports 100 % target change, the operating point of the paper's Table 2).
rate(α) is close to monotone for the edits here; d is found by doubling an upper bound from the method's natural
unit (:func:`natural_unit`: 1 for LW/LT; for InterFaceGAN the step ⟨μ_t − μ_s, n⟩ that carries the source mean
onto the target mean along the normal) until rate ≥ τ, then bisecting to a relative width of 1e-3.
If no doubling step below ``max_alpha`` reaches τ, the best doubling step b (the natural unit when no α beats α = 0,
e.g. an edit that stayed the identity) is refined by a scan of ``PEAK_SCAN`` values over (b/2, 2b]. This matters for
edits whose latent rate peaks and falls again — e.g. "add one digit" pushed past the target count reads as the next
count — where a power-of-two step can miss the peak by far (measured: LW 1 → 2 peaked near α ≈ 1.3, the doubling
search alone picked α = 2). When the scan finds rate ≥ τ, d is bisected between its first such value and the scan
value before it, as above, and ``reached`` is True; otherwise ``reached`` is False and d is the α of the highest rate.
(Before this, a τ found by the scan was reported as not reached, at the scan's value: InterFaceGAN on the W+ world's
"add one digit 1 → 2" read as † at d = 5.98 though its latent rate is 1.0 there.)
Rendering then uses α ∈ {0} ∪ linspace(d, 2d, n_alphas) (:func:`alpha_grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from latentedit.edits.model import apply_edit, edit_space_codes
from latentedit.labels.classifiers import predict_logits


PEAK_SCAN = 32  # α values scanned around the best doubling step when τ is never reached


@dataclass(frozen=True)
class Calibration:
    d: float  # the calibrated step
    rate: float  # latent target-change rate at d (validation codes)
    reached: bool  # rate(d) ≥ τ
    tau: float
    unit: float  # the method's natural unit the search started from
    n_codes: int  # validation source codes used
    evaluations: int  # rate(α) evaluations spent

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def latent_rate_function(model: Mapping, codes: torch.Tensor, classifier, k: int,
                         target: int) -> Callable[[float], float]:
    """α ↦ fraction of ``codes`` edited at α whose classifier label of attribute k equals ``target``."""
    def rate(alpha: float) -> float:
        edited = apply_edit(model, codes, alpha)
        return float(((predict_logits(classifier, edited)[:, k] > 0).long() == target).float().mean())
    return rate


def natural_unit(model: Mapping, source: torch.Tensor, target: torch.Tensor) -> float:
    """1 for LW/LT (α scales the trained map); ⟨mean(target) − mean(source), n⟩ for an InterFaceGAN normal n
    (the step that moves the source mean onto the target mean along n), floored at 1e-3 of the codes' RMS norm.
    For a direction in W* (``ifg_wstar``) both the means and the norm are taken in W*, where n lives."""
    if model["type"] == "affine":
        return 1.0
    source, target = edit_space_codes(model, source), edit_space_codes(model, target)
    n = torch.as_tensor(model["normal"], dtype=source.dtype).reshape(-1)
    gap = float((target.reshape(len(target), -1).mean(0) - source.reshape(len(source), -1).mean(0)) @ n)
    floor = 1e-3 * float(source.reshape(len(source), -1).norm(dim=1).pow(2).mean().sqrt())
    return max(gap, floor)


def calibrate(rate: Callable[[float], float], tau: float = 1.0, unit: float = 1.0, max_alpha: float | None = None,
              rel_tol: float = 1e-3, n_codes: int = 0) -> Calibration:
    """Smallest α with rate(α) ≥ τ: doubling from ``unit``, then bisection; see the module docstring.

    Parameters
    ----------
    rate : callable
        α ↦ latent target-change rate in [0, 1].
    tau : float in (0, 1]
    unit : float > 0
        First upper bound tried.
    max_alpha : float, optional
        Largest α searched (default 64 × unit).
    rel_tol : float
        Bisection stops when the bracket is narrower than rel_tol × upper bound.
    n_codes : int
        Recorded in the result (how many codes ``rate`` averages over).
    """
    if not 0 < tau <= 1:
        raise ValueError(f"calibration rate τ must lie in (0, 1], got {tau}")
    if not unit > 0:
        raise ValueError(f"unit must be > 0, got {unit}")
    max_alpha = 64 * unit if max_alpha is None else max_alpha
    seen: dict[float, float] = {}

    def r(a: float) -> float:
        seen[a] = rate(a)
        return seen[a]

    def bisect(lo: float, hi: float) -> Calibration:
        """rate(lo) < τ ≤ rate(hi): narrow [lo, hi] to the first crossing, d = hi."""
        while hi - lo > rel_tol * hi:
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if r(mid) >= tau else (mid, hi)
        return Calibration(hi, seen[hi], True, tau, unit, n_codes, len(seen))

    r0 = r(0.0)
    if r0 >= tau:
        return Calibration(0.0, r0, True, tau, unit, n_codes, len(seen))
    lo, hi = 0.0, unit
    while r(hi) < tau:
        lo, hi = hi, 2 * hi
        if hi > max_alpha:  # no doubling step reaches τ: scan around the best one
            best = max((a for a in seen if a > 0), key=lambda a: (seen[a], -a))
            if seen[best] <= r0:  # nothing beats the unedited codes: report the natural unit
                return Calibration(unit, seen[unit], False, tau, unit, n_codes, len(seen))
            for a in np.linspace(best / 2, min(2 * best, max_alpha), PEAK_SCAN + 1)[1:]:
                r(float(a))
            hits = [a for a in seen if seen[a] >= tau]
            if hits:  # τ lies between two doubling steps: bisect from the scan value before the first hit
                first = min(hits)
                return bisect(max(a for a in seen if a < first), first)
            best = max((a for a in seen if a > 0), key=lambda a: (seen[a], -a))  # smallest α on ties
            return Calibration(best, seen[best], False, tau, unit, n_codes, len(seen))
    return bisect(lo, hi)


def calibrate_edit(model: Mapping, source: torch.Tensor, target: torch.Tensor, classifier, k: int, t: int,
                   tau: float = 1.0) -> Calibration:
    """d for one edit model: :func:`calibrate` of its latent rate on the validation ``source`` codes (attribute k
    read as t by ``classifier``), from its :func:`natural_unit` (``source`` and ``target``: the validation codes of
    the edit's source and target sets)."""
    return calibrate(latent_rate_function(model, source, classifier, k, t), tau=tau,
                     unit=natural_unit(model, source, target), n_codes=len(source))


def alpha_grid(d: float, n_alphas: int) -> list[float]:
    """[0] + n_alphas values evenly spaced over [d, 2d] (just [0] when d = 0 would repeat it)."""
    if n_alphas < 1:
        raise ValueError("n_alphas must be ≥ 1")
    if d <= 0:
        return [0.0]
    return [0.0] + [float(a) for a in np.linspace(d, 2 * d, n_alphas)]
