"""HDF5 latent store: the one reader and writer of latent codes (``results/<world>/latents.h5``).

Schema (``attrs["format"] == "latentedit.latents"``):

=================== ============== ==========================================================
dataset             dtype, shape   meaning
=================== ============== ==========================================================
``latents``         float32 (N,*S) codes in the generator's input space, contiguous
                                   (digits: DLSGAN scaled latent z'∘s, S = (d_z,);
                                   faces: W+ codes, S = (18, 512))
``ids``             str (N,)       image ids, the same as in the image store they came from
``split``           str (N,)       ``train`` / ``val`` / ``test``
``attributes``      uint8 (N,A)    copied from the image store (or annotations)
``attribute_names`` str (A,)
=================== ============== ==========================================================

attrs: ``latent_space``, ``generator_checkpoint_hash``, ``encoder_checkpoint_hash``, ``config_hash``,
``image_store_hash``, ``library_version``. Every latent must be finite: NaN/inf fail the read naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from latentedit import __version__
from latentedit.io.h5 import StoreError, create_atomically, open_for_reading, read_strings, require, write_strings
from latentedit.io.image_store import SPLITS

FORMAT = "latentedit.latents"


@dataclass
class LatentStore:
    latents: np.ndarray  # (N, *S) float32
    ids: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str
    attributes: np.ndarray  # (N, A) uint8
    attribute_names: list[str]
    attrs: dict = field(default_factory=dict)

    def select(self, split: str) -> "LatentStore":
        m = self.split == split
        return LatentStore(self.latents[m], self.ids[m], self.split[m], self.attributes[m],
                           list(self.attribute_names), dict(self.attrs))


def validate(store: LatentStore, path="<memory>") -> None:
    n = len(store.latents)
    if store.latents.dtype != np.float32:
        raise StoreError(f"{path}: latents must be float32, got {store.latents.dtype}")
    for name, arr in [("ids", store.ids), ("split", store.split), ("attributes", store.attributes)]:
        if len(arr) != n:
            raise StoreError(f"{path}: {name} has {len(arr)} rows, latents has {n}")
    if store.attributes.shape[1] != len(store.attribute_names):
        raise StoreError(f"{path}: attributes/attribute_names disagree")
    finite = np.isfinite(store.latents).all(axis=tuple(range(1, store.latents.ndim)))
    bad_rows = np.flatnonzero(~finite)
    if len(bad_rows):
        raise StoreError(f"{path}: {len(bad_rows)} latent code(s) contain NaN/inf (first rows: {bad_rows[:5].tolist()})")
    bad = set(np.unique(store.split)) - set(SPLITS)
    if bad:
        raise StoreError(f"{path}: unknown split value(s) {sorted(bad)}")


def write_latent_store(path: str | os.PathLike, store: LatentStore) -> None:
    validate(store, path)
    attrs = {**store.attrs, "library_version": __version__}
    with create_atomically(path, FORMAT, attrs) as f:
        f.create_dataset("latents", data=store.latents)  # contiguous: read whole into RAM
        write_strings(f, "ids", store.ids)
        write_strings(f, "split", store.split)
        f.create_dataset("attributes", data=store.attributes.astype(np.uint8))
        write_strings(f, "attribute_names", store.attribute_names)


def read_latent_store(path: str | os.PathLike) -> LatentStore:
    with open_for_reading(path, FORMAT) as f:
        require(f, path, ["latents", "ids", "split", "attributes", "attribute_names"])
        store = LatentStore(
            latents=f["latents"][()], ids=read_strings(f["ids"]), split=read_strings(f["split"]),
            attributes=f["attributes"][()], attribute_names=list(read_strings(f["attribute_names"])),
            attrs=dict(f.attrs),
        )
    validate(store, path)
    return store


def read_latent_store_attrs(path: str | os.PathLike) -> dict:
    """The store's attributes (provenance hashes) without reading the codes; a bad file fails naming it."""
    with open_for_reading(path, FORMAT) as f:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
