"""schemas/config.schema.yaml: the shipped config and the tiny test config validate; typos and wrong types fail
naming the key (snakemake.utils.validate, exactly as the Snakefile calls it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = "schemas/config.schema.yaml"
ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIGS = ["config.yaml", *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("configs/*.yaml"))]


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


def test_tiny_config_is_valid(tiny_config, schema_path):
    validate(tiny_config, schema_path)


def test_shipped_floats_are_numbers(shipped_config):
    """YAML 1.1 reads ``1e-3`` as a string; the shipped config must write ``1.0e-3``."""
    assert isinstance(shipped_config["oracle"]["lr"], float)
    assert isinstance(shipped_config["dlsgan"]["train"]["lr"], float)
    assert isinstance(shipped_config["projection"]["lr"], float)


@pytest.mark.parametrize("section", [("oracle",), ("dlsgan", "train"), ("projection",)])
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
])
def test_bad_values_name_the_key(tiny_config, schema_path, path, bad):
    node = tiny_config
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = bad
    msg = _error(tiny_config, schema_path)
    assert "".join(f"['{k}']" for k in path) in msg


@pytest.mark.parametrize("path", [(), ("digits",), ("oracle",), ("dlsgan",), ("dlsgan", "train"), ("projection",)])
def test_unknown_key_is_named(tiny_config, schema_path, path):
    node = tiny_config
    for k in path:
        node = node[k]
    node["lamda_typo"] = 1
    msg = _error(tiny_config, schema_path)
    assert "'lamda_typo' was unexpected" in msg


@pytest.mark.parametrize("path", [("world",), ("digits", "seed"), ("oracle", "patience"),
                                  ("dlsgan", "train", "variance_window"), ("projection", "refine")])
def test_missing_key_is_named(tiny_config, schema_path, path):
    node = tiny_config
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    msg = _error(tiny_config, schema_path)
    assert f"'{path[-1]}' is a required property" in msg
