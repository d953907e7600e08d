"""profiles/slurm on a real Slurm cluster: the tiny digits pipeline run once locally and once through the profile.

The integration tests are marked ``slurm`` and deselected by default (pyproject.toml's addopts); run them with
``python -m pytest -m slurm tests/test_slurm_integration.py`` on a machine where Slurm answers (``sudo
ci/slurm/local_slurm.sh up`` brings up a single node with one fake GPU; .ci/run does that). Without Slurm they
skip, naming why; with ``LATENTEDIT_REQUIRE_SLURM=1`` they fail instead.

They check, from Slurm's own accounting (``sacct``), that every job of a rule declaring ``resources: gpu=1`` was
submitted with a GPU (AllocTRES ``gres/gpu=1``) to the profile's GPU partition and no other job was, that a job Slurm
kills at its time limit is retried by the profile with twice the time (TIMEOUT, then COMPLETED), and that the Slurm
run's results equal the local run's bit for bit.

The unmarked tests at the end check the profile against the rules without Slurm (they run in the default suite).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import textwrap
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
# Both runs stamp their results with this time instead of now (latentedit.io.provenance.creation_time), so the
# same config and seed must give the same bytes whether the jobs ran here or through Slurm (which exports the
# submitting environment to the jobs: the plugin's sbatch --export=ALL).
SOURCE_DATE_EPOCH = "1700000000"

# The retry under test. In the Slurm run (only there) this rule gets `runtime=1*attempt` (the profile's form,
# `N * attempt`, with N = 1 minute, Slurm's smallest limit), and its job is held by ci/slurm/hold_job.sh, on every
# attempt, until HOLD_S seconds after the job started (after the rule has run, so what it computes is unchanged):
# Slurm kills the first attempt at its 1-minute limit (slurmctld checks limits every 30 s: 60-90 s after the start),
# the profile's `retries: 1` resubmits it with 2 minutes, and the retry completes (HOLD_S < 120 s). A CPU rule near
# the end of the DAG, so the hold overlaps the last jobs (aggregate_metrics, metrics_figures) instead of the GPU chain.
RETRY_RULE = "edits_latent_summary"
HOLD_S = 100


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _rule_resources() -> dict[str, str]:
    """{rule name: the text of its ``resources:`` block ('' without one)} for every rule of the workflow."""
    out = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        # a rule at the top level, or inside an if/else (indented): its block ends where its indentation does
        for m in re.finditer(r"^( *)rule (\w+):\n(.*?)(?=^\1?\S|\Z)", path.read_text(), re.MULTILINE | re.DOTALL):
            body = textwrap.dedent(m.group(1) + "x\n" + m.group(3))[2:]
            res = re.search(r"^    resources:\n((?:        .*\n)+)", body, re.MULTILINE)
            out[m.group(2)] = res.group(1) if res else ""
    return out


RULES = _rule_resources()
GPU_RULES = {rule for rule, res in RULES.items() if re.search(r"\bgpu=1\b", res)}


def _rules_of(comment: str, groups: dict[str, str]) -> set[str]:
    """The rules one Slurm job ran, from the comment the plugin gives it: ``rule_<rule>[_wildcards_<values>]``, or
    for a group job ``rule_<group id>_<its rules, sorted, joined by '_'>``."""
    assert comment.startswith("rule_"), comment
    name = comment[len("rule_"):].split("_wildcards_")[0]
    if name in RULES:
        return {name}

    def split(rest: str) -> list[str] | None:  # rest as a '_'-joined sequence of rule names
        if rest in RULES:
            return [rest]
        for rule in RULES:
            if rest.startswith(rule + "_") and (tail := split(rest[len(rule) + 1:])) is not None:
                return [rule, *tail]
        return None

    for group in set(groups.values()):
        if name.startswith(group + "_") and (rules := split(name[len(group) + 1:])):
            return set(rules)
    raise AssertionError(f"cannot tell which rules Slurm job {comment!r} ran")


# ---------------------------------------------------------------------------------------------------------------
# Slurm available?


def _slurm_missing() -> str | None:
    """Why profiles/slurm cannot be run here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm client commands (sinfo, sbatch) not found"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], check=False, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo does not answer (is slurmctld running?)"
    if states.returncode != 0:
        return f"sinfo failed: {states.stderr.strip()}"
    if not {"idle", "mixed"} & set(states.stdout.split()):
        return f"no idle Slurm node (sinfo: {' '.join(states.stdout.split()) or 'no nodes'})"
    acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], check=False, capture_output=True, text=True, timeout=30)
    if acct.returncode != 0:
        return f"sacct does not answer (no slurmdbd?): {acct.stderr.strip()}"
    partitions = set(subprocess.run(["sinfo", "-h", "-o", "%R"], check=False, capture_output=True,
                                    text=True).stdout.split())
    wanted = {_profile()["default-resources"]["slurm_partition"]} | {
        r["slurm_partition"] for r in _profile()["set-resources"].values() if "slurm_partition" in r}
    if not wanted <= partitions:
        return f"the profile's partitions {sorted(wanted)} are not all on this cluster ({sorted(partitions)})"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _slurm_missing()
    if reason:
        reason = f"Slurm is not up: {reason}. `sudo ci/slurm/local_slurm.sh up` starts a local one."
        if os.environ.get("LATENTEDIT_REQUIRE_SLURM") == "1":
            pytest.fail(f"LATENTEDIT_REQUIRE_SLURM=1 but {reason}", pytrace=False)
        pytest.skip(reason)


