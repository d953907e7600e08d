"""Image attribute classifiers for the faces world: one torchvision ResNet with one logit per CelebA attribute.

The faces world scores an edit by whether the rendered image shows the target attribute (and keeps the others), so
it needs classifiers on images, not on codes: a ResNet (He et al., CVPR 2016; ``resnet18`` by default, ``resnet34``
or ``resnet50``) whose ImageNet head is replaced by ``Linear(features, A)``, trained multi-label on the 40 CelebA
attributes,

    p_l(x) = σ(f_l(x)),   L = mean_{n,l} BCEWithLogits(f_l(x_n), a_nl),

with Adam, early stopping on the validation loss and the best epoch kept — the training scheme of
:mod:`latentedit.labels.classifiers`, on images. One network for all A attributes, as there.

Inputs follow the library's pixel convention (float in [−1, 1], or uint8 0..255 which is converted); inside the
model they are resized to ``image_size`` (bilinear with antialiasing) and normalised with the ImageNet mean/std,
because that is the input distribution torchvision's pretrained weights were trained on — an ImageNet-initialised
network (``pretrained``: a torchvision ``resnet18-f37072fd.pth``-style state_dict supplied by the user; nothing is
downloaded) starts from useful features only if its inputs are scaled the same way. Doing both inside ``forward``
keeps the classifier differentiable end to end on generator outputs.

torchvision comes through :func:`latentedit.faces.torchvision_compat.import_torchvision`, which makes the CUDA
torchvision wheel importable on CPU-only torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from latentedit.imaging import to_model_range
from latentedit.io.checkpoints import (CheckpointError, build_from_spec, load_checkpoint, load_state_dict_strict,
                                      save_checkpoint)
from latentedit.training_utils import Adam, fit

log = logging.getLogger(__name__)

ARCHS = ("resnet18", "resnet34", "resnet50")
CHECKPOINT_KIND = "faces_attribute_classifier"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AttributeClassifierConfig:
    arch: str = "resnet18"  # torchvision ResNet; one of ARCHS
    # input side after resizing: 224 is the resolution torchvision's ImageNet weights were trained at (their
    # receptive fields and BN statistics fit it) and CelebA/FFHQ faces keep their attribute cues (glasses, lipstick,
    # hair) at it; tests use 32
    image_size: int = 224
    lr: float = 1.0e-4  # Adam; fine-tuning from ImageNet weights — from scratch on tiny data 1e-3 is faster
    weight_decay: float = 1.0e-5  # Adam L2 penalty
    batch_size: int = 64
    max_epochs: int = 20  # an upper bound: early stopping normally ends the run before
    patience: int = 3  # epochs without a val-loss improvement larger than min_delta
    min_delta: float = 1.0e-4  # in BCE nats
    seed: int = 0
    pretrained: str | None = None  # torchvision ResNet state_dict file (fc.* ignored), or None: random init
    augment_hflip: bool = True  # random horizontal flips in training (face attributes are mirror-symmetric)

    def __post_init__(self):
        if self.pretrained is not None:
            object.__setattr__(self, "pretrained", os.fspath(self.pretrained))
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be ≥ 16, got {self.image_size}")
        if self.batch_size < 2 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size must be ≥ 2 (batch norm), max_epochs and patience ≥ 1")

    def to_dict(self) -> dict:
        return asdict(self)


class AttributeClassifier(nn.Module):
    """torchvision ResNet with a Linear(features, A) head on [−1, 1] images (B, 3, H, W) → logits (B, A).

    Parameters
    ----------
    arch : str
        One of :data:`ARCHS`.
    n_attributes : int
        A, the number of outputs.
    image_size : int
        S: inputs are resized to S×S (bilinear, antialiased) when they are not already that size.
    attribute_names : sequence of str, optional
        Names of the A outputs (default ``attr_0..``), saved with the checkpoint.
    """

    def __init__(self, arch: str = "resnet18", n_attributes: int = 40, image_size: int = 224,
                 attribute_names: Sequence[str] | None = None):
        super().__init__()
        from latentedit.faces.torchvision_compat import import_torchvision

        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.arch, self.n_attributes, self.image_size = arch, int(n_attributes), int(image_size)
        names = [f"attr_{i}" for i in range(self.n_attributes)] if attribute_names is None else list(attribute_names)
        if len(names) != self.n_attributes:
            raise ValueError(f"{len(names)} attribute names for {self.n_attributes} outputs")
        self.attribute_names = names
        self.net = getattr(import_torchvision().models, arch)(weights=None, num_classes=self.n_attributes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, A) of RGB images (B, 3, H, W) as float in [−1, 1]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        return self.net(((x + 1) / 2 - self.mean) / self.std)

    @torch.no_grad()
    def predict_proba(self, images, batch_size: int = 64) -> np.ndarray:
        """σ(f(x)) for many images, in eval mode and in chunks.

        Parameters
        ----------
        images : Tensor or ndarray, shape (B, 3, H, W)
            RGB, float in [−1, 1] or uint8.
        batch_size : int
            Images per forward pass.

        Returns
        -------
        ndarray, shape (B, A), float32
        """
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            out = [torch.sigmoid(self(to_model_range(images[i:i + batch_size], device).float())).cpu()
                   for i in range(0, len(images), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, self.n_attributes), np.float32)

    def spec(self) -> dict:
        """Constructor arguments except the names, stored in the checkpoint so it can be rebuilt."""
        return {"arch": self.arch, "n_attributes": self.n_attributes, "image_size": self.image_size}

    def extra_repr(self) -> str:
        return f"arch={self.arch}, n_attributes={self.n_attributes}, image_size={self.image_size}"


def load_pretrained_backbone(model: AttributeClassifier, path: str | os.PathLike) -> None:
    """Load a torchvision ResNet state_dict (e.g. ``resnet18-f37072fd.pth``) into ``model.net``, except its ``fc``.

    The ImageNet head (``fc.weight`` (1000, F), ``fc.bias``) is dropped and the model's own freshly initialised
    Linear(F, A) kept; every other key must be present with the same shape (strict), otherwise
    :class:`~latentedit.io.checkpoints.CheckpointError` names the file and the keys. Loaded with
    ``torch.load(weights_only=True)``.
    """
    sd = load_checkpoint(path)  # weights_only=True; unreadable/unsafe files → CheckpointError naming the file
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: expected a torchvision ResNet state_dict (a dict of tensors)")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}  # DataParallel-saved files
    own_fc = {k: v for k, v in model.net.state_dict().items() if k.startswith("fc.")}
    merged = {**{k: v for k, v in sd.items() if not k.startswith("fc.")}, **own_fc}
    load_state_dict_strict(model.net, merged, path)
    log.info("attribute classifier: %s backbone initialised from %s (%d tensors, fc kept at random init)",
             model.arch, path, len(merged) - len(own_fc))


def evaluate_attribute_classifier(model: AttributeClassifier, images, labels, balanced: bool = False,
                                  batch_size: int = 64) -> dict[str, float]:
    """Per-attribute accuracy of 1[p_l(x) > 0.5] (or balanced accuracy ½ (TPR + TNR), classes present only).

    Parameters
    ----------
    model : AttributeClassifier
    images : Tensor or ndarray, shape (N, 3, H, W)
        RGB, uint8 or float in [−1, 1].
    labels : ndarray, shape (N, A)
        Binary labels.
    balanced : bool
        Balanced accuracy instead of plain accuracy.

    Returns
    -------
    dict
        ``{attribute name: accuracy}`` in the model's output order.
    """
    pred = model.predict_proba(images, batch_size) > 0.5  # (N, A)
    true = np.asarray(labels).astype(bool)
    if pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and labels {true.shape} disagree")
    out = {}
    for l, name in enumerate(model.attribute_names):
        p, t = pred[:, l], true[:, l]
        if not balanced:
            out[name] = float((p == t).mean())
        else:
            out[name] = float(np.mean([(p[t == c] == c).mean() for c in (True, False) if (t == c).any()]))
    return out


def _images(images):
    """Tensors and lazy rows (:class:`latentedit.io.image_store.ImageRows`: read batch by batch) as they are,
    anything else (ndarray, lists) as a tensor."""
    if isinstance(images, torch.Tensor) or (hasattr(images, "subset") and hasattr(images, "shape")):
        return images
    return torch.as_tensor(np.asarray(images))


def _batch(images, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (or float) images[idx] → float [−1, 1] on ``device`` (uint8 crosses to the device: 4× less to copy).
    ``images`` is a tensor or lazy rows read from the store now (only this batch is in memory)."""
    rows = images[idx] if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images[idx.numpy()]))
    return to_model_range(rows.to(device)).float()


