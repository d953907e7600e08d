"""The edit chain through Snakemake — labels, per-(method, edit) training, rendering, metrics, aggregation and
figures — on a tiny config (the default target `all`), exactly what a config or library change reruns, and
parse-time checks of edit definitions.

Every run happens in a pytest tmp dir (``--directory``) with the checkout's Snakefile, never in the checkout.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from latentedit.edits.methods import get_method
from latentedit.edits.model import apply_edit, load_edit
from latentedit.io.latent_store import read_latent_store
from latentedit.io.render_store import read_render_store
from test_pipeline_tiny import TINY

REPO = Path(__file__).resolve().parents[1]
EDITS = ["add_digit_1to2", "add_7"]  # a count edit (uniform weights) and a presence edit (balanced over counts)
METHODS = TINY["edits"]["methods"]
SEEDS = TINY["edits"]["seeds"]  # [0]: every (method, edit) is trained once, under edits/<method>/<edit>/seed0/
SEED = SEEDS[0]


def _edits_config() -> dict:
    """TINY with the smallest DLSGAN budget and two of its edit definitions (10 training jobs)."""
    cfg = copy.deepcopy(TINY)
    cfg["dlsgan"]["train"].update(epochs=1, steps_per_epoch=2, eval_samples=20)
    cfg["edits"]["definitions"] = {e: cfg["edits"]["definitions"][e] for e in EDITS}
    return cfg


def _snakemake(work: Path, *args: str, configfile: str = "config.yaml", cores: int = 1,
               timeout: int = 180) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / configfile), "--cores", str(cores), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def _job_stats(output: str) -> dict[str, int]:
    """The ``Job stats`` table of a dry run as {rule: count} ({} when there is nothing to do)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)
            if m.group(1) != "total"}


def _edit_jobs(output: str) -> set[tuple[str, str, int]]:
    """(method, edit, seed) of every train_edit job a dry run lists."""
    return {(m, e, int(s)) for m, e, s in
            re.findall(r"output: results/digits/edits/(\w+)/(\w+)/seed(\d+)/model\.pt", output)}


# ---------------------------------------------------------------------------------------------------------------
# End to end (target `edits`)


