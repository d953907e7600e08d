"""The faces world's data: CelebA-HQ images with their 40 CelebA attributes, and the first N FFHQ images.

Nothing is downloaded: the user points the config at

* a folder of CelebA-HQ images (``0.jpg`` … ``29999.jpg`` in CelebAMask-HQ's ``CelebA-HQ-img``), and
* its attribute file: ``CelebAMask-HQ-attribute-anno.txt`` or CelebA's ``list_attr_celeba.txt``. Both have the same
  layout: line 1 the number of rows, line 2 the 40 attribute names, then one row per image,
  ``<file name> v_1 … v_40`` with v ∈ {−1, 1} (whitespace-separated, CelebA pads with double spaces);
* optionally a folder of FFHQ images (the evaluation set: the first N files in sorted order, subfolders included).

Labels become 0/1 (−1 → 0). Every row must name a file of the image folder (CelebA's file has rows for all 202,599
CelebA images: only the rows whose file exists are kept, and ``require_all`` says whether a missing file is an error).

Two image stores come out of it, written batch by batch (O(batch) images in memory, :mod:`latentedit.io.image_store`):

* ``celebahq.h5`` (:func:`write_celebahq_store`): every CelebA-HQ image with its annotations and a seeded
  train/val/test split, rows grouped by split (train, val, test; each in the attribute file's order);
* ``images.h5`` (:func:`write_faces_eval_store`), the evaluation store the latent store mirrors: CelebA-HQ
  train/val and, as test, the first N FFHQ images labelled by the attribute classifiers (or CelebA-HQ's test split).
  Its CelebA-HQ rows are a *view* of ``celebahq.h5`` (an HDF5 virtual dataset: one copy of the pixels on disk), which
  is why ``celebahq.h5`` groups its rows by split: train+val is one contiguous block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

# CelebA's 40 attributes, in the order of list_attr_celeba.txt and CelebAMask-HQ-attribute-anno.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class DataFileError(ValueError):
    """A user-supplied data file is malformed; the message names the file (and line)."""


def parse_attribute_file(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Read a CelebA / CelebAMask-HQ attribute file.

    Returns
    -------
    files : list of str
        The image file names, in file order.
    names : list of str
        The attribute names of line 2 (must be CelebA's 40, in CelebA's order).
    labels : ndarray, uint8, shape (N, 40)
        1 where the file says 1, 0 where it says −1.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: cannot read the attribute file: {e}") from None
    if len(lines) < 2:
        raise DataFileError(f"{path}: expected a row count, a header of attribute names and rows; got {len(lines)} lines")
    try:
        n = int(lines[0].strip())
    except ValueError:
        raise DataFileError(f"{path}:1: expected the number of rows, got {lines[0][:60]!r}") from None
    names = lines[1].split()
    if tuple(names) != CELEBA_ATTRIBUTES:
        unknown = sorted(set(names) - set(CELEBA_ATTRIBUTES))
        missing = sorted(set(CELEBA_ATTRIBUTES) - set(names))
        raise DataFileError(f"{path}:2: the header must list CelebA's 40 attributes in CelebA's order "
                            f"(unknown: {unknown}, missing: {missing})")
    rows = [(i, line) for i, line in enumerate(lines[2:], start=3) if line.strip()]
    if len(rows) != n:
        raise DataFileError(f"{path}: line 1 announces {n} rows but the file has {len(rows)}")
    files, labels, seen = [], np.empty((n, len(names)), dtype=np.uint8), set()
    for r, (lineno, line) in enumerate(rows):
        fields = line.split()
        if len(fields) != len(names) + 1:
            raise DataFileError(f"{path}:{lineno}: expected a file name and {len(names)} values, got {len(fields)} fields")
        if fields[0] in seen:
            raise DataFileError(f"{path}:{lineno}: {fields[0]!r} appears twice")
        seen.add(fields[0])
        values = fields[1:]
        bad = [v for v in values if v not in ("1", "-1")]
        if bad:
            raise DataFileError(f"{path}:{lineno}: attribute values must be 1 or -1, got {bad[:3]}")
        files.append(fields[0])
        labels[r] = [v == "1" for v in values]
    return files, names, labels


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (subfolders included), sorted by their path relative to ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"{folder}: image folder does not exist")
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.relative_to(folder).as_posix())


def match_rows(folder: str | os.PathLike, files: list[str], require_all: bool) -> np.ndarray:
    """Row indices of the attribute-file rows whose image exists in ``folder`` (in file order).

    With ``require_all`` every row must have its image; the first missing one is named. Images of the folder that
    no row names are reported as an error too (their labels would be unknown).
    """
    folder = Path(folder)
    present = {p.relative_to(folder).as_posix() for p in list_images(folder)}
    rows = [i for i, f in enumerate(files) if f in present]
    missing = [f for f in files if f not in present]
    if require_all and missing:
        raise DataFileError(f"{folder}: {len(missing)} images named by the attribute file are missing, "
                            f"e.g. {missing[:3]}")
    unlabelled = sorted(present - set(files))
    if unlabelled:
        raise DataFileError(f"{folder}: {len(unlabelled)} images have no row in the attribute file, "
                            f"e.g. {unlabelled[:3]}")
    if not rows:
        raise DataFileError(f"{folder}: none of the attribute file's images are in this folder")
    return np.asarray(rows, dtype=np.int64)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """One image as uint8 (3, size, size) RGB, resized with Lanczos; an unreadable file fails naming it."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise DataFileError(f"{path}: not a readable image: {e}") from None


