"""Latent classifiers F_l: one MLP on latent codes with one logit per attribute (multi-label, BCE with logits).

The Latent Transformer (Yao et al., "A Latent Transformation Network for Face Editing", ICCV 2021) trains its
latent classifier ``LCNet`` as a plain MLP on flattened W+ codes — Linear layers (9216 → 2048 → 512 → 40) with
LeakyReLU(0.2), one sigmoid output per CelebA attribute, ``BCEWithLogitsLoss``, Adam with weight decay 5e-4. This
module is that design with configurable width:

    F(w) = W_out · φ(… φ(W_1 · flatten(w) + b_1) …) + b_out,   φ = LeakyReLU(0.2) followed by dropout,
    L = mean_{n,l} BCEWithLogits(F_l(w_n), a_nl).

All attributes share one network (one module, A outputs) rather than A separate ones: the hidden features are
shared, it is A times cheaper to train and to call inside the LW/LT losses, and it is what LT does. Codes are fed as
they are (no standardisation, as in LT): the gradient ∂F/∂w that the LT edit follows then lives in the same units as
the codes. Training early-stops on the validation split (``monitor``) and keeps the best epoch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from latentedit.training_utils import Adam, fit

log = logging.getLogger(__name__)

MONITORS = ("val_loss", "val_accuracy")


@dataclass(frozen=True)
class ClassifierConfig:
    hidden: tuple[int, ...] = (256, 256)  # LT uses (2048, 512) on 9216-d W+ codes; 256s suffice for d_z = 64
    dropout: float = 0.1  # light regularisation on small latent sets (LT: none; 0.0 reproduces it)
    negative_slope: float = 0.2  # LeakyReLU slope, as LT's LCNet
    lr: float = 1.0e-3  # Adam; LT uses 1e-4 over 20 epochs of 30k codes, early stopping here needs a faster start
    weight_decay: float = 5.0e-4  # Adam L2 penalty, as LT's classifier and transformer
    batch_size: int = 256  # as LT's classifier pretraining
    max_epochs: int = 200  # an upper bound: early stopping normally ends the run long before
    patience: int = 5  # epochs without a val improvement larger than min_delta
    min_delta: float = 1.0e-4  # in units of the monitored quantity (BCE nats or accuracy)
    monitor: str = "val_loss"  # "val_loss" (mean BCE, smooth) or "val_accuracy" (mean over attributes)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))  # YAML gives lists
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if any(h < 1 for h in self.hidden) or not 0 <= self.dropout < 1:
            raise ValueError("hidden sizes must be ≥ 1 and dropout in [0, 1)")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be ≥ 1")

    def to_dict(self) -> dict:
        return asdict(self)


class LatentClassifier(nn.Module):
    """MLP on flattened codes, (N, *S) → logits (N, A); S = (D,) for flat codes or (L, D) for W+.

    Parameters
    ----------
    input_shape : sequence of int
        S, the shape of one code.
    n_attributes : int
        A, the number of outputs.
    hidden : sequence of int
        Widths of the hidden layers (may be empty: a linear classifier).
    dropout : float
        Dropout after every hidden activation (off in eval mode).
    negative_slope : float
        LeakyReLU slope.
    attribute_names : sequence of str, optional
        Names of the A outputs, kept for evaluation and saved with the checkpoint.
    """

    def __init__(self, input_shape: Sequence[int], n_attributes: int, hidden: Sequence[int] = (256, 256),
                 dropout: float = 0.1, negative_slope: float = 0.2, attribute_names: Sequence[str] | None = None):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_attributes, self.hidden = int(n_attributes), tuple(int(h) for h in hidden)
        self.dropout, self.negative_slope = float(dropout), float(negative_slope)
        names = [f"attr_{i}" for i in range(self.n_attributes)] if attribute_names is None else list(attribute_names)
        if len(names) != self.n_attributes:
            raise ValueError(f"{len(names)} attribute names for {self.n_attributes} outputs")
        self.attribute_names = names
        layers: list[nn.Module] = []
        width = math.prod(self.input_shape)
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(self.negative_slope), nn.Dropout(self.dropout)]
            width = h
        layers.append(nn.Linear(width, self.n_attributes))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (N, A) of codes (N, *input_shape)."""
        if tuple(z.shape[1:]) != self.input_shape:
            raise ValueError(f"expected codes (N, {', '.join(map(str, self.input_shape))}), got {tuple(z.shape)}")
        return self.net(z.reshape(len(z), -1))  # (N, prod(S))

    def spec(self) -> dict:
        """Constructor arguments except the names, stored in the checkpoint so it can be rebuilt."""
        return {"input_shape": list(self.input_shape), "n_attributes": self.n_attributes, "hidden": list(self.hidden),
                "dropout": self.dropout, "negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, n_attributes={self.n_attributes}"


def _as_tensor(x, device=None) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32,
                           device=device)