@pytest.fixture(scope="module")
def edits_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("edits")
    (work / "config.yaml").write_text(yaml.safe_dump(_edits_config(), sort_keys=False))
    proc = _snakemake(work, "all", cores=2, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work


@pytest.mark.slow
def test_every_method_and_edit_produced_its_outputs(edits_run):
    root = edits_run / "results/digits"
    for rel in ["labels/classifiers.pt", "labels/classifier_metrics.json", "labels/correlations.csv",
                "labels/correlations.png", "edits/latent_target_change.csv", "edits/latent_target_change.md"]:
        assert (root / rel).stat().st_size > 0, rel
    for method in METHODS:
        for edit in EDITS:
            for name in ("model.pt", "options.json", "history.csv"):
                assert (root / "edits" / method / edit / f"seed{SEED}" / name).stat().st_size > 0, (method, edit, name)
            assert (edits_run / "logs/digits/edits" / method / edit / f"seed{SEED}.log").is_file(), (method, edit)
    for method in METHODS:
        for edit in EDITS:
            assert (root / "render" / method / edit / f"seed{SEED}.h5").stat().st_size > 0, (method, edit)
            assert (root / "metrics" / method / edit / f"seed{SEED}.parquet").stat().st_size > 0, (method, edit)
    for rel in ["metrics.parquet", "summary.csv", "summary.md", "figures/preservation_vs_change.png",
                "figures/latent_vs_image.png", "figures/realism.png", "figures/rescoring.png",
                *(f"figures/grid_{e}.png" for e in EDITS), *(f"figures/curves_{e}.png" for e in EDITS)]:
        assert (root / rel).stat().st_size > 0, rel
    # nothing is left at the pre-seed paths
    assert not list(root.glob("edits/*/*/model.pt")) and not list(root.glob("render/*/*.h5"))
    assert not list(root.glob("metrics/*/*.parquet"))


@pytest.mark.slow
def test_results_table_and_summary(edits_run):
    root = edits_run / "results/digits"
    df = pd.read_parquet(root / "metrics.parquet")
    from latentedit.evaluation.aggregate import COLUMNS

    assert list(df.columns) == COLUMNS
    assert (df["world"] == "digits").all() and df["config_hash"].str.len().eq(16).all()
    assert set(df["source"]) >= {"edit_metrics", "edit_training", "dlsgan_quality", "inversion_quality"}
    assert str(df["seed"].dtype) == "Int64" and df["ci_low"].dtype == df["ci_high"].dtype == np.float64
    m = df[df["source"] == "edit_metrics"]
    assert set(zip(m["method"], m["edit"], m["seed"])) == {(a, e, s) for a in METHODS for e in EDITS for s in SEEDS}
    training = df[df["source"] == "edit_training"]
    assert set(zip(training["method"], training["edit"], training["seed"])) == \
        {(a, e, s) for a in METHODS for e in EDITS for s in SEEDS}
    assert df.loc[~df["source"].isin(["edit_metrics", "edit_training"]), "seed"].isna().all()  # stage rows: NA
    rates = m[m["metric"].isin(["target_change_rate", "attribute_preservation", "latent_target_change_rate"])]
    assert rates["value"].between(0, 1).all()
    # every rate carries its 95 % bootstrap interval over the test images, around the value
    assert rates["ci_low"].notna().all() and rates["ci_high"].notna().all()
    assert ((rates["ci_low"] <= rates["value"] + 1e-9) & (rates["value"] <= rates["ci_high"] + 1e-9)).all()
    assert (rates["ci_low"] >= 0).all() and (rates["ci_high"] <= 1).all()
    n_alpha = TINY["render"]["n_alphas"] + 1
    for (method, edit), g in m[m["metric"] == "target_change_rate"].groupby(["method", "edit"]):
        assert len(g) in (1, n_alpha) and g["alpha"].min() == 0.0, (method, edit)
    # re-scoring, realism and the latent distance to the target: rows for every method and edit
    for metric in ("rescoring", "realism_fd", "realism_kid", "latent_sinkhorn_to_target", "latent_sinkhorn_floor"):
        rows = m[m["metric"] == metric]
        assert set(zip(rows["method"], rows["edit"])) == {(a, e) for a in METHODS for e in EDITS}, metric
        assert np.isfinite(rows["value"]).all(), metric
    rescoring = m[m["metric"] == "rescoring"]
    n_attributes = len(read_latent_store(edits_run / "results/digits/latents.h5").attribute_names)
    for (method, edit), g in rescoring.groupby(["method", "edit"]):
        assert g["attribute"].nunique() == n_attributes, (method, edit)  # every attribute is re-scored
        assert (g.loc[g["alpha"] == 0.0, "value"] == 0.0).all(), (method, edit)  # the reconstruction vs itself
    summary = pd.read_csv(root / "summary.csv")
    from latentedit.evaluation.aggregate import SEED_SUMMARY_COLUMNS

    assert list(summary.columns) == SEED_SUMMARY_COLUMNS
    assert len(summary) == len(METHODS) * len(EDITS)
    assert set(zip(summary["method"], summary["edit"])) == {(a, e) for a in METHODS for e in EDITS}
    assert (summary["n_seeds"] == len(SEEDS)).all()
    assert summary["target_change_rate_std"].isna().all()  # one seed: no spread over seeds
    assert summary["target_change_rate_ci_low"].notna().all() and summary["realism_fd"].notna().all()
    md = (root / "summary.md").read_text()
    tables = md.split("\n## ")
    table2 = next(t for t in tables if t.startswith("Target change, preservation and identity"))
    realism = next(t for t in tables if t.startswith("Realism of the edited images"))
    for table, column in ((table2, "target_change_rate"), (realism, "realism_fd")):
        lines = [line for line in table.splitlines() if line.startswith("|")]
        header = [c.strip() for c in lines[0].split("|")[1:-1]]
        rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
        assert len(rows) == len(METHODS) * len(EDITS), table
        assert all("[" in r[header.index(column)] and "]" in r[header.index(column)] for r in rows), table
    renders = read_render_store(root / "render/lw" / EDITS[0] / f"seed{SEED}.h5")
    assert renders.alphas[0] == 0.0 and renders.images.shape[1] <= TINY["render"]["max_images"]
    assert renders.calibration["tau"] == TINY["render"]["calibration_rate"]


@pytest.mark.slow
def test_labels_outputs(edits_run):
    root = edits_run / "results/digits/labels"
    store = read_latent_store(edits_run / "results/digits/latents.h5")
    metrics = json.loads((root / "classifier_metrics.json").read_text())
    assert list(metrics["test"]) == store.attribute_names
    assert all(0 <= v <= 1 for v in metrics["test"].values())
    gamma = pd.read_csv(root / "correlations.csv", index_col=0)
    assert list(gamma.columns) == store.attribute_names == list(gamma.index)
    np.testing.assert_allclose(gamma.to_numpy(), gamma.to_numpy().T, atol=1e-6)
    assert ((gamma.to_numpy() >= 0) & (gamma.to_numpy() <= 1)).all()


@pytest.mark.slow
def test_models_load_weights_only_and_apply(edits_run):
    store = read_latent_store(edits_run / "results/digits/latents.h5")
    z = torch.as_tensor(store.latents[:8])
    for method in METHODS:
        for edit in EDITS:
            path = edits_run / "results/digits/edits" / method / edit / f"seed{SEED}" / "model.pt"
            raw = torch.load(path, weights_only=True)
            assert (raw["kind"], raw["method"], raw["edit"]) == ("edit", method, edit)
            assert raw["definition"]["attribute"] == TINY["edits"]["definitions"][edit]["attribute"]
            out = apply_edit(load_edit(path), z, alpha=1.0)
            assert out.shape == z.shape and torch.isfinite(out).all()


@pytest.mark.slow
def test_options_hold_the_resolved_options(edits_run):
    root = edits_run / "results/digits/edits"
    for method in METHODS:
        for edit in EDITS:
            opts = json.loads((root / method / edit / f"seed{SEED}" / "options.json").read_text())
            assert (opts["method"], opts["edit"]) == (method, edit)
            definition = TINY["edits"]["definitions"][edit]
            assert opts["definition"]["source"] == definition["source"]
            assert opts["n_codes"]["train_source"] > 0 and opts["n_codes"]["val_target"] > 0
            # every value the config sets is the value the job used (the library fills only what it omits)
            given = {k: v for k, v in TINY["edits"][get_method(method).options].items() if k != "alpha"}
            assert given.items() <= opts["config"].items(), (method, edit)
            assert opts["config"]["seed"] == SEED, (method, edit)  # the job's seed, from the {seed} wildcard
            if method == "lw":
                assert opts["config"]["lambda_pres"] == definition["lambda_pres"]
                assert opts["blur"] > 0 and "pres_blur" in opts
                assert opts["weight_columns"] == [a for a in TINY["labels"]["weight_attributes"]
                                                  if a not in opts["changed_attributes"]]
            if method == "lw_nopres":
                assert opts["config"]["lambda_pres"] == 0.0
            if method.startswith("lt"):
                assert opts["config"]["core"] == (method == "lt_core")
                assert "lambda_reg" in opts["config"] and "layers" in opts["config"]  # LTConfig defaults too
    # the latent classifiers' options too: what the config sets is what the job used
    classifier = json.loads((edits_run / "results/digits/labels/classifier_metrics.json").read_text())["options"]
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in classifier.items()} == \
        TINY["labels"]["classifier"]


