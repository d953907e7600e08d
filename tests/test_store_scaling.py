"""Peak memory of the faces stages does not grow with the number of images (issue 16, item 2).

The tiny made-up faces world (:mod:`latentedit.faces.tiny`) at 256 px is run through the real rules up to the
latent store (celebahq_images, train_attribute_classifier, faces_eval_images, project_faces) at N and 4N CelebA-HQ
images (and 4 FFHQ images). Every job records its own peak RSS (``VmHWM``) and wall time at exit in its timing
record (``benchmarks/faces/<stage>.tsv``, :mod:`latentedit.jobs`), so the numbers are the job's, exact, not sampled.
Each stage's peak RSS at 4N must stay within 1.2× of N. At N = 256 the images are
256 × 196 KB = 50 MB, so a stage that held them all (as ``read_image_store`` does) would grow by ≥ 150 MB at 4N.

The split puts most CelebA-HQ images in test (fractions 0.01/0.01/0.98) because pSp's encoder (IR-SE50 at 256 px,
seconds per image on CPU) inverts train+val+FFHQ: the image stages see every image, projection 10 and 24; its batch
(4) is full at both sizes, so the activations are the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("insightface", reason="the faces extra (pip install -e '.[faces]') is not installed")

REPO = Path(__file__).resolve().parents[1]
N = 256
N_FFHQ = 4  # evaluation images, the same at both sizes (pSp inverts them: seconds each)
STAGES = {"celebahq_images": "celebahq_images", "train_attribute_classifier": "oracle",
          "faces_eval_images": "eval_images", "project_faces": "project"}  # rule: its timing record's name


def _world(root: Path, n: int) -> Path:
    """The tiny faces world with n CelebA-HQ and N_FFHQ FFHQ images (drawn at 64 px, stored at 256), its config."""
    from latentedit.faces import tiny

    rng = np.random.default_rng(0)
    tiny.write_celebahq(root / "celebahq", n, 64, rng)
    tiny.write_ffhq(root / "ffhq", N_FFHQ, 64, rng)
    tiny.write_psp_checkpoint(root / "psp_tiny.pt", 16)
    tiny.write_arcface_onnx(root / "arcface_tiny.onnx")
    cfg = yaml.safe_load((REPO / "configs" / "faces_tiny.yaml").read_text())
    cfg["faces"].update({
        "celebahq_images": str(root / "celebahq" / "img"),
        "celebahq_attributes": str(root / "celebahq" / "CelebAMask-HQ-attribute-anno.txt"),
        "ffhq_images": str(root / "ffhq"), "ffhq_n_images": N_FFHQ, "image_size": 256,
        "split_fractions": [0.01, 0.01, 0.98], "psp_checkpoint": str(root / "psp_tiny.pt"),
        "arcface": str(root / "arcface_tiny.onnx"), "encode_batch_size": 4})
    for key, value in cfg["faces"].items():  # files the stages measured here do not read: placeholders
        if key.endswith("_weights") and isinstance(value, str):
            (root / Path(value).name).write_bytes(b"")
            cfg["faces"][key] = str(root / Path(value).name)
    cfg["faces"]["attribute_classifier"].update({"image_size": 32, "max_epochs": 1, "batch_size": 16})
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(work: Path, n: int) -> dict[str, pd.Series]:
    """Run the faces stages up to the latent store on the tiny world with n images; each stage's timing record."""
    config = _world(work / "world", n)
    # Fresh interpreters: a job forked from latentedit.forkserver starts with the server's pages, and whether a job
    # is forked depends on when it starts (the first ones run while the server imports), not on N.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LATENTEDIT_FORKSERVER": "off"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(config), "--replace-workflow-config", "--cores", "2", "results/faces/latents.h5"]
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return {rule: pd.read_csv(work / "benchmarks/faces" / f"{name}.tsv", sep="\t").iloc[0]
            for rule, name in STAGES.items()}


@pytest.mark.slow
def test_faces_stage_peak_rss_does_not_grow_with_the_number_of_images(tmp_path):
    t0 = time.time()
    small = _run(tmp_path / "n", N)
    t1 = time.time()
    large = _run(tmp_path / "4n", 4 * N)
    t2 = time.time()
    print(f"\nfaces stages at 256 px: N = {N} and 4N = {4 * N} CelebA-HQ images (+ {N_FFHQ} FFHQ); runs took "
          f"{t1 - t0:.0f} s and {t2 - t1:.0f} s (world generation and Snakemake included)")
    print(f"{'stage':28s} {'RSS N (MB)':>11s} {'RSS 4N (MB)':>12s} {'ratio':>6s} {'wall N (s)':>11s} {'wall 4N (s)':>12s}")
    ratios = {}
    for rule in STAGES:
        a, b = small[rule], large[rule]
        ratios[rule] = b["max_rss"] / a["max_rss"]
        print(f"{rule:28s} {a['max_rss']:11.0f} {b['max_rss']:12.0f} {ratios[rule]:6.2f} {a['s']:11.1f} {b['s']:12.1f}")
    assert all(r <= 1.2 for r in ratios.values()), ratios
