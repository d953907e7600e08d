"""Shared HDF5 helpers for the stores: open with a clear error, string datasets, atomic writing."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from latentedit.io.atomic import atomic_path, pause_if_requested


class StoreError(ValueError):
    """A store file is missing, truncated, corrupt or violates its schema. The message names the file."""


@contextlib.contextmanager
def open_for_reading(path: str | os.PathLike, fmt: str) -> Iterator[h5py.File]:
    """Open an HDF5 store, check its ``format`` attribute, and turn any low-level failure into StoreError."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: store file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:  # truncated or not HDF5 at all
        raise StoreError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e
    try:
        found = f.attrs.get("format")
        if found != fmt:
            raise StoreError(f"{path}: expected an HDF5 store of format {fmt!r}, found {found!r}")
        yield f
    except (OSError, KeyError, RuntimeError) as e:  # corrupt chunks surface on read
        raise StoreError(f"{path}: corrupt store: {e}") from e
    finally:
        f.close()


@contextlib.contextmanager
def create_atomically(path: str | os.PathLike, fmt: str, attrs: dict) -> Iterator[h5py.File]:
    """Create a store at a temporary name and rename it onto ``path`` only when the block completes."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = fmt
            for k, v in attrs.items():
                f.attrs[k] = v
            yield f
            pause_if_requested(path)  # test hook: datasets written, the file not yet closed


def require(f: h5py.File, path, names: list[str]) -> None:
    missing = [n for n in names if n not in f]
    if missing:
        raise StoreError(f"{path}: missing dataset(s) {missing}")


def read_strings(ds: h5py.Dataset) -> np.ndarray:
    return np.array([s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]], dtype=object)


def write_strings(f: h5py.File, name: str, values) -> None:
    f.create_dataset(name, data=np.array([str(v) for v in values], dtype=h5py.string_dtype()))
