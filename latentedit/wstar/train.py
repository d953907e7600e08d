"""Train T (the W* bijection) on latent codes, their labels and the perceptual features of their images.

Procedure (the library entry point of ``rules/wstar.smk``):

1. Per-attribute linear classifiers (a_l, b_l) are fitted on the original training codes (logistic regression,
   :func:`fit_linear_classifiers`) and frozen.
2. The rescaling c and normaliser m of L_d (:mod:`latentedit.wstar.losses`) are measured on random pairs of the
   original training codes and their perceptual features.
3. T (:class:`latentedit.wstar.realnvp.RealNVP`, starting at the identity) minimises L = L_a + λ_d·L_d (+ λ_ID·L_ID)
   with Adam on minibatches; after every epoch the same loss on the validation codes early-stops and the best epoch
   is kept. The history records the invertibility error max |T⁻¹(T(w)) − w| on the validation codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from latentedit.training_utils import Adam, fit
from latentedit.wstar.losses import attribute_separation_loss, distance_loss, identity_loss
from latentedit.wstar.realnvp import RealNVP

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WStarConfig:
    n_couplings: int = 4  # two complementary pairs of coupling layers: every coordinate is transformed twice
    hidden: tuple[int, ...] = (256, 256)  # widths of each scale / translation MLP
    lambda_d: float = 1.0  # weight of the distance-unfolding loss L_d (dimensionless, see losses)
    lambda_id: float = 0.0  # weight of the identity loss L_ID (0: off; it renders images every step)
    id_sigma: float = 0.1  # std of the W* step ε of L_ID, in units of the codes' per-dimension std
    lr: float = 1.0e-3
    batch_size: int = 128  # L_d uses all B(B−1)/2 pairs of a batch
    max_epochs: int = 100
    max_steps: int = 3000
    patience: int = 5
    min_delta: float = 1.0e-4
    max_codes: int = 5000  # training codes used (a seeded subset): their images are rendered and featurised
    classifier_C: float = 1.0  # inverse L2 strength of the original-space logistic regressions
    seed: int = 0
    mask_seed: int = field(default=0)
    perceptual: str | None = None  # φ of D_perc and L_ID (latentedit.wstar.perceptual.KINDS); None: the world's default

    @classmethod
    def from_options(cls, options) -> WStarConfig:
        """From the ``wstar`` config section (its ``metrics`` sub-section is not a training option)."""
        opts = {k: v for k, v in dict(options).items() if k != "metrics"}
        unknown = set(opts) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown wstar options {sorted(unknown)}")
        if "hidden" in opts:
            opts["hidden"] = tuple(int(h) for h in opts["hidden"])
        return cls(**opts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def fit_linear_classifiers(codes: np.ndarray, labels: np.ndarray, C: float = 1.0,
                           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One logistic regression per attribute on flattened codes: weight (A, D), bias (A,), train accuracy (A,).
    An attribute with a single class in ``labels`` gets weight 0 and the bias of its constant label."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    y = np.asarray(labels)
    weight, bias, acc = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1]), np.ones(y.shape[1])
    for l in range(y.shape[1]):
        if len(np.unique(y[:, l])) < 2:
            bias[l] = 10.0 if y[0, l] else -10.0
            continue
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x, y[:, l])
        weight[l], bias[l], acc[l] = clf.coef_[0], clf.intercept_[0], clf.score(x, y[:, l])
    return torch.as_tensor(weight, dtype=torch.float32), torch.as_tensor(bias, dtype=torch.float32), acc


def distance_scale(codes: np.ndarray, features: np.ndarray, n_pairs: int = 20000,
                   seed: int = 0) -> tuple[float, float]:
    """(c, m): m = mean ‖w_i − w_j‖², c = m / mean ‖φ_i − φ_j‖² over random pairs of the original codes."""
    from latentedit.wstar.metrics import indexed_sq_distances, random_pairs

    i, j = random_pairs(len(codes), n_pairs, np.random.default_rng(seed))
    m = float(indexed_sq_distances(codes, i, j).mean())
    p = float(indexed_sq_distances(features, i, j).mean())
    if not (m > 0 and p > 0):
        raise ValueError(f"degenerate distances: mean latent {m}, mean perceptual {p}")
    return m / p, m


def train_wstar(codes: np.ndarray, labels: np.ndarray, features: np.ndarray, val_codes: np.ndarray,
                val_labels: np.ndarray, val_features: np.ndarray, cfg: WStarConfig = WStarConfig(),
                device: str | torch.device = "cpu", generator: Callable | None = None,
                feature_fn: Callable | None = None) -> tuple[dict, list[dict]]:
    """Train T; return the W* model (a checkpoint dict) and the per-epoch history.

    Parameters
    ----------
    codes, val_codes : array, shapes (N, *S), (N_v, *S)
        Training / validation codes.
    labels, val_labels : array, shapes (N, A), (N_v, A)
        0/1 attribute labels.
    features, val_features : array, shapes (N, F), (N_v, F)
        Perceptual features φ(G(w)) (:func:`latentedit.wstar.perceptual.render_features`).
    cfg : WStarConfig
    device : str or torch.device
    generator, feature_fn : callable, optional
        Differentiable G (codes → images in [−1, 1]) and φ (images → (N, F)); needed when ``cfg.lambda_id > 0``.

    Returns
    -------
    model : dict
        ``kind = "wstar"``, ``spec`` and ``state_dict`` of the RealNVP, the frozen classifiers ``classifier_weight``
        (A, D) and ``classifier_bias`` (A,), ``distance_scale`` c, ``distance_norm`` m, ``options``. Loads with
        ``torch.load(weights_only=True)``.
    history : list of dict
        Epoch −1 (T = id) then one row per epoch: epoch, steps, train/val L_a, L_d, L_ID, total, ``invertibility``,
        ``best``, ``seconds`` (:func:`latentedit.training_utils.fit`).
    """
    if cfg.lambda_id > 0 and (generator is None or feature_fn is None):
        raise ValueError("lambda_id > 0 needs a differentiable generator and feature function")
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    code_shape = tuple(np.asarray(codes).shape[1:])
    w_cls, b_cls, cls_acc = fit_linear_classifiers(codes, labels, cfg.classifier_C, cfg.seed)
    scale, norm = distance_scale(codes, features, seed=cfg.seed)
    log.info("W*: %d train / %d val codes %s, linear classifiers train accuracy mean %.4f, c = %.4g, m = %.4g",
             len(codes), len(val_codes), code_shape, float(cls_acc.mean()), scale, norm)
    sigma = cfg.id_sigma * float(np.asarray(codes).reshape(len(codes), -1).std(0).mean())
    perc_norm = norm / scale  # mean perceptual pair distance

    def t(x, dtype=torch.float32):
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)

    z, y, f = t(codes), t(labels), t(features)
    zv, yv, fv = t(val_codes), t(val_labels), t(val_features)
    w_cls, b_cls = w_cls.to(device), b_cls.to(device)
    T = RealNVP(code_shape, cfg.n_couplings, cfg.hidden, cfg.mask_seed).to(device)
    opt = Adam(T.parameters(), lr=cfg.lr)

    def losses(zb, yb, fb, with_id: bool) -> dict[str, torch.Tensor]:
        ws = T(zb)
        out = {"attribute": attribute_separation_loss(ws, yb, w_cls, b_cls),
               "distance": distance_loss(ws, fb, scale, norm)}
        out["identity"] = (identity_loss(zb, T, generator, feature_fn, sigma, perc_norm, gen)
                           if with_id else torch.zeros((), device=device))
        out["total"] = out["attribute"] + cfg.lambda_d * out["distance"] + cfg.lambda_id * out["identity"]
        return out

    @torch.no_grad()
    def evaluate() -> dict:
        sums, n = {"attribute": 0.0, "distance": 0.0}, 0
        for i in range(0, len(zv), cfg.batch_size):
            sl = slice(i, i + cfg.batch_size)
            if len(zv[sl]) < 2:
                continue
            out = losses(zv[sl], yv[sl], fv[sl], False)
            sums["attribute"] += float(out["attribute"])
            sums["distance"] += float(out["distance"])
            n += 1
        row = {f"val_{k}": v / max(n, 1) for k, v in sums.items()}
        row["val_total"] = row["val_attribute"] + cfg.lambda_d * row["val_distance"]
        row["invertibility"] = float((T.inverse(T(zv)) - zv).abs().max()) if len(zv) else 0.0
        return row

    def train_epoch(epoch: int, step_budget: int) -> tuple[dict, int]:
        order = torch.randperm(len(z), generator=gen).to(device)
        sums, n = {"attribute": 0.0, "distance": 0.0, "identity": 0.0, "total": 0.0}, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2 or n >= step_budget:  # L_d needs pairs
                continue
            out = losses(z[idx], y[idx], f[idx], cfg.lambda_id > 0)
            if not torch.isfinite(out["total"]):
                raise FloatingPointError(f"non-finite W* loss at epoch {epoch}, batch {n}")
            opt.zero_grad(set_to_none=True)
            out["total"].backward()
            opt.step()
            n += 1
            for k in sums:
                sums[k] += float(out[k].detach())
        return {f"train_{k}": v / n for k, v in sums.items()} if n else {}, n

    history, _ = fit(T, train_epoch, evaluate, monitor="val_total", max_epochs=cfg.max_epochs, mode="min",
                     patience=cfg.patience, min_delta=cfg.min_delta, max_steps=cfg.max_steps, evaluate_before=True,
                     train_columns=("train_attribute", "train_distance", "train_identity", "train_total"), name="W*")
    model = {"kind": "wstar", "spec": T.spec(),
             "state_dict": {k: v.detach().cpu() for k, v in T.state_dict().items()},
             "classifier_weight": w_cls.cpu(), "classifier_bias": b_cls.cpu(), "distance_scale": float(scale),
             "distance_norm": float(norm), "options": cfg.to_dict()}
    return model, history


HISTORY_PLOT_COLUMNS = ["train_attribute", "val_attribute", "train_distance", "val_distance", "train_total",
                        "val_total", "train_identity", "invertibility"]
