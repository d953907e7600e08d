"""Figures people look at: training curves and image grids (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latentedit.io.atomic import atomic_path  # noqa: E402


def save_figure(fig, path: str | os.PathLike, dpi: int = 100, bottom: float = 0.0) -> None:
    """Lay out (below the figure's title, when it has one, and above the lowest ``bottom`` fraction of the figure,
    kept for a figure-wide legend), write atomically as PNG, and release the figure."""
    top = 1 - 0.35 / fig.get_figheight() if fig.get_suptitle() else 1
    fig.tight_layout(rect=(0, bottom, 1, top) if (bottom or top < 1) else None)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
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
    save_figure(fig, path)


def plot_training_curves(histories: dict[str, tuple[pd.DataFrame, Sequence[str]]], path: str | os.PathLike,
                         title: str = "") -> None:
    """One row of panels per training (e.g. every method of one edit), one panel per quantity of its ``columns``:
    ``train_q`` and ``val_q`` share the panel ``q``, one line each (a one-row history, such as a closed-form fit's,
    is one marker). The x axis is the history's ``steps`` when it has them, else its ``epoch``. A training none of
    whose columns are in its history gets no row."""
    rows = []
    for label, (history, columns) in histories.items():
        panels: dict[str, list[str]] = {}
        for c in columns:
            if c in history:
                panels.setdefault(c.removeprefix("train_").removeprefix("val_"), []).append(c)
        if panels:
            rows.append((label, history, panels))
    if not rows:
        raise ValueError(f"{path}: none of the histories holds any of its columns")
    ncols = max(len(panels) for _, _, panels in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.4 * ncols, 2.5 * len(rows)), squeeze=False)
    for (label, history, panels), row in zip(rows, axes):
        x = "steps" if "steps" in history else "epoch"
        for ax, (quantity, cols) in zip(row, panels.items()):
            for c in cols:
                ax.plot(history[x], history[c], marker="o" if len(history) == 1 else ".", markersize=3,
                        label=c.split("_", 1)[0] if c != quantity else c)
            ax.set_title(f"{label}: {quantity}", fontsize=9)
            ax.set_xlabel(x, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if len(cols) > 1:
                ax.legend(fontsize=7)
        for ax in row[len(panels):]:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def image_grid(rows: list[np.ndarray], path: str | os.PathLike, row_labels: list[str] | None = None,
               scale: int = 3, col_labels: list[str] | None = None) -> None:
    """Save rows of uint8 images (each (K, C, H, W)) as one PNG grid, labelled on the left and/or on top."""
    from PIL import Image, ImageDraw

    k = max(len(r) for r in rows)
    c, h, w = rows[0].shape[1:]
    lines = max((lab.count("\n") + 1 for lab in col_labels or []), default=0)  # column labels may hold a newline
    pad, label_w, label_h = 2, 90 if row_labels else 0, 12 * lines + 2 if col_labels else 0
    canvas = np.full((len(rows) * (h + pad) + pad, k * (w + pad) + pad, 3), 64, dtype=np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            im = np.repeat(im, 3, axis=0) if c == 1 else im
            y, x0 = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y:y + h, x0:x0 + w] = im.transpose(1, 2, 0)
    img = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    if row_labels or col_labels:
        full = Image.new("RGB", (img.width + label_w, img.height + label_h), (255, 255, 255))
        full.paste(img, (label_w, label_h))
        draw = ImageDraw.Draw(full)
        for i, lab in enumerate(row_labels or []):
            draw.text((4, label_h + (pad + i * (h + pad) + h // 2) * scale - 6), lab, fill=(0, 0, 0))
        for j, lab in enumerate(col_labels or []):
            draw.text((label_w + (pad + j * (w + pad)) * scale, 2), lab, fill=(0, 0, 0))
        img = full
    with atomic_path(path) as tmp:
        img.save(tmp, format="png")


def resize_uint8(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 images (K, C, H, W) resized to (K, C, side, side) (Lanczos; unchanged when already that size)."""
    from PIL import Image

    if images.shape[-2:] == (side, side):
        return images
    hwc = images.transpose(0, 2, 3, 1)  # (K, H, W, C)
    out = [np.asarray(Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).resize((side, side),
                                                                                   Image.Resampling.LANCZOS))
           for im in hwc]
    return np.stack([o[None] if o.ndim == 2 else o.transpose(2, 0, 1) for o in out])