@torch.no_grad()
def _val_metrics(model: AttributeClassifier, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                 device: torch.device) -> dict:
    model.eval()
    logits = torch.cat([model(_batch(x, torch.arange(i, min(i + batch_size, len(x))), device)).float().cpu()
                        for i in range(0, len(x), batch_size)])
    loss = F.binary_cross_entropy_with_logits(logits, y).item()
    acc = ((logits > 0) == (y > 0.5)).float().mean(0)  # (A,)
    return {"val_loss": loss, "val_accuracy": float(acc.mean()), "per_attribute": acc.numpy()}


def train_attribute_classifier(images_train, labels_train, images_val, labels_val,
                               attribute_names: Sequence[str] | None = None,
                               cfg: AttributeClassifierConfig = AttributeClassifierConfig(),
                               device: str | torch.device = "cpu", *,
                               progress: bool = True) -> tuple[AttributeClassifier, list[dict], dict]:
    """Train a ResNet attribute classifier with mean BCE, early-stopping on the validation loss.

    Parameters
    ----------
    images_train, images_val : Tensor, ndarray or ImageRows, shapes (N, 3, H, W), (N_v, 3, H, W)
        RGB images, uint8 (as in the image store) or float in [−1, 1]; kept on the CPU, batches go to ``device``.
        :class:`~latentedit.io.image_store.ImageRows` (an open store's lazy images) are read batch by batch, so
        training holds O(batch) images in memory.
    labels_train, labels_val : ndarray, shapes (N, A), (N_v, A)
        Binary labels.
    attribute_names : sequence of str, optional
        Names of the A attributes (default ``attr_0..``).
    cfg : AttributeClassifierConfig
    device : str or torch.device
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    model : AttributeClassifier
        The best epoch's model (lowest val loss), in eval mode, on ``device``.
    history : list of dict
        One row per epoch: epoch, steps, train_loss, val_loss, val_accuracy, best, seconds.
    metrics : dict
        ``val``/``val_balanced``: per-attribute accuracies of the best model; ``val_mean_accuracy``, ``best_epoch``,
        ``epochs_run``, ``stopped_early``, ``train_positive_rate`` per attribute, ``options`` (the config).
    """
    device = torch.device(device)
    torch.manual_seed(cfg.seed)  # model init
    gen = torch.Generator().manual_seed(cfg.seed)  # order and flips
    x_tr, x_va = _images(images_train), _images(images_val)
    y_tr = torch.as_tensor(np.asarray(labels_train), dtype=torch.float32)
    y_va = torch.as_tensor(np.asarray(labels_val), dtype=torch.float32)
    if len(x_tr.shape) != 4 or x_tr.shape[1] != 3 or tuple(x_va.shape[1:]) != tuple(x_tr.shape[1:]):
        raise ValueError(f"expected RGB images (N, 3, H, W) of one size, got train {tuple(x_tr.shape)}, "
                         f"val {tuple(x_va.shape)}")
    if y_tr.dim() != 2 or len(y_tr) != len(x_tr) or len(y_va) != len(x_va) or y_va.shape[1:] != y_tr.shape[1:]:
        raise ValueError(f"images/labels disagree: train {tuple(x_tr.shape)}/{tuple(y_tr.shape)}, "
                         f"val {tuple(x_va.shape)}/{tuple(y_va.shape)}")
    if len(x_tr) < 2 or len(x_va) == 0:
        raise ValueError("need at least 2 training and 1 validation image")
    n_attr = y_tr.shape[1]
    model = AttributeClassifier(cfg.arch, n_attr, cfg.image_size, attribute_names)
    if cfg.pretrained is not None:
        load_pretrained_backbone(model, cfg.pretrained)
    model.to(device)
    opt = Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log.info("attribute classifier %s: %d train / %d val images %s → %d px, %d attributes, %s init, device %s",
             cfg.arch, len(x_tr), len(x_va), tuple(x_tr.shape[1:]), cfg.image_size, n_attr,
             cfg.pretrained or "random", device)

    def train_epoch(epoch: int, step_budget: None) -> tuple[dict, int]:
        order = torch.randperm(len(x_tr), generator=gen)
        total, seen, steps = 0.0, 0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:  # batch norm cannot train on one image
                continue
            x = _batch(x_tr, idx, device)
            if cfg.augment_hflip:
                flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device).view(-1, 1, 1, 1)
                x = torch.where(flip, x.flip(3), x)
            loss = F.binary_cross_entropy_with_logits(model(x), y_tr[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, seen, steps = total + loss.item() * len(idx), seen + len(idx), steps + 1
        return {"train_loss": total / seen}, steps

    def evaluate() -> dict:
        val = _val_metrics(model, x_va, y_va, cfg.batch_size, device)
        return {"val_loss": val["val_loss"], "val_accuracy": val["val_accuracy"]}

    history, best_row = fit(model, train_epoch, evaluate, monitor="val_loss", max_epochs=cfg.max_epochs, mode="min",
                            patience=cfg.patience, min_delta=cfg.min_delta, name="attribute classifier",
                            progress=progress)
    best_epoch = best_row["epoch"] if best_row is not None else -1
    model.zero_grad(set_to_none=True)

    metrics = {
        "val": evaluate_attribute_classifier(model, x_va, labels_val, batch_size=cfg.batch_size),
        "val_balanced": evaluate_attribute_classifier(model, x_va, labels_val, balanced=True,
                                                      batch_size=cfg.batch_size),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_early": len(history) < cfg.max_epochs,
        "train_positive_rate": dict(zip(model.attribute_names, y_tr.mean(0).tolist())),
        "options": cfg.to_dict(),
    }
    metrics["val_mean_accuracy"] = float(np.mean(list(metrics["val"].values())))
    log.info("attribute classifier: best epoch %d of %d, val mean accuracy %.4f", best_epoch, len(history),
             metrics["val_mean_accuracy"])
    return model, history, metrics


def save_attribute_classifier(path, model: AttributeClassifier, metrics: dict | None = None) -> None:
    """Write ``{"kind": "faces_attribute_classifier", "spec", "state_dict", "attribute_names", "val"}`` atomically."""
    save_checkpoint(path, {"kind": CHECKPOINT_KIND, "spec": model.spec(),
                           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "attribute_names": list(model.attribute_names),
                           "val": (metrics or {}).get("val")})


SPEC_KEYS = ("arch", "n_attributes", "image_size")  # AttributeClassifier.spec()


def load_attribute_classifier(path, device: str | torch.device = "cpu") -> AttributeClassifier:
    """Rebuild the classifier from a ``faces_attribute_classifier`` checkpoint.

    Loaded with ``weights_only=True``; the checkpoint must hold ``spec`` (exactly the keys of
    :meth:`AttributeClassifier.spec`: a missing one would silently take the constructor's default), ``state_dict`` and
    ``attribute_names`` (one string per output), and the state dict must match the rebuilt model key for key and
    shape for shape. Every failure is a :class:`~latentedit.io.checkpoints.CheckpointError` naming ``path``.
    """
    ck = load_checkpoint(path, expect_kind=CHECKPOINT_KIND, require=("spec", "state_dict", "attribute_names"))
    spec, names = ck["spec"], ck["attribute_names"]
    if isinstance(spec, dict) and set(spec) != set(SPEC_KEYS):
        raise CheckpointError(f"{path}: the AttributeClassifier spec must have the keys {list(SPEC_KEYS)}, found "
                              f"{sorted(spec)} (missing {sorted(set(SPEC_KEYS) - set(spec))}, unknown "
                              f"{sorted(set(spec) - set(SPEC_KEYS))})")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: attribute_names must be a list of strings, found {type(names).__name__}")
    model = build_from_spec(AttributeClassifier, spec, path, attribute_names=names)
    load_state_dict_strict(model, ck["state_dict"], path)
    return model.to(device).eval()