@pytest.mark.slow
def test_summary_has_one_row_per_method_and_edit(edits_run):
    root = edits_run / "results/digits/edits"
    df = pd.read_csv(root / "latent_target_change.csv")
    assert len(df) == len(METHODS) * len(EDITS)
    assert set(zip(df["method"], df["edit"])) == {(m, e) for m in METHODS for e in EDITS}
    for col in ("initial_rate", "target_change_rate", "preservation", "min_preservation"):
        assert df[col].between(0, 1).all(), col
    assert (df["n_test_source"] > 0).all()
    assert (df.loc[df["method"] != "ifg", "alpha"] == 1.0).all()
    by = df.set_index(["method", "edit"])
    for edit in EDITS:  # InterFaceGAN steps as far as LW moves on average (config alpha when LW kept the identity)
        lw_norm = by.loc[("lw", edit), "mean_edit_norm"]
        expected = lw_norm if lw_norm > 0 else TINY["edits"]["ifg"]["alpha"]
        assert by.loc[("ifg", edit), "alpha"] == pytest.approx(expected, rel=1e-4)
    md = (root / "latent_target_change.md").read_text()
    assert md.count("| lw |") == len(EDITS)


@pytest.mark.slow
def test_completed_run_has_nothing_to_rerun(edits_run):
    proc = _snakemake(edits_run, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert _job_stats(proc.stdout) == {}, proc.stdout[-4000:]


AGGREGATE = {"aggregate_metrics": 1, "metrics_figures": 1, "all": 1}


def _add_3(c):
    c["edits"]["definitions"]["add_3"] = {"source": {"has_3": 0}, "target": {"has_3": 1}, "attribute": "has_3",
                                          "lambda_pres": 1.0}


def _reorder(c):
    """The same config with every mapping's keys in reverse order."""
    def rev(v):
        return {k: rev(v[k]) for k in reversed(list(v))} if isinstance(v, dict) else v

    reordered = rev(c)
    c.clear()
    c.update(reordered)


@pytest.mark.slow
@pytest.mark.parametrize("change, expected_edit_jobs, expected", [
    # one edit's lambda_pres: that edit's lw model only (lw_nopres, LT and IFG do not read it), its evaluation
    # (renders and metrics), its grid and training curves, then the aggregation
    (lambda c: c["edits"]["definitions"]["add_7"].update(lambda_pres=2.0), {("lw", "add_7", SEED)},
     {"train_edit": 1, "evaluate_edit": 1, "edit_grid": 1, "edit_curves": 1, "edits_latent_summary": 1,
      **AGGREGATE}),
    # one more edit: its five models, evaluations, grid and curves, then the aggregation
    (_add_3, {(m, "add_3", SEED) for m in METHODS},
     {"train_edit": 5, "evaluate_edit": 5, "edit_grid": 1, "edit_curves": 1, "edits_latent_summary": 1,
      **AGGREGATE}),
    # a plotting option: the figures that read it only (the training curves do not)
    (lambda c: c["plots"].update(dpi=60), set(), {"metrics_figures": 1, "edit_grid": len(EDITS), "all": 1}),
    # the IFG evaluation step of the latent summary: that summary, and the aggregation (its provenance hash covers
    # every result-bearing key)
    (lambda c: c["edits"]["ifg"].update(alpha=2.5), set(), {"edits_latent_summary": 1, **AGGREGATE}),
    # the LT options: lt and lt_core of every edit, and what follows them
    (lambda c: c["edits"]["lt"].update(lambda_reg=1.0), {(m, e, SEED) for m in ("lt", "lt_core") for e in EDITS},
     {"train_edit": 4, "evaluate_edit": 4, "edit_grid": len(EDITS), "edit_curves": len(EDITS),
      "edits_latent_summary": 1, **AGGREGATE}),
    # a second training seed: every (method, edit) of that seed, its evaluation, then the aggregation; the
    # grids, the training curves and the latent summary show the first seed, so they stay
    (lambda c: c["edits"].update(seeds=[SEED, SEED + 1]), {(m, e, SEED + 1) for m in METHODS for e in EDITS},
     {"train_edit": len(METHODS) * len(EDITS), "evaluate_edit": len(METHODS) * len(EDITS), **AGGREGATE}),
    # the same config re-saved with its keys in another order: nothing
    (_reorder, set(), {}),
])
def test_config_change_reruns_exactly_what_it_touches(edits_run, change, expected_edit_jobs, expected):
    cfg = _edits_config()
    change(cfg)
    (edits_run / "changed.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = _snakemake(edits_run, "-n", configfile="changed.yaml")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert _job_stats(proc.stdout) == expected, proc.stdout[-4000:]
    assert _edit_jobs(proc.stdout) == expected_edit_jobs


@pytest.mark.slow
@pytest.mark.parametrize("module, expected", [
    # a library module is a code input of the jobs whose scripts reach it (latentedit.code_inputs; Snakemake does
    # not follow imports): touching the calibration code reruns every evaluation job and what follows, nothing
    # upstream
    ("render/calibrate.py", {"evaluate_edit": 2 * len(METHODS), "edit_grid": len(EDITS), **AGGREGATE}),
    ("evaluation/aggregate.py", AGGREGATE),
    # the image-realism metrics: every evaluation job (rendering and judging are one job), and what follows
    ("evaluation/realism.py", {"evaluate_edit": 2 * len(METHODS), "edit_grid": len(EDITS), **AGGREGATE}),
    ("edits/lt.py", {"train_edit": 4, "evaluate_edit": 4, "edit_grid": len(EDITS), "edit_curves": len(EDITS),
                     "edits_latent_summary": 1, **AGGREGATE}),
    # the world's generator and judge: the jobs that load them, and what follows
    ("worlds.py", {"evaluate_edit": 2 * len(METHODS), "edit_grid": len(EDITS), **AGGREGATE}),
    # the edit-model file: every job that writes or reads an edit model, and what follows
    ("edits/model.py", {"train_edit": 2 * len(METHODS), "evaluate_edit": 2 * len(METHODS),
                        "edit_grid": len(EDITS), "edit_curves": len(EDITS), "edits_latent_summary": 1,
                        **AGGREGATE}),
])
def test_library_change_reruns_the_stages_that_import_it(edits_run, module, expected):
    """Edits the module's bytes (a trailing comment), dry-runs, and restores bytes and mtime. A bare `touch` is not
    a change: Snakemake compares the checksums of small inputs whose mtime moved, and reruns nothing."""
    path = REPO / "latentedit" / module
    original, before = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original + b"\n# a code change\n")
        proc = _snakemake(edits_run, "-n")
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert _job_stats(proc.stdout) == expected, proc.stdout[-4000:]


# ---------------------------------------------------------------------------------------------------------------
# Dry runs and parse-time checks (fast)


def test_edits_dry_run_lists_one_job_per_method_and_edit(tiny_config, tmp_path, write_config, run_snakemake):
    tiny_config["edits"]["definitions"]["remove_7"] = {"source": {"has_7": 1}, "target": {"has_7": 0},
                                                       "attribute": "has_7", "lambda_pres": 1.0}
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "-n", "edits")
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = _job_stats(proc.stdout)
    methods, edits = tiny_config["edits"]["methods"], list(tiny_config["edits"]["definitions"])
    assert jobs["train_edit"] == len(methods) * len(edits)
    assert jobs["train_latent_classifiers"] == jobs["edits_latent_summary"] == jobs["edits"] == 1
    assert jobs["edit_curves"] == len(edits)  # the training curves are part of the target `edits`
    assert _edit_jobs(proc.stdout) == {(m, e, s) for m in methods for e in edits for s in tiny_config["edits"]["seeds"]}
    assert "dlsgan_quality" not in jobs
    assert not (tmp_path / "results").exists()


