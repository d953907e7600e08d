"""The shipped refined projection encoders (latentedit.shipped, rule shipped_encoder): each is the file its recipe
describes and was refined against the generator beside it, with the refinement options and handwriting split of the
config that uses it; any other generator, split or option fails before any job, naming the key; a run takes it in
and projects with it; shipping writes a recipe the checks accept."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from latentedit.config import ConfigError, check_config
from latentedit.io.provenance import file_hash
from latentedit.projection.options import RefineConfig
from latentedit.shipped import data_mismatches, read_recipe, ship, verify_checkpoint

from conftest import config_with_overlay

Z = "configs/digits_z.yaml"
WORLDS = {  # overlay → (shipped encoder, the generator it refines)
    None: ("checkpoints/digits_stylegan2/encoder.pt", "checkpoints/digits_stylegan2/dlsgan.pt"),
    Z: ("checkpoints/digits/encoder.pt", "checkpoints/digits/dlsgan.pt"),
}


@pytest.mark.parametrize("overlay", list(WORLDS))
def test_each_world_uses_the_encoder_its_recipe_describes(repo_root, overlay):
    encoder, generator = WORLDS[overlay]
    cfg = config_with_overlay(overlay)
    refine = RefineConfig(**cfg["projection"])
    assert not refine.retrain and refine.checkpoint == encoder and cfg["dlsgan"]["checkpoint"] == generator
    recipe = read_recipe(repo_root / encoder, "encoder")
    verify_checkpoint(repo_root / encoder, recipe, "encoder")
    assert (repo_root / encoder).stat().st_size <= 10 * 2**20
    assert recipe["generator"]["sha256_16"] == file_hash(repo_root / generator)
    ck = torch.load(repo_root / encoder, weights_only=True)
    assert ck["base_checkpoint_hash"] == file_hash(repo_root / generator)
    assert recipe["config"]["projection"] == refine.encoder_options()
    assert data_mismatches(recipe, cfg["digits"]) == []
    check_config(cfg, checkout=repo_root)


@pytest.mark.parametrize("key, value", [("epochs", 5), ("lr", 1.0e-3), ("seed", 1), ("lambda_latent", 0.5),
                                        ("batch_size", 32), ("refine", False)])
def test_another_refinement_fails_before_any_job_naming_the_key(repo_root, key, value):
    cfg = config_with_overlay(None)
    cfg["projection"][key] = value
    with pytest.raises(ConfigError, match=rf"projection\.{key}: the shipped checkpoint was trained with .*"
                                          r"projection\.retrain: true"):
        check_config(cfg, checkout=repo_root)
    cfg["projection"]["retrain"] = True  # refined here instead: nothing to check
    check_config(cfg, checkout=repo_root)


def test_projection_only_options_keep_the_shipped_encoder(repo_root):
    """The per-image optimisation and the train subset do not change the encoder's training."""
    cfg = config_with_overlay(None)
    cfg["projection"].update(optimize_steps=3, optimize_batch_size=7, max_train_images=100)
    cfg["digits"].update(n_train=300, n_val=100, n_test=100)  # counts, not the handwriting split
    check_config(cfg, checkout=repo_root)


def test_a_split_change_fails_naming_the_key(repo_root):
    cfg = config_with_overlay(None)
    cfg["digits"]["seed"] = 5
    cfg["oracle"]["retrain"] = True  # the oracle would object first
    with pytest.raises(ConfigError, match=r"digits\.seed: the encoder was trained on 0, the config has 5"):
        check_config(cfg, checkout=repo_root)


def test_another_generator_fails_naming_it(repo_root):
    cfg = config_with_overlay(None)
    cfg["dlsgan"]["retrain"] = True
    with pytest.raises(ConfigError, match=r"projection\.retrain: .*dlsgan\.retrain: true"):
        check_config(cfg, checkout=repo_root)
    cfg = config_with_overlay(Z)  # z codes, which the StyleGAN2 has too: only the encoder check objects
    cfg["dlsgan"]["checkpoint"] = "checkpoints/digits_stylegan2/dlsgan.pt"  # the Z world's encoder stays
    with pytest.raises(ConfigError, match=r"dlsgan\.checkpoint: .* is not the generator the shipped encoder "
                                          r"checkpoints/digits/encoder\.pt was refined against"):
        check_config(cfg, checkout=repo_root)


