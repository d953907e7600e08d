"""The shipped digits oracle (latentedit.shipped, rule shipped_oracle): the file is the one its recipe
describes, it may judge only images with its handwriting split and layout (checked before any job), a run takes it
in and scores it on its own images, and shipping writes a recipe that the checks accept."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from latentedit.config import ConfigError, check_config
from latentedit.io.provenance import file_hash
from latentedit.oracles.digits_oracle import SlotOracle, load_oracle, save_oracle
from latentedit.shipped import DATA_KEYS, data_mismatches, read_recipe, recipe_path, ship, verify_checkpoint

SHIPPED = "checkpoints/digits_oracle/oracle.pt"


@pytest.fixture
def default_config(repo_root):
    return yaml.safe_load((repo_root / "config.yaml").read_text())


def test_the_shipped_oracle_is_the_one_its_recipe_describes(repo_root, default_config):
    ckpt = repo_root / SHIPPED
    recipe = read_recipe(ckpt)
    verify_checkpoint(ckpt, recipe)
    assert ckpt.stat().st_size <= 10 * 2**20
    model = load_oracle(ckpt)  # weights_only
    assert model.spec()["width"] == recipe["config"]["oracle"]["train"]["width"]
    # the default run uses it: config.yaml points at it, and its digits are the recipe's
    assert not default_config["oracle"]["retrain"] and default_config["oracle"]["checkpoint"] == SHIPPED
    assert data_mismatches(recipe, default_config["digits"]) == []
    assert recipe["config"]["oracle"]["train"] == default_config["oracle"]["train"]
    assert recipe["test"]["count_accuracy"] >= 0.99 and recipe["test"]["presence_all_right"] >= 0.95


@pytest.mark.parametrize("key, change", [("seed", {"seed": 3}),
                                         ("source_fractions", {"source_fractions": [0.5, 0.25, 0.25]}),
                                         ("canvas", {"canvas": 64}), ("grid", {"grid": 4, "digit_size": 8}),
                                         ("digit_size", {"digit_size": 8}), ("max_digits", {"max_digits": 3})])
def test_another_split_or_layout_fails_before_any_job_naming_the_key(repo_root, default_config, key, change):
    default_config["digits"].update(change)
    with pytest.raises(ConfigError, match=rf"digits\.{key}: the oracle was trained on .*oracle\.retrain: true"):
        check_config(default_config, checkout=repo_root)
    default_config["oracle"]["retrain"] = True  # trained on these images instead: nothing to check
    try:
        check_config(default_config, checkout=repo_root)
    except ConfigError as e:  # another key may object to the layout (e.g. W+ layers); never the oracle
        assert "oracle" not in str(e)


def test_other_image_counts_keep_the_shipped_oracle(repo_root, default_config):
    """n_train/n_val/n_test change how many images are composed, not which handwriting each split holds."""
    assert set(DATA_KEYS).isdisjoint({"n_train", "n_val", "n_test"})
    default_config["digits"].update(n_train=300, n_val=100, n_test=100)
    check_config(default_config, checkout=repo_root)


def test_a_missing_checkpoint_or_recipe_names_the_key(repo_root, default_config, tmp_path):
    default_config["oracle"]["checkpoint"] = str(tmp_path / "none.pt")
    with pytest.raises(ConfigError, match=r"oracle\.checkpoint: .*none\.pt.*does not exist.*oracle\.retrain"):
        check_config(default_config, checkout=repo_root)
    shutil.copyfile(repo_root / SHIPPED, tmp_path / "oracle.pt")  # no RECIPE.json beside it
    default_config["oracle"]["checkpoint"] = str(tmp_path / "oracle.pt")
    with pytest.raises(ConfigError, match=r"oracle\.checkpoint: .*RECIPE\.json"):
        check_config(default_config, checkout=repo_root)


def test_a_changed_file_fails_naming_it(repo_root, tmp_path):
    recipe = read_recipe(repo_root / SHIPPED)
    other = tmp_path / "oracle.pt"
    save_oracle(other, SlotOracle(1, 32, 2, 4, width=16, feature_dim=64), {"test": {}})
    with pytest.raises(ValueError, match=r"oracle\.pt: SHA-256 .* is not the .* RECIPE\.json"):
        verify_checkpoint(other, recipe)


def test_ship_writes_a_recipe_the_checks_accept(tmp_path, repo_root, default_config):
    results, dest = tmp_path / "results", tmp_path / "shipped"
    results.mkdir()
    save_oracle(results / "model.pt", SlotOracle(1, 32, 2, 4, width=4, feature_dim=8), {"test": {}})
    metrics = {"val": {"count_accuracy": 1.0}, "test": {"count_accuracy": 0.5}, "history": [{"epoch": 0}],
               "options": default_config["oracle"]["train"], "digits": default_config["digits"]}
    (results / "metrics.json").write_text(json.dumps(metrics))
    recipe = ship("oracle", results, dest, command="snakemake results/digits/oracle/model.pt")
    assert recipe_path(dest / "oracle.pt") == dest / "RECIPE.json"
    assert read_recipe(dest / "oracle.pt") == recipe and recipe["checkpoint_sha256_16"] == file_hash(dest / "oracle.pt")
    verify_checkpoint(dest / "oracle.pt", recipe)
    assert data_mismatches(recipe, default_config["digits"]) == []
    # a run's metrics.json from the shipped oracle is not a training run to ship
    (results / "metrics.json").write_text(json.dumps({**metrics, "shipped": {}}))
    with pytest.raises(ValueError, match="not written by the rule that trains"):
        ship("oracle", results, tmp_path / "again", command="x")


def test_a_run_takes_the_shipped_oracle_and_scores_it_on_its_images(tiny_config, tmp_path, write_config,
                                                                    run_snakemake, repo_root):
    tiny_config["oracle"]["retrain"] = False
    tiny_config["oracle"]["checkpoint"] = SHIPPED
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "results/digits/oracle/metrics.json")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "rule shipped_oracle:" in proc.stdout and "rule train_oracle:" not in proc.stdout
    out = tmp_path / "results/digits/oracle"
    assert file_hash(out / "model.pt") == file_hash(repo_root / SHIPPED)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["shipped"]["sha256_16"] == read_recipe(repo_root / SHIPPED)["checkpoint_sha256_16"]
    # this run's 100 test images are new compositions of the held-out handwriting: a real judge reads them
    assert metrics["test"]["count_accuracy"] >= 0.97 and metrics["test"]["presence_all_right"] >= 0.85
    assert metrics["options"] == read_recipe(repo_root / SHIPPED)["config"]["oracle"]["train"]
    assert torch.load(out / "model.pt", weights_only=True)["kind"] == "digits_oracle"
