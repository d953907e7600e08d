"""HDF5 latent store: the one reader and writer of latent codes (``results/<world>/latents.h5``).

Schema (``attrs["format"] == "latentedit.latents"``, ``attrs["format_version"] == 2``; every dataset chunked and
Fletcher-32-checksummed, see :mod:`latentedit.io.h5`):

=================== ============== ==========================================================
dataset             dtype, shape   meaning
=================== ============== ==========================================================
``latents``         float32 (N,*S) codes in the space ``attrs["latent_space"]`` names, chunked by ≈1 MB of rows
``ids``             str (N,)       image ids, the same as in the image store they came from
``split``           str (N,)       ``train`` / ``val`` / ``test``
``attributes``      uint8 (N,A)    copied from the image store (or annotations)
``attribute_names`` str (A,)
=================== ============== ==========================================================

attrs: ``latent_space`` (required), ``generator_checkpoint_hash``, ``encoder_checkpoint_hash``, ``config_hash``,
``image_store_hash``, ``library_version``; the digits projection adds ``projection_options`` (JSON: the
``projection.*`` options that made the codes, read back by :class:`latentedit.runs.DigitsEncoder`). Every latent must
be finite: NaN/inf fail the read naming the file.

**Latent spaces** (:data:`LATENT_SPACES`; the space is always read from the attrs, never guessed from the shape:
z and w codes have the same shape, and rendering one as the other gives a wrong image without an error):

========= =========== ==============================================================================================
space     S           codes
========= =========== ==============================================================================================
``z``     (d_z,)      the DLSGAN generator's input, the *scaled* latent z'∘s (digits; the DCGAN reads only these)
``w``     (D,)        w = mapping(z'∘s), the StyleGAN2 mapping network's output (one style vector for every layer)
``wplus`` (L, D)      one style vector per synthesis layer, L = n_latent (digits: DLSGAN StyleGAN2, faces: pSp's
                      W+ codes with ``latent_avg`` added, (18, 512))
========= =========== ==============================================================================================

:func:`latent_space` reads it; the names older runs wrote are normalised (``dlsgan_scaled_z`` → ``z``,
``stylegan2_wplus`` → ``wplus``). A store whose codes do not have the rank of their space (z/w: 1, wplus: 2) is
refused on write and on read, naming the file.
:func:`create_latent_store` writes the codes batch by batch (the faces projection: O(batch) memory).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from latentedit import __version__
from latentedit.io.h5 import (StoreError, append_rows, create_atomically, create_checked, open_for_reading,
                              read_strings, reading, require, write_strings)
from latentedit.io.image_store import SPLITS

FORMAT = "latentedit.latents"
LATENT_SPACES = ("z", "w", "wplus")
LEGACY_SPACE_NAMES = {"dlsgan_scaled_z": "z", "stylegan2_wplus": "wplus"}  # what stores said before LATENT_SPACES
CODE_RANK = {"z": 1, "w": 1, "wplus": 2}  # len(S) of one code


def latent_space(attrs: Mapping, path="<memory>") -> str:
    """The latent space of a store's codes, one of :data:`LATENT_SPACES`, from its ``attrs["latent_space"]`` (legacy
    names normalised). A StoreError naming ``path`` when the attribute is missing or unknown."""
    name = attrs.get("latent_space")
    if name is None:
        raise StoreError(f"{path}: the latent store does not record its latent space (attribute latent_space, one of "
                         f"{', '.join(LATENT_SPACES)}); rerun the stage that wrote it")
    name = name.decode() if isinstance(name, bytes) else str(name)
    space = LEGACY_SPACE_NAMES.get(name, name)
    if space not in LATENT_SPACES:
        raise StoreError(f"{path}: unknown latent space {name!r} (known: {', '.join(LATENT_SPACES)})")
    return space


def check_code_shape(space: str, code_shape, path="<memory>") -> None:
    """Codes of ``space`` have rank :data:`CODE_RANK` (z, w: (D,); wplus: (L, D)); a StoreError naming ``path``."""
    code_shape = tuple(int(s) for s in code_shape)
    if len(code_shape) != CODE_RANK[space]:
        want = "(L, D)" if CODE_RANK[space] == 2 else "(D,)"
        raise StoreError(f"{path}: {space} codes must have shape {want} per image, the store holds {code_shape}")


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
    """Rows, dtype, splits, finiteness, and the codes' rank against the recorded latent space."""
    if store.latents.dtype != np.float32:
        raise StoreError(f"{path}: latents must be float32, got {store.latents.dtype}")
    _validate_rows(store, len(store.latents), path)
    check_code_shape(latent_space(store.attrs, path), store.latents.shape[1:], path)
    check_finite(store.latents, path)


