"""latentedit.workflow_scheduler: with the patch, Snakemake's process keeps a bounded number of threads while jobs
finish; without it, one more wake-up timer chain per finished job (the test that shows the patch matters)."""
import subprocess
import sys
from pathlib import Path

import pytest

from latentedit.workflow_scheduler import bound_scheduler_wakeups

REPO = Path(__file__).resolve().parents[1]
N_JOBS = 40

SNAKEFILE = """
import sys
sys.path.insert(0, {repo!r})
if {patch}:
    from latentedit.workflow_scheduler import bound_scheduler_wakeups
    assert bound_scheduler_wakeups()

rule all:
    input: expand("threads/{{i}}.txt", i=range({n}))

# each job records how many threads the Snakemake process that started it holds (its shell's parent)
rule job:
    output: "threads/{{i}}.txt"
    shell: "sleep 0.2; ls /proc/$PPID/task | wc -l > {{output}}"
"""


def _thread_counts(tmp_path: Path, patch: bool) -> list[int]:
    work = tmp_path / ("patched" if patch else "unpatched")
    work.mkdir()
    (work / "Snakefile").write_text(SNAKEFILE.format(repo=str(REPO), patch=patch, n=N_JOBS))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--quiet"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [int((work / "threads" / f"{i}.txt").read_text()) for i in range(N_JOBS)]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_the_scheduler_keeps_a_bounded_number_of_threads_while_jobs_finish(tmp_path):
    patched = _thread_counts(tmp_path, patch=True)
    unpatched = _thread_counts(tmp_path, patch=False)
    print(f"\nSnakemake's threads over {N_JOBS} jobs: patched max {max(patched)}, unpatched max {max(unpatched)}")
    assert max(patched) <= 8
    assert max(unpatched) >= 20  # Snakemake's own behaviour: if this fails, the patch may no longer be needed


def test_the_patch_applies_to_the_installed_snakemake_and_is_idempotent():
    from snakemake.scheduling.job_scheduler import JobScheduler

    assert bound_scheduler_wakeups()
    patched = JobScheduler._schedule_reevalutation
    assert bound_scheduler_wakeups()
    assert JobScheduler._schedule_reevalutation is patched
