"""HDF5 image store: the one reader and writer of image files (``results/<world>/images.h5``, ``celebahq.h5``).

Schema (``attrs["format"] == "latentedit.images"``, ``attrs["format_version"] == 2``; every dataset chunked and
Fletcher-32-checksummed, see :mod:`latentedit.io.h5`):

=================== ============== ==========================================================
dataset             dtype, shape   meaning
=================== ============== ==========================================================
``images``          uint8 (N,C,H,W) pixel values 0..255, lzf-compressed, one chunk per image; or a *virtual*
                                   dataset whose rows are views of other stores' images (below)
``pixels``          uint8 (M,C,H,W) only when ``images`` is virtual: the rows this store holds itself
``attributes``      uint8 (N,A)    binary attribute matrix
``attribute_names`` str (A,)       attribute names, column order of ``attributes``
``split``           str (N,)       ``train`` / ``val`` / ``test``
``ids``             str (N,)       unique image ids
``extra/<name>``    any (N,...)    optional per-image arrays (digits: ``slot_labels`` int8 (N,S),
                                   -1 = empty slot; ``source_index`` int32 (N,S))
=================== ============== ==========================================================

attrs: ``config_hash``, ``seed``, ``library_version``, ``world`` (and any provenance the writer adds).

**Views.** A store may reference a contiguous block of rows of another image store *in the same folder* instead of
copying its pixels (:meth:`ImageStoreWriter.append_view`): ``images`` is then an HDF5 virtual dataset mapping those
rows to the source's ``images`` and the store's own rows to its ``pixels``. Readers check on open that every source
exists, is checksummed and still has the mapped rows (HDF5 alone would read a missing source as zeros); the source's
own checksums are verified when its rows are read. The faces world's ``images.h5`` is such a view of ``celebahq.h5``.

**Streaming.** :func:`open_image_store` yields an :class:`ImageStore` whose ``images`` is an :class:`ImageRows`: the
metadata (attributes, ids, split) is in RAM, the pixels are read from disk batch by batch, so a reader holds O(batch)
images; :func:`create_image_store` writes batch by batch. :func:`read_image_store` loads everything (small stores).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from latentedit import __version__
from latentedit.io.h5 import (StoreError, append_rows, create_atomically, create_checked, open_for_reading,
                              read_strings, reading, require, write_strings)

FORMAT = "latentedit.images"
SPLITS = ("train", "val", "test")
REQUIRED = ["images", "attributes", "attribute_names", "split", "ids"]


class ImageRows:
    """Rows of an open store's ``images`` read on demand: ``len``, ``shape``, ``dtype``, ``ndim`` like an array;
    indexing with an int, a slice, an integer array or a boolean mask reads those rows (uint8 ndarray) from disk.

    Parameters
    ----------
    ds : h5py.Dataset
        The store's ``images`` dataset (N, C, H, W), open.
    path : path-like
        The store file, named by errors (a checksum mismatch on read raises :class:`StoreError`).
    rows : ndarray of int, optional
        The dataset rows this object exposes, in order (default: all).
    """

    def __init__(self, ds: h5py.Dataset, path, rows: np.ndarray | None = None):
        self.ds, self.path = ds, path
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return self.ds.shape[0] if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.ds.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.ds.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.ds.dtype

    def _positions(self, key) -> np.ndarray | slice:
        if isinstance(key, slice):
            return key if self.rows is None else self.rows[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return key.astype(np.int64) if self.rows is None else self.rows[key]

    def subset(self, key) -> "ImageRows":
        """The rows ``key`` (slice, integer array or boolean mask) as a new lazy ImageRows; nothing is read."""
        pos = self._positions(key)
        if isinstance(pos, slice):
            pos = np.arange(*pos.indices(self.ds.shape[0]))
        return ImageRows(self.ds, self.path, pos)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if hasattr(key, "numpy"):  # a torch index tensor
            key = key.cpu().numpy()
        pos = self._positions(key)
        with reading(self.path):
            if isinstance(pos, slice):
                return self.ds[pos]
            if len(pos) == 0:
                return np.zeros((0, *self.ds.shape[1:]), self.ds.dtype)
            if np.all(np.diff(pos) == 1):  # a contiguous run: one hyperslab
                return self.ds[int(pos[0]):int(pos[-1]) + 1]
            unique, inverse = np.unique(pos, return_inverse=True)  # h5py wants increasing unique indices
            return self.ds[unique][inverse]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """The rows in order, ``batch_size`` at a time (uint8 (≤B, C, H, W)): O(batch) memory."""
        for i in range(0, len(self), batch_size):
            yield self[i:i + batch_size]


@dataclass
class ImageStore:
    images: np.ndarray | ImageRows  # (N, C, H, W) uint8; ImageRows when opened with open_image_store
    attributes: np.ndarray  # (N, A) uint8
    attribute_names: list[str]
    split: np.ndarray  # (N,) str
    ids: np.ndarray  # (N,) str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def select(self, split: str) -> "ImageStore":
        """The subset of one split, as a new ImageStore (arrays are copies; lazy images stay lazy)."""
        m = self.split == split
        images = self.images.subset(m) if isinstance(self.images, ImageRows) else self.images[m]
        return ImageStore(
            images, self.attributes[m], list(self.attribute_names), self.split[m], self.ids[m],
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
    if store.images.ndim != 4 or store.images.dtype != np.uint8:
        raise StoreError(f"{path}: images must be uint8 (N,C,H,W), got {store.images.dtype} {store.images.shape}")
    _validate_rows(len(store.images), store.attributes, store.attribute_names, store.split, store.ids, store.extra,
                   path)


def _validate_rows(n: int, attributes, attribute_names, split, ids, extra: dict, path) -> None:
    for name, arr in [("attributes", attributes), ("split", split), ("ids", ids),
                      *[(f"extra/{k}", v) for k, v in extra.items()]]:
        if len(arr) != n:
            raise StoreError(f"{path}: {name} has {len(arr)} rows, images has {n}")
    if np.ndim(attributes) != 2 or np.shape(attributes)[1] != len(attribute_names):
        raise StoreError(f"{path}: attributes has {np.shape(attributes)[1:]} columns but "
                         f"{len(attribute_names)} attribute names")
    bad = set(np.unique(np.asarray(split, dtype=object))) - set(SPLITS)
    if bad:
        raise StoreError(f"{path}: unknown split value(s) {sorted(bad)}")
    if len(set(ids)) != n:
        raise StoreError(f"{path}: image ids are not unique")


class ImageStoreWriter:
    """Rows appended to an image store being written by :func:`create_image_store`, batch by batch.

    Pixels of :meth:`append` go to disk at once; the per-row metadata (attributes, split, ids, extra: small) is kept
    and written, validated, when the store closes.
    """

    def __init__(self, f: h5py.File, path, image_shape: tuple[int, int, int], attribute_names):
        self.f, self.path, self.image_shape = f, Path(path), tuple(int(s) for s in image_shape)
        self.attribute_names = [str(a) for a in attribute_names]
        self.pixels = create_checked(f, "pixels", shape=(0, *self.image_shape), dtype=np.uint8, rows_per_chunk=1,
                                     compression="lzf")
        self.segments: list[tuple[str, str, int, int, tuple]] = []  # (file name, dataset, start, stop, src shape)
        self.attributes, self.split, self.ids, self.extra = [], [], [], {}
        self.n = 0

    def _rows(self, n: int, attributes, split, ids, extra) -> None:
        attributes = np.asarray(attributes)
        _validate_rows(n, attributes, self.attribute_names, np.asarray(split, dtype=object),
                       np.asarray(ids, dtype=object), extra or {}, self.path)
        if self.n and set(extra or {}) != set(self.extra):
            raise StoreError(f"{self.path}: every batch must carry the same extra arrays, got {sorted(extra or {})} "
                             f"after {sorted(self.extra)}")
        self.attributes.append(attributes)
        self.split.extend(str(s) for s in split)
        self.ids.extend(str(i) for i in ids)
        for k, v in (extra or {}).items():
            self.extra.setdefault(k, []).append(np.asarray(v))
        self.n += n

    def append(self, images: np.ndarray, attributes, split, ids, extra: dict | None = None) -> None:
        """Append images uint8 (n, C, H, W) with their attributes (n, A), split (n,), ids (n,) and extra arrays."""
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            raise StoreError(f"{self.path}: images must be uint8 (N, {', '.join(map(str, self.image_shape))}), got "
                             f"{images.dtype} {images.shape}")
        self._rows(len(images), attributes, split, ids, extra)
        start = self.pixels.shape[0]
        append_rows(self.pixels, images)
        self._segment(".", "pixels", start, start + len(images), None)

    def append_view(self, source: str | os.PathLike, start: int, stop: int, attributes, split, ids,
                    extra: dict | None = None) -> None:
        """Append rows ``start:stop`` of the image store ``source`` (same folder) by reference, not by copy, with
        their metadata (which the caller takes from the source, or relabels)."""
        source = Path(source)
        if source.resolve().parent != self.path.resolve().parent:
            raise StoreError(f"{self.path}: a view must reference a store in the same folder, got {source}")
        with open_image_store(source) as src:
            shape = tuple(src.images.ds.shape)
            if tuple(shape[1:]) != self.image_shape or not 0 <= start <= stop <= shape[0]:
                raise StoreError(f"{self.path}: rows {start}:{stop} of {source} (images {shape}) do not fit a store "
                                 f"of images {self.image_shape}")
            if src.images.ds.is_virtual:
                raise StoreError(f"{self.path}: {source} is itself a view; reference its sources instead")
        self._rows(stop - start, attributes, split, ids, extra)
        self._segment(source.name, "images", start, stop, shape)

    def _segment(self, file_name: str, dataset: str, start: int, stop: int, shape) -> None:
        last = self.segments[-1] if self.segments else None
        if last and last[:2] == (file_name, dataset) and last[3] == start:  # extend a run
            self.segments[-1] = (file_name, dataset, last[2], stop, shape)
        elif stop > start:
            self.segments.append((file_name, dataset, start, stop, shape))

    def close(self) -> None:
        f, n = self.f, self.n
        attributes = (np.concatenate(self.attributes) if self.attributes
                      else np.zeros((0, len(self.attribute_names)), np.uint8))
        extra = {k: np.concatenate(v) for k, v in self.extra.items()}
        _validate_rows(n, attributes, self.attribute_names, np.array(self.split, dtype=object),
                       np.array(self.ids, dtype=object), extra, self.path)
        if all(s[0] == "." for s in self.segments):  # no views: the pixels are the images
            f.move("pixels", "images")
        else:
            layout = h5py.VirtualLayout(shape=(n, *self.image_shape), dtype=np.uint8)
            row = 0
            for file_name, dataset, start, stop, shape in self.segments:
                shape = shape or (self.pixels.shape[0], *self.image_shape)
                layout[row:row + stop - start] = h5py.VirtualSource(file_name, dataset, shape=shape)[start:stop]
                row += stop - start
            f.create_virtual_dataset("images", layout, fillvalue=0)
        create_checked(f, "attributes", attributes.astype(np.uint8))
        write_strings(f, "attribute_names", self.attribute_names)
        write_strings(f, "split", self.split)
        write_strings(f, "ids", self.ids)
        for k, v in extra.items():
            create_checked(f, f"extra/{k}", v)


@contextlib.contextmanager
def create_image_store(path: str | os.PathLike, attribute_names, image_shape: tuple[int, int, int],
                       attrs: dict) -> Iterator[ImageStoreWriter]:
    """Write an image store batch by batch, atomically: ``with create_image_store(...) as w: w.append(...)``.

    Nothing appears under ``path`` unless the block completes; ``attrs`` gain ``library_version``.
    """
    with create_atomically(path, FORMAT, {**attrs, "library_version": __version__}) as f:
        writer = ImageStoreWriter(f, path, image_shape, attribute_names)
        yield writer
        writer.close()


def write_image_store(path: str | os.PathLike, store: ImageStore) -> None:
    """Validate and write ``store`` atomically; ``store.attrs`` gain ``library_version``."""
    validate(store, path)
    attrs = {k: v for k, v in store.attrs.items() if k not in ("format", "format_version")}
    with create_image_store(path, store.attribute_names, store.images.shape[1:], attrs) as w:
        w.append(np.asarray(store.images), store.attributes, store.split, store.ids, store.extra)


@contextlib.contextmanager
def open_image_store(path: str | os.PathLike) -> Iterator[ImageStore]:
    """The store with lazy ``images`` (:class:`ImageRows`, read on demand; valid inside the block) and its metadata
    in RAM, schema checked. Failures, including checksum mismatches on later reads, raise StoreError naming ``path``.
    """
    with open_for_reading(path, FORMAT) as f:
        with reading(path):
            require(f, path, REQUIRED)
            if "extra" in f:
                require(f, path, [f"extra/{k}" for k in f["extra"]])
            store = ImageStore(
                images=ImageRows(f["images"], path),
                attributes=f["attributes"][()],
                attribute_names=list(read_strings(f["attribute_names"])),
                split=read_strings(f["split"]),
                ids=read_strings(f["ids"]),
                extra={k: f["extra"][k][()] for k in f["extra"]} if "extra" in f else {},
                attrs=dict(f.attrs),
            )
        validate(store, path)
        yield store


def read_image_store(path: str | os.PathLike) -> ImageStore:
    """Load a whole image store into RAM, checking its schema; failures raise StoreError naming ``path``."""
    with open_image_store(path) as store:
        store.images = store.images[:]
    return store
