"""The NPZ that ``latentedit edit`` writes beside its strips (``<out>/<method>.<edit>.npz``): the one writer and
reader of it. Plain arrays, no pickled objects (``np.load(path)`` works with the default ``allow_pickle=False``).

Schema, N = images edited (those that could be read), A = edit strengths, S = the code shape:

================= ==================== =================================================================
key               dtype, shape         meaning
================= ==================== =================================================================
``files``         str (N,)             the input files, as given
``inputs``        uint8 (N,C,Hi,Wi)    what the encoder saw (digits: the canvas; faces: the aligned crop)
``codes``         float32 (N,*S)       their projections (the reconstruction's code)
``alphas``        float64 (A,)         edit strengths as ``apply_edit`` takes them (raw α)
``alphas_in_d``   float64 (A,)         the same in units of the calibrated step d (NaN when α was given raw)
``d``             float64 ()           the calibrated step of the edit (NaN when the run has none)
``edited``        float32 (N,A,*S)     the edited codes, ``edited[:, a] = apply_edit(model, codes, alphas[a])``
``renders``       uint8 (N,1+A,C,H,W)  the generator's images: the reconstruction, then each α
``probs``         float32 (N,2+A,L)    with ``--judge`` only: the judge's attribute probabilities of the
                                       input, the reconstruction and each edit
``attribute_names`` str (L,)           column order of ``probs``
``method``, ``edit``, ``attribute`` str  the edit; ``target_value`` int64 ()
================= ==================== =================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from latentedit.io.atomic import atomic_path

KEYS = ("files", "inputs", "codes", "alphas", "alphas_in_d", "d", "edited", "renders", "attribute_names", "method",
        "edit", "attribute", "target_value")


def write_edit_results(path: str | os.PathLike, *, files: Sequence[str], inputs: np.ndarray, codes: np.ndarray,
                       edited: np.ndarray, renders: np.ndarray, alphas: Sequence[float],
                       alphas_in_d: Sequence[float] | None, d: float, model: Mapping,
                       probs: np.ndarray | None = None) -> None:
    """Check the shapes against each other and write the NPZ atomically (schema in the module docstring)."""
    n, a = len(files), len(alphas)
    arrays = {
        "files": np.array([str(f) for f in files]), "inputs": np.asarray(inputs, np.uint8),
        "codes": np.asarray(codes, np.float32), "alphas": np.asarray(alphas, np.float64),
        "alphas_in_d": np.full(a, np.nan) if alphas_in_d is None else np.asarray(alphas_in_d, np.float64),
        "d": np.array(float(d)), "edited": np.asarray(edited, np.float32), "renders": np.asarray(renders, np.uint8),
        "attribute_names": np.array([str(x) for x in model["attribute_names"]]), "method": np.array(model["method"]),
        "edit": np.array(model["edit"]), "attribute": np.array(model["attribute"]),
        "target_value": np.array(int(model["target_value"])),
    }
    expected = {"inputs": (n,), "codes": (n,), "edited": (n, a), "renders": (n, 1 + a), "alphas_in_d": (a,)}
    if probs is not None:
        arrays["probs"] = np.asarray(probs, np.float32)
        expected["probs"] = (n, 2 + a, len(arrays["attribute_names"]))
    for key, lead in expected.items():
        if arrays[key].shape[:len(lead)] != lead:
            raise ValueError(f"{path}: {key} has shape {arrays[key].shape}, expected {lead} first")
    if arrays["edited"].shape[2:] != arrays["codes"].shape[1:]:
        raise ValueError(f"{path}: edited codes {arrays['edited'].shape[2:]} differ from codes "
                         f"{arrays['codes'].shape[1:]}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_edit_results(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an NPZ written by :func:`write_edit_results` (a ValueError naming the file when it is not one)."""
    try:
        with np.load(path) as data:
            out = {key: data[key] for key in data.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable edit-results NPZ: {e}") from None
    missing = [k for k in KEYS if k not in out]
    if missing:
        raise ValueError(f"{path}: not an edit-results NPZ (lacks {missing})")
    return out
