"""The faces world's data: CelebA-HQ images with their 40 CelebA attributes, and the first N FFHQ images.

Nothing is downloaded: the user points the config at

* a folder of CelebA-HQ images (``0.jpg`` … ``29999.jpg`` in CelebAMask-HQ's ``CelebA-HQ-img``), and
* its attribute file: ``CelebAMask-HQ-attribute-anno.txt`` or CelebA's ``list_attr_celeba.txt``. Both have the same
  layout: line 1 the number of rows, line 2 the 40 attribute names, then one row per image,
  ``<file name> v_1 … v_40`` with v ∈ {−1, 1} (whitespace-separated, CelebA pads with double spaces);
* optionally a folder of FFHQ images (the evaluation set: the first N files in sorted order, subfolders included).

Labels become 0/1 (−1 → 0). Every row must name a file of the image folder (CelebA's file has rows for all 202,599
CelebA images: only the rows whose file exists are kept, and ``require_all`` says whether a missing file is an error).
"""

from __future__ import annotations

import os
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


def split_assignment(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """A seeded train/val/test label per row, in proportions ``fractions`` (each split gets at least one row)."""
    if n < 3:
        raise ValueError(f"need at least 3 images for train/val/test, got {n}")
    f = np.asarray(fractions, dtype=float) / float(sum(fractions))
    n_val, n_test = max(1, round(f[1] * n)), max(1, round(f[2] * n))
    split = np.array(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)
    return split[np.random.default_rng(seed).permutation(n)]
