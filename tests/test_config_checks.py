"""Parse-time config checks (latentedit.config): each failure names the key, a dry run only warns about faces
files, and the library's option classes are the one source of option defaults (config.yaml writes them out)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from latentedit.config import ConfigError, check_config, dry_run_requested

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expected", [
    (["snakemake", "-n"], True), (["snakemake", "-np", "--cores", "1"], True), (["snakemake", "--dry-run"], True),
    (["snakemake", "--cores", "1"], False), (["snakemake", "--configfile", "n.yaml"], False),
    (["snakemake", "-c1"], False),
])
def test_dry_run_is_read_from_the_command_line(argv, expected):
    assert dry_run_requested(argv) is expected


@pytest.mark.parametrize("change, message", [
    (lambda c: c["edits"].update(methods=["lw", "gan"]), "edits.methods: unknown edit method 'gan'"),
    (lambda c: c["edits"].pop("lt"), "edits.lt: missing, and method lt reads it"),
    (lambda c: c["labels"].update(weight_attributes=["count_9"]), "labels.weight_attributes: unknown attribute"),
    (lambda c: c["edits"]["definitions"]["add_7"].update(attribute="has_1"),
     "edits.definitions.add_7.attribute: 'has_1' must be one of the target's attributes"),
    (lambda c: c["digits"].update(digit_size=40), "config error: "),
])
def test_a_config_that_cannot_run_fails_naming_the_key(tiny_config, change, message):
    change(tiny_config)
    with pytest.raises(ConfigError, match="^config error: ") as e:
        check_config(tiny_config)
    assert message in str(e.value)


def test_missing_faces_files_fail_a_run_and_warn_a_dry_run():
    cfg = yaml.safe_load((REPO / "configs" / "faces.yaml").read_text())
    with pytest.raises(ConfigError, match="faces.celebahq_images: .* is not an existing folder"):
        check_config(cfg)
    warnings = check_config(cfg, dry_run=True)
    assert warnings and all(w.startswith("config error: faces.") for w in warnings)


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        else:
            value = f.default_factory()
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _sections():
    """(config.yaml section, its value, the library defaults it must equal)."""
    from latentedit.dlsgan.train import DLSGANConfig
    from latentedit.edits import interfacegan
    from latentedit.edits.lt import LTConfig
    from latentedit.edits.lw import LWConfig
    from latentedit.labels.classifiers import ClassifierConfig
    from latentedit.oracles.digits_oracle import OracleConfig
    from latentedit.projection.refine import RefineConfig
    from latentedit.wstar.metrics import WStarMetricsConfig
    from latentedit.wstar.train import WStarConfig

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    ifg = {p.name: p.default for p in inspect.signature(interfacegan.fit_direction).parameters.values()
           if p.name in interfacegan.OPTIONS}
    return [
        ("edits.lw", cfg["edits"]["lw"], {**_defaults(LWConfig), "weighting": True, "weight_min_count": 1}),
        ("edits.lt", cfg["edits"]["lt"], _defaults(LTConfig)),
        ("edits.ifg", {k: v for k, v in cfg["edits"]["ifg"].items() if k != "alpha"}, ifg),
        ("labels.classifier", cfg["labels"]["classifier"], _defaults(ClassifierConfig)),
        ("oracle", cfg["oracle"], _defaults(OracleConfig)),
        ("projection", {k: v for k, v in cfg["projection"].items() if k != "refine"}, _defaults(RefineConfig)),
        ("dlsgan.train", cfg["dlsgan"]["train"], _defaults(DLSGANConfig)),
        ("wstar", {k: v for k, v in cfg["wstar"].items() if k != "metrics"}, _defaults(WStarConfig)),
        ("wstar.metrics", cfg["wstar"]["metrics"], _defaults(WStarMetricsConfig)),
    ]


def test_config_yaml_writes_out_the_library_defaults():
    """One source of option defaults: the library's option classes. config.yaml lists them (so a reader sees every
    option of the default run); a value there that differs from the library default fails here."""
    for name, section, defaults in _sections():
        differ = {k: (v, defaults[k]) for k, v in section.items() if k in defaults and defaults[k] != v}
        unknown = sorted(set(section) - set(defaults))
        assert not differ and not unknown, f"{name}: config.yaml vs library default {differ}, unknown {unknown}"