def test_a_missing_file_or_recipe_names_the_key(repo_root, tmp_path):
    cfg = config_with_overlay(None)
    cfg["projection"]["checkpoint"] = str(tmp_path / "none.pt")
    with pytest.raises(ConfigError, match=r"projection\.checkpoint: .*none\.pt.*does not exist.*projection\.retrain"):
        check_config(cfg, checkout=repo_root)
    shutil.copyfile(repo_root / WORLDS[None][0], tmp_path / "encoder.pt")
    (tmp_path / "RECIPE.json").write_text(json.dumps({"arch": "dcgan"}))  # a DLSGAN recipe without the encoder
    cfg["projection"]["checkpoint"] = str(tmp_path / "encoder.pt")
    with pytest.raises(ConfigError, match=r"projection\.checkpoint: .*RECIPE\.json: not a recipe of the shipped "
                                          r"projection encoder"):
        check_config(cfg, checkout=repo_root)


def test_a_changed_file_fails_naming_it(repo_root, tmp_path):
    recipe = read_recipe(repo_root / WORLDS[None][0], "encoder")
    other = tmp_path / "encoder.pt"
    other.write_bytes((repo_root / WORLDS[None][0]).read_bytes() + b"\0")
    with pytest.raises(ValueError, match=r"encoder\.pt: SHA-256 .* RECIPE\.json records.*projection\.retrain: true"):
        verify_checkpoint(other, recipe, "encoder")


def test_ship_adds_the_encoder_to_its_generators_recipe(tmp_path, repo_root):
    results, dest = tmp_path / "results", tmp_path / "shipped"
    results.mkdir()
    dest.mkdir()
    shutil.copyfile(repo_root / "checkpoints/digits/RECIPE.json", dest / "RECIPE.json")
    generator_recipe = json.loads((dest / "RECIPE.json").read_text())
    shutil.copyfile(repo_root / WORLDS[Z][0], results / "encoder.pt")
    cfg = config_with_overlay(Z)
    record = {"options": RefineConfig(**cfg["projection"]).encoder_options(), "digits": cfg["digits"],
              "history": [{"epoch": 0}], "val": {"psnr": 22.0},
              "generator": {"sha256_16": generator_recipe["checkpoint_sha256_16"]}}
    (results / "refine.json").write_text(json.dumps(record))
    entry = ship("encoder", results, dest, command="snakemake results/digits/projection/encoder.pt")
    written = json.loads((dest / "RECIPE.json").read_text())
    assert written["encoder"] == entry
    assert written["last_epoch"] == generator_recipe["last_epoch"]  # the generator's own entries are kept
    assert read_recipe(dest / "encoder.pt", "encoder") == entry
    assert entry["checkpoint_sha256_16"] == file_hash(dest / "encoder.pt")
    # refined against another generator: refused
    (results / "refine.json").write_text(json.dumps({**record, "generator": {"sha256_16": "0" * 16}}))
    with pytest.raises(ValueError, match=r"refined against the generator 0{16}, not .*RECIPE\.json"):
        ship("encoder", results, dest, command="x")
    # a run's record of the shipped encoder is not a training run to ship
    (results / "refine.json").write_text(json.dumps({**record, "shipped": {}}))
    with pytest.raises(ValueError, match="not written by the rule that trains"):
        ship("encoder", results, dest, command="x")


def test_a_run_takes_the_shipped_encoder_and_projects_with_it(tiny_config, tmp_path, write_config, run_snakemake,
                                                             repo_root):
    """The tiny config on the Z world's shipped generator, oracle and encoder (its refinement options)."""
    cfg = config_with_overlay(Z)
    tiny_config["dlsgan"].update(retrain=False, checkpoint=WORLDS[Z][1])
    tiny_config["oracle"].update(retrain=False)
    tiny_config["projection"] = cfg["projection"]
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "results/digits/latents.h5", timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "rule shipped_encoder:" in proc.stdout and "rule refine_encoder:" not in proc.stdout
    out = tmp_path / "results/digits/projection"
    assert file_hash(out / "encoder.pt") == file_hash(repo_root / WORLDS[Z][0])
    record = json.loads((out / "refine.json").read_text())
    recipe = read_recipe(repo_root / WORLDS[Z][0], "encoder")
    assert record["shipped"]["sha256_16"] == recipe["checkpoint_sha256_16"] and record["options"] == \
        recipe["config"]["projection"]
    assert (out / "refine_curves.png").stat().st_size > 0 and (out / "refine_history.csv").read_text().count("\n") >= 2
    # this run's 100 test images are new compositions of the held-out handwriting: the refined encoder inverts them
    quality = json.loads((out / "quality.json").read_text())
    assert quality["stored_stage"] == "after_refinement", quality
    assert quality["after_refinement"]["count_agreement"] >= 0.95, quality
