"""HDF5 image store: the one reader and writer of image files (``results/<world>/images.h5``).

Schema (``attrs["format"] == "latentedit.images"``):

=================== ============== ==========================================================
dataset             dtype, shape   meaning
=================== ============== ==========================================================
``images``          uint8 (N,C,H,W) pixel values 0..255, lzf-compressed, chunked by image
``attributes``      uint8 (N,A)    binary attribute matrix
``attribute_names`` str (A,)       attribute names, column order of ``attributes``
``split``           str (N,)       ``train`` / ``val`` / ``test``
``ids``             str (N,)       unique image ids
``extra/<name>``    any (N,...)    optional per-image arrays (digits: ``slot_labels`` int8 (N,S),
                                   -1 = empty slot; ``source_index`` int32 (N,S))
=================== ============== ==========================================================

attrs: ``config_hash``, ``seed``, ``library_version``, ``world`` (and any provenance the writer adds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from latentedit import __version__
from latentedit.io.h5 import StoreError, create_atomically, open_for_reading, read_strings, require, write_strings

FORMAT = "latentedit.images"
SPLITS = ("train", "val", "test")


@dataclass
class ImageStore:
    images: np.ndarray  # (N, C, H, W) uint8
    attributes: np.ndarray  # (N, A) uint8
    attribute_names: list[str]
    split: np.ndarray  # (N,) str
    ids: np.ndarray  # (N,) str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def select(self, split: str) -> "ImageStore":
        """The subset of one split, as a new ImageStore (arrays are copies)."""
        m = self.split == split
        return ImageStore(
            self.images[m], self.attributes[m], list(self.attribute_names), self.split[m], self.ids[m],
            {k: v[m] for k, v in self.extra.items()}, dict(self.attrs),
        )

    def rows_of(self, ids, what: str = "ids") -> np.ndarray:
        """Row indices of ``ids`` in this store; KeyError naming ``what`` and a few missing ids if any is absent."""
        position = {i: n for n, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in position]
        if missing:
            raise KeyError(f"{what}: {len(missing)} ids are not in the image store, e.g. {missing[:3]}")
        return np.array([position[i] for i in ids], dtype=np.int64)

    def attribute(self, name: str) -> np.ndarray:
        if name not in self.attribute_names:
            raise KeyError(f"unknown attribute {name!r}; known: {self.attribute_names}")
        return self.attributes[:, self.attribute_names.index(name)]


def validate(store: ImageStore, path="<memory>") -> None:
    n = len(store.images)
    if store.images.ndim != 4 or store.images.dtype != np.uint8:
        raise StoreError(f"{path}: images must be uint8 (N,C,H,W), got {store.images.dtype} {store.images.shape}")
    for name, arr in [("attributes", store.attributes), ("split", store.split), ("ids", store.ids),
                      *[(f"extra/{k}", v) for k, v in store.extra.items()]]:
        if len(arr) != n:
            raise StoreError(f"{path}: {name} has {len(arr)} rows, images has {n}")
    if store.attributes.shape[1] != len(store.attribute_names):
        raise StoreError(f"{path}: attributes has {store.attributes.shape[1]} columns but "
                         f"{len(store.attribute_names)} attribute names")
    bad = set(np.unique(store.split)) - set(SPLITS)
    if bad:
        raise StoreError(f"{path}: unknown split value(s) {sorted(bad)}")
    if len(set(store.ids)) != n:
        raise StoreError(f"{path}: image ids are not unique")


def write_image_store(path: str | os.PathLike, store: ImageStore) -> None:
    """Validate and write ``store`` atomically; ``store.attrs`` gain ``library_version``."""
    validate(store, path)
    attrs = {**store.attrs, "library_version": __version__}
    with create_atomically(path, FORMAT, attrs) as f:
        c, h, w = store.images.shape[1:]
        f.create_dataset("images", data=store.images, chunks=(1, c, h, w), compression="lzf")
        f.create_dataset("attributes", data=store.attributes.astype(np.uint8))
        write_strings(f, "attribute_names", store.attribute_names)
        write_strings(f, "split", store.split)
        write_strings(f, "ids", store.ids)
        for k, v in store.extra.items():
            f.create_dataset(f"extra/{k}", data=v)


def read_image_store(path: str | os.PathLike) -> ImageStore:
    """Load a whole image store into RAM, checking its schema; failures raise StoreError naming ``path``."""
    with open_for_reading(path, FORMAT) as f:
        require(f, path, ["images", "attributes", "attribute_names", "split", "ids"])
        store = ImageStore(
            images=f["images"][()],
            attributes=f["attributes"][()],
            attribute_names=list(read_strings(f["attribute_names"])),
            split=read_strings(f["split"]),
            ids=read_strings(f["ids"]),
            extra={k: f["extra"][k][()] for k in f["extra"]} if "extra" in f else {},
            attrs=dict(f.attrs),
        )
    validate(store, path)
    return store
