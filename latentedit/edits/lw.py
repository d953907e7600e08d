"""LW: learn the edit of attribute k by minimising a Wasserstein loss (Doubinsky et al. 2023).

    min_H  L_edit = S_ε(μ'_s, μ_t) + λ · L_pres,    μ'_s = (z ↦ z + H_k(z))_# μ_s,
           L_pres = S_ε^c(F_# μ'_s, F_# μ_s),        c_ij = ½ Σ_l (1 − γ_lk) (F_l(x_i) − F_l(y_j))²,

where μ_s, μ_t are the (weighted) source and target latent codes — without and with attribute k — S_ε the
debiased Sinkhorn divergence (:mod:`latentedit.edits.sinkhorn`), H_k affine (:mod:`latentedit.edits.affine`) and
F a latent classifier with one output per attribute, read as attribute probabilities σ(F_l) by default
(``pres_space``): measured on the digits world, L_pres on raw logits blocks the edit altogether — adding a digit moves
the logits of attributes that stay confidently absent (e.g. ``count_3`` for a 1 → 2 edit) by several units without
changing any label, and those moves dominate the cost; in probability space only label-changing moves cost much.

``pres_mode`` (a deviation from the paper; default ``per_code_falls``; ``distribution`` is the paper's L_pres, method
``lw_paper``): the paper's L_pres compares the *distributions* of the attributes before and after the edit, so an
edit that turns one image's 3 into an 8 and another's 8 into a 3 costs nothing — the failure seen on the digits W+
world, where LW adds the digit but rewrites the existing one. ``per_code`` compares each code with itself,
L_pres = Σ_i a_i · ½ Σ_l w_l (F_l(z_i) − F_l(z'_i))²; ``per_code_falls`` counts only falls, (F_l(z_i) − F_l(z'_i))₊,
so an "add" edit may raise any presence (the new digit, whichever it is) but is charged for every attribute a code
loses but those the definition names (``count_1`` of a 1 → 2 edit has w = 0: ``EditJob.gamma_row``). Neither needs
a Sinkhorn solve (nor ``pres_blur``: NaN in the history). Their scale differs from the paper's: a code's term is at
most ½ Σ_l w_l, against a Wasserstein term of ≈ 100–250 on the digits' 8 × 128 W+ codes, so λ = 1 barely acts.
Measured there with the semi-relaxed transport below (README "Per-code preservation with relaxed
targets"): ``per_code_falls`` at λ = 100 keeps the existing digits in about twice as many "add one digit" edits as
the paper's L_pres at λ = 1 (1 → 2 clean edits 0.320 → 0.566 ± 0.005, 2 → 3 0.097 → 0.212 ± 0.033 over three
seeds), with the target change unchanged (0.937 ± 0.012, 0.947 ± 0.017); the presence edits ("add a 0") need λ ≈ 1:
at 10 and above they no longer reach the target, because most of them reach it by redrawing an existing digit.

**Attributes in the transport cost** (``transport_attributes`` = μ; a deviation from the paper, off by default).
The Wasserstein term carries each code with its attribute readings appended, scaled by √(μ w_l) (the weights of
L_pres), so that its cost is ½‖x − y‖² + ½μ Σ_l w_l (F_l(x) − F_l(y))²: the transport pairs a source with the targets
that read like it, where L_pres only charges the edited code for what it loses. ``target_reach``'s δ and the targets'
cost table are taken on the augmented codes. Why: LW's plan in the digits' W+ rarely pairs an image with a target that
keeps its digits (15 % of its mass on "add one digit" 1 → 2, 2 % on 2 → 3, though 37 and 3.8 such targets exist per
source; ``bench/ot_pairing.py``), and the presence readings raise that to 26 % / 3 % at μ = 100 and 47 % / 10 % at
1,000. Measured in training (README "Attributes in the transport cost, in training", three seeds): at μ = 30 the
clean edits rise 0.584 → 0.639 on 1 → 2 and 0.220 → 0.252 on 2 → 3, about one spread over seeds, while 2 → 3's
target change falls 0.931 → 0.907 (one seed 0.883) and "add a 7" 0.777 → 0.690 †; so it stays off.

``target_reach`` (a deviation from the paper; default 0.2; None is the paper's balanced S_ε, method ``lw_paper``):
the paper's S_ε is balanced, so the edited sources must cover the whole target law in its proportions. On "add one
digit" in the digits world that asks one affine map to spread the new digit over every empty slot in the targets'
proportions, a per-image choice it makes badly (README "Is the choice of slot the limit?"). With ``target_reach`` r,
the Wasserstein term is the semi-relaxed divergence (:func:`latentedit.edits.sinkhorn.semi_relaxed_divergence`):
every source code is carried, the targets' marginal is relaxed by ρ·KL with ρ = (r·δ)², δ the median distance from a
train source code to its nearest train target code (:func:`nearest_target_distance`), so the edited cloud may leave
targets further than about r·δ under-covered. Its solves start from the codes' potentials in the tables once a
batch's codes are all there, and cold before (never extended: the c-transform of the damped targets' side is not
the balanced one), and run to :data:`~latentedit.edits.sinkhorn.SEMI_RELAXED_WARM_TOLERANCE`; with the gradient of
their last update taken from its soft-min weights, LW's relaxed trainings on the digits' W+ take 1.4× less time
than with cold solves, in the same number of steps (README "Measured"). README "Relax only the targets": the
measurement (0.870 / 0.833 → 0.957 / 0.960 on 1 → 2 / 2 → 3, every one of three seeds ≥ 0.93).

``couple_layers`` (W+ codes, off by default): one affine map on the edited layers flattened together instead of one
per layer (:mod:`latentedit.edits.affine`), so that each layer's step may read every layer's code. Measured on the
digits W+ (three seeds, README "Is the per-layer form of H_k the limit?"): the count edits fall (2 → 3
0.826 → 0.770), "add a 7" rises (0.584 → 0.719) by redrawing more; the per-layer map stays the default.

The OT problems are solved on minibatches: every epoch each
side is shuffled and cut into batches of B = min(n_s, n_t, batch_cap) codes (the smaller side is cycled through
fresh permutations until the larger one is exhausted). The affine form of H_k is the inductive bias that keeps the
edit simple; early stopping on a held-out split keeps the best epoch, measured with the same loss on the whole
validation sets (each capped at ``batch_cap`` codes, a fixed subset), and waits ``patience`` evaluations and at least
``patience_steps`` steps (an epoch of a small edit can be a single batch) without an improvement larger than
max(``min_delta``, ``min_rel_delta``·best): the paper gives no threshold, and an absolute 1e-4 on a loss of ≈ 10 (the
digits' 64-d Z) let "add a 7" creep on for 1,900 steps for its last 0.7 % (README "LW early stopping"). Validation
runs once ``eval_every_steps`` steps have passed since the last one: after every epoch of the digits Z world (10 or
more batches each), after every 10 batches in W+, where an epoch is one batch and validating after each (a solve on
512 × 512 fixed codes to a tight tolerance, ≈ 17 updates per potential against ≈ 6 for a warm training step) took
more Sinkhorn work than training.

**Warm starts** (``warm_start``). A training step's Sinkhorn solves start from dual potentials and update at the final
ε until the value settles, instead of running the whole ε-annealing; they are as accurate
(:mod:`latentedit.edits.sinkhorn`). Each code keeps the potentials of the last solve it took part in
(:class:`PotentialTable`, one per loss term), so once every code of a batch has been solved (from the second epoch on,
unless an epoch drops its short last batch) the batch starts from its own potentials at no cost. Before that the last
step's potentials are extended to the batch by one c-transform each, at the price of four more N×N×D cost matmuls:
``auto`` does so for codes of up to :data:`WARM_START_MAX_DIM` entries and solves larger ones cold, ``always`` extends
at every size, ``never`` solves every step cold. ``bench/lw_step.py`` (one thread, N = 512; cold / first epoch,
extended / from the tables): D = 64 44.4 / 16.7 / 9.7 ms; D = 1024 97.0 / 93.3 / 62.7 ms; D = 9216 (faces W+) 616 /
894 / 633 ms, where the edit's and the cost matrices' matmuls are the work. A warm solve updates in the kernel domain
(gemv on stabilised kernels) and takes its gradient from the kernels (:mod:`latentedit.edits.sinkhorn`). Validation
meets the same codes every epoch, so it starts from their potentials of the last epoch and runs to
:data:`VALIDATION_TOLERANCE` (the first evaluation is cold); its losses sit ≈ 0.2 % below the cold annealing's, which
stops short of convergence, with the same shape across epochs.

**Target costs.** The target codes never move, so the target-to-target costs C(y, y) of the debiased divergence are
computed once for all targets (:class:`TargetCosts`, up to :data:`TARGET_COSTS_MAX_CODES` of them) and each batch
gathers its own, where a step computed them with an N×N×D matmul; the same numbers to float rounding.
``bench/lw_step.py`` (one thread, warm steps): 1.10× at N = 512, D = 1024 (the digits W+), 1.15× at N = 1024.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from latentedit.edits.affine import AffineEdit
from latentedit.edits.model import affine_parameters
from latentedit.edits.sinkhorn import (DEFAULT_BLUR_FRACTION, DEFAULT_SCALING, SEMI_RELAXED_WARM_TOLERANCE,
                                       WARM_TOLERANCE, Potentials, SinkhornState, attribute_cost_divergence,
                                       default_blur, flatten_codes, half_squared_distances, preservation_weights,
                                       semi_relaxed_divergence, sinkhorn_divergence)
from latentedit.edits.train import EditJob, TrainedEdit
from latentedit.edits.weights import balanced_weights
from latentedit.training_utils import Adam, fit

log = logging.getLogger(__name__)

MONITORS = ("val_edit_loss", "val_wasserstein")
WARM_STARTS = ("auto", "always", "never")
VALIDATION_TOLERANCE = 1.0e-6  # warm validation solves: far below early stopping's min_delta, relative to the loss
WARM_START_MAX_DIM = 1024  # auto: extended starts up to this code size (flattened D); about break-even here on CPU
TARGET_COSTS_MAX_CODES = 4096  # TargetCosts: up to this many targets (4096² float32 = 64 MiB)
PRES_SPACES = ("probability", "logit")
PRES_MODES = ("distribution", "per_code", "per_code_falls")


@dataclass(frozen=True)
class LWConfig:
    lr: float = 3.0e-3  # Adam; the paper's 1e-3 stops early before converging (README: "LW learning rate")
    max_epochs: int = 1000  # an upper bound: early stopping normally ends the run long before
    max_steps: int = 20_000  # hard cap on optimiser steps (one epoch = ⌈max(n_s, n_t) / B⌉ steps)
    batch_cap: int = 512  # B = min(n_s, n_t, batch_cap): four dense B×B cost matrices per loss (1 MiB each)
    blur: float | None = None  # None: default_blur(train source, train target) = blur_fraction · σ_rms
    blur_fraction: float = DEFAULT_BLUR_FRACTION  # 0.25·σ_rms (sinkhorn module: why not 0.5)
    scaling: float = DEFAULT_SCALING  # ε-annealing ratio; ≈ 17 Sinkhorn iterations at the default blur
    lambda_pres: float = 0.0  # 0: plain LW (Wasserstein term only); > 0 adds L_pres and needs a classifier
    pres_blur: float | None = None  # None: default_blur of the √w-scaled classifier outputs on the train source
    pres_absolute_gamma: bool = False  # w_l = 1 − |γ_lk| instead of 1 − γ_lk (frees anti-correlated attributes)
    pres_space: str = "probability"  # L_pres on σ(F) ("probability") or on the logits F ("logit"); see module doc
    pres_mode: str = "per_code_falls"  # | per_code | distribution: the paper's S_ε^c of the F-clouds (module doc)
    # μ ≥ 0: the transport cost adds ½μ Σ_l w_l (F_l(x) − F_l(y))² (module doc, "Attributes in the transport cost")
    transport_attributes: float = 0.0
    patience: int = 5  # validations without an improvement of `monitor` larger than min_delta …
    patience_steps: int = 50  # … and at least this many steps (W+ with 3,000 codes: an epoch is one batch)
    eval_every_steps: int = 10  # validate once this many steps have passed (digits Z: every epoch; W+: every 10)
    min_delta: float = 1.0e-4  # squared latent units; smaller changes are Sinkhorn solver noise
    # … and this fraction of the best loss so far: a scale-free threshold (the loss is ≈ 10 on the digits' 64-d codes,
    # ≈ 110-190 on their W+). 0: off. README "LW early stopping": 1e-3 cuts the Z world's LW job time by 22-23 %.
    min_rel_delta: float = 1.0e-3
    monitor: str = "val_edit_loss"  # early-stopping quantity: "val_edit_loss" (total) or "val_wasserstein"
    min_last_batch_fraction: float = 0.5  # drop an epoch's last batch below this × B: tiny-cloud OT is mostly noise
    layers: tuple[int, ...] | None = None  # W+ codes (N, L, D): edited layers (None: all); ignored for flat codes
    couple_layers: bool = False  # W+ codes: one affine map on the edited layers flattened together (module doc)
    rank: int | None = None  # train W = U Vᵀ of this rank (per layer; affine module doc, a deviation); None: full
    # None: the paper's balanced S_ε; r: the targets' marginal relaxed, reach r·δ (module doc, a deviation; 0.2 on
    # the digits W+: "add one digit" 0.870 / 0.833 → 0.95 / 0.95, README "Relax only the targets")
    target_reach: float | None = 0.2
    warm_start: str = "auto"  # solves start from each code's last potentials; before those: auto | always | never
    weighting: bool = True  # balanced weights a_i = 1/(n_t^A·n_s^A) over labels.weight_attributes (train_edit_job)
    weight_min_count: int = 1  # codes a combination needs on both sides to be matched
    seed: int = 0

    def __post_init__(self):
        if self.pres_space not in PRES_SPACES:
            raise ValueError(f"pres_space must be one of {PRES_SPACES}, got {self.pres_space!r}")
        if self.pres_mode not in PRES_MODES:
            raise ValueError(f"pres_mode must be one of {PRES_MODES}, got {self.pres_mode!r}")
        if self.warm_start not in WARM_STARTS:
            raise ValueError(f"warm_start must be one of {WARM_STARTS}, got {self.warm_start!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if not 0 < self.scaling < 1:
            raise ValueError(f"scaling must lie in (0, 1), got {self.scaling}")
        if not 0 <= self.min_rel_delta < 1:
            raise ValueError(f"min_rel_delta must lie in [0, 1), got {self.min_rel_delta}")
        if self.batch_cap < 2 or self.patience < 1 or self.max_epochs < 1 or self.max_steps < 1:
            raise ValueError("batch_cap ≥ 2, patience ≥ 1, max_epochs ≥ 1 and max_steps ≥ 1 are required")
        if self.patience_steps < 0 or self.eval_every_steps < 0:
            raise ValueError("patience_steps and eval_every_steps must be ≥ 0, got "
                             f"{self.patience_steps}, {self.eval_every_steps}")
        if self.target_reach is not None and not self.target_reach > 0:
            raise ValueError(f"target_reach must be > 0 (or None: balanced), got {self.target_reach}")
        if self.rank is not None and self.rank < 1:
            raise ValueError(f"rank must be ≥ 1 (or None: full), got {self.rank}")
        if self.transport_attributes < 0:
            raise ValueError(f"transport_attributes must be ≥ 0, got {self.transport_attributes}")
        if self.lambda_pres < 0 or not 0 <= self.min_last_batch_fraction <= 1:
            raise ValueError("lambda_pres must be ≥ 0 and min_last_batch_fraction in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


def epoch_batches(n_source: int, n_target: int, batch_size: int, min_last_fraction: float,
                  generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (source indices, target indices) batches of equal size.

    The larger side is shuffled once and cut into batches of ``batch_size`` (the last one shorter, dropped when
    below ``min_last_fraction · batch_size`` unless it is the only one); the smaller side is read from concatenated
    fresh permutations of itself, so it is cycled as often as needed (a batch straddling two permutations may
    repeat a code).
    """
    n_max = max(n_source, n_target)
    n_batches = math.ceil(n_max / batch_size)
    last = n_max - (n_batches - 1) * batch_size
    if n_batches > 1 and last < min_last_fraction * batch_size:
        n_batches, n_max = n_batches - 1, n_max - last

    def stream(n: int) -> torch.Tensor:
        perms = [torch.randperm(n, generator=generator) for _ in range(math.ceil(n_max / n))]
        return torch.cat(perms)[:n_max]

    s, t = stream(n_source), stream(n_target)
    return [(s[i:i + batch_size], t[i:i + batch_size]) for i in range(0, n_max, batch_size)]


