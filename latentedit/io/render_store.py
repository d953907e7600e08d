"""HDF5 render store: the images of one (method, edit) over a grid of edit strengths α
(``results/<world>/render/<method>/<edit>.h5``).

Schema (``attrs["format"] == "latentedit.renders"``, ``attrs["format_version"] == 2``; every dataset chunked and
Fletcher-32-checksummed, see :mod:`latentedit.io.h5`):

=================== ==================== ===================================================================
dataset             dtype, shape         meaning
=================== ==================== ===================================================================
``images``          uint8 (A,N,C,H,W)    G(z + α_a·H(z)) for every α and test source code, lzf, one chunk per α
``alphas``          float64 (A,)         the edit strengths; ``alphas[0] = 0`` (the reconstruction)
``ids``             str (N,)             ids of the rendered test images (image and latent stores)
``latent_logits``   float32 (A,N,L)      latent-classifier logits of the edited codes
``attribute_names`` str (L,)             column order of ``latent_logits``
=================== ==================== ===================================================================

attrs: ``method``, ``edit``, ``attribute``, ``target_value``, ``calibration`` (JSON of
:class:`latentedit.render.calibrate.Calibration`), ``edit_model_hash``, ``generator_checkpoint_hash``,
``library_version``. Written to a temporary name and renamed when complete. :func:`read_render_store_info` reads the
attrs, the α grid and the image shape without the images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from latentedit import __version__
from latentedit.io.h5 import (StoreError, create_atomically, create_checked, open_for_reading, read_strings, reading,
                              require, write_strings)

FORMAT = "latentedit.renders"
DATASETS = ["images", "alphas", "ids", "latent_logits", "attribute_names"]


@dataclass
class RenderStore:
    images: np.ndarray  # (A, N, C, H, W) uint8
    alphas: np.ndarray  # (A,) float64
    ids: np.ndarray  # (N,) str
    latent_logits: np.ndarray  # (A, N, L) float32
    attribute_names: list[str]
    attrs: dict = field(default_factory=dict)

    @property
    def calibration(self) -> dict:
        return json.loads(self.attrs.get("calibration", "{}"))


def validate(store: RenderStore, path="<memory>") -> None:
    if store.images.ndim != 5 or store.images.dtype != np.uint8:
        raise StoreError(f"{path}: images must be uint8 (A, N, C, H, W), got {store.images.dtype} "
                         f"{store.images.shape}")
    a, n = store.images.shape[:2]
    if store.alphas.shape != (a,):
        raise StoreError(f"{path}: {len(store.alphas)} alphas for {a} rendered strengths")
    if len(store.ids) != n:
        raise StoreError(f"{path}: {len(store.ids)} ids for {n} rendered codes")
    if store.latent_logits.shape != (a, n, len(store.attribute_names)):
        raise StoreError(f"{path}: latent_logits has shape {store.latent_logits.shape}, expected "
                         f"{(a, n, len(store.attribute_names))}")
    if not np.isfinite(store.alphas).all() or not np.isfinite(store.latent_logits).all():
        raise StoreError(f"{path}: non-finite alphas or latent logits")


def write_render_store(path: str | os.PathLike, store: RenderStore) -> None:
    validate(store, path)
    attrs = {**{k: v for k, v in store.attrs.items() if k not in ("format", "format_version")},
             "library_version": __version__}
    with create_atomically(path, FORMAT, attrs) as f:
        create_checked(f, "images", store.images, rows_per_chunk=1, compression="lzf")  # one chunk per α
        create_checked(f, "alphas", np.asarray(store.alphas, dtype=np.float64))
        write_strings(f, "ids", store.ids)
        create_checked(f, "latent_logits", store.latent_logits.astype(np.float32))
        write_strings(f, "attribute_names", store.attribute_names)


def read_render_store(path: str | os.PathLike) -> RenderStore:
    with open_for_reading(path, FORMAT) as f, reading(path):
        require(f, path, DATASETS)
        store = RenderStore(images=f["images"][()], alphas=f["alphas"][()], ids=read_strings(f["ids"]),
                            latent_logits=f["latent_logits"][()],
                            attribute_names=list(read_strings(f["attribute_names"])),
                            attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()})
    validate(store, path)
    return store


@dataclass
class RenderStoreInfo:
    """A render store without its images: attrs, α grid and the shape (A, N, C, H, W) of ``images``."""

    attrs: dict
    alphas: np.ndarray  # (A,) float64
    image_shape: tuple[int, ...]

    @property
    def calibration(self) -> dict:
        return json.loads(self.attrs.get("calibration", "{}"))


def read_render_store_info(path: str | os.PathLike) -> RenderStoreInfo:
    """The store's attrs (calibration, provenance hashes), α grid and image shape, without reading the images."""
    with open_for_reading(path, FORMAT) as f, reading(path):
        require(f, path, DATASETS)
        return RenderStoreInfo(attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
                               alphas=f["alphas"][()], image_shape=tuple(f["images"].shape))
