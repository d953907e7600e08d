"""The shipped digits generators: each file is the one its RECIPE.json describes, loads with ``weights_only`` through
the loaders the pipeline uses, and each world's config (the default W+, the Z overlay) plans a valid run on its
generator, with the recipe's train options as ``dlsgan.train`` (so ``dlsgan.retrain: true`` retrains that file)."""

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


@pytest.mark.parametrize("overlay, folder, space", [(None, "checkpoints/digits_stylegan2", "wplus"),
                                                    ("configs/digits_reading_order.yaml",
                                                     "checkpoints/digits_stylegan2", "wplus"),
                                                    ("configs/digits_z.yaml", "checkpoints/digits", "z")])
def test_each_world_plans_a_run_on_its_shipped_generator(repo_root, tmp_path, write_config, run_snakemake, overlay,
                                                         folder, space):
    cfg = config_with_overlay(overlay)
    assert cfg["dlsgan"]["checkpoint"] == f"{folder}/dlsgan.pt" and cfg["projection"]["space"] == space
    trained = json.loads((repo_root / folder / "RECIPE.json").read_text())["config"]["dlsgan"]["train"]
    assert {k: cfg["dlsgan"]["train"][k] for k in trained} == trained
    write_config(cfg)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "rule project:" in proc.stdout and "rule train_dlsgan:" not in proc.stdout
    assert "rule train_oracle:" not in proc.stdout  # the shipped oracle reads every world