# ---------------------------------------------------------------------------------------------------------------
# The two runs


def _config() -> dict:
    """TINY_CONFIG with two methods on one edit: both GPU rule families of the edit chain run twice (two Slurm
    group jobs), and every other rule once, while keeping the serial GPU part short on a one-GPU node."""
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["edits"]["methods"] = ["lw", "ifg"]
    cfg["edits"]["definitions"] = {"add_digit_1to2": cfg["edits"]["definitions"]["add_digit_1to2"]}
    return cfg


def _snakemake(work: Path, *args: str, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    start = time.monotonic()
    proc = subprocess.run(cmd, check=False, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    return proc, time.monotonic() - start


def _retry_args() -> list[str]:
    """Command-line arguments of the Slurm run that provoke the retry of RETRY_RULE (see HOLD_S). A `--set-resources`
    on the command line replaces the profile's whole `set-resources`, so the profile's entries are passed again,
    converted by Snakemake's own profile parser, followed by the test's one."""
    from snakemake.profiles import ProfileConfigFileParser

    with open(PROFILE / "config.yaml") as f:
        profile_set = ProfileConfigFileParser().parse(f)["set-resources"]
    assert not any(entry.startswith(f"{RETRY_RULE}:") for entry in profile_set)
    hold = REPO / "ci" / "slurm" / "hold_job.sh"
    # the plugin puts the job's command in `sbatch --wrap="..."`, run by a shell: no $, ` or " in it
    assert not re.search(r"[\s'\"$`]", str(hold)), hold
    return ["--set-resources", *profile_set, f"{RETRY_RULE}:runtime=1*attempt",
            "--precommand", f"trap '{hold} {RETRY_RULE} {HOLD_S}' EXIT"]


@pytest.fixture(scope="module")
def runs(slurm, tmp_path_factory, request):
    """(local results dir, Slurm results dir, Slurm run output, Slurm run start time)."""
    cfg = yaml.safe_dump(_config(), sort_keys=False)
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    for work in (local, remote):
        (work / "config.yaml").write_text(cfg)
    proc, local_s = _snakemake(local, "--cores", "2", timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:]
    started = dt.datetime.now() - dt.timedelta(seconds=5)
    proc, slurm_s = _snakemake(remote, "--profile", str(PROFILE), *_retry_args(), timeout=2400)
    assert proc.returncode == 0, proc.stdout[-6000:]
    line = (f"tiny digits pipeline, target all: local --cores 2 {local_s:.0f} s, "
            f"--profile profiles/slurm {slurm_s:.0f} s (with {RETRY_RULE} killed at 1 min and retried)")
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(f"\n[slurm] {line}")
    print(line)
    return local / "results" / "digits", remote / "results" / "digits", proc.stdout, started


def _sacct(run_id: str, since: dt.datetime, n_jobs: int) -> list[dict[str, str]]:
    """Slurm's accounting records of one Snakemake run (its jobs share the job name ``run_id``); slurmdbd writes
    asynchronously, so wait until all ``n_jobs`` have a final state."""
    fields = ["JobID", "JobName", "Partition", "AllocTRES", "ReqTRES", "State", "TimelimitRaw", "ElapsedRaw", "Comment"]
    cmd = ["sacct", "-X", "-n", "-P", "--name", run_id, "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
           "--format", ",".join(fields)]
    for _ in range(60):
        rows = [dict(zip(fields, line.split("|"))) for line in subprocess.run(
            cmd, capture_output=True, text=True, check=True).stdout.splitlines()]
        if len(rows) >= n_jobs and all(r["State"] not in ("PENDING", "RUNNING") for r in rows):
            return rows
        time.sleep(1)
    return rows


def _difference(a: Path, b: Path) -> str:
    """What differs between two result files, in words (a byte dump of two checkpoints says nothing): for a
    checkpoint its entries, for an HDF5 store its datasets and attributes, for a table its cells; else the first
    differing byte."""
    import h5py
    import numpy as np
    import torch

    def walk(x, y, where: str) -> str | None:
        if isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return f"{where}: keys {sorted(x.keys() ^ y.keys())} in one only"
            return next((d for k in x if (d := walk(x[k], y[k], f"{where}[{k!r}]"))), None)
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if len(x) != len(y):
                return f"{where}: length {len(x)} != {len(y)}"
            return next((d for i, (u, v) in enumerate(zip(x, y)) if (d := walk(u, v, f"{where}[{i}]"))), None)
        if isinstance(x, (torch.Tensor, np.ndarray)) and isinstance(y, (torch.Tensor, np.ndarray)):
            x, y = np.asarray(x), np.asarray(y)
            if x.shape != y.shape or x.dtype != y.dtype:
                return f"{where}: {x.dtype}{x.shape} != {y.dtype}{y.shape}"
            bad = (x != y) & ~(np.isnan(x) & np.isnan(y)) if x.dtype.kind in "fc" else x != y
            if not bad.any():
                return None
            by = f", by at most {float(np.abs(x[bad] - y[bad]).max()):.3g}" if x.dtype.kind in "fc" else ""
            return f"{where}: {int(bad.sum())} of {x.size} values differ{by}"
        if type(x) is not type(y) or (x != y and not (x != x and y != y)):
            return f"{where}: {x!r} != {y!r}"
        return None

    if a.suffix == ".pt":
        found = walk(torch.load(a, weights_only=True), torch.load(b, weights_only=True), a.name)
    elif a.suffix == ".h5":
        def contents(path: Path) -> dict:
            out = {}
            with h5py.File(path, "r") as f:
                f.visititems(lambda name, obj: out.update(
                    {f"{name} attrs": dict(obj.attrs),
                     **({name: obj[()]} if isinstance(obj, h5py.Dataset) else {})}))
                out["/ attrs"] = dict(f.attrs)
            return out
        found = walk(contents(a), contents(b), a.name)
    elif a.suffix == ".parquet":
        x, y = pd.read_parquet(a), pd.read_parquet(b)
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            found = f"{a.name}: columns {list(x.columns)}, {len(x)} rows != {list(y.columns)}, {len(y)} rows"
        else:
            bad = {c: int(((x[c] != y[c]) & ~(x[c].isna() & y[c].isna())).fillna(True).sum()) for c in x}
            found = ", ".join(f"{a.name}[{c!r}]: {n} of {len(x)} values differ" for c, n in bad.items() if n) or None
    else:
        found = None
    if found is None:  # the same contents in other bytes (for instance a container's layout)
        x, y = a.read_bytes(), b.read_bytes()
        i = next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
        found = f"{a.name}: the same contents, but the bytes differ from offset {i} (sizes {len(x)}, {len(y)})"
    return found


def _assert_same_files(local: Path, remote: Path, paths: list[str]) -> None:
    """Each path under the two results folders holds the same bytes; the failure says what differs."""
    for rel in paths:
        if (local / rel).read_bytes() != (remote / rel).read_bytes():
            pytest.fail(f"{rel} differs between the local and the Slurm run: {_difference(local / rel, remote / rel)}",
                        pytrace=False)


@pytest.fixture(scope="module")
def slurm_jobs(runs) -> list[dict[str, str]]:
    """sacct's records of the Slurm run's jobs (in submission order), checked to be the jobs Snakemake submitted."""
    _, _, output, started = runs
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    rows = sorted(_sacct(run_id, started, len(submitted)), key=lambda r: int(r["JobID"]))
    print(f"sacct -X --name {run_id}:")
    for r in rows:
        print(" | ".join(r[k] for k in ("JobID", "Partition", "AllocTRES", "State", "TimelimitRaw", "ElapsedRaw",
                                        "Comment")))
    assert sorted(r["JobID"] for r in rows) == sorted(submitted)
    return rows


@pytest.mark.slurm
def test_gpu_jobs_and_only_they_requested_a_gpu(runs, slurm_jobs):
    _, _, output, _ = runs
    profile = _profile()
    gpu_partition = {profile["set-resources"][rule]["slurm_partition"] for rule in GPU_RULES}.pop()
    cpu_partition = profile["default-resources"]["slurm_partition"]
    seen = set()
    for r in slurm_jobs:
        rules = _rules_of(r["Comment"], profile.get("groups", {}))
        seen |= rules
        # the one job killed on purpose (its retry is checked below)
        assert r["State"] == "COMPLETED" or (rules == {RETRY_RULE} and r["State"] == "TIMEOUT"), r
        wants_gpu = bool(rules & GPU_RULES)
        assert ("gres/gpu=1" in r["AllocTRES"]) == wants_gpu, (rules, r)
        assert ("gres/gpu=1" in r["ReqTRES"]) == wants_gpu, (rules, r)
        assert r["Partition"] == (gpu_partition if wants_gpu else cpu_partition), (rules, r)
    # every rule of the DAG (but the action-less target `all`, which Snakemake runs itself) went through Slurm
    stats = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    ran = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", stats, re.MULTILINE)} - {"total", "all"}
    assert seen == ran
    assert seen & GPU_RULES and seen - GPU_RULES


@pytest.mark.slurm
def test_a_job_killed_at_its_time_limit_is_retried_with_twice_the_time(runs, slurm_jobs):
    """Slurm kills RETRY_RULE's first job at its 1-minute limit (TIMEOUT); the profile's `retries: 1` resubmits it
    with `1*attempt` = 2 minutes, which it needs (it runs HOLD_S > 60 s), and twice the profile's memory, and it
    completes with the local run's bytes."""
    local, remote, output, _ = runs
    groups = _profile().get("groups", {})
    jobs = [r for r in slurm_jobs if _rules_of(r["Comment"], groups) == {RETRY_RULE}]
    assert [(r["State"], r["TimelimitRaw"]) for r in jobs] == [("TIMEOUT", "1"), ("COMPLETED", "2")], jobs
    killed, retried = jobs
    # killed at the first of slurmctld's 30-s limit checks after its minute, before its hold ended
    assert 60 <= int(killed["ElapsedRaw"]) < HOLD_S, killed
    # the retry ran longer than the first attempt's limit: the doubled limit is what let it complete
    assert int(retried["ElapsedRaw"]) >= HOLD_S > 60, retried
    # and the profile's own `mem_mb: <N> * attempt` doubled its memory (the test set only its runtime)
    mem = [(int(m[1]) * (1024 if m[2] == "G" else 1)) for m in
           (re.search(r"\bmem=(\d+)([MG])", r["AllocTRES"]) for r in (killed, retried))]
    assert mem[1] == 2 * mem[0], mem
    assert re.search(rf"SLURM-job '{killed['JobID']}' failed, SLURM status is: 'TIMEOUT'", output), output[-6000:]
    assert output.count("Trying to restart job") == 1  # and no other job was retried
    _assert_same_files(local, remote, ["edits/latent_target_change.csv", "edits/latent_target_change.md"])


@pytest.mark.slurm
def test_results_tables_equal_the_local_run_byte_for_byte(runs):
    local, remote, _, _ = runs
    tables = ["metrics.parquet", "summary.csv", "summary.md",
              *(str(p.relative_to(local)) for p in (local / "metrics").rglob("*.parquet"))]
    assert len(tables) == 5
    _assert_same_files(local, remote, tables)
    table = pd.read_parquet(remote / "metrics.parquet")
    assert len(table) > 100 and table["created"].nunique() == 1


@pytest.mark.slurm
def test_stores_equal_the_local_run_byte_for_byte(runs):
    """The HDF5 image, latent and render stores (arrays, ids, provenance attributes) are the same files."""
    local, remote, _, _ = runs
    stores = sorted(str(p.relative_to(local)) for p in local.rglob("*.h5"))
    assert {"images.h5", "latents.h5"} < set(stores) and len(stores) == 4, stores
    _assert_same_files(local, remote, stores)


@pytest.mark.slurm
def test_checkpoints_equal_the_local_run_byte_for_byte(runs):
    local, remote, _, _ = runs
    paths = ["dlsgan/dls/checkpoint.pt", "projection/encoder.pt", "oracle/model.pt", "labels/classifiers.pt",
             *(str(p.relative_to(local)) for p in (local / "edits").rglob("model.pt"))]
    assert len(paths) == 6
    _assert_same_files(local, remote, paths)


# ---------------------------------------------------------------------------------------------------------------
# The profile against the rules (no Slurm needed; part of the default suite)


def test_every_gpu_rule_goes_to_the_gpu_partition():
    profile = _profile()
    assert GPU_RULES, "no rule declares resources: gpu=1?"
    listed = set(profile["set-resources"])
    assert not GPU_RULES - listed, (
        f"rules declaring gpu=1 missing from profiles/slurm/config.yaml set-resources: {sorted(GPU_RULES - listed)}"
        " (add them with `slurm_partition: *gpu_partition`)")
    assert not listed - set(RULES), f"set-resources names unknown rules: {sorted(listed - set(RULES))}"
    assert len({profile["set-resources"][r]["slurm_partition"] for r in GPU_RULES}) == 1
    # the plugin turns the rule's own gpu=1 into --gpus=1; repeating it in set-resources would hide a rule that
    # lost its declaration (and a CPU rule given a GPU here would occupy one for nothing)
    assert not any("gpu" in res or "gres" in res for res in profile["set-resources"].values())
    assert "gpu" not in profile["default-resources"] and "gpu" not in str(profile.get("resources", ""))


def test_profile_retries_a_killed_job_once_with_twice_the_time_and_memory():
    """What the Slurm retry test relies on: `retries: 1`, and every runtime and mem_mb of the profile is
    `<N> * attempt`, the form the test gives RETRY_RULE (with N = 1 minute)."""
    profile = _profile()
    assert profile["retries"] == 1
    assert {"runtime", "mem_mb"} <= set(profile["default-resources"])
    for res in [profile["default-resources"], *profile["set-resources"].values()]:
        for key in {"runtime", "mem_mb"} & set(res):
            assert re.fullmatch(r"\d+ \* attempt", str(res[key])), (key, res[key])


def test_groups_hold_only_gpu_rules_of_one_chain():
    """A group job's resources are the maximum over its sequential steps but the sum over parallel ones: a group
    mixing CPU and GPU rules would hold a GPU through the CPU steps, and merged components would ask for several
    GPUs. So groups are chains of GPU rules, one connected component each."""
    profile = _profile()
    groups = profile.get("groups", {})
    assert set(groups) <= GPU_RULES, sorted(set(groups) - GPU_RULES)
    assert not profile.get("group-components")
