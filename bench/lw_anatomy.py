"""What an affine edit does to the digits already in the image, and which part of its step does it.

LW's edit is z' = z + α·(W z + c) per W+ layer. Its step splits into the part every code shares, the mean step
m = mean over the train source codes of (W z + c), and the part that depends on the code, (W z + c) − m. This
benchmark renders a finished run's trained edits at their calibrated d (read from the run's render store) on the
run's test sources (the same 300 as Table 2), three ways: the whole step, the mean step alone, and the per-code part
alone, beside the reconstructions themselves (α = 0) and the sources shrunk toward their mean by as much as the
edit narrows the cloud (σ_rms of the edited codes over that of the test target codes; no step). For each it reads
every slot with the image oracle and reports, with 95 % bootstrap intervals over the images:

- the share of images with one more digit (the target count) and with the source's count;
- the share of the existing digits (the slots the source image fills) that keep their class, that change class,
  and that are emptied (a digit moved or dropped);
- the clean-edit rate (one more digit, every existing digit kept);
- the mean norm of the step.

For the whole step it also prints what the existing digits become and which classes the new digits take, as shares
over the ten classes, beside the source digits' own shares.

Two more tables read the run's stored renders (no rendering):

- **along α**: at every step of the render store (d … 2d), the share of images that gain no digit, exactly one, or
  more than one, and the α where exactly one peaks — whether some other single step would reach the count;
- **by layout**: for each layout of the source digits (which slots are filled, ``x``; 0 1 / 2 3 row by row), the same
  three shares at d and how often each empty slot receives a digit — where the map must choose between empty slots.

``--grid DIR`` writes ``DIR/{edit}_{method}_misses.png``: test sources that gain no digit at d, then some that gain
more than one, then some that gain exactly one, each along α (0, d and the stored steps above it).

Usage (in a finished default run's directory; ≈ 1 min)::

    python bench/lw_anatomy.py [RUNDIR] [--edits add_digit_1to2 add_digit_2to3] [--methods lw] [--grid DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, also when loaded by the tests

from _judging import empty_slots_filled, finished_run, layouts  # noqa: E402

from latentedit.edits.definitions import select_codes  # noqa: E402
from latentedit.edits.model import apply_edit, load_edit  # noqa: E402
from latentedit.evaluation.uncertainty import bootstrap_counts, bootstrap_mean_interval  # noqa: E402
from latentedit.imaging import generate_uint8  # noqa: E402
from latentedit.io.image_store import read_image_store  # noqa: E402
from latentedit.io.latent_store import latent_space, read_latent_store  # noqa: E402
from latentedit.io.render_store import read_render_store  # noqa: E402
from latentedit.plotting import image_grid  # noqa: E402
from latentedit.render.render import render_codes  # noqa: E402
from latentedit.worlds import load_judge, load_renderer  # noqa: E402


def slot_outcomes(edited_slots: np.ndarray, source_slots: np.ndarray, empty: int, k: int) -> dict:
    """Per-image outcomes of edits of k-digit sources: (N,) arrays of the target count reached, the source count
    kept, the shares of the existing digits kept / changed / emptied, and the clean edit.

    ``edited_slots``: the oracle's class of each slot of the edited images (N, S), ``empty`` that of an empty slot;
    ``source_slots``: each slot's true class in the source image (N, S), −1 where it is empty."""
    occupied = source_slots >= 0
    count = (edited_slots != empty).sum(1)
    kept = (edited_slots == source_slots) & occupied
    emptied = (edited_slots == empty) & occupied
    n_digits = occupied.sum(1)
    return {"target count": count == k + 1, "source count": count == k,
            "digits kept": kept.sum(1) / n_digits, "digits changed": (occupied & ~kept & ~emptied).sum(1) / n_digits,
            "digits emptied": emptied.sum(1) / n_digits,
            "clean edit": (count == k + 1) & (kept.sum(1) == n_digits)}


