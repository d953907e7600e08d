"""MultiMNIST-like digits world, composed from scikit-learn's bundled 8×8 digits (no download).

A square canvas is cut into a ``grid × grid`` array of slots; each image holds 1..``max_digits`` digits, each in
its own slot (so digits never overlap), resized to ``digit_size`` pixels and jittered inside the slot. ``layout``
says which slots: ``random`` (the default) draws them at random, so an image of n digits may show any n of the
slots; ``reading_order`` puts n digits in the first n slots (row by row), so "add one digit" has one right answer,
the next slot. Every reading-order image is one the random law also draws, so networks trained on the random world
read it (README "One place for the new digit": what the choice of slot costs LW). The 1797 source digits are split
disjointly into train/val/test *before* composing, so test images only contain digits never seen in training.

Attributes (binary, in this column order):

- ``count_1 .. count_<max_digits>``: the image holds exactly n digits (one-hot);
- ``has_0 .. has_9``: digit d appears at least once.

Per-image layout is stored too (``extra/slot_labels``: digit class per slot, −1 = empty; ``extra/source_index``:
index into ``load_digits`` per slot, −1 = empty), so layout-aware models can be supervised per slot.

:func:`add_one_digit` composes, for a given image, its exact and clean "add one digit" edit (the same image with one
more digit in an empty slot), from the same glyphs and split pools (:func:`load_glyphs`): ``bench/affine_ceiling.py``
fits affine edits to such pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from latentedit.io.image_store import SPLITS, ImageStore


LAYOUTS = ("random", "reading_order")


@dataclass(frozen=True)
class DigitsConfig:
    """Options of the digits world; defaults mirror ``config.yaml`` (``digits:`` section)."""

    canvas: int = 32  # pixels per side
    grid: int = 2  # slots per side: grid² slots
    digit_size: int = 12  # pixels per side of a placed digit (must fit in a slot: canvas // grid)
    max_digits: int = 4  # 1..max_digits digits per image, uniform
    n_train: int = 20000
    n_val: int = 2000
    n_test: int = 2000
    source_fractions: tuple = (0.6, 0.2, 0.2)  # share of the 1797 source digits per split
    seed: int = 0
    layout: str = "random"  # random | reading_order: which slots an image's digits take (module docstring)

    def __post_init__(self):
        if self.canvas % self.grid:
            raise ValueError(f"digits.grid={self.grid} must divide digits.canvas={self.canvas}")
        slot = self.canvas // self.grid
        if self.digit_size > slot:
            raise ValueError(f"digits.digit_size={self.digit_size} does not fit a slot of {slot} px "
                             f"(canvas {self.canvas} / grid {self.grid})")
        if not 1 <= self.max_digits <= self.grid ** 2:
            raise ValueError(f"digits.max_digits={self.max_digits} must be in 1..{self.grid ** 2} (grid²)")
        if self.layout not in LAYOUTS:
            raise ValueError(f"digits.layout={self.layout!r} must be one of {', '.join(LAYOUTS)}")
        if abs(sum(self.source_fractions) - 1.0) > 1e-6:
            raise ValueError(f"digits.source_fractions must sum to 1, got {self.source_fractions}")


def attribute_names(max_digits: int) -> list[str]:
    return [f"count_{n}" for n in range(1, max_digits + 1)] + [f"has_{d}" for d in range(10)]


def attributes_from_slots(slot_labels: np.ndarray, max_digits: int) -> np.ndarray:
    """Binary attribute matrix (N, max_digits + 10) from per-slot labels (N, S), −1 = empty."""
    n = len(slot_labels)
    count = (slot_labels >= 0).sum(axis=1)
    bad = np.flatnonzero((count < 1) | (count > max_digits))
    if len(bad):
        raise ValueError(f"rows {bad[:5].tolist()} hold {count[bad[:5]].tolist()} digits; expected 1..{max_digits}")
    out = np.zeros((n, max_digits + 10), dtype=np.uint8)
    out[np.arange(n), count - 1] = 1
    for d in range(10):
        out[:, max_digits + d] = (slot_labels == d).any(axis=1)
    return out


def split_sources(targets: np.ndarray, fractions, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Disjoint, class-stratified split of source-digit indices into train/val/test."""
    parts: dict[str, list] = {s: [] for s in SPLITS}
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(targets == d))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for s, chunk in zip(SPLITS, np.split(idx, cuts)):
            parts[s].append(chunk)
    out = {s: np.sort(np.concatenate(v)) for s, v in parts.items()}
    for s, idx in out.items():
        if len(idx) == 0:
            raise ValueError(f"digits.source_fractions={list(fractions)} leaves split {s!r} without source digits")
    return out


def _resized_sources(images8: np.ndarray, size: int) -> np.ndarray:
    """Resize the 8×8 (0..16) sources to size×size uint8 (0..255), bilinear."""
    out = np.empty((len(images8), size, size), dtype=np.uint8)
    for i, im in enumerate(images8):
        pil = Image.fromarray((im * (255.0 / 16.0)).astype(np.uint8))
        out[i] = np.asarray(pil.resize((size, size), Image.BILINEAR))
    return out


@dataclass(frozen=True)
class Glyphs:
    """The world's handwriting: scikit-learn's 1797 digits resized to ``digit_size`` (uint8, 0..255), their classes,
    and the disjoint per-split pools of indices that :func:`build_digits` draws from."""

    images: np.ndarray  # (1797, digit_size, digit_size) uint8
    labels: np.ndarray  # (1797,) class 0..9
    pools: dict[str, np.ndarray]  # split → indices into images