def test_default_target_runs_the_whole_chain(tiny_config, tmp_path, write_config, run_snakemake):
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = _job_stats(proc.stdout)
    n = len(tiny_config["edits"]["methods"]) * len(tiny_config["edits"]["definitions"])
    assert jobs["train_edit"] == jobs["evaluate_edit"] == n
    assert jobs["edit_grid"] == jobs["edit_curves"] == len(tiny_config["edits"]["definitions"])
    assert jobs["aggregate_metrics"] == jobs["metrics_figures"] == jobs["train_latent_classifiers"] == 1
    for figure in ("realism", "rescoring"):  # part of the default target
        assert f"results/digits/figures/{figure}.png" in proc.stdout, figure


def test_every_seed_trains_renders_and_measures_every_method_and_edit(tiny_config, tmp_path, write_config,
                                                                      run_snakemake):
    """edits.seeds: one training, render and metrics job per (method, edit, seed); the grids and the latent summary
    show the first seed, and one aggregation reads every seed."""
    tiny_config["edits"]["seeds"] = [3, 1]
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = _job_stats(proc.stdout)
    methods, edits = tiny_config["edits"]["methods"], list(tiny_config["edits"]["definitions"])
    n = len(methods) * len(edits)
    assert jobs["train_edit"] == jobs["evaluate_edit"] == 2 * n
    assert jobs["edit_grid"] == len(edits)
    assert jobs["edits_latent_summary"] == jobs["aggregate_metrics"] == jobs["metrics_figures"] == 1
    assert _edit_jobs(proc.stdout) == {(m, e, s) for m in methods for e in edits for s in (3, 1)}
    for m in methods:
        for e in edits:
            for s in (3, 1):
                for rel in (f"render/{m}/{e}/seed{s}.h5", f"metrics/{m}/{e}/seed{s}.parquet"):
                    assert f"results/digits/{rel}" in proc.stdout, rel
    # the grids and the latent summary read the first seed's renders and models only
    grid = re.search(r"rule edit_grid:\n\s+input: (.+)\n", proc.stdout).group(1)
    assert "/seed3.h5" in grid and "/seed1.h5" not in grid
    summary = re.search(r"rule edits_latent_summary:\n\s+input: (.+)\n", proc.stdout).group(1)
    assert "/seed3/model.pt" in summary and "/seed1/" not in summary