def _validate_rows(store: LatentStore, n: int, path) -> None:
    """The per-row metadata: n rows each, attribute names matching, known splits."""
    for name, arr in [("ids", store.ids), ("split", store.split), ("attributes", store.attributes)]:
        if len(arr) != n:
            raise StoreError(f"{path}: {name} has {len(arr)} rows, latents has {n}")
    if store.attributes.shape[1] != len(store.attribute_names):
        raise StoreError(f"{path}: attributes/attribute_names disagree")
    bad = set(np.unique(store.split)) - set(SPLITS)
    if bad:
        raise StoreError(f"{path}: unknown split value(s) {sorted(bad)}")


def check_finite(latents: np.ndarray, path, first_row: int = 0) -> None:
    finite = np.isfinite(latents).all(axis=tuple(range(1, latents.ndim)))
    bad_rows = np.flatnonzero(~finite) + first_row
    if len(bad_rows):
        raise StoreError(f"{path}: {len(bad_rows)} latent code(s) contain NaN/inf (first rows: {bad_rows[:5].tolist()})")


class LatentStoreWriter:
    """Codes appended batch by batch to a latent store being written by :func:`create_latent_store`."""

    def __init__(self, ds, path, n: int):
        self.ds, self.path, self.n = ds, path, n

    def append(self, latents: np.ndarray) -> None:
        """Append float32 codes (b, *S), the next b rows in the order of the store's ids; NaN/inf are refused."""
        latents = np.asarray(latents)
        if latents.dtype != np.float32 or latents.shape[1:] != self.ds.shape[1:]:
            raise StoreError(f"{self.path}: latents must be float32 (N, {', '.join(map(str, self.ds.shape[1:]))}), "
                             f"got {latents.dtype} {latents.shape}")
        if self.ds.shape[0] + len(latents) > self.n:
            raise StoreError(f"{self.path}: more codes than the {self.n} ids the store was created with")
        check_finite(latents, self.path, self.ds.shape[0])
        append_rows(self.ds, latents)


@contextlib.contextmanager
def create_latent_store(path: str | os.PathLike, code_shape: tuple[int, ...], ids, split, attributes,
                        attribute_names, attrs: dict) -> Iterator[LatentStoreWriter]:
    """Write a latent store atomically with the codes appended in batches (``with ... as w: w.append(codes)``);
    the per-row metadata is given up front, ``attrs`` must name the ``latent_space`` of codes of ``code_shape``, and
    the block must append exactly one code per id."""
    meta = LatentStore(np.zeros((len(ids), 0), np.float32), np.asarray(ids, dtype=object),
                       np.asarray(split, dtype=object), np.asarray(attributes), list(attribute_names))
    _validate_rows(meta, len(ids), path)
    check_code_shape(latent_space(attrs, path), code_shape, path)
    with create_atomically(path, FORMAT, {**attrs, "library_version": __version__}) as f:
        ds = create_checked(f, "latents", shape=(0, *code_shape), dtype=np.float32, expected_rows=len(ids))
        writer = LatentStoreWriter(ds, path, len(ids))
        yield writer
        if ds.shape[0] != len(ids):
            raise StoreError(f"{path}: {ds.shape[0]} codes written for {len(ids)} ids")
        write_strings(f, "ids", meta.ids)
        write_strings(f, "split", meta.split)
        create_checked(f, "attributes", meta.attributes.astype(np.uint8))
        write_strings(f, "attribute_names", meta.attribute_names)


def write_latent_store(path: str | os.PathLike, store: LatentStore) -> None:
    validate(store, path)
    attrs = {k: v for k, v in store.attrs.items() if k not in ("format", "format_version")}
    with create_latent_store(path, store.latents.shape[1:], store.ids, store.split, store.attributes,
                             store.attribute_names, attrs) as w:
        w.append(store.latents)


def read_latent_store(path: str | os.PathLike) -> LatentStore:
    with open_for_reading(path, FORMAT) as f, reading(path):
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