def method_grid(columns: list[np.ndarray], labels: list[str], path: str | os.PathLike,
                scale: int | None = None) -> None:
    """The papers' qualitative figure: one column per image source (each (K, C, H, W): input, reconstruction,
    each method), one row per test image, column labels on top. Columns of other sizes (faces: inputs at the stored
    size, renders at ``render_size``) are resized to the largest; ``scale`` defaults to cells of about 128 pixels."""
    k = len(columns[0])
    if any(len(c) != k for c in columns) or len(labels) != len(columns):
        raise ValueError("every column needs the same number of images and one label")
    side = max(c.shape[-1] for c in columns)
    columns = [resize_uint8(c, side) for c in columns]
    scale = max(1, 128 // side) if scale is None else scale
    image_grid([np.stack([c[i] for c in columns]) for i in range(k)], path, scale=scale, col_labels=labels)


def edit_strip(frames: list[np.ndarray], labels: list[str], path: str | os.PathLike,
               captions: list[str] | None = None, title: str = "", cell: int = 128) -> None:
    """One image's edit as a labelled strip (``latentedit edit``): frames left to right (each uint8 (C, H, W), e.g.
    input, reconstruction, the edits), a label above each and an optional caption below (the judge's reading).

    Frames of other sizes are resized to the largest (Lanczos), then enlarged by an integer factor to about ``cell``
    pixels (nearest neighbour, so digits stay crisp).
    """
    from PIL import Image, ImageDraw, ImageFont

    if not frames or len(labels) != len(frames) or (captions is not None and len(captions) != len(frames)):
        raise ValueError("edit_strip needs one label (and one caption, if any) per frame")
    side = max(f.shape[-1] for f in frames)
    tiles = [resize_uint8(np.repeat(f, 3, axis=0)[None] if f.shape[0] == 1 else f[None], side)[0] for f in frames]
    scale = max(1, cell // side)
    # matplotlib's DejaVu Sans: PIL's built-in bitmap font has no α
    font = ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), 11)
    px, pad, line = side * scale, 4, 14  # line: the height of one line of text, with its spacing
    top = line * (max(lab.count("\n") for lab in labels) + 1 + bool(title)) + pad
    bottom = line * (max(c.count("\n") for c in captions) + 1) + pad if captions else 0
    strip = Image.new("RGB", (len(frames) * (px + pad) + pad, top + px + bottom + pad), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    if title:
        draw.text((pad, 2), title, fill=(0, 0, 0), font=font)
    for j, tile in enumerate(tiles):
        x = pad + j * (px + pad)
        strip.paste(Image.fromarray(tile.transpose(1, 2, 0)).resize((px, px), Image.NEAREST), (x, top))
        draw.multiline_text((x, top - line * (labels[j].count("\n") + 1) - 2), labels[j], fill=(0, 0, 0), font=font,
                            spacing=2)
        if captions:
            draw.multiline_text((x, top + px + 2), captions[j], fill=(0, 0, 0), font=font, spacing=2)
    with atomic_path(path) as tmp:
        strip.save(tmp, format="png")


def plot_preservation_vs_change(df: pd.DataFrame, path: str | os.PathLike, dpi: int = 100,
                                x: str = "target_change_rate", y: str = "attribute_preservation") -> None:
    """The paper's Fig. 4: one panel per edit, one line per method through its α grid (y against x).

    ``df`` holds long rows (method, edit, alpha, metric, value) of :mod:`latentedit.evaluation.edit_metrics`.
    """
    rows = df[df["metric"].isin([x, y]) & df["alpha"].notna()]
    wide = rows.pivot_table(index=["edit", "method", "alpha"], columns="metric", values="value").reset_index()
    edits = sorted(wide["edit"].unique())
    ncols = min(3, max(1, len(edits)))
    nrows = int(np.ceil(len(edits) / ncols)) if edits else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax, edit in zip(axes.flat, edits):
        for method, g in wide[wide["edit"] == edit].groupby("method"):
            g = g.sort_values("alpha")
            ax.plot(g[x], g[y], marker="o", markersize=3, label=method)
        ax.set_title(edit)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(y.replace("_", " "))
        ax.set_xlim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(edits):]:
        ax.axis("off")
    save_figure(fig, path, dpi)


