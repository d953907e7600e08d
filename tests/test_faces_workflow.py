"""The faces world through Snakemake: the DAG of configs/faces.yaml dry-runs with its placeholder paths, a real run
refuses them before any job naming the key, and the tiny made-up faces world (latentedit.faces.tiny: cartoon faces,
a recipe-filled pSp with the real IR-SE50 layout, a seeded ArcFace-shaped ONNX) runs end to end through the real
rules, then (a copy of that run) W* with the VGG16 perceptual distance of a seeded VGG16 file: train_wstar, Table 1
and the W* edit methods lw_wstar / ifg_wstar. Every run happens in a pytest tmp dir (``--directory``), never in the
checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("insightface", reason="the faces extra (pip install -e '.[faces]') is not installed")

from test_edits_workflow import _job_stats

REPO = Path(__file__).resolve().parents[1]


def _snakemake(work: Path, configfile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(configfile), "--replace-workflow-config", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def test_faces_config_dry_runs_with_placeholder_paths(tmp_path):
    proc = _snakemake(tmp_path, REPO / "configs" / "faces.yaml", "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "warning (dry run): config error: faces.celebahq_images" in proc.stdout
    cfg = yaml.safe_load((REPO / "configs" / "faces.yaml").read_text())
    n = len(cfg["edits"]["methods"]) * len(cfg["edits"]["definitions"])
    stats = _job_stats(proc.stdout)
    assert stats["celebahq_images"] == stats["train_attribute_classifier"] == stats["project_faces"] == 1
    assert stats["train_edit"] == stats["evaluate_edit"] == n
    assert "digits_images" not in stats and "refine_encoder" not in stats


def test_missing_faces_file_fails_before_any_job_naming_the_key(tmp_path):
    proc = _snakemake(tmp_path, REPO / "configs" / "faces.yaml", "--cores", "1")
    assert proc.returncode != 0
    assert "config error: faces.celebahq_images: 'data/CelebAMask-HQ/CelebA-HQ-img' is not an existing folder" \
        in proc.stdout
    assert not (tmp_path / "results").exists()


def test_faces_config_extending_the_digits_config_is_refused_with_the_fix(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "config.yaml"), str(REPO / "configs" / "faces.yaml"), "-n"]
    proc = subprocess.run(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode != 0 and "add --replace-workflow-config" in proc.stdout


def test_unknown_celeba_attribute_in_a_definition_is_named(tmp_path):
    cfg = yaml.safe_load((REPO / "configs" / "faces.yaml").read_text())
    cfg["edits"]["definitions"]["add_smile"]["target"] = {"Smile": 1}
    (tmp_path / "faces.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(tmp_path, tmp_path / "faces.yaml", "-n", "--cores", "1")
    assert proc.returncode != 0
    assert "edits.definitions.add_smile.target: unknown attribute 'Smile'" in proc.stdout


@pytest.fixture(scope="module")
def tiny_faces_run(tmp_path_factory):
    from latentedit.faces.tiny import make_tiny_faces_world

    work = tmp_path_factory.mktemp("faces")
    make_tiny_faces_world(work / "tiny_faces")
    proc = _snakemake(work, REPO / "configs" / "faces_tiny.yaml", "--cores", "2", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work


@pytest.mark.slow
def test_tiny_faces_world_runs_end_to_end(tiny_faces_run):
    from latentedit.io.latent_store import read_latent_store

    root = tiny_faces_run / "results" / "faces"
    store = read_latent_store(root / "latents.h5")
    assert store.latents.shape[1:] == (6, 512)  # pSp W+ for a 16-px decoder: 2·log2(16) − 2 styles
    assert store.attrs["latent_space"] == "wplus"
    test_ids = store.ids[store.split == "test"]
    assert len(test_ids) == 24 and all(i.startswith("ffhq/") for i in test_ids)  # FFHQ is the evaluation set
    df = pd.read_parquet(root / "metrics.parquet")
    assert set(df["world"]) == {"faces"}
    edits = df[df["source"] == "edit_metrics"]
    cfg = yaml.safe_load((REPO / "configs" / "faces_tiny.yaml").read_text())
    assert set(edits["method"]) == set(cfg["edits"]["methods"])
    identity = edits[edits["metric"] == "identity"]["value"]
    assert len(identity) and np.isfinite(identity).all() and (identity <= 1 + 1e-5).all()
    oracle = json.loads((root / "oracle" / "metrics.json").read_text())
    assert len(oracle["test"]) == 40
    quality = json.loads((root / "projection" / "quality.json").read_text())
    assert np.isfinite(quality["psp"]["psnr"])
    for edit in cfg["edits"]["definitions"]:
        assert (root / "figures" / f"grid_{edit}.png").stat().st_size > 0


@pytest.mark.slow
def test_tiny_faces_run_is_complete(tiny_faces_run):
    proc = _snakemake(tiny_faces_run, REPO / "configs" / "faces_tiny.yaml", "-n", "--cores", "1")
    assert proc.returncode == 0 and _job_stats(proc.stdout) == {}, proc.stdout[-3000:]


@pytest.fixture(scope="module")
def tiny_faces_wstar_run(tiny_faces_run, tmp_path_factory):
    """A copy of the tiny faces run (results and Snakemake's records) continued with lw_wstar and ifg_wstar, so
    only W* and its jobs run: wstar.perceptual vgg16 on the tiny world's seeded VGG16 (faces_tiny.yaml)."""
    work = tmp_path_factory.mktemp("faces_wstar") / "run"
    shutil.copytree(tiny_faces_run, work, symlinks=True)
    cfg = yaml.safe_load((REPO / "configs" / "faces_tiny.yaml").read_text())
    cfg["edits"]["methods"] += ["lw_wstar", "ifg_wstar"]
    (work / "faces_wstar.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = _snakemake(work, work / "faces_wstar.yaml", "--cores", "2", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work


@pytest.mark.slow
def test_tiny_faces_wstar_with_vgg16_lands_table1_in_metrics(tiny_faces_wstar_run):
    from latentedit.wstar.metrics import TABLE_METRICS

    root = tiny_faces_wstar_run / "results" / "faces"
    options = json.loads((root / "wstar" / "options.json").read_text())
    assert options["perceptual"] == "vgg16" and options["perceptual_spec"]["layers"] == [8, 15, 22]
    assert options["distance_scale"] > 0
    assert "perceptual features: vgg16" in (tiny_faces_wstar_run / "logs/faces/wstar/train_wstar.log").read_text()
    df = pd.read_parquet(root / "metrics.parquet")
    table1 = df[(df["source"] == "wstar_metrics") & df["attribute"].isna()].set_index("metric")["value"]
    for space in ("original", "wstar"):
        for name in TABLE_METRICS:
            assert np.isfinite(table1[f"{space}.{name}"]), (space, name)
    assert table1.filter(like="svm_accuracy").between(0, 1).all()
    edits = df[df["source"] == "edit_metrics"]
    assert {"lw_wstar", "ifg_wstar"} <= set(edits["method"])
    assert "| metric | original | wstar |" in (root / "wstar" / "table.md").read_text()
    for rule in ("train_wstar", "wstar_metrics"):  # the measured cost (README "W*")
        bench = pd.read_csv(tiny_faces_wstar_run / "benchmarks/faces/wstar" / f"{rule}.tsv", sep="\t")
        print(f"{rule}: {float(bench['s'].iloc[0]):.1f} s, max RSS {float(bench['max_rss'].iloc[0]):.0f} MB")
