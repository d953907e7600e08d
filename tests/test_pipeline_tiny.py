"""End to end through Snakemake on a tiny config: data → oracle → DLSGAN (DLS and No-DLS) → refinement → latents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.io.image_store import read_image_store
from latentedit.io.latent_store import read_latent_store
from latentedit.io.provenance import file_hash

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "world": "digits",
    "device": "cpu",
    "digits": {"canvas": 16, "grid": 2, "digit_size": 8, "max_digits": 3, "n_train": 240, "n_val": 60,
               "n_test": 60, "source_fractions": [0.6, 0.2, 0.2], "seed": 3},
    "oracle": {"retrain": True, "checkpoint": "checkpoints/digits_oracle/oracle.pt",
               "train": {"width": 4, "feature_dim": 8, "dropout": 0.0, "lr": 1.0e-3, "batch_size": 64,
                         "max_epochs": 1, "patience": 1, "seed": 0}},
    "dlsgan": {
        "retrain": True,
        "checkpoint": "checkpoints/digits/dlsgan.pt",
        "train": {"arch": "dcgan", "g_lr": None, "g_beta1": None, "z_dim": 6, "distribution": "uniform", "lambda_enc": 1.0, "enc_in_g": True, "lambda_r1": 1.0,
                  "r1_every": 2, "variance_mode": "ema", "variance_window": 50, "variance_beta": 0.9, "width": 4,
                  "max_channels": 8, "batch_size": 8, "lr": 1.0e-3, "beta1": 0.5, "beta2": 0.99,
                  "ema_decay": 0.9, "epochs": 2, "steps_per_epoch": 3, "eval_samples": 20, "seed": 0},
    },
    "projection": {"retrain": True, "refine": True, "epochs": 1, "batch_size": 64, "lr": 1.0e-3, "lambda_latent": 1.0,
                   "seed": 0, "space": "z", "optimize_steps": 0},
    "labels": {
        "classifier": {"hidden": [16], "dropout": 0.0, "negative_slope": 0.2, "lr": 1.0e-2, "weight_decay": 0.0,
                       "batch_size": 64, "max_epochs": 3, "patience": 2, "min_delta": 1.0e-4, "monitor": "val_loss",
                       "seed": 0},
        "weight_attributes": ["count_1", "count_2", "count_3"],
    },
    "edits": {
        "methods": ["lw", "lw_nopres", "lt", "lt_core", "ifg"],
        "seeds": [0],
        "lw": {"lr": 1.0e-3, "max_epochs": 2, "max_steps": 4, "batch_cap": 64, "blur_fraction": 0.5, "scaling": 0.5,
               "patience": 2, "patience_steps": 0, "min_delta": 0.0, "monitor": "val_edit_loss",
               "pres_absolute_gamma": False,
               "pres_space": "probability",
               "weighting": True, "weight_min_count": 1},
        "lt": {"lambda_pres": 1.0, "lambda_reg": 10.0, "pres_weight_power": 2, "batch_size": 32, "lr": 1.0e-2,
               "weight_decay": 5.0e-4, "equalized_lr": True, "init": "xavier", "max_epochs": 2, "max_steps": 4,
               "patience": 2, "min_delta": 0.0},
        "ifg": {"C": 1.0, "max_samples": 100, "balance": True, "solver": "svc", "alpha": 1.0},
        # max_digits is 3 here: the count edits stop at 2 → 3
        "definitions": {
            "add_digit_1to2": {"source": {"count_1": 1}, "target": {"count_2": 1}, "attribute": "count_2",
                               "lambda_pres": 1.0},
            "add_digit_2to3": {"source": {"count_2": 1}, "target": {"count_3": 1}, "attribute": "count_3",
                               "lambda_pres": 1.0},
            "add_0": {"source": {"has_0": 0}, "target": {"has_0": 1}, "attribute": "has_0", "lambda_pres": 1.0},
            "add_7": {"source": {"has_7": 0}, "target": {"has_7": 1}, "attribute": "has_7", "lambda_pres": 1.0},
        },
    },
    # W* (rules/wstar.smk): runs only when edits.methods holds lw_wstar or ifg_wstar (tests/test_wstar_workflow.py)
    "wstar": {"n_couplings": 2, "hidden": [16], "lambda_d": 1.0, "lambda_id": 0.0, "id_sigma": 0.1, "lr": 1.0e-2,
              "batch_size": 32, "max_epochs": 2, "max_steps": 6, "patience": 1, "min_delta": 1.0e-4, "max_codes": 100,
              "classifier_C": 1.0, "seed": 0, "mask_seed": 0,
              "metrics": {"max_codes": 40, "n_pairs": 200, "n_triplets": 200, "lasso_alpha": 0.01, "svm_C": 1.0,
                          "seed": 0}},
    "metrics": {"n_bootstrap": 200, "fd_bootstrap": 20, "seed": 0},
    "render": {"calibration_rate": 1.0, "n_alphas": 2, "max_images": 16, "batch_size": 64, "seed": 0},
    "plots": {"dpi": 50, "grid_rows": 3},
}


def tiny_edit_config(methods: list[str], edits: list[str]) -> dict:
    """A deep copy of TINY with the smallest DLSGAN budget, the given edit methods and edit definitions."""
    import copy

    cfg = copy.deepcopy(TINY)
    cfg["dlsgan"]["train"].update(epochs=1, steps_per_epoch=2, eval_samples=20)
    cfg["edits"]["methods"] = list(methods)
    cfg["edits"]["definitions"] = {e: cfg["edits"]["definitions"][e] for e in edits}
    return cfg


# Everything up to the latent store (the edit chain has its own end-to-end run in test_edits_workflow.py).
TARGETS = ["results/digits/projection/quality.json", "results/digits/dlsgan/quality.json", "dlsgan_ablation"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    (work / "config.yaml").write_text(yaml.safe_dump(TINY))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *TARGETS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work / "results" / "digits"


def test_every_stage_produced_its_outputs(tiny_run):
    for rel in ["images.h5", "images_preview.png", "oracle/model.pt", "oracle/metrics.json",
                "dlsgan/dls/checkpoint.pt", "dlsgan/nodls/checkpoint.pt", "dlsgan/dls/curves.png",
                "dlsgan/quality.json", "dlsgan/samples.png", "dlsgan/ablation.json", "dlsgan/ablation.png",
                "projection/encoder.pt", "projection/quality.json", "projection/reconstructions.png",
                "latents.h5"]:
        assert (tiny_run / rel).stat().st_size > 0, rel
    for variant in ("dls", "nodls"):  # the resumable training state goes once the outputs are written
        assert not (tiny_run / "dlsgan" / variant / "training_state.pt").exists(), variant


def test_latent_store_shapes_and_provenance(tiny_run):
    images = read_image_store(tiny_run / "images.h5")
    store = read_latent_store(tiny_run / "latents.h5")
    assert store.latents.shape == (len(images.ids), TINY["dlsgan"]["train"]["z_dim"])
    assert store.latents.dtype == np.float32
    assert list(store.ids) == list(images.ids)
    assert list(store.split) == list(images.split)
    np.testing.assert_array_equal(store.attributes, images.attributes)
    assert store.attribute_names == images.attribute_names
    assert store.attrs["latent_space"] == "z"  # the scaled DLSGAN latent z'∘s (latentedit.io.latent_store)
    assert store.attrs["generator_checkpoint_hash"] == file_hash(tiny_run / "dlsgan/dls/checkpoint.pt")
    assert store.attrs["encoder_checkpoint_hash"] == file_hash(tiny_run / "projection/encoder.pt")
    assert store.attrs["image_store_hash"] == file_hash(tiny_run / "images.h5")
    assert len(store.attrs["config_hash"]) == 16


def test_nodls_keeps_unit_scale_and_dls_tracks_v(tiny_run):
    _, _, s_nodls, ck_nodls = load_dlsgan(tiny_run / "dlsgan/nodls/checkpoint.pt")
    _, _, s_dls, ck_dls = load_dlsgan(tiny_run / "dlsgan/dls/checkpoint.pt")
    assert ck_nodls["options"]["dls"] is False and ck_dls["options"]["dls"] is True
    np.testing.assert_array_equal(s_nodls.numpy(), np.ones(6, dtype=np.float32))
    assert not np.allclose(s_dls.numpy(), 1.0)  # v moved away from its initial 1s
    np.testing.assert_allclose(float((s_dls ** 2).sum()), 6.0, rtol=1e-5)  # ‖s‖₂ = √d_z


def test_quality_reports_before_and_after_refinement(tiny_run):
    q = json.loads((tiny_run / "projection/quality.json").read_text())
    for name in ("before_refinement", "after_refinement"):
        assert set(q[name]) >= {"psnr", "ssim", "count_agreement", "presence_agreement"}
        assert 0.0 <= q[name]["count_agreement"] <= 1.0
    ablation = json.loads((tiny_run / "dlsgan/ablation.json").read_text())
    assert ablation["l_enc_ratio_nodls_over_dls"] > 0
