"""latentedit.workflow_scheduler: with the patch, Snakemake's process keeps a bounded number of threads while jobs
finish; without it, one more wake-up timer chain per finished job (the test that shows the patch matters). The
workflow is bench/scheduler_wakeups.py's, made small."""
from pathlib import Path

import pytest

from conftest import load_bench
from latentedit.workflow_scheduler import bound_scheduler_wakeups


@pytest.fixture(scope="module")
def bench():
    return load_bench("scheduler_wakeups")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux: the thread count is read from /proc")
def test_the_scheduler_keeps_a_bounded_number_of_threads_while_jobs_finish(bench, tmp_path):
    patched = bench.run(tmp_path / "patched", True, jobs=40, inputs=5, cpu_seconds=0.2)
    unpatched = bench.run(tmp_path / "unpatched", False, jobs=40, inputs=5, cpu_seconds=0.2)
    print(f"\nSnakemake's most threads over 40 jobs: patched {patched['threads']}, unpatched {unpatched['threads']}")
    assert patched["threads"] <= 8
    assert unpatched["threads"] >= 20  # Snakemake's own behaviour: if this fails, the patch may no longer be needed


def test_the_patch_applies_to_the_installed_snakemake_and_is_idempotent():
    from snakemake.scheduling.job_scheduler import JobScheduler

    assert bound_scheduler_wakeups()
    patched = JobScheduler._schedule_reevalutation
    assert bound_scheduler_wakeups()
    assert JobScheduler._schedule_reevalutation is patched