def _set(cfg: dict, path: tuple, value) -> None:
    node = cfg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


@pytest.mark.parametrize("path, value, message", [
    (("edits", "definitions", "add_7", "source"), {"has_77": 0},
     "edits.definitions.add_7.source: unknown attribute 'has_77'"),
    (("edits", "definitions", "add_7", "target"), {"has_7": 1, "count_5": 1},
     "edits.definitions.add_7.target: unknown attribute 'count_5'"),
    (("edits", "definitions", "add_7", "attribute"), "has_8",
     "edits.definitions.add_7.attribute: 'has_8' must be one of the target's attributes"),
    (("edits", "definitions", "add_digit_1to2", "attribute"), "colour",
     "edits.definitions.add_digit_1to2.attribute: unknown attribute 'colour'"),
    (("labels", "weight_attributes"), ["count_1", "count_9"],
     "labels.weight_attributes: unknown attribute 'count_9'"),
    (("edits", "methods"), ["lw", "gan"],
     "config error: edits.methods: unknown edit method 'gan' (known: lw, lw_nopres, lt, lt_core, ifg, lw_wstar"),
])
def test_unknown_attribute_in_edits_fails_naming_it(tiny_config, tmp_path, write_config, run_snakemake, path,
                                                     value, message):
    _set(tiny_config, path, value)
    write_config(tiny_config)
    proc = run_snakemake(tmp_path, "-n", "edits")
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert "Job stats" not in proc.stdout
    assert message in proc.stdout, proc.stdout[-4000:]
    assert not (tmp_path / "results").exists()
