"""The edit-model file: what a trained edit is, how it is saved and loaded, and how it is applied to codes.

Every method's training ends in one of two kinds of edit (:data:`latentedit.edits.methods.EDIT_TYPES`):

- ``affine``: z' = z + α·H(z), H(z) = W z + c (full, or block-diagonal per W+ layer; :mod:`latentedit.edits.affine`)
  — LW and LT, trained at α = 1;
- ``direction``: z' = z + α·n with a unit normal n (InterFaceGAN); α is a distance in code units, no default.

An edit that lives in W* (``lw_wstar``, ``ifg_wstar``) carries a copy of the bijection T (spec + state dict) and is
applied inside it: z' = T⁻¹(T(z) + α·H(T(z))) or T⁻¹(T(z) + α·n).

The file is a plain dict (tensors, str, float, int, list, dict, None), written atomically and read with
``torch.load(weights_only=True)``::

    kind = "edit", method, edit, type, attribute, attribute_index, target_value, definition, attribute_names,
    options (the resolved training options), and by type
      affine:    spec (AffineEdit constructor arguments), state_dict
      direction: normal (S,), intercept
    plus wstar = {spec, state_dict} for an edit in W*.

Rendering, calibration and evaluation import this module and never a trainer, so a metrics job does not load
GeomLoss or scikit-learn.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch

from latentedit.edits.affine import AffineEdit
from latentedit.io.checkpoints import (CheckpointError, build_from_spec, load_checkpoint, load_state_dict_strict,
                                       save_checkpoint)

# Keys of every edit model, and of each type's parameters.
EDIT_MODEL_KEYS = ("method", "edit", "type", "attribute", "attribute_index", "target_value", "definition",
                   "attribute_names")
EDIT_TYPE_KEYS = {"affine": ("spec", "state_dict"), "direction": ("normal", "intercept")}


def affine_parameters(edit: AffineEdit) -> dict:
    """The ``affine`` model entries of a trained :class:`AffineEdit`: ``spec`` and a CPU ``state_dict``."""
    return {"type": "affine", "spec": edit.spec(),
            "state_dict": {key: v.detach().cpu() for key, v in edit.state_dict().items()}}


def direction_parameters(normal, intercept: float) -> dict:
    """The ``direction`` model entries: the unit ``normal`` (S,) and the hyperplane's ``intercept``."""
    return {"type": "direction", "normal": torch.as_tensor(normal), "intercept": float(intercept)}


def save_edit(path: str | os.PathLike, model: Mapping) -> None:
    """Write an edit model atomically (checked first, so a malformed model is never written)."""
    _check(model, "edit model to save")
    save_checkpoint(path, dict(model))


def load_edit(path: str | os.PathLike) -> dict:
    """An edit model written by :func:`save_edit` (``weights_only`` load, kind ``edit``). Its keys, and the affine
    module's spec, keys and shapes, are checked here, so that a bad file fails naming it."""
    model = load_checkpoint(path, expect_kind="edit", require=EDIT_MODEL_KEYS)
    _check(model, path)
    return model


def _check(model: Mapping, where) -> None:
    missing = [k for k in ("kind", *EDIT_MODEL_KEYS) if k not in model]
    if missing:
        raise CheckpointError(f"{where}: the edit model lacks the key(s) {missing}")
    if model["type"] not in EDIT_TYPE_KEYS:
        raise CheckpointError(f"{where}: unknown edit model type {model['type']!r} (one of {list(EDIT_TYPE_KEYS)})")
    missing = [k for k in EDIT_TYPE_KEYS[model["type"]] if k not in model]
    if missing:
        raise CheckpointError(f"{where}: the {model['type']!r} edit model lacks the key(s) {missing}")
    if model["type"] == "affine":
        edit_module(model, where)


def edit_module(model: Mapping, path=None) -> AffineEdit:
    """The :class:`AffineEdit` of an ``affine`` edit model (LW, LT), in eval mode on the CPU. ``path``: the file it
    came from, for error messages."""
    if model.get("type") != "affine":
        raise ValueError(f"edit model of type {model.get('type')!r} has no affine module")
    where = path or f"edit {model.get('method')}/{model.get('edit')}"
    edit = build_from_spec(AffineEdit, model["spec"], where)
    load_state_dict_strict(edit, model["state_dict"], where)
    return edit.eval()


def wstar_map(model: Mapping):
    """The frozen T stored in a W* edit model (``lw_wstar``, ``ifg_wstar``), or None for an original-space edit."""
    if model.get("wstar") is None:
        return None
    from latentedit.wstar.realnvp import wstar_from_checkpoint

    return wstar_from_checkpoint(model["wstar"])


def edit_space_codes(model: Mapping, z: torch.Tensor) -> torch.Tensor:
    """The codes in the space the edit lives in: T(z) for a W* edit model, z otherwise."""
    T = wstar_map(model)
    if T is None:
        return z
    with torch.no_grad():
        return T.to(device=z.device, dtype=z.dtype)(z)


@torch.no_grad()
def apply_edit(model: Mapping, z: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
    """z' for codes z (N, *S): z + α·H(z) for an affine edit (α = 1 when None), z + α·n for a direction (α
    required); for an edit in W* the same inside W*, z' = T⁻¹(T(z) + α·H(T(z))) or T⁻¹(T(z) + α·n).

    Parameters
    ----------
    model : mapping
        An edit model (:func:`load_edit`, or a trainer's result).
    z : Tensor, shape (N, *S)
    alpha : float, optional
        Edit strength. Affine edits are trained at α = 1; a direction's α is a distance in code units and has no
        default.

    Returns
    -------
    Tensor, shape (N, *S), on z's device.
    """
    T = wstar_map(model)
    if T is not None:
        T = T.to(device=z.device, dtype=z.dtype)
        return T.inverse(_apply_in_space(model, T(z), alpha))
    return _apply_in_space(model, z, alpha)


def _apply_in_space(model: Mapping, z: torch.Tensor, alpha: float | None) -> torch.Tensor:
    if model["type"] == "direction":
        if alpha is None or not math.isfinite(alpha):
            raise ValueError("a direction edit needs a finite step alpha")
        n = torch.as_tensor(model["normal"]).to(device=z.device, dtype=z.dtype)
        return z + torch.as_tensor(float(alpha), dtype=z.dtype, device=z.device) * n
    edit = edit_module(model).to(device=z.device, dtype=z.dtype)
    return edit(z, alpha=1.0 if alpha is None else float(alpha))
