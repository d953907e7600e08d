"""Shared HDF5 helpers for the stores: open with a clear error, checksummed datasets, strings, atomic writing.

Every store carries ``attrs["format"]`` (which store it is) and ``attrs["format_version"]`` (:data:`FORMAT_VERSION`).
Since version 2 every dataset is chunked with HDF5's Fletcher-32 checksum filter (``fletcher32=True``, after any
compression, so the checksum covers the bytes on disk): a flipped bit in a data region fails the read of its chunk,
and the store's reader turns that into :class:`StoreError` naming the file. Strings are fixed-length UTF-8 byte
strings, so the checksum covers their characters too (a variable-length string dataset would checksum only the
pointers into HDF5's global heap). A dataset may instead be a *virtual* view of another store's checksummed dataset
(``images`` of the faces evaluation store); its sources must exist and be checksummed. Version-1 stores (written
before checksums) are refused with a message saying to rerun the stage that wrote them. Attributes (provenance) live
in HDF5 object headers and are not checksummed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from latentedit.io.atomic import atomic_path, pause_if_requested

FORMAT_VERSION = 2  # 2: every dataset fletcher32-checksummed, fixed-length UTF-8 strings (1: no checksums)
CHUNK_BYTES = 1 << 20  # target chunk size of non-image datasets: big enough to read fast, small enough to cache


class StoreError(ValueError):
    """A store file is missing, truncated, corrupt or violates its schema. The message names the file."""


def rerun_hint(path) -> str:
    return f"rerun the stage that wrote it (`snakemake --forcerun {path}`, or delete the file and run again)"


@contextlib.contextmanager
def reading(path) -> Iterator[None]:
    """Turn low-level HDF5 failures inside the block (a checksum mismatch, a corrupt chunk) into StoreError."""
    try:
        yield
    except (OSError, KeyError, RuntimeError) as e:  # corrupt chunks surface on read
        raise StoreError(f"{path}: corrupt store (checksum mismatch or damaged data): {e}") from e


@contextlib.contextmanager
def open_for_reading(path: str | os.PathLike, fmt: str) -> Iterator[h5py.File]:
    """Open an HDF5 store and check its ``format`` and ``format_version``; a file that cannot be opened fails with
    StoreError. Readers wrap their reads in :func:`reading` so that corrupt data fails naming the file too."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: store file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:  # truncated or not HDF5 at all
        raise StoreError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e
    try:
        with reading(path):  # only the checks: errors of the caller's block are the caller's
            found = f.attrs.get("format")
            if found != fmt:
                raise StoreError(f"{path}: expected an HDF5 store of format {fmt!r}, found {found!r}")
            version = int(f.attrs.get("format_version", 1))
            if version < FORMAT_VERSION:
                raise StoreError(f"{path}: a {fmt} store of format version {version}, written without checksums by "
                                 f"an older latentedit; this version reads only version {FORMAT_VERSION}: "
                                 f"{rerun_hint(path)}")
            if version > FORMAT_VERSION:
                raise StoreError(f"{path}: a {fmt} store of format version {version}, newer than this latentedit "
                                 f"reads ({FORMAT_VERSION}): upgrade latentedit or {rerun_hint(path)}")
        yield f
    finally:
        f.close()


