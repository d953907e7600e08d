"""Checkpoints: atomic save, ``weights_only=True`` load, clear errors naming the file.

A checkpoint here is a dict ``{"kind": str, "spec": dict, "state_dict": ..., ...}`` of tensors and plain Python
values, so it loads with ``torch.load(weights_only=True)``: a pickle that would execute code is refused. Third-party
weights the user supplies (bare state_dicts: FID's Inception-v3, VGG16) are checked by :func:`read_weights_file`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from latentedit.io.atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded: unreadable, unsafe, of the wrong kind, or its keys/shapes do not match."""


def save_checkpoint(path: str | os.PathLike, obj: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, expect_kind: str | None = None, require: Iterable[str] = ()) -> dict:
    """Load a checkpoint with ``weights_only=True``; check its ``kind`` and that it holds the ``require`` keys."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file does not exist") from None
    except Exception as e:  # unpickling refused, truncated zip, not a torch file at all
        raise CheckpointError(f"{path}: cannot load checkpoint safely (weights_only=True): {e}") from e
    if expect_kind is not None and (not isinstance(ck, dict) or ck.get("kind") != expect_kind):
        found = ck.get("kind") if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"{path}: expected a {expect_kind!r} checkpoint, found {found!r}")
    require = list(require)
    if require and not isinstance(ck, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(ck).__name__!r}")
    missing = [k for k in require if k not in ck]
    if missing:
        raise CheckpointError(f"{path}: the {ck.get('kind', 'checkpoint')!r} checkpoint lacks the key(s) {missing}")
    return ck


def build_from_spec(cls, spec, path, **extra):
    """``cls(**spec, **extra)``: a model rebuilt from the constructor arguments a checkpoint stores. A spec that does
    not fit the class (not a mapping, unknown or invalid arguments) fails naming the file."""
    if not isinstance(spec, Mapping):
        raise CheckpointError(f"{path}: the checkpoint has no {cls.__name__} spec (found {type(spec).__name__})")
    try:
        return cls(**spec, **extra)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the checkpoint's spec does not fit {cls.__name__}: {e}") from e


def load_state_dict_strict(module: torch.nn.Module, state_dict: dict, path) -> None:
    """``load_state_dict(strict=True)`` with an error naming the file and the missing/unexpected/mis-shaped keys."""
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: the {type(module).__name__} state dict is not a mapping of tensors")
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{path}: checkpoint does not match the model: missing keys {missing[:10]}, "
                              f"unexpected keys {unexpected[:10]}, shape mismatches {shapes[:10]}")
    module.load_state_dict(state_dict, strict=True)


def read_weights_file(path, layout: Mapping[str, torch.Size], what: str, optional: Iterable[str] = ()) -> dict:
    """A user-supplied weights file that is a bare state_dict of a third-party network (Inception-v3 for FID,
    torchvision's VGG16), checked against ``layout`` (key → shape) before any module sees it.

    Loaded with ``weights_only=True``. ``FileNotFoundError`` naming the file when it does not exist; ``ValueError``
    naming it when it is not a state_dict of tensors, or when keys are missing (other than those in ``optional``),
    unexpected, or of another shape than ``layout``'s — counted, with the first three of each. ``what`` names the
    expected layout in the messages (e.g. "torchvision's VGG16 weights (vgg16-397923af.pth layout)").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found ({what})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  not a torch file, or a pickle of more than tensors
        raise ValueError(f"{path}: not a readable PyTorch state_dict ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state_dict of tensors ({what})")
    optional = set(optional)
    missing = sorted(set(layout) - set(state) - optional)
    unexpected = sorted(set(state) - set(layout))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(layout[k])})" for k in sorted(set(state) & set(layout))
             if tuple(state[k].shape) != tuple(layout[k])]
    problems = [f"{label} ({len(items)}): {', '.join(items[:3])}{', …' if len(items) > 3 else ''}"
                for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("wrong shapes", wrong)) if items]
    if problems:
        raise ValueError(f"{path}: not {what}: " + "; ".join(problems))
    return state
