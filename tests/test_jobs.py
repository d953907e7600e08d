"""latentedit.jobs: a workflow job's log, allocator and threads, without importing torch."""
import ast
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from latentedit.jobs import setup_job, setup_logging

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow_scripts"


def test_setup_logging_writes_log_file(tmp_path):
    path = tmp_path / "rule.log"
    try:
        log = setup_logging(str(path))
        log.info("hello %d", 42)
        for h in logging.getLogger().handlers:
            h.flush()
        assert "hello 42" in path.read_text()
    finally:
        for h in list(logging.getLogger().handlers):  # leave pytest's own logging alone afterwards
            if isinstance(h, logging.FileHandler):
                h.close()
                logging.getLogger().removeHandler(h)


def test_setup_job_sets_the_rules_threads_once_torch_is_imported():
    before = torch.get_num_threads()
    try:
        setup_job(None, 1)
        assert torch.get_num_threads() == 1
        setup_job(None, 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_setup_job_before_torch_is_imported_gives_torch_the_threads_when_it_is():
    code = """
import sys
from latentedit.jobs import setup_job
setup_job(None, 1)
assert "torch" not in sys.modules, "setup_job imported torch"
import torch
print(torch.get_num_threads())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1"]


def test_setup_job_makes_the_first_vector_math_call_once_torch_is_imported(monkeypatch):
    import latentedit.jobs as jobs

    calls = []
    monkeypatch.setattr(jobs, "warm_up_vector_math", calls.append)
    setup_job(None)
    assert calls == [torch]


def test_setup_job_before_torch_is_imported_makes_the_first_vector_math_call_when_it_is():
    """The import hook: torch is imported by the job after setup_job (twice: one hook), and the warm-up runs once
    torch has executed; the hook then leaves sys.meta_path."""
    code = """
import sys
import latentedit.jobs as jobs
calls = []
jobs.warm_up_vector_math = lambda torch: calls.append(torch.exp(torch.zeros(2)).tolist())
jobs.setup_job(None)
jobs.setup_job(None)
assert "torch" not in sys.modules, "setup_job imported torch"
import torch
print(calls, sum(isinstance(f, jobs._WarmUpOnTorchImport) for f in sys.meta_path))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[[1.0, 1.0]] 0"


def _run_job(code: str, timing: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter after ``setup_job(None, 1, timing=...)``."""
    prelude = f"from latentedit.jobs import setup_job\nsetup_job(None, 1, timing={str(timing)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True)


def test_a_job_writes_its_timing_record_at_exit(tmp_path):
    timing = tmp_path / "benchmarks" / "job.tsv"
    code = """
import time
import numpy as np
block = np.ones(300 * 2**20 // 8)  # 300 MB resident
t = time.process_time()
while time.process_time() - t < 0.5:  # half a second of CPU
    pass
time.sleep(0.5)
"""
    out = _run_job(code, timing)
    assert out.returncode == 0, out.stderr
    record = pd.read_csv(timing, sep="\t")
    assert list(record.columns) == ["s", "h:m:s", "max_rss", "cpu_time", "start", "end"]
    assert len(record) == 1
    row = record.iloc[0]
    assert 1.0 <= row["s"] < 30 and row["h:m:s"] == "0:00:0" + str(int(row["s"]))
    assert 300 <= row["max_rss"] < 1000  # this process's peak, not pytest's (which ru_maxrss carries across exec)
    assert 0.5 <= row["cpu_time"] < row["s"]
    assert row["end"] - row["start"] == pytest.approx(row["s"], abs=0.01) and row["end"] <= time.time()
    assert [p.name for p in timing.parent.iterdir()] == ["job.tsv"]  # no temporary left


def test_a_jobs_peak_memory_is_its_own_not_that_of_the_process_that_started_it(tmp_path):
    """Linux's ru_maxrss carries across exec: a job started by a 1 GB process would report ≥ 1 GB."""
    timing = tmp_path / "job.tsv"
    parent = f"""
import subprocess, sys
import numpy as np
big = np.ones(2**30 // 8)  # 1 GB resident in the parent
job = "from latentedit.jobs import setup_job; setup_job(None, 1, timing={str(timing)!r})"
subprocess.run([sys.executable, "-c", job], check=True)
"""
    subprocess.run([sys.executable, "-c", parent], check=True)
    assert pd.read_csv(timing, sep="\t")["max_rss"].iloc[0] < 300


def test_a_job_that_fails_writes_no_timing_record(tmp_path):
    timing = tmp_path / "job.tsv"
    out = _run_job("raise ValueError('bad input')", timing)
    assert out.returncode != 0 and "bad input" in out.stderr  # the traceback still reaches the log
    assert not timing.exists()


def _imports(script: Path) -> str:
    """The script's top-level import statements, as code."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


@pytest.mark.parametrize("name, absent", [
    # torch is ≈ 1.5 s of a job: make_digits is on the run's serial start, the figure jobs on its serial end
    *((name, "torch") for name in ("make_digits", "edit_grid", "edit_curves", "aggregate_metrics", "metrics_figures")),
    # pandas ≈ 0.55 s and matplotlib ≈ 0.7 s of each of the 35 edit trainings (their curves: rule edit_curves)
    ("train_edit", "pandas"), ("train_edit", "matplotlib"),
])
def test_scripts_do_not_import_what_they_do_not_need(name, absent):
    code = _imports(SCRIPTS / f"{name}.py") + f"\nimport sys\nassert {absent!r} not in sys.modules, 'imported'\n"
    subprocess.run([sys.executable, "-c", code], check=True)
