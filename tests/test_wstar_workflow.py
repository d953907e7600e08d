"""The W* stage through Snakemake on the tiny config: train_wstar → wstar_metrics, the W* edit methods (lw_wstar,
ifg_wstar) trained, rendered and measured next to lw, and the aggregation's W* rows and Table 1. Runs in a pytest
tmp dir (``--directory``), never in the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_pipeline_tiny import TINY, tiny_edit_config

from latentedit.edits.model import apply_edit, load_edit
from latentedit.io.latent_store import read_latent_store
from latentedit.wstar.realnvp import wstar_from_checkpoint
from latentedit.wstar.realnvp import load_wstar

REPO = Path(__file__).resolve().parents[1]
METHODS = ["lw", "lw_wstar", "ifg_wstar"]
EDIT = "add_digit_1to2"
SEED = TINY["edits"]["seeds"][0]


def _config() -> dict:
    return tiny_edit_config(METHODS, [EDIT])


def _snakemake(work: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wstar_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wstar")
    (work / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    proc = _snakemake(work, "all")
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work / "results/digits"


@pytest.mark.slow
def test_wstar_stage_outputs_and_invertibility(wstar_run):
    for rel in ["wstar/model.pt", "wstar/options.json", "wstar/history.csv", "wstar/curves.png",
                "wstar/metrics.parquet", "wstar/table.md"]:
        assert (wstar_run / rel).stat().st_size > 0, rel
    model = load_wstar(wstar_run / "wstar/model.pt")
    assert model["spec"]["n_couplings"] == TINY["wstar"]["n_couplings"]
    T = wstar_from_checkpoint(model)
    z = torch.as_tensor(read_latent_store(wstar_run / "latents.h5").latents)
    assert (T.inverse(T(z)) - z).abs().max() < 1e-4
    history = pd.read_csv(wstar_run / "wstar/history.csv")
    assert history["invertibility"].max() < 1e-4


@pytest.mark.slow
def test_wstar_metrics_table_in_both_spaces(wstar_run):
    df = pd.read_parquet(wstar_run / "wstar/metrics.parquet")
    for space in ("original", "wstar"):
        for name in ("svm_accuracy_mean", "two_afc", "dci_disentanglement", "distance_diff_std"):
            assert f"{space}.{name}" in set(df["metric"]), (space, name)
    acc = df[df["metric"].str.endswith("svm_accuracy_mean")]["value"]
    assert acc.between(0, 1).all()
    table = (wstar_run / "wstar/table.md").read_text()
    assert "| metric | original | wstar |" in table


@pytest.mark.slow
def test_wstar_edits_render_and_aggregate(wstar_run):
    store = read_latent_store(wstar_run / "latents.h5")
    z = torch.as_tensor(store.latents[:8])
    for method in ("lw_wstar", "ifg_wstar"):
        model = load_edit(wstar_run / "edits" / method / EDIT / f"seed{SEED}" / "model.pt")
        assert "wstar" in model
        out = apply_edit(model, z, 1.0)
        assert out.shape == z.shape and torch.isfinite(out).all()
    table = pd.read_parquet(wstar_run / "metrics.parquet")
    assert (table["source"] == "wstar_metrics").sum() > 0
    m = table[table["source"] == "edit_metrics"]
    assert set(m["method"]) == set(METHODS) and (m["seed"] == SEED).all()
    for metric in ("latent_sinkhorn_to_target", "realism_fd"):  # measured for the W* methods too
        assert set(m.loc[m["metric"] == metric, "method"]) == set(METHODS), metric
    summary = pd.read_csv(wstar_run / "summary.csv")
    assert set(summary["method"]) == set(METHODS) and (summary["n_seeds"] == 1).all()
    md = (wstar_run / "summary.md").read_text()
    assert "| lw_wstar |" in md and "| ifg_wstar |" in md and "W*" in md


@pytest.mark.slow
def test_wstar_metrics_option_does_not_retrain_t(wstar_run):
    work = wstar_run.parent.parent
    cfg = _config()
    cfg["wstar"]["metrics"]["n_pairs"] = 300
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        proc = _snakemake(work, "-n")
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "rule wstar_metrics" in proc.stdout and "rule train_wstar" not in proc.stdout
    assert "rule train_edit" not in proc.stdout


def test_wstar_dry_run_only_when_a_wstar_method_is_configured(tiny_config, tmp_path, write_config, run_snakemake):
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "train_wstar" not in proc.stdout
    tiny_config["edits"]["methods"] = ["lw", "ifg_wstar"]
    del tiny_config["wstar"]  # optional: every key has a default
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "rule train_wstar" in proc.stdout and "rule wstar_metrics" in proc.stdout
