"""The shipped digits generators: each file is the one its RECIPE.json describes, loads with ``weights_only`` through
the loaders the pipeline uses, and the W+ world's config overlay plans a valid run on it."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import config_with_overlay

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.faces.stylegan2 import load_generator
from latentedit.io.provenance import file_hash

SHIPPED = ["checkpoints/digits", "checkpoints/digits_stylegan2"]


@pytest.mark.parametrize("folder", SHIPPED)
def test_the_shipped_checkpoint_is_the_one_its_recipe_describes(repo_root, folder):
    recipe = json.loads((repo_root / folder / "RECIPE.json").read_text())
    ckpt = repo_root / folder / "dlsgan.pt"
    assert file_hash(ckpt) == recipe["checkpoint_sha256_16"]
    assert ckpt.stat().st_size <= 10 * 2**20  # the size bar for a shipped checkpoint
    g, _, scale, ck = load_dlsgan(ckpt)
    # a recipe shipped before the StyleGAN2 has no "arch": the DCGAN
    assert ck["spec"]["generator"].get("arch", "dcgan") == recipe.get("arch", "dcgan")
    assert scale.shape == (ck["spec"]["generator"]["z_dim"],) and torch.isfinite(scale).all()


def test_the_stylegan2_checkpoint_reads_as_rosinality_and_draws_digits(repo_root):
    ckpt = repo_root / "checkpoints/digits_stylegan2/dlsgan.pt"
    g, _, scale, _ = load_dlsgan(ckpt)
    assert isinstance(g, DLSStyleGenerator) and g.n_latent == 8 and g.style_dim == 128
    faces_g = load_generator(ckpt)
    z = torch.randn(4, 128, generator=torch.Generator().manual_seed(0)) * scale
    with torch.no_grad():
        images = g(z)
        assert torch.equal(images, faces_g([z], randomize_noise=False)[0])
    assert images.shape == (4, 1, 32, 32) and images.min() >= -1.5 and images.max() <= 1.5
    assert images.std() > 0.2  # not a blank canvas


def test_the_wplus_overlay_plans_a_wplus_run_on_the_shipped_stylegan2(tmp_path, write_config, run_snakemake):
    write_config(config_with_overlay("configs/digits_wplus.yaml"))
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "rule project:" in proc.stdout and "rule train_dlsgan:" not in proc.stdout
