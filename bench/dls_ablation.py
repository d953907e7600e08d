"""DLS against No-DLS across DLSGAN settings (d_z, prior, style width) at an equal training budget (issue 13).

Each setting is a pair of training histories of rule ``train_dlsgan`` (``results/digits/dlsgan/{dls,nodls}/
history.csv``; the shipped pairs are kept under ``checkpoints/digits_stylegan2/``). The table gives, at one epoch (the
same number of steps for every run), the held-out encoder loss L_enc = mean((z − z')²∘s²) of DLS and No-DLS and their
ratio (the seed's claim: No-DLS / DLS ≥ 1.3), the scale's differential entropy, and the PSNR of generated and of real
reconstructions, the oracle Fréchet distance of samples and the oracle count agreement of real reconstructions, each
as DLS / No-DLS. ``--figure`` draws every history's curves up to that epoch on shared panels.

Usage::

    python bench/dls_ablation.py --run "normal, d_z 128" DLS.csv NODLS.csv [--run …] [--epoch 4] [--figure F.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["eval_l_enc", "entropy", "psnr_generated", "psnr_real", "frechet_oracle", "count_agreement"]


def read_history(path: Path, epoch: int) -> pd.DataFrame:
    """A history up to ``epoch`` (inclusive); it must reach that epoch."""
    h = pd.read_csv(path)
    if "epoch" not in h or h["epoch"].max() < epoch:
        sys.exit(f"{path}: no epoch {epoch} (last: {h['epoch'].max() if 'epoch' in h else 'none'})")
    return h[h["epoch"] <= epoch]


def row(label: str, dls: pd.DataFrame, nodls: pd.DataFrame) -> dict:
    a, b = dls.iloc[-1], nodls.iloc[-1]
    out = {"setting": label, "steps": int(a["step"]) if "step" in a else None,
           "l_enc DLS": a["eval_l_enc"], "l_enc No-DLS": b["eval_l_enc"],
           "ratio": b["eval_l_enc"] / a["eval_l_enc"], "entropy DLS / max": f"{a['entropy']:.1f} / {b['entropy']:.1f}"}
    for c in COLUMNS[2:]:
        out[c] = f"{a[c]:.3g} / {b[c]:.3g}"
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs=3, action="append", required=True, metavar=("LABEL", "DLS_CSV", "NODLS_CSV"))
    p.add_argument("--epoch", type=int, default=4, help="compare at this epoch (0-based; default 4: 5 epochs)")
    p.add_argument("--figure", type=Path, help="write the curves of every history here")
    args = p.parse_args(argv)

    runs = {label: (read_history(Path(d), args.epoch), read_history(Path(n), args.epoch)) for label, d, n in args.run}
    table = pd.DataFrame([row(label, d, n) for label, (d, n) in runs.items()])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(f"DLS / No-DLS at epoch {args.epoch} (held-out L_enc; ratio = No-DLS / DLS)")
        print(table.to_string(index=False))
    if args.figure:
        plot(runs, args.figure, args.epoch)
        print(f"figure: {args.figure}")


def plot(runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]], path: Path, epoch: int) -> None:
    """One panel per quantity; a colour per setting, DLS solid and No DLS dashed; one legend for all."""
    from latentedit.plotting import plt, save_figure

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.8))
    for ax, col in zip(axes.flat, COLUMNS):
        for i, (label, (dls, nodls)) in enumerate(runs.items()):
            for h, style, variant in ((dls, "-", "DLS"), (nodls, "--", "No DLS")):
                ax.plot(h["epoch"], h[col], style, marker=".", color=f"C{i}", label=f"{label}: {variant}")
        ax.set_title(col)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes.flat[COLUMNS.index("frechet_oracle")].set_yscale("log")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(f"DLS (solid) vs No DLS (dashed), epochs 0-{epoch}")
    save_figure(fig, path, bottom=0.06 + 0.03 * ((len(labels) - 1) // 4))


if __name__ == "__main__":
    main()
