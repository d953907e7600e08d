"""profiles/slurm on a real Slurm cluster: the tiny digits pipeline run once locally and once through the profile.

The integration tests are marked ``slurm`` and deselected by default (pyproject.toml's addopts); run them with
``python -m pytest -m slurm tests/test_slurm_integration.py`` on a machine where Slurm answers (``sudo
ci/slurm/local_slurm.sh up`` brings up a single node with one fake GPU; .ci/run does that). Without Slurm they
skip, naming why; with ``LATENTEDIT_REQUIRE_SLURM=1`` they fail instead.

They check, from Slurm's own accounting (``sacct``), that every job of a rule declaring ``resources: gpu=1`` was
submitted with a GPU (AllocTRES ``gres/gpu=1``) to the profile's GPU partition and no other job was, and that the
Slurm run's results equal the local run's bit for bit.

The unmarked tests at the end check the profile against the rules without Slurm (they run in the default suite).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
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


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _rule_resources() -> dict[str, str]:
    """{rule name: the text of its ``resources:`` block ('' without one)} for every rule of the workflow."""
    out = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", path.read_text(), re.MULTILINE | re.DOTALL):
            res = re.search(r"^    resources:\n((?:        .*\n)+)", m.group(2), re.MULTILINE)
            out[m.group(1)] = res.group(1) if res else ""
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
    proc, slurm_s = _snakemake(remote, "--profile", str(PROFILE), timeout=2400)
    assert proc.returncode == 0, proc.stdout[-6000:]
    line = (f"tiny digits pipeline, target all: local --cores 2 {local_s:.0f} s, "
            f"--profile profiles/slurm {slurm_s:.0f} s")
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(f"\n[slurm] {line}")
    print(line)
    return local / "results" / "digits", remote / "results" / "digits", proc.stdout, started


def _sacct(run_id: str, since: dt.datetime, n_jobs: int) -> list[dict[str, str]]:
    """Slurm's accounting records of one Snakemake run (its jobs share the job name ``run_id``); slurmdbd writes
    asynchronously, so wait until all ``n_jobs`` have a final state."""
    fields = ["JobID", "JobName", "Partition", "AllocTRES", "ReqTRES", "State", "Comment"]
    cmd = ["sacct", "-X", "-n", "-P", "--name", run_id, "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
           "--format", ",".join(fields)]
    for _ in range(60):
        rows = [dict(zip(fields, line.split("|"))) for line in subprocess.run(
            cmd, capture_output=True, text=True, check=True).stdout.splitlines()]
        if len(rows) >= n_jobs and all(r["State"] not in ("PENDING", "RUNNING") for r in rows):
            return rows
        time.sleep(1)
    return rows


@pytest.mark.slurm
def test_gpu_jobs_and_only_they_requested_a_gpu(runs):
    _, _, output, started = runs
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    rows = _sacct(run_id, started, len(submitted))
    print(f"sacct -X --name {run_id}:")
    for r in rows:
        print(" | ".join(r[k] for k in ("JobID", "Partition", "AllocTRES", "State", "Comment")))
    assert sorted(r["JobID"] for r in rows) == sorted(submitted)
    profile = _profile()
    gpu_partition = {profile["set-resources"][rule]["slurm_partition"] for rule in GPU_RULES}.pop()
    cpu_partition = profile["default-resources"]["slurm_partition"]
    seen = set()
    for r in rows:
        rules = _rules_of(r["Comment"], profile.get("groups", {}))
        seen |= rules
        assert r["State"] == "COMPLETED", r
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
def test_results_tables_equal_the_local_run_byte_for_byte(runs):
    local, remote, _, _ = runs
    tables = ["metrics.parquet", "summary.csv", "summary.md",
              *(str(p.relative_to(local)) for p in (local / "metrics").rglob("*.parquet"))]
    assert len(tables) == 5
    for rel in tables:
        assert (local / rel).read_bytes() == (remote / rel).read_bytes(), rel
    table = pd.read_parquet(remote / "metrics.parquet")
    assert len(table) > 100 and table["created"].nunique() == 1


@pytest.mark.slurm
def test_stores_equal_the_local_run_byte_for_byte(runs):
    """The HDF5 image, latent and render stores (arrays, ids, provenance attributes) are the same files."""
    local, remote, _, _ = runs
    stores = sorted(str(p.relative_to(local)) for p in local.rglob("*.h5"))
    assert {"images.h5", "latents.h5"} < set(stores) and len(stores) == 4, stores
    for rel in stores:
        assert (local / rel).read_bytes() == (remote / rel).read_bytes(), rel


@pytest.mark.slurm
def test_checkpoints_equal_the_local_run_byte_for_byte(runs):
    local, remote, _, _ = runs
    paths = ["dlsgan/dls/checkpoint.pt", "projection/encoder.pt", "oracle/model.pt", "labels/classifiers.pt",
             *(str(p.relative_to(local)) for p in (local / "edits").rglob("model.pt"))]
    assert len(paths) == 6
    for rel in paths:
        assert (local / rel).read_bytes() == (remote / rel).read_bytes(), rel


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


def test_groups_hold_only_gpu_rules_of_one_chain():
    """A group job's resources are the maximum over its sequential steps but the sum over parallel ones: a group
    mixing CPU and GPU rules would hold a GPU through the CPU steps, and merged components would ask for several
    GPUs. So groups are chains of GPU rules, one connected component each."""
    profile = _profile()
    groups = profile.get("groups", {})
    assert set(groups) <= GPU_RULES, sorted(set(groups) - GPU_RULES)
    assert not profile.get("group-components")
