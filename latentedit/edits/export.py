"""Trained edits as plain arrays for other tools (``latentedit export``).

Two files, both written atomically and readable with NumPy alone (no pickle: ``np.load(path)`` works with
``allow_pickle=False``):

**NPZ** (``--format npz``), for every edit in the original code space:

============== ===================== ===================================================================
key            dtype, shape          meaning
============== ===================== ===================================================================
``type``       str                   ``affine`` or ``direction``
``A``, ``b``   float32               affine: z' = z + α·(A z + b). Flat codes (digits): A (D, D), b (D,).
                                     W+ codes (faces): one map per layer, A (L, D, D), b (L, D), z'_l = z_l +
                                     α·(A_l z_l + b_l); layers the edit leaves alone hold A_l = 0, b_l = 0.
                                     W+ with ``couple_layers`` (LW): one map on the edited layers flattened
                                     together (layer-major), A (L_e·D, L_e·D), b (L_e·D,): z'_E = z_E +
                                     α·(A vec(z_E) + b) reshaped to (L_e, D), E = ``layers``
``layers``     int64 (L_e,)          W+ only: the edited layers
``n``          float32, code shape   direction: the unit normal, z' = z + α·n
``intercept``  float64 ()            direction: ⟨n, z⟩ + intercept is the signed distance to the boundary
``d``          float64 ()            the run's calibrated step (NaN when not given): α = d is where the
                                     latent classifier reads the edit as done (``latentedit edits``)
``method``, ``edit``, ``attribute``, ``target_value``, ``formula``: what the edit is, in words
============== ===================== ===================================================================

**InterFaceGAN boundary** (``--format interfacegan``), directions only: the normal as float32 of shape (1, D),
unit norm, D = the number of code entries — the ``boundary.npy`` that InterFaceGAN's ``edit.py`` loads and that
e4e's ``apply_interfacegan`` adds (z' = z + α·n). For W+ codes D = L·512, the normal of the flattened code
(row-major): add it to ``w.reshape(1, -1)``; it is not InterFaceGAN's (1, 512) W boundary. InterFaceGAN's
``linear_interpolate`` on 2-D codes steps to a *distance* from the boundary, z + (α − ⟨z, n⟩)·n, rather than by α.

An edit that lives in W* (``in_wstar`` methods: z' = T⁻¹(T(z) + α·H(T(z)))) is not an affine map or a direction of the
code space, so it has neither form; it is refused with that reason (apply it with :func:`latentedit.load_run`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from latentedit.edits.model import edit_module
from latentedit.io.atomic import atomic_path

FORMATS = ("npz", "interfacegan")


class ExportError(ValueError):
    """An edit cannot be written in the requested form; the message says why."""


def _refuse_wstar(model: Mapping) -> None:
    if model.get("wstar") is not None:
        raise ExportError(f"{model['method']}/{model['edit']} edits inside W* (z' = T⁻¹(T(z) + α·…), T a learned "
                          "bijection), which is neither an affine map nor a direction of the code space; it cannot "
                          "be exported. Apply it with latentedit.load_run(...).edit(...).apply(codes, alpha)")


def edit_arrays(model: Mapping, d: float | None = None) -> dict[str, np.ndarray]:
    """The NPZ entries of an edit model (see the module docstring)."""
    _refuse_wstar(model)
    out = {"type": np.array(model["type"]), "method": np.array(model["method"]), "edit": np.array(model["edit"]),
           "attribute": np.array(model["attribute"]), "target_value": np.array(int(model["target_value"])),
           "d": np.array(float("nan") if d is None else float(d))}
    if model["type"] == "direction":
        out["n"] = np.asarray(model["normal"], dtype=np.float32)
        out["intercept"] = np.array(float(model["intercept"]))
        out["formula"] = np.array("z' = z + alpha * n")
        return out
    edit = edit_module(model)
    weight, bias = edit.weight.detach().numpy(), edit.bias.detach().numpy()
    if edit.n_layers is None:
        out["A"], out["b"] = weight.astype(np.float32), bias.astype(np.float32)
        out["formula"] = np.array("z' = z + alpha * (A @ z + b)")
        return out
    if edit.couple_layers:
        out.update(A=weight.astype(np.float32), b=bias.astype(np.float32),
                   layers=np.asarray(edit.layers, dtype=np.int64),
                   formula=np.array("z'[layers] = z[layers] + alpha * (A @ z[layers].reshape(-1) + b)"
                                    ".reshape(len(layers), D)"))
        return out
    A = np.zeros((edit.n_layers, edit.dim, edit.dim), np.float32)  # (L, D, D): zero for the layers left alone
    b = np.zeros((edit.n_layers, edit.dim), np.float32)  # (L, D)
    A[edit.layers], b[edit.layers] = weight, bias
    out.update(A=A, b=b, layers=np.asarray(edit.layers, dtype=np.int64),
               formula=np.array("z'[l] = z[l] + alpha * (A[l] @ z[l] + b[l]) for every layer l"))
    return out


def interfacegan_boundary(model: Mapping) -> np.ndarray:
    """A direction's unit normal as InterFaceGAN's boundary: float32 (1, D), D the number of code entries."""
    _refuse_wstar(model)
    if model["type"] != "direction":
        raise ExportError(f"{model['method']}/{model['edit']} is an affine edit, z' = z + α·(A z + b): its step "
                          "depends on z, so it is not one boundary normal. Export it with --format npz (A, b)")
    n = np.asarray(model["normal"], dtype=np.float32).reshape(1, -1)
    norm = float(np.linalg.norm(n.astype(np.float64)))
    if not math.isfinite(norm) or abs(norm - 1.0) > 1e-5:
        raise ExportError(f"{model['method']}/{model['edit']}: the stored normal has norm {norm}, not 1")
    return n


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed NPZ, atomically (no pickled objects)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write one array as ``.npy``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
