"""Figures people look at: training curves and image grids (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latentedit.io.atomic import atomic_path  # noqa: E402


def _save_figure(fig, path: str | os.PathLike) -> None:
    """Lay out, write atomically as PNG, and release the figure."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_curves(histories: dict[str, pd.DataFrame], columns: list[str], path: str | os.PathLike,
                x: str = "epoch", title: str = "") -> None:
    """One panel per column, one line per history (e.g. {"DLS": df, "No DLS": df})."""
    cols = [c for c in columns if any(c in h for h in histories.values())]
    n = len(cols)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        for label, h in histories.items():
            if col in h:
                ax.plot(h[x], h[col], marker=".", label=label)
        ax.set_title(col)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
        if len(histories) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    _save_figure(fig, path)


def image_grid(rows: list[np.ndarray], path: str | os.PathLike, row_labels: list[str] | None = None,
               scale: int = 3) -> None:
    """Save rows of uint8 images (each (K, C, H, W)) as one PNG grid, labelled on the left."""
    from PIL import Image, ImageDraw

    k = max(len(r) for r in rows)
    c, h, w = rows[0].shape[1:]
    pad, label_w = 2, 90 if row_labels else 0
    canvas = np.full((len(rows) * (h + pad) + pad, k * (w + pad) + pad, 3), 64, dtype=np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            im = np.repeat(im, 3, axis=0) if c == 1 else im
            y, x0 = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y:y + h, x0:x0 + w] = im.transpose(1, 2, 0)
    img = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    if row_labels:
        full = Image.new("RGB", (img.width + label_w, img.height), (255, 255, 255))
        full.paste(img, (label_w, 0))
        draw = ImageDraw.Draw(full)
        for i, lab in enumerate(row_labels):
            draw.text((4, (pad + i * (h + pad) + h // 2) * scale - 6), lab, fill=(0, 0, 0))
        img = full
    with atomic_path(path) as tmp:
        img.save(tmp, format="png")


def plot_heatmap(matrix: np.ndarray, labels: list[str], path: str | os.PathLike, title: str = "",
                 vmin: float = 0.0, vmax: float = 1.0) -> None:
    """A square matrix (e.g. the attribute correlation γ) as an annotated heatmap, rows and columns labelled."""
    m = np.asarray(matrix, dtype=float)
    n = len(labels)
    size = max(4.0, 0.45 * n + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if m[i, j] > (vmin + vmax) / 2 else "white")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    _save_figure(fig, path)