def _yerr(frame: pd.DataFrame, metric: str) -> np.ndarray:
    """(2, K) error-bar lengths from a summary's ``<metric>_ci_low``/``_ci_high`` columns (0 where absent)."""
    v = frame[metric].to_numpy(float)
    lo = frame.get(f"{metric}_ci_low", pd.Series(np.nan, index=frame.index)).to_numpy(float)
    hi = frame.get(f"{metric}_ci_high", pd.Series(np.nan, index=frame.index)).to_numpy(float)
    return np.nan_to_num(np.stack([v - lo, hi - v]).clip(min=0))


def _panels(n: int, width: float, height: float):
    ncols = min(3, max(1, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def _method_panels(summary: pd.DataFrame, width_per_method: float):
    """One panel per edit of a seed summary, methods as bars: the figure, its axes, and per edit (ax, the edit's rows
    indexed by method in sorted order, bar positions), each panel titled, method-labelled and y-gridded."""
    edits = sorted(summary["edit"].unique())
    methods = sorted(summary["method"].unique())
    fig, axes = _panels(len(edits), max(4.0, width_per_method * len(methods) + 1.0), 3.4)
    pos = np.arange(len(methods))
    panels = []
    for ax, edit in zip(axes.flat, edits):
        ax.set_xticks(pos, methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(edit)
        ax.grid(alpha=0.3, axis="y")
        panels.append((ax, summary[summary["edit"] == edit].set_index("method").reindex(methods), pos))
    return fig, axes, panels


def plot_latent_vs_image(summary: pd.DataFrame, path: str | os.PathLike, dpi: int = 100) -> None:
    """Table 2 as bars: per edit and method, the latent classifier's and the image oracle's target-change rates at
    the calibrated step, with their 95 % intervals over images (``summary``: the seed summary of
    :func:`latentedit.evaluation.aggregate.seed_summary`)."""
    fig, axes, panels = _method_panels(summary, 0.9)
    for ax, s, pos in panels:
        for shift, metric, label in ((-0.2, "latent_target_change_rate", "latent classifier"),
                                     (0.2, "target_change_rate", "image oracle")):
            ax.bar(pos + shift, s[metric], 0.4, yerr=_yerr(s, metric), capsize=2, label=label,
                   error_kw={"elinewidth": 0.8})
        ax.set_ylim(0, 1.05)
    axes.flat[0].set_ylabel("target change rate at α = d")
    axes.flat[0].legend(fontsize=7)
    save_figure(fig, path, dpi)


def plot_realism(summary: pd.DataFrame, path: str | os.PathLike, dpi: int = 100) -> None:
    """Realism at the calibrated step: per edit, the Fréchet distance of each method's edited images to real images
    with the target labels (95 % interval over images), with the real source images' distance as a dashed line
    (what an edit that changes nothing scores) — lower is closer to the target distribution."""
    fig, axes, panels = _method_panels(summary, 0.6)
    for ax, s, pos in panels:
        ax.bar(pos, s["realism_fd"], 0.6, yerr=_yerr(s, "realism_fd"), capsize=2, color="tab:purple",
               error_kw={"elinewidth": 0.8})
        source = float(s["realism_fd_source"].mean())
        if np.isfinite(source):
            ax.axhline(source, ls="--", color="0.3", lw=1, label="real source images")
            ax.legend(fontsize=7)
    axes.flat[0].set_ylabel("Fréchet distance to real target\nimages at α = d")
    save_figure(fig, path, dpi)


def plot_rescoring(matrices: dict[str, pd.DataFrame], path: str | os.PathLike, dpi: int = 100) -> None:
    """The re-scoring analysis: one heat map per method, edits × attributes, of the change of each attribute's
    judged probability at α = d (mean over images of P(edited) − P(reconstruction)); diverging colours, ±1."""
    n = len(matrices)
    first = next(iter(matrices.values())) if matrices else pd.DataFrame()
    width = max(3.5, 0.32 * first.shape[1] + 2.0)
    height = max(2.0, 0.32 * first.shape[0] + 1.4)
    ncols = min(2 if first.shape[1] > 12 else 3, max(1, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.8 * nrows), squeeze=False,
                             layout="constrained")  # room for the rotated attribute names under every panel
    im = None
    for ax, (method, m) in zip(axes.flat, matrices.items()):
        im = ax.imshow(m.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu_r", aspect="auto")
        ax.set_xticks(range(m.shape[1]), m.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
        ax.set_title(method, fontsize=9)
        if m.shape[1] <= 12:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    v = m.iat[i, j]
                    if np.isfinite(v):
                        ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=6,
                                color="white" if abs(v) > 0.5 else "black")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="Δ judged probability")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)


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
    save_figure(fig, path)
