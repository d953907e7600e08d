"""Parse-time config checks (latentedit.config): each failure names the key, a dry run only warns about faces
files, and the library's option classes are the one source of option defaults (config.yaml writes them out)."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
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
        ("oracle.train", cfg["oracle"]["train"], _defaults(OracleConfig)),
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


# ---------------------------------------------------------------------------------------------------------------
# projection.space against the generator, and W+ layers of the edit methods


def _stylegan2(cfg) -> dict:
    cfg["dlsgan"]["train"]["arch"] = "stylegan2"
    return cfg


@pytest.mark.parametrize("space, section, key, value, message", [
    ("z", "ganspace", "layers", [0], "edits.ganspace.layers: the digits codes are z codes (projection.space), flat"),
    ("w", "sefa", "layers", [0, 1], "edits.sefa.layers: the digits codes are w codes (projection.space), flat"),
    ("z", "lw", "layers", [0], "edits.lw.layers: the digits codes are z codes"),
    ("w", "lt", "layers", [2], "edits.lt.layers: the digits codes are w codes"),
    ("wplus", "ganspace", "layers", [0, 8], "edits.ganspace.layers: [8] are not W+ layers of the digits generator "
                                            "(0 … 7 at a 32-pixel canvas)"),
    ("wplus", "ganspace", "layers", [0, 7], None),
    ("wplus", "sefa", "layers", [3], None),
    ("wplus", "lw", "layers", [1, 2], None),
    ("z", "ganspace", "layers", None, None),
    ("z", "lw", "couple_layers", True, "edits.lw.couple_layers: the digits codes are z codes"),
    ("w", "lw", "couple_layers", True, "edits.lw.couple_layers: the digits codes are w codes"),
    ("wplus", "lw", "couple_layers", True, None),
    ("z", "lw", "couple_layers", False, None),
])
def test_wplus_options_are_allowed_on_digits_iff_the_codes_are_wplus(tiny_config, space, section, key, value, message):
    cfg = _stylegan2(tiny_config)
    cfg["edits"]["methods"] = ["lw", "lt", "ganspace", "sefa"]
    cfg["projection"]["space"] = space
    cfg["edits"][section][key] = value
    if message is None:
        check_config(cfg)
        return
    with pytest.raises(ConfigError, match="^config error: ") as e:
        check_config(cfg)
    assert message in str(e.value)


def _save_generator(path, arch: str) -> None:
    import torch

    from latentedit.dlsgan.checkpoint import save_dlsgan
    from latentedit.dlsgan.models import Discriminator, Generator
    from latentedit.dlsgan.stylegan import DLSStyleGenerator

    g = DLSStyleGenerator(8, 16, 1, (8, 8, 4), 2) if arch == "stylegan2" else Generator(8, 16, 1, 4, 8)
    save_dlsgan(path, {"generator": g, "discriminator": Discriminator(8, 16, 1, 4, 8, 16), "scale": torch.ones(8),
                       "v": torch.ones(8), "options": {"distribution": "normal"}, "history": []})


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_a_style_space_on_a_dcgan_fails_naming_projection_space(tiny_config, space, tmp_path):
    tiny_config["projection"]["space"] = space
    tiny_config["dlsgan"]["train"].pop("arch", None)
    check_config(tiny_config)  # retrain with dlsgan.train.arch unset: the default StyleGAN2
    tiny_config["dlsgan"]["train"]["arch"] = "dcgan"
    with pytest.raises(ConfigError, match=f"^config error: projection.space: {space} codes need a StyleGAN2") as e:
        check_config(tiny_config)
    assert "dlsgan.train.arch is dcgan" in str(e.value)
    tiny_config["dlsgan"]["retrain"] = False  # a given checkpoint: its spec says which generator it holds
    tiny_config["dlsgan"]["checkpoint"] = "dcgan.pt"
    _save_generator(tmp_path / "dcgan.pt", "dcgan")
    with pytest.raises(ConfigError, match=f"projection.space: {space} codes need .* the generator of "
                                          "dlsgan.checkpoint \\(dcgan.pt\\) is dcgan"):
        check_config(tiny_config, checkout=tmp_path)
    tiny_config["dlsgan"]["checkpoint"] = "nowhere.pt"
    with pytest.raises(ConfigError, match="^config error: dlsgan.checkpoint: .*nowhere.pt: checkpoint file does not "
                                          "exist"):
        check_config(tiny_config, checkout=tmp_path)
    tiny_config["projection"]["space"] = "z"  # z codes never read the checkpoint at parse time
    check_config(tiny_config, checkout=tmp_path)


def test_a_style_space_on_a_stylegan2_passes(tiny_config, tmp_path):
    tiny_config["projection"]["space"] = "wplus"
    check_config(_stylegan2(tiny_config))
    tiny_config["dlsgan"]["retrain"] = False
    tiny_config["dlsgan"]["checkpoint"] = "g.pt"
    _save_generator(tmp_path / "g.pt", "stylegan2")
    check_config(tiny_config, checkout=tmp_path)


def test_the_generator_arch_comes_from_a_recipe_of_this_very_file_else_from_its_spec(tiny_config, tmp_path):
    import json

    from latentedit.config import generator_arch
    from latentedit.io.provenance import file_hash

    tiny_config["dlsgan"]["retrain"] = False
    tiny_config["dlsgan"]["checkpoint"] = "g.pt"
    _save_generator(tmp_path / "g.pt", "dcgan")
    recipe = tmp_path / "RECIPE.json"
    recipe.write_text(json.dumps({"arch": "stylegan2", "checkpoint_sha256_16": file_hash(tmp_path / "g.pt")}))
    assert generator_arch(tiny_config, tmp_path) == "stylegan2"  # the recipe describes g.pt: it is believed
    recipe.write_text(json.dumps({"arch": "stylegan2", "checkpoint_sha256_16": "0" * 16}))
    assert generator_arch(tiny_config, tmp_path) == "dcgan"  # a recipe of another file: the spec decides
    recipe.write_text("{not json")
    assert generator_arch(tiny_config, tmp_path) == "dcgan"


def test_the_workflow_parse_reads_the_shipped_generator_without_torch():
    # A dry run's parse is 4.4-4.6 s of CPU with torch (each Slurm job parses again), 1.7-2.2 s without.
    code = ("import sys, yaml; from latentedit.config import generator_arch; "
            "cfg = yaml.safe_load(open('config.yaml')); "
            "assert generator_arch(cfg) == 'stylegan2'; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_parse_time_defaults_agree_with_the_library():
    from latentedit.config import DLSGAN_DEFAULT_ARCH, projection_space
    from latentedit.dlsgan.train import DLSGANConfig
    from latentedit.projection.refine import RefineConfig

    assert DLSGAN_DEFAULT_ARCH == DLSGANConfig().arch
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    assert projection_space(cfg) == cfg["projection"]["space"] == RefineConfig().space == "wplus"
    old = {k: v for k, v in cfg["projection"].items() if k in ("refine", "epochs", "batch_size", "lr",
                                                                 "lambda_latent", "seed")}
    assert projection_space({**cfg, "projection": old}) == "wplus"  # a config without the key: the default world


def test_dlsgan_style_dim_needs_the_stylegan2():
    from latentedit.config import check_dlsgan_train

    check_dlsgan_train({"arch": "stylegan2", "style_dim": 64})
    check_dlsgan_train({"arch": "dcgan", "style_dim": None})
    with pytest.raises(ConfigError, match="dlsgan.train.style_dim"):
        check_dlsgan_train({"arch": "dcgan", "style_dim": 64})
