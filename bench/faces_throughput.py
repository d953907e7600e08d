"""Benchmark: the faces world's models, images per second, and the error of the fast generator paths.

- StyleGAN2-FFHQ generator (1024, rosinality layout): synthesis of W+ codes with the stored noise, at each batch
  size in fp32, TF32 and bf16 (``Generator.synthesis(precision=...)``), images/s; and the max-abs difference of the
  TF32 and bf16 outputs from fp32 on the same codes (images in [−1, 1]), so the fast paths' error is known.
- pSp encoder (GradualStyleEncoder IR-SE50, 256 input → W+), images/s.
- ArcFace (insightface ``get_feat`` through :class:`latentedit.faces.identity.ArcFace`), images/s, when an ONNX file
  is given (``--arcface``; e.g. w600k_r50.onnx); without one, the tiny test model shows the preprocessing cost only.

Weights are filled by ``../shared/compat/RECIPE.md``'s seeded recipe (no download): the cost of a forward pass
does not depend on the values, and the recipe keeps activations O(1), so the bf16 error is representative in scale.
On a CPU TF32 is fp32 (the flag only exists for CUDA) and bf16 autocast is usually slower; the numbers that matter
come from a GPU.

Usage::

    python bench/faces_throughput.py [--device cuda] [--batches 8 16 32] [--repeats 3] [--arcface PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from _timing import timed  # bench/ is on sys.path when run as a script

from latentedit.faces.psp import PSP
from latentedit.faces.recipe import fill_module
from latentedit.faces.stylegan2 import Generator


def generator_rows(device, batches, repeats) -> list[dict]:
    g = fill_module(Generator(1024, 512, 8, channel_multiplier=2)).to(device).eval()
    rows = []
    with torch.no_grad():
        for b in batches:
            w = g.mapping(torch.randn(b * 18, 512, generator=torch.Generator().manual_seed(b)).to(device))
            w = w.view(b, 18, 512)
            ref = g.synthesis(w, precision="fp32")
            for precision in ("fp32", "tf32", "bf16"):
                out = g.synthesis(w, precision=precision)
                seconds = timed(lambda: g.synthesis(w, precision=precision), device, repeats)
                rows.append({"model": "generator 1024", "batch": b, "precision": precision,
                             "images_per_s": b / seconds, "max_abs_diff_vs_fp32": float((out - ref).abs().max())})
                print(rows[-1], flush=True)
    g = None  # free the generator before the next model (the timing lambdas are done with it)
    return rows


def psp_rows(device, batches, repeats) -> list[dict]:
    opts = {"encoder_type": "GradualStyleEncoder", "output_size": 1024, "start_from_latent_avg": True}
    psp = PSP(opts)
    fill_module(psp)  # keys carry their encoder./decoder. prefixes, as in a pSp checkpoint
    psp.set_latent_avg(torch.zeros(18, 512))
    psp = psp.to(device).eval()
    rows = []
    with torch.no_grad():
        for b in batches:
            x = torch.rand(b, 3, 256, 256, device=device) * 2 - 1
            seconds = timed(lambda: psp.encode(x), device, repeats)
            rows.append({"model": "pSp encoder", "batch": b, "precision": "fp32", "images_per_s": b / seconds})
            print(rows[-1], flush=True)
    return rows


def arcface_rows(path, batches, repeats) -> list[dict]:
    from latentedit.faces.identity import ArcFace

    if path is None:
        from latentedit.faces.tiny import write_arcface_onnx

        path = Path(tempfile.mkdtemp()) / "tiny_arcface.onnx"
        write_arcface_onnx(path)
        name = "ArcFace (tiny test model: preprocessing cost)"
    else:
        name = f"ArcFace ({Path(path).name})"
    model = ArcFace(path, batch_size=max(batches))
    rows = []
    for b in batches:
        x = torch.rand(b, 3, 256, 256) * 2 - 1
        seconds = timed(lambda: model.embed(x), torch.device("cpu"), repeats)
        rows.append({"model": name, "batch": b, "precision": "fp32", "images_per_s": b / seconds})
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--arcface", default=None, help="ArcFace ONNX file (default: the tiny test model)")
    p.add_argument("--only", nargs="+", default=["generator", "psp", "arcface"])
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; batches {a.batches}; median of {a.repeats}", flush=True)
    rows = []
    if "generator" in a.only:
        rows += generator_rows(device, a.batches, a.repeats)
    if "psp" in a.only:
        rows += psp_rows(device, a.batches, a.repeats)
    if "arcface" in a.only:
        rows += arcface_rows(a.arcface, a.batches, a.repeats)
    print("\n| model | batch | precision | images/s | max-abs diff vs fp32 |\n|---|---|---|---|---|")
    for r in rows:
        diff = f"{r['max_abs_diff_vs_fp32']:.2e}" if "max_abs_diff_vs_fp32" in r else ""
        print(f"| {r['model']} | {r['batch']} | {r['precision']} | {r['images_per_s']:.2f} | {diff} |")
    fp32 = {r["batch"]: r["images_per_s"] for r in rows if r["model"] == "generator 1024" and r["precision"] == "fp32"}
    for r in rows:
        if r["model"] == "generator 1024" and r["precision"] != "fp32":
            print(f"generator batch {r['batch']}: {r['precision']}/fp32 speed ratio "
                  f"{r['images_per_s'] / fp32[r['batch']]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
