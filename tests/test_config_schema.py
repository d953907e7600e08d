"""schemas/config.schema.yaml: the shipped config and the tiny test config validate; typos and wrong types fail
naming the key (snakemake.utils.validate, exactly as the Snakefile calls it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import config_with_overlay
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = "schemas/config.schema.yaml"
ROOT = Path(__file__).resolve().parents[1]
# overlays: partial configs given with --configfile on top of config.yaml (validated merged onto it)
OVERLAYS = ["configs/digits_z.yaml", "configs/digits_reading_order.yaml", "configs/digits_wstar.yaml"]
SHIPPED_CONFIGS = ["config.yaml", *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("configs/*.yaml")
                                          if str(p.relative_to(ROOT)) not in OVERLAYS)]


@pytest.fixture(scope="module")
def schema_path(repo_root):
    return str(repo_root / SCHEMA)


@pytest.fixture(scope="module")
def shipped_config(repo_root):
    return yaml.safe_load((repo_root / "config.yaml").read_text())


def _error(cfg, schema_path) -> str:
    with pytest.raises(WorkflowError) as e:
        validate(cfg, schema_path)
    return str(e.value)


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_shipped_configs_are_valid(repo_root, schema_path, name):
    validate(yaml.safe_load((repo_root / name).read_text()), schema_path)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlays_on_the_shipped_config_are_valid(schema_path, name):
    validate(config_with_overlay(name), schema_path)


def test_tiny_config_is_valid(tiny_config, schema_path):
    validate(tiny_config, schema_path)


def test_shipped_floats_are_numbers(shipped_config):
    """YAML 1.1 reads ``1e-3`` as a string; the shipped config must write ``1.0e-3``."""
    assert isinstance(shipped_config["oracle"]["train"]["lr"], float)
    assert isinstance(shipped_config["dlsgan"]["train"]["lr"], float)
    assert isinstance(shipped_config["projection"]["lr"], float)
    assert isinstance(shipped_config["labels"]["classifier"]["lr"], float)
    assert isinstance(shipped_config["edits"]["lw"]["lr"], float)
    assert isinstance(shipped_config["edits"]["lt"]["lr"], float)
    assert all(isinstance(d["lambda_pres"], float) for d in shipped_config["edits"]["definitions"].values())


@pytest.mark.parametrize("section", [("oracle", "train"), ("dlsgan", "train"), ("projection",),
                                     ("labels", "classifier"),
                                     ("edits", "lw"), ("edits", "lt")])
def test_lr_as_string_names_the_key(tiny_config, schema_path, section):
    node = tiny_config
    for k in section:
        node = node[k]
    node["lr"] = yaml.safe_load("lr: 1e-3")["lr"]  # what a user writing 1e-3 actually gets
    assert node["lr"] == "1e-3"
    msg = _error(tiny_config, schema_path)
    assert "'1e-3' is not of type 'number'" in msg
    assert "".join(f"['{k}']" for k in (*section, "lr")) in msg


@pytest.mark.parametrize("path, bad", [
    (("digits", "n_train"), 10.5),
    (("digits", "canvas"), 24),
    (("dlsgan", "retrain"), "yes"),
    (("dlsgan", "train", "variance_mode"), "median"),
    (("dlsgan", "train", "variance_beta"), 1.0),
    (("device",), "tpu"),
    (("labels", "classifier", "monitor"), "val_f1"),
    (("edits", "lw", "scaling"), 1.0),
    (("edits", "lw", "weighting"), "yes"),
    (("edits", "lt", "init"), "normal"),
    (("edits", "ifg", "solver"), "rbf"),
    (("edits", "definitions", "add_7", "source", "has_7"), 2),
    (("edits", "definitions", "add_7", "lambda_pres"), -1.0),
])
def test_bad_values_name_the_key(tiny_config, schema_path, path, bad):
    node = tiny_config
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = bad
    msg = _error(tiny_config, schema_path)
    assert "".join(f"['{k}']" for k in path) in msg


@pytest.mark.parametrize("path", [(), ("digits",), ("oracle",), ("dlsgan",), ("dlsgan", "train"), ("projection",),
                                  ("labels",), ("labels", "classifier"), ("edits",), ("edits", "lw"), ("edits", "lt"),
                                  ("edits", "ifg"), ("edits", "definitions", "add_7")])
def test_unknown_key_is_named(tiny_config, schema_path, path):
    node = tiny_config
    for k in path:
        node = node[k]
    node["lamda_typo"] = 1
    msg = _error(tiny_config, schema_path)
    assert "'lamda_typo' was unexpected" in msg


@pytest.mark.parametrize("path", [("world",), ("digits", "seed"), ("oracle", "train", "patience"),
                                  ("dlsgan", "train", "variance_window"), ("projection", "refine"),
                                  ("labels", "weight_attributes"), ("edits", "methods"), ("edits", "ifg", "alpha"),
                                  ("edits", "definitions", "add_7", "lambda_pres"),
                                  ("edits", "definitions", "add_7", "attribute")])
def test_missing_key_is_named(tiny_config, schema_path, path):
    node = tiny_config
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    msg = _error(tiny_config, schema_path)
    assert f"'{path[-1]}' is a required property" in msg


def test_edit_names_must_be_wildcard_safe(tiny_config, schema_path):
    defs = tiny_config["edits"]["definitions"]
    defs["add-7/x"] = defs["add_7"]
    assert "'add-7/x' does not match" in _error(tiny_config, schema_path)