@contextlib.contextmanager
def create_atomically(path: str | os.PathLike, fmt: str, attrs: dict) -> Iterator[h5py.File]:
    """Create a store at a temporary name and rename it onto ``path`` only when the block completes."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = fmt
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in attrs.items():
                f.attrs[k] = v
            yield f
            pause_if_requested(path)  # test hook: datasets written, the file not yet closed


def _chunks(shape: tuple[int, ...], itemsize: int, rows_per_chunk: int | None, rows: int) -> tuple[int, ...]:
    """Chunk shape: whole rows, ``rows_per_chunk`` of them (default ≈ CHUNK_BYTES), at most the ``rows`` expected."""
    row = [max(1, s) for s in shape[1:]]
    if rows_per_chunk is None:
        rows_per_chunk = CHUNK_BYTES // max(1, itemsize * int(np.prod(row)))
    return (max(1, min(rows_per_chunk, rows)), *row)


def create_checked(f: h5py.Group, name: str, data=None, *, shape=None, dtype=None, rows_per_chunk: int | None = None,
                   expected_rows: int | None = None, compression: str | None = None) -> h5py.Dataset:
    """A chunked, Fletcher-32-checksummed dataset, resizable along its first axis (appendable in batches).

    ``data`` (written at once) or ``shape`` and ``dtype`` (filled later, ``expected_rows`` rows in the end). Chunks
    hold ``rows_per_chunk`` rows (default: about :data:`CHUNK_BYTES`, at most the rows expected); ``compression`` is
    an h5py filter name (``"lzf"``) or None.
    """
    if data is not None:
        data = np.asarray(data)
        shape, dtype = data.shape, data.dtype
    dtype = np.dtype(dtype)
    if not shape:
        raise ValueError(f"{name}: a checksummed dataset needs at least one axis")
    rows = shape[0] if expected_rows is None else expected_rows
    maxshape = (None,) * len(shape) if 0 in shape[1:] else (None, *shape[1:])
    ds = f.create_dataset(name, shape=shape, dtype=dtype,
                          chunks=_chunks(tuple(shape), dtype.itemsize, rows_per_chunk, rows),
                          maxshape=maxshape, compression=compression, fletcher32=True)
    if data is not None and data.size:
        ds[...] = data
    return ds


def append_rows(ds: h5py.Dataset, rows: np.ndarray) -> None:
    """Append ``rows`` (n, *ds.shape[1:]) along the first axis of a resizable dataset."""
    rows = np.asarray(rows)
    if rows.shape[1:] != ds.shape[1:]:
        raise ValueError(f"{ds.name}: rows of shape {rows.shape[1:]} appended to a dataset of rows {ds.shape[1:]}")
    n = ds.shape[0]
    ds.resize(n + len(rows), axis=0)
    ds[n:n + len(rows)] = rows


def require(f: h5py.File, path, names: list[str]) -> None:
    """Every dataset of ``names`` exists and is checksummed (fletcher32, or a view of checksummed datasets)."""
    missing = [n for n in names if n not in f]
    if missing:
        raise StoreError(f"{path}: missing dataset(s) {missing}")
    unchecked = [n for n in names if not f[n].is_virtual and not f[n].fletcher32]
    if unchecked:
        raise StoreError(f"{path}: dataset(s) {unchecked} carry no checksum; {rerun_hint(path)}")
    for n in names:
        if f[n].is_virtual:
            check_virtual_sources(f[n], path)


def check_virtual_sources(ds: h5py.Dataset, path) -> None:
    """A virtual dataset's source files exist and hold checksummed datasets of the mapped shape.

    HDF5 itself reads a missing source as fill values without an error, so this check is what makes a deleted or
    replaced source fail.
    """
    path = Path(path)
    for m in ds.virtual_sources():
        src_path = path if m.file_name == "." else path.parent / m.file_name
        where = f"{path}: its {ds.name.lstrip('/')!r} are a view of {src_path}:{m.dset_name}"
        if not src_path.exists():
            raise StoreError(f"{where}, which does not exist; rerun the stage that wrote {src_path}, then "
                             f"{rerun_hint(path)}")
        try:
            with contextlib.ExitStack() as stack:
                src = ds.file if m.file_name == "." else stack.enter_context(h5py.File(src_path, "r"))
                if m.dset_name not in src:
                    raise StoreError(f"{where}, which has no such dataset; {rerun_hint(path)}")
                source = src[m.dset_name]
                if not source.fletcher32:
                    raise StoreError(f"{where}, which carries no checksum; {rerun_hint(src_path)}")
                if source.shape[1:] != ds.shape[1:] or m.src_space.get_select_bounds()[1][0] >= source.shape[0]:
                    raise StoreError(f"{where}, whose shape {source.shape} no longer fits (was the source rewritten?); "
                                     f"{rerun_hint(path)}")
        except OSError as e:
            raise StoreError(f"{where}, which is not readable: {e}") from e


def read_strings(ds: h5py.Dataset) -> np.ndarray:
    return np.array([s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]], dtype=object)


def write_strings(f: h5py.Group, name: str, values) -> h5py.Dataset:
    """A checksummed dataset of fixed-length UTF-8 strings (one per value)."""
    encoded = [str(v).encode() for v in values]
    width = max([1, *map(len, encoded)])
    arr = np.array(encoded, dtype=f"S{width}").reshape(len(encoded))
    ds = f.create_dataset(name, shape=arr.shape, dtype=h5py.string_dtype("utf-8", width),
                          chunks=_chunks(arr.shape, width, None, len(arr)), maxshape=(None,), fletcher32=True)
    if len(arr):
        ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, arr, mtype=ds.id.get_type())  # bytes as they are: already UTF-8
    return ds