def _as_weights(w, n: int, name: str, device) -> torch.Tensor | None:
    if w is None:
        return None
    w = torch.as_tensor(w, dtype=torch.float32).reshape(-1).to(device)
    if w.numel() != n:
        raise ValueError(f"{name}: {w.numel()} weights for {n} codes")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{name} must be finite, non-negative and not all zero")
    return w


def _subset(w: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if w is None else w[idx]


def _usable(w: torch.Tensor | None) -> bool:
    return w is None or bool(w.sum() > 0)


@torch.no_grad()
def _features(classifier: Callable, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """F(z) in chunks, no gradient: (N, ...) codes → (N, L) outputs."""
    return torch.cat([classifier(z[i:i + chunk]) for i in range(0, len(z), chunk)])


@dataclass(frozen=True)
class Preservation:
    """What L_pres needs: the frozen classifier F, the weights w_l, the blur of the √w-scaled outputs, λ and the
    mode (:data:`PRES_MODES`, module docstring)."""
    classifier: Callable
    weights: torch.Tensor  # (L,)
    blur: float
    weight: float  # λ
    mode: str = "distribution"


@dataclass(frozen=True)
class AttributeTransport:
    """The attributes in the transport cost (module docstring): each code is carried with its classifier outputs
    appended, scaled by √(μ w_l), so that ½‖x̃ − ỹ‖² = ½‖x − y‖² + ½μ Σ_l w_l (F_l(x) − F_l(y))²."""
    classifier: Callable
    scale: torch.Tensor  # (L,) √(μ w_l)

    def augment(self, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """(N, D + L): the flattened codes z and their outputs f = F(z), scaled."""
        return torch.cat((flatten_codes(z), f * self.scale), 1)


@dataclass
class PotentialTable:
    """Each code's dual potentials from the last solve it took part in, for one loss term (NaN marks a code not
    solved yet): a warm start that needs no c-transform extension (module docstring, "Warm starts")."""
    x: torch.Tensor  # (n_x, 2): f_ba, f_aa of the x-side codes (edited sources)
    y: torch.Tensor  # (n_y, 2): g_ab, g_bb of the y-side codes (targets; the unedited sources for L_pres)

    @classmethod
    def empty(cls, n_x: int, n_y: int, like: torch.Tensor) -> PotentialTable:
        return cls(like.new_full((n_x, 2), math.nan), like.new_full((n_y, 2), math.nan))

    def start(self, idx_x: torch.Tensor, idx_y: torch.Tensor) -> Potentials | None:
        """The batch's potentials, or None while one of its codes has not been solved yet."""
        px, py = self.x[idx_x], self.y[idx_y]
        if bool(px.isnan().any()) or bool(py.isnan().any()):
            return None
        return Potentials(px[:, 0], py[:, 0], px[:, 1], py[:, 1])

    def store(self, idx_x: torch.Tensor, idx_y: torch.Tensor, state: SinkhornState) -> None:
        """Keep a solve's potentials (a code repeated within the batch has the same ones at each of its rows)."""
        self.x[idx_x] = torch.stack((state.f_ba, state.f_aa), 1).to(self.x.dtype)
        self.y[idx_y] = torch.stack((state.g_ab, state.g_bb), 1).to(self.y.dtype)


@dataclass(frozen=True)
class TargetCosts:
    """C(y, y) = ½‖y_i − y_j‖² of all target codes, computed once: the targets never move, so every batch's
    target-to-target costs are a gather from it instead of an N×N×D matmul (one of the three cost matrices a step
    computes; a warm W+ step 1.10–1.15× faster, ``bench/lw_step.py``). Up to :data:`TARGET_COSTS_MAX_CODES` targets
    (64 MiB in float32); more (the faces world's 15,000) compute each batch's own."""
    costs: torch.Tensor  # (M, M)

    @classmethod
    @torch.no_grad()
    def of(cls, target: torch.Tensor) -> TargetCosts | None:
        if len(target) > TARGET_COSTS_MAX_CODES:
            return None
        y = flatten_codes(target)
        return cls(half_squared_distances(y, y))

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """The (B, B) costs of the targets ``idx`` (a repeated index repeats its row and column)."""
        return self.costs[idx.unsqueeze(1), idx.unsqueeze(0)]


SOLVE_KINDS = ("cold", "extended", "table")


@dataclass
class WarmStarts:
    """Where each loss term's Sinkhorn solves start (``LWConfig.warm_start``): from its codes' own potentials in a
    :class:`PotentialTable` once every code of the batch has been solved; before that from the last solve's
    potentials extended to the batch (:func:`latentedit.edits.sinkhorn.extended_potentials`) when ``extend``, else
    cold. Codes are rows 0 … n_source − 1 and 0 … n_target − 1 of the tables; L_pres's second cloud is the unedited
    sources, so its tables are n_source × n_source."""
    n_source: int
    n_target: int
    extend: bool = True  # before a batch's codes are all in the table: extend the last solve (True) or solve cold
    tolerance: float = WARM_TOLERANCE  # a warm solve stops once an update moves the value by less (relative)
    tables: dict = field(default_factory=dict)  # term → PotentialTable
    last: dict = field(default_factory=dict)  # term → the last SinkhornState (kept only to extend it)
    solves: dict = field(default_factory=lambda: {"wasserstein": [], "preservation": []})  # (kind, updates), the log

    def solver_kwargs(self, term: str, idx_x: torch.Tensor, idx_y: torch.Tensor) -> dict:
        """Keyword arguments for the term's solver: ``start`` potentials from the table, else the ``warm`` state to
        extend (None: cold)."""
        table = self.tables.get(term)
        start = table.start(idx_x, idx_y) if table is not None else None
        return {"start": start, "warm": self.last.get(term) if start is None else None, "tolerance": self.tolerance}

    def record(self, term: str, kwargs: dict, state: SinkhornState | None, idx_x: torch.Tensor,
               idx_y: torch.Tensor) -> None:
        """Keep the solve's potentials (``kwargs``: what :meth:`solver_kwargs` gave it)."""
        if state is None:
            return
        if term not in self.tables:
            n_y = {"wasserstein": self.n_target, "preservation": self.n_source}[term]
            self.tables[term] = PotentialTable.empty(self.n_source, n_y, state.f_ba)
        self.tables[term].store(idx_x, idx_y, state)
        if self.extend:
            self.last[term] = state
        kind = "table" if kwargs["start"] is not None else "extended" if kwargs["warm"] is not None else "cold"
        self.solves[term].append((kind, state.iterations))

    def summary(self, term: str) -> str | None:
        """"N solves (c cold, e extended, t from the tables), u updates each on average", or None without solves."""
        solves = self.solves[term]
        if not solves:
            return None
        counts = ", ".join(f"{sum(k == kind for k, _ in solves)} {'from the tables' if kind == 'table' else kind}"
                           for kind in SOLVE_KINDS)
        return f"{len(solves)} solves ({counts}), {sum(u for _, u in solves) / len(solves):.1f} updates each on average"


@torch.no_grad()
def nearest_target_distance(source: torch.Tensor, target: torch.Tensor, chunk: int = 1024) -> float:
    """δ: the median over source codes of the Euclidean distance to the nearest target code (codes flattened)."""
    target = flatten_codes(target)
    nearest = [torch.cdist(part, target).min(1).values for part in flatten_codes(source).split(chunk)]
    return torch.cat(nearest).median().item()


def per_code_preservation(f_edited: torch.Tensor, f_src: torch.Tensor, weights: torch.Tensor,
                          a: torch.Tensor | None, mode: str) -> torch.Tensor:
    """L_pres of ``per_code`` / ``per_code_falls`` (module docstring): Σ_i a_i · ½ Σ_l w_l Δ_il², with
    Δ_il = F_l(z_i) − F_l(z'_i), or its positive part (only falls) for ``per_code_falls``; a uniform when None."""
    delta = f_src - f_edited
    if mode == "per_code_falls":
        delta = delta.clamp_min(0)
    per = 0.5 * (delta.pow(2) * weights).sum(1)
    return per.mean() if a is None else (per * a).sum() / a.sum()


def lw_losses(edit: AffineEdit, z_src: torch.Tensor, z_tgt: torch.Tensor, a: torch.Tensor | None,
              b: torch.Tensor | None, blur: float, scaling: float, pres: Preservation | None = None,
              f_src: torch.Tensor | None = None, warm: WarmStarts | None = None,
              idx_src: torch.Tensor | None = None, idx_tgt: torch.Tensor | None = None,
              target_costs: torch.Tensor | None = None,
              reach: float | None = None, transport: AttributeTransport | None = None,
              f_tgt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(S_ε(edit(z_src), z_tgt), L_pres) for one pair of clouds; L_pres is 0 without ``pres``.

    ``f_src`` = F(z_src), the classifier outputs of the unedited source codes (needed with ``pres``). ``warm``: where
    the solves start, updated in place (None: cold, annealed solves); it needs ``idx_src``, ``idx_tgt``, the codes'
    rows in its tables. ``target_costs``: C(z_tgt, z_tgt), when the caller has it (:class:`TargetCosts`). ``reach``
    (codes' units): the Wasserstein term is the semi-relaxed divergence, warm from the tables (module docstring); None:
    balanced. ``transport``: the attributes in the transport cost (:class:`AttributeTransport`), with ``f_tgt`` =
    F(z_tgt); ``target_costs`` and ``reach`` are then those of the augmented codes.
    """
    if warm is not None and (idx_src is None or idx_tgt is None):
        raise ValueError("warm starts need the batch's code indices (idx_src, idx_tgt)")
    edited = edit(z_src)
    f_edited = pres.classifier(edited) if pres is not None else None
    x, y = edited, z_tgt
    if transport is not None:
        f_x = f_edited if pres is not None and pres.classifier is transport.classifier else transport.classifier(edited)
        x, y = transport.augment(edited, f_x), transport.augment(z_tgt, f_tgt)
    kwargs = warm.solver_kwargs("wasserstein", idx_src, idx_tgt) if warm else {}
    if reach is not None:  # starts only from the tables (WarmStarts.extend is off for these solves)
        l_w, state = semi_relaxed_divergence(x, y, a, b, blur=blur, scaling=scaling, reach=reach,
                                             cost_yy=target_costs, start=kwargs.get("start"),
                                             tolerance=kwargs.get("tolerance", SEMI_RELAXED_WARM_TOLERANCE))
    else:
        l_w, state = sinkhorn_divergence(x, y, a, b, blur=blur, scaling=scaling, cost_yy=target_costs,
                                         **kwargs)
    if warm is not None:
        warm.record("wasserstein", kwargs, state, idx_src, idx_tgt)
    if pres is None:
        return l_w, torch.zeros((), device=l_w.device)
    if pres.mode != "distribution":
        return l_w, per_code_preservation(f_edited, f_src, pres.weights, a, pres.mode)
    kwargs = warm.solver_kwargs("preservation", idx_src, idx_src) if warm else {}
    l_p, state = attribute_cost_divergence(f_edited, f_src, pres.weights, a, a, blur=pres.blur,
                                           scaling=scaling, **kwargs)
    if warm is not None:
        warm.record("preservation", kwargs, state, idx_src, idx_src)
    return l_w, l_p


def lw_step(edit: AffineEdit, opt: Adam, z_src: torch.Tensor, z_tgt: torch.Tensor,
            a: torch.Tensor | None, b: torch.Tensor | None, blur: float, scaling: float,
            pres: Preservation | None = None, f_src: torch.Tensor | None = None,
            warm: WarmStarts | None = None, idx_src: torch.Tensor | None = None,
            idx_tgt: torch.Tensor | None = None, target_costs: torch.Tensor | None = None,
            reach: float | None = None, transport: AttributeTransport | None = None,
            f_tgt: torch.Tensor | None = None) -> tuple[float, float, float]:
    """One optimiser step on L = S_ε + λ·L_pres; returns (S_ε, L_pres, L) before the step.

    ``warm``, ``idx_src``, ``idx_tgt``, ``target_costs``, ``reach``: see :func:`lw_losses`. Raises FloatingPointError
    on a non-finite loss (before touching the parameters).
    """
    l_w, l_p = lw_losses(edit, z_src, z_tgt, a, b, blur, scaling, pres, f_src, warm, idx_src, idx_tgt, target_costs,
                         reach, transport, f_tgt)
    loss = l_w + (pres.weight * l_p if pres is not None else 0.0)
    if not torch.isfinite(loss):
        raise FloatingPointError("non-finite LW loss")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(l_w.detach()), float(l_p.detach()), float(loss.detach())


def train_lw(source: torch.Tensor, target: torch.Tensor, val_source: torch.Tensor, val_target: torch.Tensor,
             cfg: LWConfig = LWConfig(), source_weights: torch.Tensor | None = None,
             target_weights: torch.Tensor | None = None, classifier: Callable | None = None,
             gamma_row: torch.Tensor | None = None, *, val_source_weights: torch.Tensor | None = None,
             val_target_weights: torch.Tensor | None = None, edited_attribute: int | None = None,
             edit: AffineEdit | None = None) -> tuple[AffineEdit, list[dict]]:
    """Train H_k by minimising L_edit = S_ε(z + H_k(z), target) + λ·L_pres on minibatches, with early stopping.

    Parameters
    ----------
    source, target : Tensor, shapes (N, D), (M, D) — or W+ (N, L, D), (M, L, D)
        Training codes without / with the edited attribute. Their device is the training device.
    val_source, val_target : Tensor, shapes (N_v, ...), (M_v, ...)
        Held-out codes for early stopping (each capped at ``cfg.batch_cap`` codes, a fixed random subset).
    cfg : LWConfig
    source_weights, target_weights : Tensor, shapes (N,), (M,), optional
        Per-code weights (e.g. :func:`latentedit.edits.weights.balanced_weights`); uniform when None. They are
        renormalised within every batch.
    classifier : callable, optional
        Latent classifier F: codes (B, ...) → outputs (B, L); needed when ``cfg.lambda_pres > 0`` or
        ``cfg.transport_attributes > 0``. It is not optimised (freeze its parameters to save memory).
    gamma_row : Tensor, shape (L,), optional
        γ_lk for the preservation weights w_l = 1 − γ_lk (see :func:`preservation_weights`), which the transport
        cost's attributes share; required with a classifier and ``lambda_pres > 0`` or ``transport_attributes > 0``.
    val_source_weights, val_target_weights : Tensor, shapes (N_v,), (M_v,), optional
        Weights of the validation codes; uniform when None.
    edited_attribute : int, optional
        Index k of the edited attribute among the classifier outputs; forces w_k = 0.
    edit : AffineEdit, optional
        Module to train (e.g. with custom layers); default: zero-initialised, full for flat codes, block-diagonal
        over ``cfg.layers`` for W+ codes (one map on those layers flattened together with ``cfg.couple_layers``),
        its linear parts of rank ≤ ``cfg.rank`` when that is set.

    Returns
    -------
    edit : AffineEdit
        The trained edit at its best validation epoch (possibly epoch −1, the identity), in eval mode.
    history : list of dict
        One row per epoch (−1 = before training): epoch, steps, train_wasserstein, train_preservation,
        train_edit_loss (means over the epoch's batches; NaN for epoch −1), val_wasserstein, val_preservation,
        val_edit_loss, best, seconds, blur, pres_blur, reach (NaN: balanced).
    """
    device = source.device
    target, val_source, val_target = (t.to(device) for t in (target, val_source, val_target))
    for name, t in (("target", target), ("val_source", val_source), ("val_target", val_target)):
        if t.shape[1:] != source.shape[1:]:
            raise ValueError(f"{name} codes have shape {tuple(t.shape[1:])}, source {tuple(source.shape[1:])}")
    if min(len(source), len(target), len(val_source), len(val_target)) == 0:
        raise ValueError("source, target, val_source and val_target must all hold at least one code")
    if (cfg.lambda_pres > 0 or cfg.transport_attributes > 0) and (classifier is None or gamma_row is None):
        raise ValueError("lambda_pres > 0 and transport_attributes > 0 need a latent classifier and gamma_row")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    a_train = _as_weights(source_weights, len(source), "source_weights", device)
    b_train = _as_weights(target_weights, len(target), "target_weights", device)
    a_val_all = _as_weights(val_source_weights, len(val_source), "val_source_weights", device)
    b_val_all = _as_weights(val_target_weights, len(val_target), "val_target_weights", device)
    vs_idx = torch.randperm(len(val_source), generator=gen)[:cfg.batch_cap].to(device)
    vt_idx = torch.randperm(len(val_target), generator=gen)[:cfg.batch_cap].to(device)
    z_vs, z_vt = val_source[vs_idx], val_target[vt_idx]
    a_val, b_val = _subset(a_val_all, vs_idx), _subset(b_val_all, vt_idx)

    if edit is None:
        if source.dim() == 2:
            edit = AffineEdit(source.shape[1], rank=cfg.rank)
        else:
            edit = AffineEdit(source.shape[2], n_layers=source.shape[1], layers=cfg.layers,
                              couple_layers=cfg.couple_layers, rank=cfg.rank)
    edit = edit.to(device=device, dtype=source.dtype)
    blur = cfg.blur if cfg.blur is not None else default_blur(source, target, cfg.blur_fraction)

    use_pres, use_transport = cfg.lambda_pres > 0, cfg.transport_attributes > 0
    pres_blur, w_pres, f_vs, f_source, transport, f_target, f_vt = float("nan"), *[None] * 6
    if (use_pres or use_transport) and cfg.pres_space == "probability":
        logits = classifier
        classifier = lambda z: torch.sigmoid(logits(z))  # noqa: E731 - F_l as attribute probabilities
    if use_pres or use_transport:
        w_pres = preservation_weights(gamma_row, edited_attribute, cfg.pres_absolute_gamma).to(device)
        f_vs = _features(classifier, z_vs)
        f_source = _features(classifier, source)  # F of the unedited sources, constant: once, not every step
        log.info("attribute weights w = %s", [round(float(v), 4) for v in w_pres])
    if use_pres:
        ot_pres = cfg.pres_mode == "distribution"  # per-code L_pres solves no OT problem: no blur (NaN)
        if ot_pres and cfg.pres_blur is not None:
            pres_blur = cfg.pres_blur
        elif ot_pres and (w_pres > 0).any():
            pres_blur = default_blur(f_source * w_pres.sqrt(), fraction=cfg.blur_fraction)
    elif classifier is not None and not use_transport:
        log.info("lambda_pres = 0: the classifier is not used")
    if use_transport:
        transport = AttributeTransport(classifier, (cfg.transport_attributes * w_pres).sqrt())
        f_target, f_vt = _features(classifier, target), _features(classifier, z_vt)
    # the transported clouds: the codes, with their scaled attribute readings appended under use_transport
    carried_source = transport.augment(source, f_source) if use_transport else source
    carried_target = transport.augment(target, f_target) if use_transport else target
    reach = (None if cfg.target_reach is None
             else cfg.target_reach * nearest_target_distance(carried_source, carried_target))

    batch_size = min(len(source), len(target), cfg.batch_cap)
    log.info("LW: %d source / %d target codes %s, batch %d, blur %.4g, scaling %g, lambda_pres %g, %s, device %s",
             len(source), len(target), tuple(source.shape[1:]), batch_size, blur, cfg.scaling, cfg.lambda_pres,
             "balanced" if reach is None else f"targets relaxed at reach {reach:.4g} ({cfg.target_reach:g}·δ)", device)

    pres = Preservation(classifier, w_pres, pres_blur, cfg.lambda_pres, cfg.pres_mode) if use_pres else None

    dim = math.prod(source.shape[1:])
    use_warm = cfg.warm_start != "never"
    # auto: extension only where it pays; the semi-relaxed solves start from the tables or cold (no extension)
    extend = (cfg.warm_start == "always" or dim <= WARM_START_MAX_DIM) and reach is None
    tolerance = WARM_TOLERANCE if reach is None else SEMI_RELAXED_WARM_TOLERANCE
    warm = WarmStarts(len(source), len(target), extend=extend, tolerance=tolerance) if use_warm else None
    # validation meets the same codes every epoch: it starts from the last epoch's solve and runs to a tight tolerance
    val_warm = WarmStarts(len(z_vs), len(z_vt), extend=extend, tolerance=VALIDATION_TOLERANCE) if use_warm else None
    val_rows = torch.arange(len(z_vs), device=device), torch.arange(len(z_vt), device=device)  # rows in val_warm

    target_costs = TargetCosts.of(carried_target)  # the targets never move: their cost matrix once, not every step
    # the fixed validation targets: their costs once for every evaluation
    val_costs = TargetCosts.of(transport.augment(z_vt, f_vt) if use_transport else z_vt)
    val_target_costs = val_costs.costs if val_costs is not None else None

    @torch.no_grad()
    def evaluate() -> dict:
        l_w, l_p = lw_losses(edit, z_vs, z_vt, a_val, b_val, blur, cfg.scaling, pres, f_vs, val_warm, *val_rows,
                             val_target_costs, reach, transport, f_vt)
        return {"val_wasserstein": float(l_w), "val_preservation": float(l_p),
                "val_edit_loss": float(l_w) + cfg.lambda_pres * float(l_p)}

    opt = Adam(edit.parameters(), lr=cfg.lr)
    skipped = 0

    def train_epoch(epoch: int, step_budget: int) -> tuple[dict, int]:
        nonlocal skipped
        sums, n = {"wasserstein": 0.0, "preservation": 0.0, "edit_loss": 0.0}, 0
        for idx_s, idx_t in epoch_batches(len(source), len(target), batch_size, cfg.min_last_batch_fraction, gen):
            if n >= step_budget:
                break
            idx_s, idx_t = idx_s.to(device), idx_t.to(device)
            a, b = _subset(a_train, idx_s), _subset(b_train, idx_t)
            if not (_usable(a) and _usable(b)):
                skipped += 1  # every code of the batch has weight 0 on one side: nothing to transport
                continue
            z_s = source[idx_s]
            f_s = f_source[idx_s] if use_pres else None
            f_t = f_target[idx_t] if use_transport else None
            try:
                l_w, l_p, loss = lw_step(edit, opt, z_s, target[idx_t], a, b, blur, cfg.scaling, pres, f_s, warm,
                                         idx_s, idx_t, target_costs.batch(idx_t) if target_costs is not None else None,
                                         reach, transport, f_t)
            except FloatingPointError as err:
                raise FloatingPointError(f"{err} at epoch {epoch}") from None
            n += 1
            sums["wasserstein"] += l_w
            sums["preservation"] += l_p
            sums["edit_loss"] += loss
        return {f"train_{k}": v / n for k, v in sums.items()} if n else {}, n

    history, _ = fit(edit, train_epoch, evaluate, monitor=cfg.monitor, max_epochs=cfg.max_epochs, mode="min",
                     patience=cfg.patience, patience_steps=cfg.patience_steps, min_delta=cfg.min_delta,
                     min_rel_delta=cfg.min_rel_delta, eval_every_steps=cfg.eval_every_steps,
                     max_steps=cfg.max_steps, evaluate_before=True,
                     train_columns=("train_wasserstein", "train_preservation", "train_edit_loss"), name="LW")
    for row in history:
        row.update(blur=blur, pres_blur=pres_blur, reach=float("nan") if reach is None else reach)
    if skipped:
        log.warning("%d batches skipped: all their codes had weight 0 on one side", skipped)
    for what, starts in (("training", warm), ("validation", val_warm)):
        for term in (starts.solves if starts is not None else ()):
            if (summary := starts.summary(term)) is not None:
                log.info("Sinkhorn %s, %s: %s", term, what, summary)
    return edit.full_rank().eval(), history


def train_edit_job(job: EditJob) -> TrainedEdit:
    """The ``lw`` / ``lw_nopres`` / ``lw_wstar`` trainer (:mod:`latentedit.edits.train`): :func:`train_lw` on the
    job's source → target codes, with balanced weights over ``weight_attributes`` (minus the changed attributes)
    when ``weighting`` is on, and L_pres with weight λ = ``job.lambda_pres`` (F ∘ T⁻¹ for an edit in W*)."""
    cfg = LWConfig(**job.options, lambda_pres=job.lambda_pres)
    weighting, min_count = bool(cfg.weighting), int(cfg.weight_min_count)
    names = job.attribute_names
    columns = [names.index(a) for a in job.weight_attributes if a not in job.changed]
    weights = {"train": (None, None), "val": (None, None)}
    if weighting:
        for split in ("train", "val"):
            try:
                a, b = balanced_weights(job.labels[split, "source"], job.labels[split, "target"], columns, min_count)
            except ValueError as e:
                raise ValueError(f"balanced weights on the {job.name} {split} codes: {e}") from None
            weights[split] = (torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32))
    use_pres = job.lambda_pres > 0
    reads = use_pres or cfg.transport_attributes > 0  # F is read by L_pres and by the transport cost
    classifier = job.classifier if reads else None
    if reads and job.wstar is not None:  # F ∘ T⁻¹: the latent classifier reads original-space codes
        classifier = _ThroughInverse(classifier, job.wstar)
    edit, history = train_lw(job.tensor("train", "source"), job.tensor("train", "target"), job.tensor("val", "source"),
                             job.tensor("val", "target"), cfg, *weights["train"], classifier=classifier,
                             gamma_row=job.gamma_row() if reads else None,
                             val_source_weights=weights["val"][0], val_target_weights=weights["val"][1],
                             edited_attribute=job.k)
    resolved = {"config": cfg.to_dict(), "weighting": weighting, "weight_min_count": min_count,
                "weight_attributes": list(job.weight_attributes), "weight_columns": [names[c] for c in columns],
                "blur": float(history[0]["blur"]), "pres_blur": float(history[0]["pres_blur"]),
                "reach": float(history[0]["reach"])}
    return TrainedEdit(affine_parameters(edit), history, resolved)


class _ThroughInverse(torch.nn.Module):
    """F ∘ T⁻¹: a latent classifier of original-space codes read on W* codes (differentiable in its input)."""

    def __init__(self, classifier, T):
        super().__init__()
        self.classifier, self.T = classifier, T

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.T.inverse(u))