def load_images(paths: list[Path], size: int, desc: str = "images") -> np.ndarray:
    """uint8 (N, 3, size, size), with a progress bar."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc=desc, mininterval=2.0)):
        out[i] = load_image(p, size)
    return out


def iter_images(paths: list[Path], size: int, batch_size: int, desc: str = "images") -> Iterator[np.ndarray]:
    """The images of ``paths`` in order, ``batch_size`` at a time: uint8 (≤B, 3, size, size), O(batch) memory."""
    bar = tqdm(total=len(paths), desc=desc, mininterval=2.0)
    for i in range(0, len(paths), batch_size):
        batch = paths[i:i + batch_size]
        out = np.empty((len(batch), 3, size, size), dtype=np.uint8)
        for j, p in enumerate(batch):
            out[j] = load_image(p, size)
        bar.update(len(batch))
        yield out
    bar.close()


def split_assignment(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """A seeded train/val/test label per row, in proportions ``fractions`` (each split gets at least one row)."""
    if n < 3:
        raise ValueError(f"need at least 3 images for train/val/test, got {n}")
    f = np.asarray(fractions, dtype=float) / float(sum(fractions))
    n_val, n_test = max(1, round(f[1] * n)), max(1, round(f[2] * n))
    split = np.array(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)
    return split[np.random.default_rng(seed).permutation(n)]


BATCH = 64  # images per batch written/labelled: 12.6 MB at 256 px (two alive at a time), small next to torch


def write_celebahq_store(path, folder, files: list[str], labels: np.ndarray, names: list[str], rows: np.ndarray,
                         size: int, fractions: tuple[float, float, float], seed: int, attrs: dict,
                         batch_size: int = BATCH) -> dict:
    """Write the CelebA-HQ image store from the images of attribute-file ``rows``, batch by batch.

    Parameters
    ----------
    path : path-like
        The store to write (``celebahq.h5``).
    folder : path-like
        The image folder; row r's image is ``folder / files[r]``.
    files, labels, names
        :func:`parse_attribute_file`'s output; ``rows`` the rows to store (e.g. :func:`match_rows`'s).
    size : int
        Image side in pixels (Lanczos-resized).
    fractions, seed
        The train/val/test split (:func:`split_assignment` over ``rows``); stored rows are grouped by split.

    Returns
    -------
    dict
        ``n`` per split, ``label_rates`` per attribute, and ``preview``: up to 32 train images uint8 (n, 3, S, S).
    """
    from latentedit.io.image_store import SPLITS, create_image_store

    split = split_assignment(len(rows), fractions, seed)
    order = np.concatenate([np.flatnonzero(split == s) for s in SPLITS])  # grouped by split, file order within
    rows, split = np.asarray(rows)[order], split[order]
    paths = [Path(folder) / files[r] for r in rows]
    preview = []
    with create_image_store(path, names, (3, size, size), attrs) as w:
        for start, batch in zip(range(0, len(paths), batch_size), iter_images(paths, size, batch_size, "CelebA-HQ")):
            sl = slice(start, start + len(batch))
            w.append(batch, labels[rows[sl]], split[sl], [files[r] for r in rows[sl]])
            if sum(map(len, preview)) < 32:
                preview.append(batch[:32 - sum(map(len, preview))].copy())  # a copy: the batch itself is freed
    return {"n": {s: int((split == s).sum()) for s in SPLITS},
            "label_rates": dict(zip(names, np.round(labels[rows].mean(0), 3).tolist())),
            "preview": np.concatenate(preview) if preview else np.zeros((0, 3, size, size), np.uint8)}


def write_faces_eval_store(path, celebahq, ffhq_folder, ffhq_paths: list[Path] | None, classifier, attrs: dict,
                           batch_size: int = BATCH) -> dict:
    """Write the faces evaluation image store: CelebA-HQ train/val (a view of ``celebahq``, no copy) and as test the
    FFHQ images ``ffhq_paths`` labelled ``p > 0.5`` by ``classifier``, batch by batch; or, with ``ffhq_paths``
    None, all of CelebA-HQ (a view, test labels its annotations).

    Parameters
    ----------
    path : path-like
        The store to write (``images.h5``), in the same folder as ``celebahq``.
    celebahq : path-like
        The CelebA-HQ store of :func:`write_celebahq_store` (rows grouped by split).
    ffhq_folder : path-like or None
        The FFHQ folder (ids are ``ffhq/<path relative to it>``).
    classifier : AttributeClassifier or None
        The judge, labelling FFHQ.

    Returns
    -------
    dict
        ``n`` per split, ``ffhq_label_rates`` (or None).
    """
    from latentedit.io.image_store import SPLITS, create_image_store, open_image_store
    from latentedit.io.h5 import StoreError

    with open_image_store(celebahq) as src:
        n, split = len(src.ids), src.split
        keep = int((split != "test").sum()) if ffhq_paths is not None else n  # the rows viewed
        # train/val must be one block at the start (write_celebahq_store's order) to be viewed as one
        if ffhq_paths is not None and (split[:keep] == "test").any():
            raise StoreError(f"{celebahq}: rows are not grouped by split (train, val, test); rerun the stage that "
                             f"wrote it (`snakemake --forcerun {celebahq}`)")
        names, size = list(src.attribute_names), src.images.shape[1:]
        meta = (src.attributes[:keep], split[:keep], src.ids[:keep])
    rates = None
    with create_image_store(path, names, size, attrs) as w:
        w.append_view(celebahq, 0, keep, *meta)
        if ffhq_paths is not None:
            labelled = []
            for start, batch in zip(range(0, len(ffhq_paths), batch_size),
                                    iter_images(ffhq_paths, size[-1], batch_size, "FFHQ")):
                labels = (classifier.predict_proba(batch) > 0.5).astype(np.uint8)  # (b, 40): the judge's reading
                ids = [f"ffhq/{p.relative_to(ffhq_folder).as_posix()}" for p in ffhq_paths[start:start + len(batch)]]
                w.append(batch, labels, ["test"] * len(batch), ids)
                labelled.append(labels)
            if labelled:
                rates = dict(zip(names, np.round(np.concatenate(labelled).mean(0), 3).tolist()))
        counts = {s: int(sum((np.asarray(w.split) == s))) for s in SPLITS}
    return {"n": counts, "ffhq_label_rates": rates}
