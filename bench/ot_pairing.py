"""Does optimal transport between the codes pair an image with a target that keeps its digits?

LW learns "add one digit" from unpaired clouds: it moves the source codes onto the target codes along the transport
plan of its cost, ½‖x − y‖² in W+. A clean edit keeps every digit where it is and adds one, so it carries each source
to a target whose slots hold the source's digits (a *clean pair*). This benchmark asks how often the plan itself makes
such pairs, on a finished run's train codes of each count edit, with the clean pairs read from the data's own slot
labels (``images.h5``, ``slot_labels``):

- *chance*: the share of clean pairs among all (source, target) pairs; a source with d digits finds its clean
  partners only among the targets that hold the same d digits in the same slots;
- *exact OT*: the optimal one-to-one matching of the smaller side (Hungarian, ``scipy.optimize.linear_sum_assignment``);
- *entropic plan*: the mass of clean pairs in the plan of LW's balanced Sinkhorn problem at LW's blur
  (0.25 σ_rms; :func:`latentedit.edits.sinkhorn.sinkhorn_divergence`, π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε));
- *nearest target*: each source's nearest target.

Costs: ½‖x − y‖² between the W+ codes (LW's); the same plus ½μ Σ_l (p_l(x) − p_l(y))² over the latent classifiers'
presence probabilities p = σF(has_0 … has_9) (what ``edits.lw.transport_attributes`` adds, with w = 1 here); between the
images' pixels (in [0, 1]); between the image oracle's embeddings; and, when the run trained W* (``edits.methods``
holds ``lw_wstar`` or ``ifg_wstar``), between the codes in W*, T(z), where ``lw_wstar``'s transport runs. The blur of
each entropic plan is 0.25 σ_rms of its own cost's features.

Usage (in a finished default run's directory; ≈ 1 min on two cores)::

    python bench/ot_pairing.py [RUNDIR] [--edits add_digit_1to2 add_digit_2to3 add_digit_3to4] [--mu 100 1000]
        [--wstar MODEL]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, also when loaded by the tests

from _judging import load_run  # noqa: E402
from latentedit.edits.definitions import split_selection_mask  # noqa: E402
from latentedit.edits.sinkhorn import default_blur, half_squared_distances, sinkhorn_divergence  # noqa: E402
from latentedit.labels.classifiers import predict_logits  # noqa: E402
from latentedit.wstar.realnvp import load_wstar, map_codes, wstar_from_checkpoint  # noqa: E402


def clean_pairs(source_slots: np.ndarray, target_slots: np.ndarray) -> np.ndarray:
    """(n_s, n_t) bool: target j holds every digit of source i in the same slot (slots: class, −1 empty)."""
    filled = source_slots >= 0
    same = source_slots[:, None, :] == target_slots[None, :, :]
    return np.all(same | ~filled[:, None, :], axis=2)


def pairing_shares(x: torch.Tensor, y: torch.Tensor, clean: np.ndarray, blur_fraction: float = 0.25) -> dict:
    """{exact OT, entropic plan, nearest target: share of clean pairs} for features x (n_s, F), y (n_t, F)."""
    x, y = x.double(), y.double()
    cost = half_squared_distances(x, y)
    rows, cols = linear_sum_assignment(cost.numpy())
    blur = default_blur(x, y, blur_fraction)
    _, state = sinkhorn_divergence(x, y, blur=blur)
    plan = torch.exp(state.a_log[:, None] + state.b_log[None] + (state.f_ba[:, None] + state.g_ab[None] - cost)
                     / state.eps).numpy()
    nearest = cost.argmin(1).numpy()
    return {"exact OT": clean[rows, cols].mean(), "entropic plan": (plan * clean).sum() / plan.sum(),
            "nearest target": clean[np.arange(len(x)), nearest].mean()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir", nargs="?", default=".")
    ap.add_argument("--config", default=None, help="the run's config (default RUNDIR/config.yaml)")
    ap.add_argument("--edits", nargs="+", default=["add_digit_1to2", "add_digit_2to3", "add_digit_3to4"])
    ap.add_argument("--mu", nargs="+", type=float, default=[100.0, 1000.0],
                    help="weights of the presence probabilities added to the W+ cost")
    ap.add_argument("--wstar", default=None, help="a W* model (default: the run's results/<world>/wstar/model.pt, "
                                                  "when it trained one)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run = load_run(args.rundir, args.config)
    store, images = run.store, run.images
    presence = [i for i, name in enumerate(run.names) if name.startswith("has_")]
    wstar_path = Path(args.wstar) if args.wstar else run.results / "wstar" / "model.pt"
    T = wstar_from_checkpoint(load_wstar(wstar_path)) if args.wstar or wstar_path.exists() else None
    print(f"run {args.rundir}: {run.space} codes {store.latents.shape[1:]}. Cells: share of clean pairs "
          "(the target keeps the source's digits in their slots)")
    for edit in args.edits:
        definition = run.cfg["edits"]["definitions"][edit]
        masks = [split_selection_mask(store, definition[side], "train") for side in ("source", "target")]
        rows = [images.rows_of(store.ids[m], f"the train {side}s") for m, side in zip(masks, ("source", "target"))]
        clean = clean_pairs(*(images.extra["slot_labels"][r] for r in rows))
        codes = [torch.as_tensor(store.latents[m]).flatten(1) for m in masks]
        probs = [torch.sigmoid(predict_logits(run.classifier, torch.as_tensor(store.latents[m])))[:, presence]
                 for m in masks]
        pixels = [torch.as_tensor(images.images[r], dtype=torch.float64).flatten(1) / 255 for r in rows]
        embeddings = [torch.as_tensor(run.judge.predict(images.images[r])["embedding"]) for r in rows]
        per_source = np.bincount(clean.sum(1), minlength=1)
        print(f"\n{edit}: {len(rows[0])} sources, {len(rows[1])} targets; chance {clean.mean():.4f} "
              f"({clean.sum(1).mean():.1f} clean targets per source, none for {per_source[0] / len(clean):.3f})")
        features = {"W+ codes (LW's cost)": codes}
        for mu in args.mu:
            features[f"W+ codes + presence, μ = {mu:g}"] = [torch.cat((z, mu ** 0.5 * p), 1)
                                                            for z, p in zip(codes, probs)]
        if T is not None:
            features["W* codes, T(z) (lw_wstar's cost)"] = [
                map_codes(T, torch.as_tensor(store.latents[m])).flatten(1) for m in masks]
        features.update({"pixels": pixels, "the oracle's embedding": embeddings})
        for name, (x, y) in features.items():
            shares = pairing_shares(x, y, clean)
            print(f"  {name:34s} " + "  ".join(f"{k} {v:.3f}" for k, v in shares.items()), flush=True)


if __name__ == "__main__":
    main()