@torch.no_grad()
def predict_logits(model: nn.Module, latents, batch_size: int = 4096) -> torch.Tensor:
    """F(w) for many codes, in eval mode and in chunks.

    Parameters
    ----------
    model : LatentClassifier (or any module codes → logits)
    latents : ndarray or Tensor, shape (N, *S)
    batch_size : int
        Codes per forward pass.

    Returns
    -------
    Tensor, shape (N, A), float32, on the CPU
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        z = _as_tensor(latents)
        out = [model(z[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(model, "n_attributes", 0))


def evaluate_classifiers(model: LatentClassifier, latents, attrs, balanced: bool = False) -> dict[str, float]:
    """Per-attribute accuracy of the thresholded predictions 1[F_l(w) > 0] (i.e. σ(F_l) > 0.5).

    Parameters
    ----------
    model : LatentClassifier
    latents : ndarray or Tensor, shape (N, *S)
    attrs : ndarray, shape (N, A)
        Binary labels.
    balanced : bool
        Balanced accuracy ½ (TPR + TNR) instead — informative for rare attributes; a class absent from ``attrs``
        is left out of the mean (so it equals the plain accuracy when one class is missing).

    Returns
    -------
    dict
        ``{attribute name: accuracy}`` in the model's output order.
    """
    pred = (predict_logits(model, latents) > 0).numpy()  # (N, A)
    true = np.asarray(attrs).astype(bool)
    if pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and labels {true.shape} disagree")
    names = getattr(model, "attribute_names", [f"attr_{i}" for i in range(pred.shape[1])])
    out = {}
    for l, name in enumerate(names):
        p, t = pred[:, l], true[:, l]
        if not balanced:
            out[name] = float((p == t).mean())
        else:
            rates = [float((p[t == c] == c).mean()) for c in (True, False) if (t == c).any()]
            out[name] = float(np.mean(rates))
    return out


@torch.no_grad()
def _val_metrics(model: LatentClassifier, z: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> dict:
    model.eval()
    logits = torch.cat([model(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])
    loss = F.binary_cross_entropy_with_logits(logits, y).item()
    acc = ((logits > 0) == (y > 0.5)).float().mean(0)  # (A,)
    return {"val_loss": loss, "val_accuracy": float(acc.mean()), "per_attribute": acc.cpu().numpy()}


def train_latent_classifiers(latents_train, attrs_train, latents_val, attrs_val,
                             cfg: ClassifierConfig = ClassifierConfig(), device: str | torch.device = "cpu", *,
                             attribute_names: Sequence[str] | None = None, latents_test=None,
                             attrs_test=None) -> tuple[LatentClassifier, list[dict], dict]:
    """Train F on (codes, labels) with mean BCE, early-stopping on the validation split.

    Parameters
    ----------
    latents_train, latents_val : ndarray or Tensor, shapes (N, *S), (N_v, *S)
        Codes, flat (N, D) or W+ (N, L, D).
    attrs_train, attrs_val : ndarray, shapes (N, A), (N_v, A)
        Binary labels (uint8 from the latent store).
    cfg : ClassifierConfig
    device : str or torch.device
        Where the model and the (whole) code arrays live during training.
    attribute_names : sequence of str, optional
        Names of the A attributes (default ``attr_0..``).
    latents_test, attrs_test : optional
        A held-out split, evaluated once with the best model.

    Returns
    -------
    model : LatentClassifier
        The best epoch's model (by ``cfg.monitor``), in eval mode, on ``device``.
    history : list of dict
        One row per epoch: epoch, steps, train_loss, val_loss, val_accuracy, best, seconds.
    metrics : dict
        ``val``/``val_balanced`` (and ``test``/``test_balanced`` with a test split): per-attribute accuracies;
        ``val_mean_accuracy`` (and ``test_mean_accuracy``), ``best_epoch``, ``epochs_run``, ``stopped_early``,
        ``train_positive_rate`` per attribute, ``options`` (the resolved config).
    """
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    z_tr, z_va = _as_tensor(latents_train, device), _as_tensor(latents_val, device)
    y_tr, y_va = _as_tensor(attrs_train, device), _as_tensor(attrs_val, device)
    if y_tr.dim() != 2 or len(y_tr) != len(z_tr) or y_va.shape[1:] != y_tr.shape[1:] or len(y_va) != len(z_va):
        raise ValueError(f"codes/labels disagree: train {tuple(z_tr.shape)}/{tuple(y_tr.shape)}, "
                         f"val {tuple(z_va.shape)}/{tuple(y_va.shape)}")
    if z_va.shape[1:] != z_tr.shape[1:] or len(z_tr) == 0 or len(z_va) == 0:
        raise ValueError("train and val codes must be non-empty and of the same shape")
    n_attr = y_tr.shape[1]
    model = LatentClassifier(z_tr.shape[1:], n_attr, cfg.hidden, cfg.dropout, cfg.negative_slope,
                             attribute_names).to(device)
    opt = Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log.info("latent classifiers: %d train / %d val codes %s, %d attributes, hidden %s, device %s",
             len(z_tr), len(z_va), tuple(z_tr.shape[1:]), n_attr, cfg.hidden, device)

    def train_epoch(epoch: int, step_budget: None) -> tuple[dict, int]:
        order = torch.randperm(len(z_tr), generator=gen).to(device)
        total, steps = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = F.binary_cross_entropy_with_logits(model(z_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            total += loss.item() * len(idx)
        return {"train_loss": total / len(order)}, steps

    def evaluate() -> dict:
        val = _val_metrics(model, z_va, y_va)
        return {"val_loss": val["val_loss"], "val_accuracy": val["val_accuracy"]}

    history, best_row = fit(model, train_epoch, evaluate, monitor=cfg.monitor, max_epochs=cfg.max_epochs,
                            mode="min" if cfg.monitor == "val_loss" else "max", patience=cfg.patience,
                            min_delta=cfg.min_delta, name="latent classifiers")
    best_epoch = best_row["epoch"] if best_row is not None else -1
    model.zero_grad(set_to_none=True)  # no stale gradients on the returned (frozen-by-callers) model

    metrics = {
        "val": evaluate_classifiers(model, z_va, attrs_val),
        "val_balanced": evaluate_classifiers(model, z_va, attrs_val, balanced=True),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_early": len(history) < cfg.max_epochs,
        "train_positive_rate": dict(zip(model.attribute_names, y_tr.mean(0).cpu().tolist())),
        "options": cfg.to_dict(),
    }
    metrics["val_mean_accuracy"] = float(np.mean(list(metrics["val"].values())))
    if latents_test is not None:
        if attrs_test is None:
            raise ValueError("latents_test given without attrs_test")
        metrics["test"] = evaluate_classifiers(model, latents_test, attrs_test)
        metrics["test_balanced"] = evaluate_classifiers(model, latents_test, attrs_test, balanced=True)
        metrics["test_mean_accuracy"] = float(np.mean(list(metrics["test"].values())))
    log.info("latent classifiers: best epoch %d of %d, val mean accuracy %.4f%s", best_epoch, len(history),
             metrics["val_mean_accuracy"],
             f", test mean accuracy {metrics['test_mean_accuracy']:.4f}" if "test" in metrics else "")
    return model, history, metrics


def save_latent_classifiers(path, model: LatentClassifier, metrics: dict | None = None) -> None:
    """Write ``{"kind": "latent_classifiers", "spec", "state_dict", "attribute_names", "test"}`` atomically."""
    from latentedit.io.checkpoints import save_checkpoint

    save_checkpoint(path, {"kind": "latent_classifiers", "spec": model.spec(),
                           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "attribute_names": list(model.attribute_names),
                           "test": (metrics or {}).get("test")})


def load_latent_classifiers(path, device: str | torch.device = "cpu") -> LatentClassifier:
    """Rebuild the classifier from a ``latent_classifiers`` checkpoint (``weights_only`` load, strict keys)."""
    from latentedit.io.checkpoints import build_from_spec, load_checkpoint, load_state_dict_strict

    ck = load_checkpoint(path, expect_kind="latent_classifiers", require=("spec", "state_dict", "attribute_names"))
    model = build_from_spec(LatentClassifier, ck["spec"], path, attribute_names=ck["attribute_names"])
    load_state_dict_strict(model, ck["state_dict"], path)
    return model.to(device).eval()
