"""Faults: a pipeline killed mid-job resumes to the same results, a rerun is bit-identical, bad inputs fail with one
error naming the file, and untrusted checkpoints never execute code.

The workflow tests share two tiny runs of the default target `all` (module fixtures, in pytest tmp dirs):

- ``reference``: uninterrupted;
- ``crashed``: the same config from scratch, SIGKILLed (the whole Snakemake process group) once in the middle of an
  edit-training job and once in the middle of an HDF5 write (a render store), each time unlocked (``snakemake
  --unlock``: a SIGKILLed Snakemake leaves its directory lock) and rerun with the same command. The test hook
  ``LATENTEDIT_TEST_PAUSE_WRITING`` of :mod:`latentedit.io.atomic` holds the killed job before its output reaches
  its final name, so the kill cannot come after the job has finished, however loaded the machine.

Every bad-input scenario corrupts one file of a copy of ``reference`` and asks for one output of the job that reads
it. ``SOURCE_DATE_EPOCH`` fixes the results table's ``created`` stamp, so two runs can be compared byte for byte.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import yaml
from test_pipeline_tiny import tiny_edit_config

from latentedit.data.celebahq import DataFileError, match_rows, parse_attribute_file
from latentedit.evaluation.aggregate import collect, history_rows
from latentedit.io.atomic import PAUSE_ENV, atomic_path, temporary_siblings
from latentedit.io.checkpoints import CheckpointError
from latentedit.io.provenance import creation_time

REPO = Path(__file__).resolve().parents[1]
EDIT = "add_7"
METHODS = ["lw", "ifg"]  # a trained affine edit and an InterFaceGAN direction: 18 jobs in all
SEEDS = [0]  # edits.seeds of the config (tests/test_pipeline_tiny.py TINY)
TABLE = "results/digits/metrics.parquet"
KILLED_TRAINING = ("train_edit", "results/digits/edits/lw/add_7/seed0/model.pt")  # a job: (rule, first output)
KILLED_WRITE = ("evaluate_edit", "results/digits/render/lw/add_7/seed0.h5")
EPOCH = "1700000000"  # SOURCE_DATE_EPOCH: the results table's `created`
# Every run of the config uses the same --cores: the rules with `threads: 2` set torch's intra-op threads from it,
# and 1 and 2 threads round differently (weights differ at ~1e-8, and so do the metrics).
CORES = 2


def _config() -> dict:
    return tiny_edit_config(METHODS, [EDIT])


def _command(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / "config.yaml"), "--cores", str(CORES), *args]


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SOURCE_DATE_EPOCH": EPOCH, **extra}


def _snakemake(work: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(_command(work, *args), cwd=work, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)


def _blocks(output: str) -> list[tuple[tuple[str, str], list[str], str]]:
    """(job, outputs, jobid) of every job block a Snakemake run or dry run prints; a job is (rule, first output)."""
    found = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:[ \t]+\S.*\n?)*)", output, re.MULTILINE):
        out = re.search(r"^\s+output: (.+)$", m.group(2), re.MULTILINE)
        jobid = re.search(r"^\s+jobid: (\d+)$", m.group(2), re.MULTILINE)
        files = [f.strip() for f in out.group(1).split(",")] if out else []
        found.append(((m.group(1), files[0] if files else ""), files, jobid.group(1) if jobid else ""))
    return found


def _jobs(output: str) -> set[tuple[str, str]]:
    """The jobs a run started, or a dry run would run."""
    return {job for job, _, _ in _blocks(output)}


def _finished(output: str) -> set[tuple[str, str]]:
    """The jobs a run reported finished."""
    done = set(re.findall(r"^Finished jobid: (\d+) ", output, re.MULTILINE))
    return {job for job, _, jobid in _blocks(output) if jobid in done}


def _pending(work: Path) -> set[tuple[str, str]]:
    """The jobs a dry run of `all` would run (the workflow profile's rerun-incomplete applies)."""
    proc = _snakemake(work, "-n")
    assert proc.returncode == 0, proc.stdout[-4000:]
    return _jobs(proc.stdout)


OUTPUT_DIRS = ("results", "benchmarks")  # every rule's outputs, its timing record among them


def _mtimes(work: Path, files=None) -> dict[str, int]:
    """mtime of every file under the output folders (or of those of ``files`` that exist)."""
    paths = ((p for d in OUTPUT_DIRS for p in (work / d).rglob("*")) if files is None else
             (work / f for f in files))
    return {str(p.relative_to(work)): p.stat().st_mtime_ns for p in paths if p.is_file()}


def _temporaries(work: Path) -> list[Path]:
    return sorted(p for d in OUTPUT_DIRS for p in (work / d).rglob(".*.tmp-*"))


def _run_until_killed(work: Path, log: Path, ready, timeout: float = 600, **env: str) -> float:
    """Start `all` in its own process group, SIGKILL the whole group as soon as ``ready()`` holds; return the
    seconds it ran. Fails if the run ends first or ``ready`` never holds."""
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(_command(work), cwd=work, env=_env(**env), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while not ready():
                assert proc.poll() is None, f"the run ended before the kill point:\n{log.read_text()[-4000:]}"
                assert time.monotonic() - t0 < timeout, f"no kill point within {timeout} s:\n{log.read_text()[-4000:]}"
                time.sleep(0.02)
            jobs = psutil.Process(proc.pid).children(recursive=True)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(jobs, timeout=10)
    assert not alive, f"job processes survived the kill: {alive}"
    return time.monotonic() - t0


def _log_has(path: Path, text: str):
    return lambda: path.exists() and text in path.read_text()


# ---------------------------------------------------------------------------------------------------------------
# Crash and resume; determinism


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The uninterrupted run, started in the background: it fills the second core while the crashed run is in its
    serial stretches."""
    work = tmp_path_factory.mktemp("reference")
    (work / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    with open(work / "run.log", "w") as out:
        proc = subprocess.Popen(_command(work), cwd=work, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    yield work, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def reference(reference_run):
    work, proc = reference_run
    assert proc.wait(timeout=900) == 0, (work / "run.log").read_text()[-6000:]
    return work


@pytest.fixture(scope="module")
def dag(reference) -> dict[tuple[str, str], list[str]]:
    """Every job of `all` with its outputs."""
    proc = _snakemake(reference, "-n", "--forceall")
    assert proc.returncode == 0, proc.stdout[-4000:]
    return {job: files for job, files, _ in _blocks(proc.stdout)}


@pytest.fixture(scope="module")
def crashed(tmp_path_factory, reference_run):
    """Run `all` from scratch, SIGKILL it mid-training, rerun, SIGKILL it mid-write, rerun to the end; record which
    jobs each run started and finished, what the dry runs between them list, and the files they left."""
    work = tmp_path_factory.mktemp("crashed")
    (work / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    seen = {"work": work}

    def after_kill(step: int) -> None:
        text = (work / f"run{step}.log").read_text()
        seen[f"started_{step}"], seen[f"finished_{step}"] = _jobs(text), _finished(text)
        seen[f"temporaries_{step}"] = _temporaries(work)
        seen[f"mtimes_{step}"] = _mtimes(work)
        seen[f"pending_{step}"] = _pending(work)

    def unlock() -> None:
        proc = _snakemake(work, "--unlock")
        assert proc.returncode == 0, proc.stdout[-4000:]

    # 1. mid-training: the LW job has logged its starting point and is in its epochs. Its tiny training (4 steps)
    # can end within the watcher's polling on a busy machine, so the job also pauses before its model file reaches
    # its final name: whenever the watcher sees the log line, the job has not finished.
    seen["wall_1"] = _run_until_killed(work, work / "run1.log",
                                       _log_has(work / "logs/digits/edits/lw/add_7/seed0.log", "before training"),
                                       **{PAUSE_ENV: f"*{KILLED_TRAINING[1]}"})
    after_kill(1)
    # a SIGKILLed Snakemake cannot release its directory lock: the same command refuses to start, saying what to do
    seen["locked"] = _snakemake(work)
    unlock()
    # 2. the same command, killed mid-write: the lw/add_7 render store is open under its temporary name, its
    # datasets written (the test hook pauses there)
    render = work / KILLED_WRITE[1]
    seen["wall_2"] = _run_until_killed(work, work / "run2.log", lambda: bool(temporary_siblings(render)),
                                       **{PAUSE_ENV: f"*{KILLED_WRITE[1]}"})
    after_kill(2)
    unlock()
    # 3. the same command again, to the end
    t0 = time.monotonic()
    proc = _snakemake(work)
    seen["wall_3"] = time.monotonic() - t0
    (work / "run3.log").write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    seen["started_3"] = _jobs(proc.stdout)
    return seen


@pytest.mark.slow
def test_after_a_sigkill_the_rerun_asks_for_unlock(crashed):
    locked = crashed["locked"]
    assert locked.returncode != 0
    assert "Directory cannot be locked" in locked.stdout and "--unlock" in locked.stdout, locked.stdout[-4000:]
    assert _jobs(locked.stdout) == set()  # refused before running anything


@pytest.mark.slow
def test_kill_mid_training_reruns_only_the_interrupted_jobs(crashed, dag):
    interrupted = crashed["started_1"] - crashed["finished_1"]
    assert KILLED_TRAINING in interrupted
    assert KILLED_TRAINING[1] not in crashed["mtimes_1"]
    assert {"digits_images", "train_dlsgan", "project"} <= {rule for rule, _ in crashed["finished_1"]}
    # the dry run lists the interrupted jobs and those not run yet, none of the finished ones
    assert crashed["pending_1"] == set(dag) - crashed["finished_1"]
    # the rerun ran the interrupted jobs again, none of the finished ones, and left their files alone
    assert interrupted <= crashed["started_2"]
    assert not crashed["started_2"] & crashed["finished_1"]
    kept = [f for job in crashed["finished_1"] for f in dag[job]]
    assert _mtimes(crashed["work"], kept) == {f: crashed["mtimes_1"][f] for f in kept}


@pytest.mark.slow
def test_kill_mid_hdf5_write_leaves_no_store_and_reruns_that_job(crashed, dag):
    interrupted = crashed["started_2"] - crashed["finished_2"]
    assert KILLED_WRITE in interrupted
    # killed with the store open under its temporary name: nothing at the final name
    render = crashed["work"] / KILLED_WRITE[1]
    assert crashed["temporaries_2"] and {p.parent for p in crashed["temporaries_2"]} == {render.parent}
    assert KILLED_WRITE[1] not in crashed["mtimes_2"]
    done = crashed["finished_1"] | crashed["finished_2"]
    assert crashed["pending_2"] == set(dag) - done
    assert crashed["started_3"] == crashed["pending_2"]  # the rerun did what the dry run said, nothing more
    kept = [f for job in done for f in dag[job]]
    assert _mtimes(crashed["work"], kept) == {f: crashed["mtimes_2"][f] for f in kept}


@pytest.mark.slow
def test_resumed_run_completes_cleanly(crashed):
    assert _temporaries(crashed["work"]) == []  # the rerun's write removed the killed writer's temporary
    assert _pending(crashed["work"]) == set()


@pytest.mark.slow
def test_same_config_and_seed_give_bit_identical_results(crashed, reference):
    """Two runs of the same config from scratch — one killed twice and resumed, one not — write the same bytes: the
    results table, every per-(method, edit, seed) metrics table, the summary."""
    for rel in [TABLE, "results/digits/summary.csv",
                *(f"results/digits/metrics/{m}/{EDIT}/seed{s}.parquet" for m in METHODS for s in SEEDS)]:
        assert (crashed["work"] / rel).read_bytes() == (reference / rel).read_bytes(), rel
    table = pd.read_parquet(reference / TABLE)
    assert (table["created"] == "2023-11-14T22:13:20+00:00").all()  # SOURCE_DATE_EPOCH
    assert len(table) > 100 and not table["metric"].str.endswith("seconds").any()


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs: one clear error naming the file, at the job that reads it, and no output that looks complete


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _nan_latent(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["latents"][3, 0] = np.nan


def _checkpoint_edit(mutate):
    def corrupt(path: Path) -> None:
        ck = torch.load(path, weights_only=True)
        mutate(ck)
        torch.save(ck, path)

    return corrupt


def _mis_shape_first_tensor(ck) -> None:
    key = next(iter(ck["state_dict"]))
    ck["state_dict"][key] = torch.zeros(*(s + 1 for s in ck["state_dict"][key].shape))


class _Payload:
    """Unpickling this object calls ``Path.touch(marker)``: arbitrary code execution, made observable."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _evil(marker: Path):
    def corrupt(path: Path) -> None:
        ck = torch.load(path, weights_only=True)
        torch.save({**ck, "payload": _Payload(marker)}, path)

    return corrupt


BAD_INPUTS = {
    # name: (file, corruption, target whose job reads the file first, the error)
    "latents_truncated": ("results/digits/latents.h5", _truncate, KILLED_TRAINING[1],
                          "results/digits/latents.h5: not a readable HDF5 file (truncated or corrupt?)"),
    "images_garbage": ("results/digits/images.h5", _garbage, "results/digits/oracle/model.pt",
                       "results/digits/images.h5: not a readable HDF5 file (truncated or corrupt?)"),
    "latents_nan": ("results/digits/latents.h5", _nan_latent, KILLED_TRAINING[1],
                    "results/digits/latents.h5: 1 latent code(s) contain NaN/inf (first rows: [3])"),
    "classifier_shapes": ("results/digits/labels/classifiers.pt", _checkpoint_edit(_mis_shape_first_tensor),
                          KILLED_TRAINING[1], ("results/digits/labels/classifiers.pt: checkpoint does not match the "
                                               "model: missing keys [], unexpected keys [], shape mismatches [")),
    "generator_keys": ("results/digits/dlsgan/dls/checkpoint.pt", _checkpoint_edit(lambda ck: ck.pop("scale")),
                       "results/digits/projection/encoder.pt",
                       "results/digits/dlsgan/dls/checkpoint.pt: the 'dlsgan' checkpoint lacks the key(s) ['scale']"),
    "edit_model_pickle": ("results/digits/edits/lw/add_7/seed0/model.pt", None, KILLED_WRITE[1],
                          "results/digits/edits/lw/add_7/seed0/model.pt: cannot load checkpoint safely "
                          "(weights_only=True)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_fails_once_naming_the_file(reference, dag, tmp_path, name):
    rel, corrupt, target, message = BAD_INPUTS[name]
    work = tmp_path / "work"
    shutil.copytree(reference, work, symlinks=True)
    marker = tmp_path / "pwned"
    (corrupt or _evil(marker))(work / rel)
    before = _mtimes(work)
    proc = _snakemake(work, target)
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert message in proc.stdout, proc.stdout[-6000:]
    failed = re.findall(r"^Error in rule (\w+):", proc.stdout, re.MULTILINE)
    assert len(failed) == 1, proc.stdout[-6000:]  # one job failed: the first one to read the file
    assert not marker.exists()
    # the failed job's outputs are gone (so a rerun redoes it) and nothing else was written
    job = next(j for j in _jobs(proc.stdout) if j[0] == failed[0])
    assert not any((work / f).exists() for f in dag[job])
    after = _mtimes(work)
    assert after == {f: before[f] for f in after if f in before}  # nothing new, nothing rewritten


# ---------------------------------------------------------------------------------------------------------------
# Untrusted checkpoints


# Every function that reads a checkpoint file: (module, function); the faces ones need the faces extra.
LOADERS = {
    "load_checkpoint": ("latentedit.io.checkpoints", "load_checkpoint"),
    "load_dlsgan": ("latentedit.dlsgan.checkpoint", "load_dlsgan"),
    "load_encoder": ("latentedit.dlsgan.checkpoint", "load_encoder"),
    "load_code_encoder": ("latentedit.projection.wplus", "load_code_encoder"),
    "load_edit": ("latentedit.edits.model", "load_edit"),
    "load_wstar": ("latentedit.wstar.realnvp", "load_wstar"),
    "load_latent_classifiers": ("latentedit.labels.classifiers", "load_latent_classifiers"),
    "load_oracle": ("latentedit.oracles.digits_oracle", "load_oracle"),
    "load_attribute_classifier": ("latentedit.faces.attributes", "load_attribute_classifier"),
    "load_pretrained_backbone": ("latentedit.faces.attributes", "load_pretrained_backbone"),
    "load_psp": ("latentedit.faces.psp", "load_psp"),
}


def _loader(name: str):
    """The loader as a function of the path alone."""
    import importlib

    module, func = LOADERS[name]
    module = pytest.importorskip(module) if module.startswith("latentedit.faces") else importlib.import_module(module)
    if name == "load_pretrained_backbone":
        return lambda path: module.load_pretrained_backbone(module.AttributeClassifier(image_size=32), path)
    return getattr(module, func)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_every_checkpoint_loader_refuses_a_pickle_that_executes_code(tmp_path, loader):
    load = _loader(loader)
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"kind": "edit", "spec": {}, "state_dict": {}, "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="cannot load checkpoint safely") as e:
        load(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


def test_the_payload_would_run_if_loaded_unsafely(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"payload": _Payload(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_every_torch_load_in_the_library_is_weights_only():
    """Static check over latentedit/ and workflow_scripts/: each torch.load passes weights_only=True, and nothing
    else unpickles (pickle, joblib, numpy with allow_pickle)."""
    files = [*(REPO / "latentedit").rglob("*.py"), *(REPO / "workflow_scripts").rglob("*.py")]
    loads = []
    for path in files:
        for call, func in _calls(ast.parse(path.read_text())):
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            kwargs = {k.arg: k.value for k in call.keywords}
            if func in ("torch.load", "torch.serialization.load"):
                loads.append(where)
                assert isinstance(kwargs.get("weights_only"), ast.Constant) and kwargs["weights_only"].value is True, \
                    where
            assert func not in ("pickle.load", "pickle.loads", "joblib.load", "dill.load", "cloudpickle.load"), where
            if func in ("np.load", "numpy.load") and "allow_pickle" in kwargs:
                assert isinstance(kwargs["allow_pickle"], ast.Constant) and not kwargs["allow_pickle"].value, where
    assert any(where.startswith("latentedit/io/checkpoints.py:") for where in loads)  # the scan sees the loader


def _reference_checkpoint(reference, rel: str) -> dict:
    return torch.load(reference / rel, weights_only=True)


CHECKPOINTS = {
    # loader name: (file of the reference run)
    "load_dlsgan": "results/digits/dlsgan/dls/checkpoint.pt",
    "load_encoder": "results/digits/projection/encoder.pt",
    "load_edit": "results/digits/edits/lw/add_7/seed0/model.pt",
    "load_latent_classifiers": "results/digits/labels/classifiers.pt",
    "load_oracle": "results/digits/oracle/model.pt",
}
STATE = {"load_dlsgan": "generator", "load_encoder": "discriminator"}  # where the weights are (else state_dict)


def _spec(ck: dict, loader: str) -> dict:
    return ck["spec"]["generator"] if loader == "load_dlsgan" else ck["spec"]


@pytest.mark.slow
@pytest.mark.parametrize("loader", list(CHECKPOINTS))
@pytest.mark.parametrize("breakage, message", [
    ("drop_weights_key", "lacks the key(s) ["),
    ("drop_tensor", "checkpoint does not match the model: missing keys ['"),
    ("extra_tensor", "unexpected keys ['surplus']"),
    ("mis_shape", "shape mismatches ['"),
    ("unknown_spec_argument", "the checkpoint's spec does not fit"),
])
def test_checkpoint_with_wrong_keys_or_shapes_fails_naming_the_file(reference, tmp_path, loader, breakage, message):
    ck = _reference_checkpoint(reference, CHECKPOINTS[loader])
    weights = ck[STATE.get(loader, "state_dict")]
    first = next(iter(weights))
    if breakage == "drop_weights_key":
        del ck[STATE.get(loader, "state_dict")]
    elif breakage == "drop_tensor":
        del weights[first]
    elif breakage == "extra_tensor":
        weights["surplus"] = torch.zeros(1)
    elif breakage == "mis_shape":
        weights[first] = torch.zeros(*(s + 1 for s in weights[first].shape))
    else:
        _spec(ck, loader)["surplus_argument"] = 1
    path = tmp_path / "model.pt"
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match=re.escape(message)) as e:
        _loader(loader)(path)
    assert str(path) in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("loader", list(CHECKPOINTS))
def test_reference_checkpoints_load(reference, loader):
    _loader(loader)(reference / CHECKPOINTS[loader])


# ---------------------------------------------------------------------------------------------------------------
# Fast library-level checks


def test_history_timings_stay_out_of_the_results_table():
    h = pd.DataFrame({"epoch": [0, 1], "val_loss": [2.0, 1.0], "seconds": [0.1, 0.2], "best": [False, True]})
    rows = history_rows("lw", "e", 3, h)
    assert set(rows["metric"]) == {"final.val_loss", "best.val_loss"} and (rows["seed"] == 3).all()


def test_created_follows_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert creation_time() == "1970-01-01T00:00:00+00:00"
    df = collect([], {("lw", "e", 0): pd.DataFrame({"epoch": [0], "loss": [1.0]})}, {}, {}, world="digits")
    assert (df["created"] == "1970-01-01T00:00:00+00:00").all() and (df["seed"] == 0).all()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH='yesterday'"):
        creation_time()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert creation_time() > "2024"


def test_a_successful_write_removes_temporaries_of_killed_writers(tmp_path):
    final = tmp_path / "a[1].h5"
    stale = [tmp_path / ".a[1].h5.tmp-123", tmp_path / ".a[1].h5.tmp-456"]
    for p in stale:
        p.write_bytes(b"half a store")
    other = tmp_path / ".b.h5.tmp-123"
    other.write_bytes(b"another file's")
    assert temporary_siblings(final) == stale
    with atomic_path(final) as tmp:
        tmp.write_text("complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.h5.tmp-123", "a[1].h5"]


def test_pause_hook_only_for_matching_paths(tmp_path, monkeypatch, capsys):
    from latentedit.io import atomic

    monkeypatch.setattr(atomic, "PAUSE_SECONDS", 0)
    monkeypatch.setenv(PAUSE_ENV, "*/render/*.h5")
    with atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("{}")
    assert "pausing" not in capsys.readouterr().err
    with atomic_path(tmp_path / "render" / "lw.h5") as tmp:
        tmp.write_text("x")
    assert "pausing in the middle of writing" in capsys.readouterr().err


def _celebahq(tmp_path, n: int = 6) -> Path:
    from latentedit.faces.tiny import write_celebahq

    write_celebahq(tmp_path, n, 8, np.random.default_rng(0))
    return tmp_path / "CelebAMask-HQ-attribute-anno.txt"


def _edit_rows(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    header, rows = lines[:2], lines[2:]
    rows = change(rows)
    path.write_text("\n".join([str(len(rows)), header[1], *rows]) + "\n")


def test_attribute_file_with_a_missing_row_fails_naming_the_image(tmp_path):
    anno = _celebahq(tmp_path)
    _edit_rows(anno, lambda rows: rows[:2] + rows[3:])  # the row of 2.jpg is gone, the count updated
    files, _, _ = parse_attribute_file(anno)
    with pytest.raises(DataFileError, match=r"img: 1 images have no row in the attribute file, e.g. \['2.jpg'\]"):
        match_rows(tmp_path / "img", files, require_all=False)


def test_attribute_file_with_an_extra_row(tmp_path):
    anno = _celebahq(tmp_path)
    _edit_rows(anno, lambda rows: [*rows, rows[0].replace("0.jpg", "99.jpg", 1)])
    files, _, _ = parse_attribute_file(anno)
    # CelebA's file lists 30000 images, a user's folder may hold a subset: rows without an image are skipped ...
    assert match_rows(tmp_path / "img", files, require_all=False).tolist() == list(range(6))
    # ... unless every row must have its image
    with pytest.raises(DataFileError, match=r"1 images named by the attribute file are missing, e.g. \['99.jpg'\]"):
        match_rows(tmp_path / "img", files, require_all=True)
    # a row added without updating the count on line 1 fails naming the file
    lines = anno.read_text().splitlines()
    anno.write_text("\n".join(["6", *lines[1:]]) + "\n")
    with pytest.raises(DataFileError, match="line 1 announces 6 rows but the file has 7"):
        parse_attribute_file(anno)
