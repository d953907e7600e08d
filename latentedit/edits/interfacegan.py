"""InterFaceGAN (Shen, Gu, Tang & Zhou, "Interpreting the Latent Space of GANs for Semantic Face Editing", CVPR
2020; code: genforce/interfacegan ``utils/manipulator.py``): a linear SVM separates codes with and without
attribute k, and the edit moves a code along the unit normal of that hyperplane,

    f(z) = ⟨w_svm, z⟩ + b,   n = w_svm / ‖w_svm‖,   z' = z + α·n,

so z' lies exactly α further along n (its signed distance ⟨n, z⟩ + b/‖w_svm‖ grows by α). n points from the
negative side (without k) to the positive side (with k): α > 0 adds the attribute, α < 0 removes it.

As in the reference ``train_boundary``: the SVM is ``sklearn.svm.SVC(kernel="linear")`` (default C = 1) on the
**raw** codes — no standardisation, so n is the normal of the boundary in the space the generator reads and α is in
code units (a standardised fit would return the normal of a rescaled space, which is not orthogonal to the boundary
once mapped back) — with as many positive as negative codes (the reference takes the top / bottom 2 % of
attribute scores, equal counts). Here positives and negatives are the codes whose label k is 1 / 0, each side
randomly capped at ``max_samples`` (kernel SVC scales roughly quadratically in the number of codes) and, with
``balance``, cut to the smaller side. W+ codes (N, L, D) are flattened to L·D features, so n has one direction
per layer, shape (L, D), unit norm over all entries (the reference fits one 512-d w code and repeats it over the
layers; encoder W+ codes differ per layer, hence the flattened fit).
"""

from __future__ import annotations

import inspect
import logging
import time

import numpy as np
import torch
from sklearn.svm import SVC, LinearSVC

from latentedit.edits.model import direction_parameters
from latentedit.edits.train import EditJob, TrainedEdit

log = logging.getLogger(__name__)

SOLVERS = ("svc", "linear_svc")
OPTIONS = ("C", "max_samples", "balance", "solver", "seed")  # edits.ifg keys the trainer reads (alpha: evaluation)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def fit_direction(pos, neg, C: float = 1.0, max_samples: int | None = 3000, seed: int = 0,
                  balance: bool = True, solver: str = "svc") -> tuple[np.ndarray, float, float]:
    """Fit a linear SVM between positive and negative codes; return its unit normal.

    Parameters
    ----------
    pos, neg : ndarray or Tensor, shapes (N_p, *S), (N_n, *S)
        Codes with / without the attribute; S = (D,) or (L, D).
    C : float
        SVM regularisation (sklearn's C; 1.0 as the reference).
    max_samples : int or None
        At most this many codes per side, a random subset (None: all).
    seed : int
        Seed of the subsampling.
    balance : bool
        Use the same number of codes on both sides (the smaller count), as the reference does.
    solver : {"svc", "linear_svc"}
        ``SVC(kernel="linear")`` (hinge loss, libsvm, the reference) or ``LinearSVC`` (squared hinge, liblinear;
        much faster on large sets, its intercept is regularised).

    Returns
    -------
    normal : ndarray, shape S, float32
        Unit normal n (‖n‖ = 1 over all entries), pointing towards the positive codes.
    intercept : float
        b / ‖w_svm‖, so that ⟨n, z⟩ + intercept is the signed distance of z to the boundary.
    train_accuracy : float
        Accuracy of the SVM on the codes it was fitted on.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    pos, neg = _numpy(pos), _numpy(neg)
    if pos.shape[1:] != neg.shape[1:] or pos.ndim not in (2, 3):
        raise ValueError(f"pos/neg must be (N, D) or (N, L, D) codes of one shape, got {pos.shape}, {neg.shape}")
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("both sides need at least one code")
    rng = np.random.default_rng(seed)
    n_pos, n_neg = len(pos), len(neg)
    if balance:
        n_pos = n_neg = min(n_pos, n_neg)
    if max_samples is not None:
        n_pos, n_neg = min(n_pos, max_samples), min(n_neg, max_samples)
    pos = pos[rng.permutation(len(pos))[:n_pos]]
    neg = neg[rng.permutation(len(neg))[:n_neg]]
    shape = pos.shape[1:]
    x = np.concatenate([pos, neg]).reshape(n_pos + n_neg, -1).astype(np.float64)  # (N, prod(S))
    y = np.concatenate([np.ones(n_pos, dtype=np.int64), np.zeros(n_neg, dtype=np.int64)])
    clf = SVC(kernel="linear", C=C) if solver == "svc" else LinearSVC(C=C, dual="auto", random_state=seed)
    t0 = time.time()
    clf.fit(x, y)
    w = np.asarray(clf.coef_, dtype=np.float64).reshape(-1)  # (prod(S),), positive side = class 1
    norm = float(np.linalg.norm(w))
    if not np.isfinite(norm) or norm == 0:
        raise FloatingPointError("the SVM found no separating direction (zero or non-finite normal)")
    accuracy = float(clf.score(x, y))
    intercept = float(np.asarray(clf.intercept_).reshape(-1)[0]) / norm
    log.info("InterFaceGAN: %s on %d positive / %d negative codes %s (C = %g): train accuracy %.4f, margin "
             "1/‖w‖ = %.4g (%.1f s)", solver, n_pos, n_neg, shape, C, accuracy, 1 / norm, time.time() - t0)
    return (w / norm).reshape(shape).astype(np.float32), intercept, accuracy


def signed_distance(z, normal, intercept: float = 0.0):
    """⟨n, z⟩ + intercept per code: (N, *S) codes → (N,), the same array type as ``z``."""
    if isinstance(z, torch.Tensor):
        n = torch.as_tensor(_numpy(normal), dtype=z.dtype, device=z.device)
        return (z.reshape(len(z), -1) @ n.reshape(-1)) + intercept
    z = np.asarray(z)
    return z.reshape(len(z), -1) @ np.asarray(normal, dtype=z.dtype).reshape(-1) + intercept


def train_edit_job(job: EditJob) -> TrainedEdit:
    """The ``ifg`` / ``ifg_wstar`` trainer (:mod:`latentedit.edits.train`): the SVM normal between the job's train
    target codes (positives) and source codes (negatives), its accuracy on the val codes as the one history row."""
    unknown = set(job.options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"{job.name}: unknown ifg options {sorted(unknown)}")
    opts = {key: job.options[key] for key in OPTIONS if key in job.options}
    normal, intercept, accuracy = fit_direction(job.codes["train", "target"], job.codes["train", "source"], **opts)
    val_acc = direction_accuracy(normal, intercept, job.codes["val", "target"], job.codes["val", "source"])
    defaults = {p.name: p.default for p in inspect.signature(fit_direction).parameters.values() if p.name in OPTIONS}
    return TrainedEdit(direction_parameters(normal, intercept),
                       [{"epoch": 0, "train_accuracy": accuracy, "val_accuracy": val_acc}],
                       {"config": {**defaults, **opts}})


def direction_accuracy(normal, intercept, pos, neg) -> float:
    """Accuracy of the hyperplane ⟨n, z⟩ + intercept = 0 separating pos (> 0) from neg (≤ 0)."""
    s_pos = signed_distance(pos, normal, intercept)
    s_neg = signed_distance(neg, normal, intercept)
    return float(((s_pos > 0).sum() + (s_neg <= 0).sum()) / (len(s_pos) + len(s_neg)))