def count_shares(counts: np.ndarray, k: int) -> dict:
    """Shares of the images (last axis) whose digit count is below k + 1 (no digit added, or fewer), exactly k + 1,
    and above it (more than one added)."""
    return {"none added": (counts < k + 1).mean(-1), "one added": (counts == k + 1).mean(-1),
            "more added": (counts > k + 1).mean(-1)}


def layout_rows(edited_slots: np.ndarray, source_slots: np.ndarray, empty: int, k: int) -> list[tuple]:
    """Per source layout (``x`` a filled slot, ``.`` an empty one, in slot order): (layout, images, the three
    :func:`count_shares`, and per slot the share of the images whose empty slot there now holds a digit (NaN for a
    filled slot))."""
    source_layouts = layouts(source_slots)
    count = (edited_slots != empty).sum(1)
    rows = []
    for layout in sorted(set(source_layouts)):
        sel = source_layouts == layout
        per_slot = empty_slots_filled(edited_slots[sel], layout, empty)
        rows.append((layout, int(sel.sum()), count_shares(count[sel], k), per_slot))
    return rows


def write_misses_grid(renders, counts_at_d: np.ndarray, k: int, path: Path, per_kind: int = 5) -> None:
    """A PNG of the stored renders along α: up to ``per_kind`` test sources that gain no digit at d, as many that
    gain more than one, and half as many that gain exactly one (rows), at α = 0, d and every other stored step."""
    columns = [0, 1] + list(range(2, len(renders.alphas), 2))
    kinds = (("none", counts_at_d < k + 1, per_kind), ("more", counts_at_d > k + 1, per_kind),
             ("one", counts_at_d == k + 1, max(per_kind // 2, 1)))
    rows, labels = [], []
    for name, selected, n in kinds:
        for j in np.flatnonzero(selected)[:n]:
            rows.append(renders.images[columns, j])
            labels.append(f"{name} added #{j}")
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows, path, row_labels=labels, col_labels=[f"a={renders.alphas[i]:.2f}" for i in columns])
    print(f"  wrote {path}")


def spread(z: torch.Tensor) -> torch.Tensor:
    """σ_rms: the root mean squared distance of the codes to their mean."""
    z = z.flatten(1)
    return (z - z.mean(0)).pow(2).sum(1).mean().sqrt()


def class_shares(classes: np.ndarray) -> str:
    shares = np.bincount(classes, minlength=10)[:10] / max(len(classes), 1)
    return " ".join(f"{d}:{s:.2f}" for d, s in enumerate(shares))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir", nargs="?", default=".")
    ap.add_argument("--config", default=None, help="the run's config (default RUNDIR/config.yaml)")
    ap.add_argument("--edits", nargs="+", default=["add_digit_1to2", "add_digit_2to3"])
    ap.add_argument("--methods", nargs="+", default=["lw"])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", default=None, help="write a PNG per (edit, method) of the misses along α here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg, results, checkpoint = finished_run(args.rundir, args.config)
    store = read_latent_store(results / "latents.h5")
    images = read_image_store(results / "images.h5")
    renderer = load_renderer("digits", checkpoint, "cpu",
                             {"latent_space": latent_space(store.attrs, results / "latents.h5")})
    judge = load_judge("digits", {"oracle": results / "oracle" / "model.pt"}, "cpu")

    for edit in args.edits:
        definition = cfg["edits"]["definitions"][edit]
        count = [a for a, v in definition["source"].items() if a.startswith("count_") and int(v) == 1]
        if len(count) != 1:
            raise SystemExit(f"{edit}: this benchmark reads count edits (source {{count_k: 1}}), got "
                             f"{definition['source']}")
        k = int(count[0].split("_")[1])
        codes, ids = render_codes(store, definition["source"], cfg["render"]["max_images"], cfg["render"]["seed"])
        codes = torch.as_tensor(codes)
        source_slots = images.extra["slot_labels"][images.rows_of(ids, "the test sources")]
        train_codes = torch.as_tensor(select_codes(store, definition["source"], "train")[0])
        centre = train_codes.mean(0)
        targets = torch.as_tensor(select_codes(store, definition["target"], "test")[0])
        resamples = bootstrap_counts(len(codes), args.n_boot, seed=0)
        for method in args.methods:
            model = load_edit(results / "edits" / method / edit / "seed0" / "model.pt")
            renders = read_render_store(results / "render" / method / edit / "seed0.h5")
            d = renders.calibration["d"]
            with torch.no_grad():
                mean_step = (apply_edit(model, train_codes, 1.0) - train_codes).mean(0)
                step = apply_edit(model, codes, 1.0) - codes
            # the narrower cloud without the step: the sources shrunk toward their mean by the ratio of the edited
            # codes' spread to the test targets'
            shrink = float(spread(codes + d * step) / spread(targets))
            print(f"\n{edit}, {method} at its calibrated d = {d:.3f}, {len(codes)} test sources of {k} digit(s); "
                  f"95 % intervals over the images. σ_rms of the edited codes / the test targets' = {shrink:.3f}")
            for part, delta in (("none (α = 0)", torch.zeros_like(step)), ("whole step", step),
                                ("mean step alone", mean_step.expand_as(step)),
                                ("per-code part alone", step - mean_step),
                                ("sources shrunk", (1 - shrink) * (centre - codes) / d)):
                edited = codes + d * delta
                with torch.no_grad():
                    slots = judge.predict(generate_uint8(renderer, edited, 128).numpy())["slots"]
                outcomes = slot_outcomes(slots, source_slots, judge.empty_slot, k)
                cells = []
                for name, values in outcomes.items():
                    low, high = bootstrap_mean_interval(values.astype(np.float64), resamples)
                    cells.append(f"{name} {values.mean():.3f} [{float(low):.3f}, {float(high):.3f}]")
                norm = float((d * delta).flatten(1).norm(dim=1).mean())
                print(f"  {part:20s} |step| {norm:5.1f}  " + ", ".join(cells))
                if part == "whole step":
                    occupied = source_slots >= 0
                    added = slots[~occupied]
                    print(f"  {'':20s} source digits          {class_shares(source_slots[occupied])}\n"
                          f"  {'':20s} they become            {class_shares(slots[occupied])}\n"
                          f"  {'':20s} the new digits are     {class_shares(added[added != judge.empty_slot])}")
            if list(renders.ids) != list(ids):
                raise SystemExit(f"{edit}/{method}: the render store's test sources are not the benchmark's")
            stored = np.stack([judge.predict(images_at)["slots"] for images_at in renders.images])  # (A, N, S)
            shares = count_shares((stored != judge.empty_slot).sum(2), k)
            peak = int(np.argmax(shares["one added"]))
            print(f"  along α (the stored renders; the peak of 'one added' at α = {renders.alphas[peak]:.3f}):")
            for name, values in shares.items():
                print(f"    {name:10s} " + " ".join(f"{v:.3f}" for v in values) + "   at α = "
                      + " ".join(f"{a:.3f}" for a in renders.alphas))
            print("  by source layout, at d: images, none / one / more added, share of each empty slot given a digit")
            for layout, n, by_count, per_slot in layout_rows(stored[1], source_slots, judge.empty_slot, k):
                slots_text = " ".join("  -  " if np.isnan(v) else f"{v:.2f}" for v in per_slot)
                print(f"    {layout}  {n:4d}  " + " / ".join(f"{v:.2f}" for v in by_count.values())
                      + f"   slots {slots_text}")
            if args.grid:
                write_misses_grid(renders, (stored[1] != judge.empty_slot).sum(1), k,
                                  Path(args.grid) / f"{edit}_{method}_misses.png")


if __name__ == "__main__":
    main()