def load_glyphs(cfg: DigitsConfig, rng: np.random.Generator) -> Glyphs:
    """The glyphs and their split pools; the pools use ``rng`` as :func:`build_digits` does (its first draws)."""
    from sklearn.datasets import load_digits  # not at the top: the workflow imports this module while it parses
    # (attribute_names), and scikit-learn with SciPy takes ≈ 1.9 s to import

    src = load_digits()
    pools = split_sources(src.target, cfg.source_fractions, rng)
    return Glyphs(_resized_sources(src.images, cfg.digit_size), np.asarray(src.target), pools)


def _place(canvas: np.ndarray, glyph: np.ndarray, slot_index: int, dy: int, dx: int, cfg: DigitsConfig) -> None:
    """Write ``glyph`` into slot ``slot_index`` of ``canvas`` (H, W), offset (dy, dx) inside the slot."""
    slot = cfg.canvas // cfg.grid
    r, c = divmod(int(slot_index), cfg.grid)
    y, x = r * slot + dy, c * slot + dx
    canvas[y:y + cfg.digit_size, x:x + cfg.digit_size] = glyph


def build_digits(cfg: DigitsConfig) -> ImageStore:
    """Compose the whole digits world deterministically from ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    glyphs = load_glyphs(cfg, rng)
    slot = cfg.canvas // cfg.grid
    n_slots = cfg.grid ** 2
    jitter = slot - cfg.digit_size

    images, slots, source_idx, splits, ids = [], [], [], [], []
    for split, n in zip(SPLITS, (cfg.n_train, cfg.n_val, cfg.n_test)):
        pool = glyphs.pools[split]
        canvas = np.zeros((n, cfg.canvas, cfg.canvas), dtype=np.uint8)
        labels = np.full((n, n_slots), -1, dtype=np.int8)
        index = np.full((n, n_slots), -1, dtype=np.int32)
        counts = rng.integers(1, cfg.max_digits + 1, size=n)
        for i in range(n):
            taken = (np.arange(counts[i]) if cfg.layout == "reading_order"
                     else rng.choice(n_slots, size=counts[i], replace=False))
            for s in taken:
                k = pool[rng.integers(len(pool))]
                dy, dx = rng.integers(0, jitter + 1, size=2)
                _place(canvas[i], glyphs.images[k], s, dy, dx, cfg)
                labels[i, s] = glyphs.labels[k]
                index[i, s] = k
        images.append(canvas)
        slots.append(labels)
        source_idx.append(index)
        splits += [split] * n
        ids += [f"{split}_{i:06d}" for i in range(n)]

    slot_labels = np.concatenate(slots)
    return ImageStore(
        images=np.concatenate(images)[:, None],  # (N, 1, H, W)
        attributes=attributes_from_slots(slot_labels, cfg.max_digits),
        attribute_names=attribute_names(cfg.max_digits),
        split=np.array(splits, dtype=object),
        ids=np.array(ids, dtype=object),
        extra={"slot_labels": slot_labels, "source_index": np.concatenate(source_idx)},
        attrs={"world": "digits", "seed": cfg.seed, "grid": cfg.grid, "canvas": cfg.canvas, "layout": cfg.layout},
    )


def add_one_digit(images: np.ndarray, slot_labels: np.ndarray, glyphs: Glyphs, split: str, cfg: DigitsConfig,
                  rule: str = "random", digit: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each image with one more digit in one of its empty slots: the exact, clean "add one digit" edit of each image
    (``bench/affine_ceiling.py`` fits edits to such pairs). The other slots keep their pixels.

    ``rule`` ``fixed``: the first glyph of class ``digit`` in the split's pool, in the first empty slot (reading
    order), centred — one target per image; ``random``: a random glyph of the split's pool in a random empty slot at
    a random offset, as :func:`build_digits` places digits — the law of the data, many targets per image.

    Parameters
    ----------
    images : ndarray, uint8 (N, 1, H, W)
    slot_labels : ndarray, int (N, S)
        Class per slot, −1 = empty (the image store's ``extra/slot_labels``); every image needs an empty slot.

    Returns
    -------
    (images, slot_labels) of the edited images.
    """
    if rule not in ("fixed", "random"):
        raise ValueError(f"rule must be 'fixed' or 'random', got {rule!r}")
    full = np.flatnonzero((slot_labels >= 0).all(axis=1))
    if len(full):
        raise ValueError(f"images {full[:5].tolist()} have no empty slot")
    pool = glyphs.pools[split]
    fixed = pool[glyphs.labels[pool] == digit]
    if rule == "fixed" and len(fixed) == 0:
        raise ValueError(f"the {split} pool holds no glyph of class {digit}")
    rng = np.random.default_rng(seed)
    out, labels = images.copy(), slot_labels.copy()
    centre = (cfg.canvas // cfg.grid - cfg.digit_size) // 2
    for i in range(len(out)):
        empty = np.flatnonzero(labels[i] < 0)
        if rule == "fixed":
            s, k, (dy, dx) = empty[0], fixed[0], (centre, centre)
        else:
            s, k = rng.choice(empty), pool[rng.integers(len(pool))]
            dy, dx = rng.integers(0, cfg.canvas // cfg.grid - cfg.digit_size + 1, size=2)
        _place(out[i, 0], glyphs.images[k], s, dy, dx, cfg)
        labels[i, s] = glyphs.labels[k]
    return out, labels
