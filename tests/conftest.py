"""Shared fixtures for the fast test suite.

Everything here is sized to run on two busy CPU cores: torch uses one thread, hypothesis has no deadline, and any
Snakemake run happens in a pytest ``tmp_path`` (``--directory``), never in the checkout.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, settings

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# Busy shared CPU: timing-based health checks would be flaky.
settings.register_profile("fast", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

REPO_ROOT = Path(__file__).resolve().parents[1]


def config_with_overlay(name: str | None) -> dict:
    """config.yaml with the overlay ``name`` (e.g. ``configs/digits_z.yaml``; None: none) merged onto it recursively,
    as ``snakemake --configfile <name>`` merges it (``snakemake.utils.update_config``)."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    if name is not None:
        update_config(cfg, yaml.safe_load((REPO_ROOT / name).read_text()))
    return cfg

# A complete, schema-valid configuration whose whole DAG runs in well under a minute on a CPU
# (mirrors the smoke-test config: 500 images, one oracle epoch, 2×3 DLSGAN steps).
TINY_CONFIG = {
    "world": "digits",
    "device": "cpu",
    "digits": {"canvas": 32, "grid": 2, "digit_size": 12, "max_digits": 4, "n_train": 300, "n_val": 100,
               "n_test": 100, "source_fractions": [0.6, 0.2, 0.2], "seed": 0},
    # trained here: the tiny runs exercise rule train_oracle (the default config uses the shipped oracle)
    "oracle": {"retrain": True, "checkpoint": "checkpoints/digits_oracle/oracle.pt",
               "train": {"width": 8, "feature_dim": 16, "dropout": 0.3, "lr": 1.0e-3, "batch_size": 64,
                         "max_epochs": 1, "patience": 1, "seed": 0}},
    "dlsgan": {
        "retrain": True,
        "checkpoint": "checkpoints/digits/dlsgan.pt",
        # pinned to the DCGAN in Z: the default config's StyleGAN2 W+ world would make every tiny run slow
        "train": {"arch": "dcgan", "g_lr": None, "g_beta1": None, "z_dim": 8, "distribution": "normal", "lambda_enc": 1.0, "enc_in_g": True, "lambda_r1": 5.0,
                  "r1_every": 4, "variance_mode": "moving_average", "variance_window": 100,
                  "variance_beta": 0.999, "width": 8, "max_channels": 16, "batch_size": 16, "lr": 2.0e-4,
                  "beta1": 0.5, "beta2": 0.99, "ema_decay": 0.999, "epochs": 2, "steps_per_epoch": 3,
                  "eval_samples": 50, "seed": 0},
    },
    # refined here (rule refine_encoder): the shipped encoder refines the shipped generator, not this tiny one
    "projection": {"retrain": True, "refine": True, "epochs": 1, "batch_size": 32, "lr": 1.0e-4, "lambda_latent": 1.0,
                   "seed": 0, "space": "z", "optimize_steps": 0},
    "labels": {
        "classifier": {"hidden": [16], "dropout": 0.0, "negative_slope": 0.2, "lr": 1.0e-2, "weight_decay": 0.0,
                       "batch_size": 64, "max_epochs": 2, "patience": 1, "min_delta": 1.0e-4, "monitor": "val_loss",
                       "seed": 0},
        "weight_attributes": ["count_1", "count_2", "count_3", "count_4"],
    },
    "edits": {
        "methods": ["lw", "lw_nopres", "lt", "lt_core", "ifg"],
        "seeds": [0],
        "lw": {"lr": 1.0e-2, "max_epochs": 2, "max_steps": 4, "batch_cap": 64, "blur_fraction": 0.5, "scaling": 0.5,
               "patience": 1, "patience_steps": 0, "eval_every_steps": 0, "min_delta": 1.0e-4,
               "monitor": "val_edit_loss",
               "pres_absolute_gamma": False,
               "pres_space": "probability",
               "weighting": True, "weight_min_count": 1},
        "lt": {"lambda_pres": 1.0, "lambda_reg": 10.0, "pres_weight_power": 2, "batch_size": 32, "lr": 1.0e-2,
               "weight_decay": 5.0e-4, "equalized_lr": True, "init": "xavier", "max_epochs": 2, "max_steps": 4,
               "patience": 1, "min_delta": 1.0e-4},
        "ifg": {"C": 1.0, "max_samples": 100, "balance": True, "solver": "svc", "alpha": 1.0},
        # not in methods (the workflow tests count five methods' jobs); here so that a test can add them
        "ganspace": {"n_components": 4, "n_samples": 500, "layers": None},
        "sefa": {"n_components": 4, "layers": None},
        "definitions": {
            "add_digit_1to2": {"source": {"count_1": 1}, "target": {"count_2": 1}, "attribute": "count_2",
                               "lambda_pres": 1.0},
            "add_7": {"source": {"has_7": 0}, "target": {"has_7": 1}, "attribute": "has_7", "lambda_pres": 1.0},
        },
    },
    # W* (rules/wstar.smk): runs only when edits.methods holds lw_wstar or ifg_wstar (tests/test_wstar_workflow.py)
    "wstar": {"n_couplings": 2, "hidden": [16], "lambda_d": 1.0, "lambda_id": 0.0, "id_sigma": 0.1, "lr": 1.0e-2,
              "batch_size": 32, "max_epochs": 2, "max_steps": 6, "patience": 1, "min_delta": 1.0e-4, "max_codes": 100,
              "classifier_C": 1.0, "seed": 0, "mask_seed": 0,
              "metrics": {"max_codes": 60, "n_pairs": 200, "n_triplets": 200, "lasso_alpha": 0.01, "svm_C": 1.0,
                          "seed": 0}},
    "metrics": {"n_bootstrap": 200, "fd_bootstrap": 20, "seed": 0},
    "render": {"calibration_rate": 1.0, "n_alphas": 2, "max_images": 16, "batch_size": 64, "seed": 0},
    "plots": {"dpi": 50, "grid_rows": 3},
}


def load_bench(name: str):
    """``bench/<name>.py`` as a module (``bench/`` is not a package), registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout under test (holds Snakefile, config.yaml, schemas/, latentedit/)."""
    return REPO_ROOT


@pytest.fixture
def tiny_config() -> dict:
    """A fresh deep copy of TINY_CONFIG, free to mutate."""
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def write_config(tmp_path):
    """``write_config(cfg, workdir=tmp_path) -> Path``: dump ``cfg`` to ``<workdir>/config.yaml``.

    The Snakefile's ``configfile: "config.yaml"`` is resolved against ``--directory``, so the file must live there.
    """

    def _write(cfg: dict, workdir: Path | None = None) -> Path:
        workdir = Path(workdir or tmp_path)
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return _write


@pytest.fixture
def run_snakemake(repo_root):
    """``run_snakemake(workdir, *args, timeout=120) -> CompletedProcess`` in ``workdir``, never in the checkout.

    Uses the checkout's Snakefile with ``--directory workdir --configfile workdir/config.yaml``; stdout and stderr
    are merged into ``.stdout``.
    """

    def _run(workdir: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        workdir = Path(workdir)
        assert workdir.resolve() != repo_root.resolve(), "never run snakemake in the checkout"
        cmd = [sys.executable, "-m", "snakemake", "-s", str(repo_root / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", "1", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)

    return _run
