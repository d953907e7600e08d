"""Latent Transformer baseline (Yao, Newson, Gousseau & Hellier, "A Latent Transformation Network for Face
Editing with Disentangled Attribute Control", ICCV 2021; code: InterDigitalInc/latent-transformer):

    T_k(w) = w + α·A_k(w),   A_k linear per W+ layer (one D×D map + bias per layer; flat codes: one D×D map),
    L = L_cls + λ_pres·L_pres + λ_reg·L_reg,
    L_cls  = mean_n BCEWithLogits(F_k(T(w_n)), t)                            (push attribute k to the target t),
    L_pres = mean_{n,l} ( m_l · (F_l(T(w_n)) − F_l(w_n)) )²,  m_l = 1 − |γ_lk|, m_k = 0   (keep the others),
    L_reg  = mean over all entries of (T(w) − w)²                             (keep the edit small),

with F the frozen latent classifier (:mod:`latentedit.labels.classifiers`, logits) and γ the absolute label
correlation (:mod:`latentedit.labels.correlations`). The core variant LT(*) keeps L_cls only (λ_pres = λ_reg = 0).

**Checked against the authors' repository** (``trainer.py``, ``nets.py``, ``configs/001.yaml``):

- loss forms: ``loss_pb`` = BCEWithLogits on F_k(T(w)) (class-balanced weights N/#pos, N/#neg over the batch),
  ``loss_recon`` = ``MSELoss(w_1, w_0)`` — the mean over *all* entries, not a per-code squared norm —,
  ``loss_reg`` = ``MSELoss(F(w_1)·m, F(w_0)·m)`` with m = 1 − |corrcoef(labels)[k]| (NaN → 0): the mask sits
  *inside* the square (weight m_l², ``pres_weight_power = 2``; 1 gives the linear weighting m_l), the mean runs over
  the batch and *all* A outputs (including k, whose mask is 0), and it compares **logits**;
- weights ``w: {pb: 1, recon: 10, reg: 1}`` → ``lambda_reg = 10``, ``lambda_pres = 1``;
- Adam(lr 1e-3, betas (0.9, 0.999), weight_decay 5e-4), batch 32, 10 epochs (StepLR(10, ×0.1): no decay within);
- the map is ``F_mapping``: per-layer ``Dense_layer`` with an equalised learning rate — raw weight v initialised
  xavier-uniform, used as v/√D, bias 0. With Adam this is exactly (up to Adam's ε) plain weights W = v/√D trained
  with learning rate lr/√D and weight decay wd·D, initialised W ~ U(±√3/D); ``equalized_lr`` and ``init="xavier"``
  reproduce it on :class:`latentedit.edits.affine.AffineEdit` (the same z + α(Wz + c) family as LW, so every
  method's edit renders with one module).

**Deliberate differences** (documented assumptions):

- *One direction per model.* The repository selects the direction per code from the classifier (t = 1 if
  σ(F_k(w)) < 0.5 else 0) and scales the step by the probability gap, T(w) = w + (t − σ(F_k(w)))·A(w), training
  both directions in one map. Here, as for LW, the caller passes the source codes of one edit ("add k": codes whose
  *label* k is 0) and the target t (default 1); α is a constant (1 during training, free at inference), so the edit
  needs no classifier at inference. With a single target the class-balanced weights of ``loss_pb`` are all 1, so
  L_cls is a plain mean BCE.
- *A constant step.* Every code moves by α·A(w) with α = 1 during training (``alpha``), where the repository scales
  each code's step by its own probability gap α = t − σ(F_k(w)) (codes the classifier already reads as edited barely
  move). The constant step is what LW uses and what calibration (:mod:`latentedit.render.calibrate`) varies.
- *Every attribute the edit names is free.* The workflow (:mod:`latentedit.edits.train`) hands LT the γ column with
  γ_lk = 1 for every attribute of the definition's source, target and attribute, so their mask m_l is 0 — e.g.
  ``count_1`` may switch off while ``count_2`` switches on; the repository masks only k itself (m_k = 0 through
  γ_kk = 1) and preserves the others by their correlation.
- *Early stopping* on held-out source codes (the total loss; the training loss without them), keeping the best
  epoch, instead of a fixed 10 epochs; ``max_epochs``/``max_steps`` cap the run.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from latentedit.edits.affine import AffineEdit
from latentedit.edits.model import affine_parameters
from latentedit.edits.train import EditJob, TrainedEdit
from latentedit.training_utils import Adam, fit

log = logging.getLogger(__name__)

INITS = ("xavier", "zero")
TERMS = ("classification", "preservation", "regularisation", "total")


@dataclass(frozen=True)
class LTConfig:
    lambda_pres: float = 1.0  # LT repo w.reg = 1 (attribute preservation on the other logits)
    lambda_reg: float = 10.0  # LT repo w.recon = 10 (entry-wise mean squared latent change)
    core: bool = False  # LT(*): classification loss only (λ_pres = λ_reg = 0 whatever is set above)
    pres_weight_power: int = 2  # LT repo squares the mask, MSE(F(T(w))·m, F(w)·m); 1: weights m_l = 1 − |γ_lk|
    batch_size: int = 32  # LT repo
    lr: float = 1.0e-3  # LT repo (Adam); with equalized_lr the weight matrix effectively moves at lr/√D
    weight_decay: float = 5.0e-4  # LT repo (Adam L2 on the raw parameters)
    equalized_lr: bool = True  # LT's Dense_layer parametrisation (weight lr/√D, weight decay wd·D; bias unchanged)
    init: str = "xavier"  # "xavier": LT's init, W ~ U(±√3/D), b = 0; "zero": start at the identity edit, as LW
    alpha: float = 1.0  # edit strength α during training (and the module's default at inference)
    max_epochs: int = 200  # an upper bound: early stopping normally ends the run long before
    max_steps: int = 20_000  # hard cap on optimiser steps
    patience: int = 5  # epochs without an improvement of the monitored loss larger than min_delta
    min_delta: float = 1.0e-4  # in loss units (nats of BCE)
    layers: tuple[int, ...] | None = None  # W+ codes (N, L, D): edited layers (None: all, as LT); flat: ignored
    seed: int = 0

    def __post_init__(self):
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(l) for l in self.layers))  # YAML gives lists
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.lambda_pres < 0 or self.lambda_reg < 0 or self.pres_weight_power not in (1, 2):
            raise ValueError("lambda_pres, lambda_reg must be ≥ 0 and pres_weight_power 1 or 2")
        if self.batch_size < 1 or self.max_epochs < 1 or self.max_steps < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs, max_steps and patience must be ≥ 1")

    @property
    def effective_lambdas(self) -> tuple[float, float]:
        """(λ_pres, λ_reg) actually used: (0, 0) for the core variant LT(*)."""
        return (0.0, 0.0) if self.core else (float(self.lambda_pres), float(self.lambda_reg))

    def to_dict(self) -> dict:
        return asdict(self)


def lt_preservation_mask(gamma_row, k: int) -> torch.Tensor:
    """m_l = 1 − |γ_lk| clamped to [0, 1], with m_k = 0 (the LT repository's ``get_correlation`` mask).

    Parameters
    ----------
    gamma_row : array-like, shape (A,)
        Column k of the (absolute or signed) label correlation matrix.
    k : int
        Edited attribute.

    Returns
    -------
    Tensor, shape (A,), float32
    """
    g = torch.as_tensor(np.asarray(gamma_row) if not isinstance(gamma_row, torch.Tensor) else gamma_row,
                        dtype=torch.float32).reshape(-1)
    m = (1 - g.abs()).clamp(0, 1)
    m[k] = 0
    return m


def lt_loss_components(codes: torch.Tensor, edited: torch.Tensor, logits_before: torch.Tensor,
                       logits_after: torch.Tensor, k: int, mask: torch.Tensor, *, target: float = 1.0,
                       lambda_pres: float = 1.0, lambda_reg: float = 10.0,
                       pres_weight_power: int = 2) -> dict[str, torch.Tensor]:
    """The LT loss terms of one batch (see the module docstring for the formulas).

    Parameters
    ----------
    codes, edited : Tensor, shape (B, *S)
        w and T(w).
    logits_before, logits_after : Tensor, shape (B, A)
        F(w) (no gradient needed) and F(T(w)).
    k : int
        Edited attribute (column of the logits).
    mask : Tensor, shape (A,)
        m from :func:`lt_preservation_mask` (m_k = 0).
    target : float
        Label t the edited codes should get for attribute k (1: add, 0: remove).
    lambda_pres, lambda_reg : float
        Weights of L_pres and L_reg in ``total`` (0, 0 for LT(*)).
    pres_weight_power : int
        2: (m_l·ΔF_l)² as the LT repository; 1: m_l·ΔF_l².

    Returns
    -------
    dict of scalar Tensors
        ``classification``, ``preservation``, ``regularisation`` (each always computed, for monitoring) and
        ``total`` = classification + λ_pres·preservation + λ_reg·regularisation.
    """
    if codes.shape != edited.shape or logits_before.shape != logits_after.shape:
        raise ValueError("codes/edited and logits_before/logits_after must have the same shapes")
    y = torch.full_like(logits_after[:, k], float(target))
    l_cls = F.binary_cross_entropy_with_logits(logits_after[:, k], y)
    m = mask.to(logits_after).reshape(1, -1) ** pres_weight_power  # (1, A)
    l_pres = (m * (logits_after - logits_before) ** 2).mean()  # mean over the batch and all A outputs
    l_reg = ((edited - codes) ** 2).mean()  # mean over all B·prod(S) entries
    total = l_cls
    if lambda_pres:
        total = total + lambda_pres * l_pres
    if lambda_reg:
        total = total + lambda_reg * l_reg
    return {"classification": l_cls, "preservation": l_pres, "regularisation": l_reg, "total": total}


def make_lt_edit(code_shape: tuple[int, ...], cfg: LTConfig, generator: torch.Generator | None = None) -> AffineEdit:
    """The map T(w) = w + α(Wz + c) for codes of shape S = (D,) or (L, D), initialised as ``cfg.init`` says."""
    if len(code_shape) == 1:
        edit = AffineEdit(code_shape[0], alpha=cfg.alpha)
    elif len(code_shape) == 2:
        edit = AffineEdit(code_shape[1], n_layers=code_shape[0], layers=cfg.layers, alpha=cfg.alpha)
    else:
        raise ValueError(f"latent codes must be (N, D) or (N, L, D), got code shape {code_shape}")
    if cfg.init == "xavier":  # LT: xavier-uniform raw weight (bound √(3/D)) used as v/√D → U(±√3/D)
        bound = math.sqrt(3.0) / edit.dim
        with torch.no_grad():
            edit.weight.copy_((torch.rand(edit.weight.shape, generator=generator) * 2 - 1) * bound)
    return edit


def _optimizer(edit: AffineEdit, cfg: LTConfig) -> Adam:
    """Adam; with ``equalized_lr`` the weight group gets lr/√D and weight decay wd·D (LT's Dense_layer)."""
    if not cfg.equalized_lr:
        return Adam(edit.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    d = edit.dim  # fan-in of every per-layer map
    return Adam([
        {"params": [edit.weight], "lr": cfg.lr / math.sqrt(d), "weight_decay": cfg.weight_decay * d},
        {"params": [edit.bias], "lr": cfg.lr, "weight_decay": cfg.weight_decay},
    ])


def _frozen(classifier: Callable, device) -> Callable:
    """A frozen eval-mode copy of an ``nn.Module`` classifier (dropout off, no parameter gradients)."""
    if not isinstance(classifier, nn.Module):
        return classifier
    frozen = copy.deepcopy(classifier).to(device).eval()
    frozen.requires_grad_(False)
    return frozen


def train_lt(source_latents: torch.Tensor, classifier: Callable, k: int, gamma_row,
             cfg: LTConfig = LTConfig(), val_source: torch.Tensor | None = None, *,
             target: float = 1.0) -> tuple[AffineEdit, list[dict]]:
    """Train the Latent Transformer T_k on source codes, with the classifier F frozen.

    Parameters
    ----------
    source_latents : Tensor, shape (N, D) or W+ (N, L, D)
        Codes to edit ("add k": codes whose label k is 0). Their device is the training device.
    classifier : callable
        Latent classifier F: codes (B, *S) → logits (B, A), e.g. a
        :class:`~latentedit.labels.classifiers.LatentClassifier`; an ``nn.Module`` is copied, put in eval mode and
        frozen (the caller's object is left untouched).
    k : int
        Index of the edited attribute among the classifier outputs.
    gamma_row : array-like, shape (A,)
        γ_lk, column k of :func:`latentedit.labels.correlations.correlation_matrix`.
    cfg : LTConfig
    val_source : Tensor, shape (N_v, *S), optional
        Held-out source codes; early stopping monitors their total loss (the epoch's mean training loss without).
    target : float
        Label the edited codes should receive for attribute k (1: add, 0: remove).

    Returns
    -------
    edit : AffineEdit
        T_k at its best epoch (possibly −1, the initialisation), in eval mode.
    history : list of dict
        One row per epoch (−1 = before training): epoch, steps, ``train_<term>`` (epoch means; NaN at −1) and
        ``val_<term>`` for the four terms of :func:`lt_loss_components`, ``val_success`` (fraction of val codes
        whose edited logit is on the target side of 0; NaN without val codes), best, seconds.
    """
    device = source_latents.device
    if source_latents.dim() not in (2, 3) or len(source_latents) == 0:
        raise ValueError("source codes must be a non-empty (N, D) or (N, L, D) tensor, "
                         f"got {tuple(source_latents.shape)}")
    if val_source is not None:
        val_source = val_source.to(device)
        if val_source.shape[1:] != source_latents.shape[1:] or len(val_source) == 0:
            raise ValueError("val_source must be non-empty codes of the same shape as the source codes")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    F_ = _frozen(classifier, device)
    mask = lt_preservation_mask(gamma_row, k).to(device)
    lambda_pres, lambda_reg = cfg.effective_lambdas
    edit = make_lt_edit(tuple(source_latents.shape[1:]), cfg, gen).to(device=device, dtype=source_latents.dtype)
    opt = _optimizer(edit, cfg)
    with torch.no_grad():
        logits = _chunked(F_, source_latents)  # (N, A)
    if logits.dim() != 2 or logits.shape[1] != len(mask) or not 0 <= k < len(mask):
        raise ValueError(f"classifier gives {tuple(logits.shape[1:])} outputs, gamma_row has {len(mask)} entries, "
                         f"edited attribute {k}: they must agree")
    start = (logits[:, k] > 0).float().mean().item()
    log.info("LT%s: attribute %d → %g, %d source codes %s, λ_pres %g, λ_reg %g, mask %s; %.3f of the sources "
             "already classified positive", "(*)" if cfg.core else "", k, target, len(source_latents),
             tuple(source_latents.shape[1:]), lambda_pres, lambda_reg, [round(float(v), 4) for v in mask], start)

    def terms(z: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            before = F_(z)
        edited = edit(z)
        return lt_loss_components(z, edited, before, F_(edited), k, mask, target=target, lambda_pres=lambda_pres,
                                  lambda_reg=lambda_reg, pres_weight_power=cfg.pres_weight_power)

    @torch.no_grad()
    def evaluate() -> dict:
        if val_source is None:
            return {**{f"val_{t}": math.nan for t in TERMS}, "val_success": math.nan}
        sums, hits = dict.fromkeys(TERMS, 0.0), 0.0
        for i in range(0, len(val_source), 4096):
            z = val_source[i:i + 4096]
            out = terms(z)
            for t in TERMS:
                sums[t] += float(out[t]) * len(z)
            logit = F_(edit(z))[:, k]
            hits += float(((logit > 0) == (target > 0.5)).float().sum())
        return {**{f"val_{t}": v / len(val_source) for t, v in sums.items()}, "val_success": hits / len(val_source)}

    def train_epoch(epoch: int, step_budget: int) -> tuple[dict, int]:
        order = torch.randperm(len(source_latents), generator=gen).to(device)
        sums, n, steps = dict.fromkeys(TERMS, 0.0), 0, 0
        for i in range(0, len(order), cfg.batch_size):
            if steps >= step_budget:
                break
            z = source_latents[order[i:i + cfg.batch_size]]
            out = terms(z)
            if not torch.isfinite(out["total"]):
                raise FloatingPointError(f"non-finite LT loss at epoch {epoch}, batch {steps}")
            opt.zero_grad(set_to_none=True)
            out["total"].backward()
            opt.step()
            steps += 1
            for t in TERMS:
                sums[t] += float(out[t].detach()) * len(z)
            n += len(z)
        return {f"train_{t}": v / n for t, v in sums.items()} if n else {}, steps

    # without val codes the epoch's training loss is monitored: epoch −1 has none and is no candidate
    monitor = "val_total" if val_source is not None else "train_total"
    history, best_row = fit(edit, train_epoch, evaluate, monitor=monitor, max_epochs=cfg.max_epochs, mode="min",
                            patience=cfg.patience, min_delta=cfg.min_delta, max_steps=cfg.max_steps,
                            evaluate_before=True, train_columns=[f"train_{t}" for t in TERMS], name="LT")
    if best_row is not None:
        log.info("LT: val success %.3f at the best epoch %d", best_row["val_success"], best_row["epoch"])
    return edit.eval(), history


@torch.no_grad()
def _chunked(fn: Callable, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    return torch.cat([fn(z[i:i + chunk]) for i in range(0, len(z), chunk)])


def train_edit_job(job: EditJob) -> TrainedEdit:
    """The ``lt`` / ``lt_core`` trainer (:mod:`latentedit.edits.train`): :func:`train_lt` on the job's train source
    codes towards its target label of k, early-stopped on the val source codes (``core`` comes from the registry)."""
    cfg = LTConfig(**job.options)
    edit, history = train_lt(job.tensor("train", "source"), job.classifier, job.k, job.gamma_row(), cfg,
                             val_source=job.tensor("val", "source"), target=float(job.target_value))
    return TrainedEdit(affine_parameters(edit), history, {"config": cfg.to_dict()})
