"""latentedit.jobs: a workflow job's log, allocator and threads, without importing torch."""
import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

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
