"""bench/stage_times.py: the stage table from the jobs' timing records, and --fit's split of job seconds from the
jobs' logs."""
from pathlib import Path

import pytest

from conftest import load_bench


@pytest.fixture(scope="module")
def stage_times():
    return load_bench("stage_times")


def _job(run: Path, rel: str, seconds: float, log: str | None) -> None:
    tsv = run / "benchmarks/digits" / f"{rel}.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:10\t500.0\n")
    if log is not None:
        path = run / "logs/digits" / f"{rel}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log)


DONE = ("2026-12-02 10:37:31,594 "
        "latentedit.training_utils INFO {} done: best val_loss = 1.5 at epoch 3 ({} steps, {} s)\n")


def test_fit_seconds_sums_every_loop_of_a_log(stage_times, tmp_path):
    log = tmp_path / "job.log"
    log.write_text("start\n" + DONE.format("count_1", 40, 1.25) + DONE.format("has_0", 12, 0.5) + "saved\n")
    assert stage_times.fit_seconds(log) == pytest.approx(1.75)
    assert stage_times.fit_seconds(tmp_path / "missing.log") == 0.0
    log.write_text("LW: 706 source / 742 target codes, batch 512\n")
    assert stage_times.fit_seconds(log) == 0.0


def test_fit_splits_job_seconds_into_loops_and_the_rest(stage_times, tmp_path, capsys):
    _job(tmp_path, "edits/lw/add_0/seed0", 10.0, DONE.format("LW", 300, 7.5))
    _job(tmp_path, "edits/lw/add_7/seed0", 6.0, DONE.format("LW", 100, 2.5))
    _job(tmp_path, "edits/ifg/add_0/seed0", 5.0, "InterFaceGAN: svc on 685 positive / 685 negative codes\n")
    _job(tmp_path, "evaluate/lw/add_0/seed0", 12.0, None)
    assert stage_times.main([str(tmp_path / "benchmarks/digits"), "--by-method", "--fit"]) == 0
    out = capsys.readouterr().out
    header = next(line.split() for line in out.splitlines() if "other_per_job_s" in line)
    assert header[-2:] == ["fit_s", "other_per_job_s"]
    lw = next(line.split() for line in out.splitlines() if line.split()[:2] == ["edits", "lw"])
    assert lw[-2:] == ["10.0", "3.0"]  # loops 7.5 + 2.5; the rest (10 + 6 − 10) / 2 jobs
    ifg = next(line.split() for line in out.splitlines() if line.split()[:2] == ["edits", "ifg"])
    assert ifg[-2:] == ["0.0", "5.0"]  # no loop: the whole job is the rest
    assert "in training loops: 10 of those s" in out
    # without --fit the table has no fit columns
    assert stage_times.main([str(tmp_path / "benchmarks/digits")]) == 0
    assert "fit_s" not in capsys.readouterr().out


def test_fit_seconds_reads_the_line_fit_writes(stage_times, tmp_path, caplog):
    """The pattern follows latentedit.training_utils.fit's own log line, not a copy of it."""
    import logging

    import torch

    from latentedit.training_utils import fit

    module = torch.nn.Linear(1, 1)
    losses = iter([3.0, 2.0, 1.0])
    with caplog.at_level(logging.INFO, logger="latentedit.training_utils"):
        fit(module, lambda epoch, budget: ({}, 1), lambda: {"val_loss": next(losses)}, monitor="val_loss",
            max_epochs=3, name="tiny", progress=False)
    log = tmp_path / "job.log"
    log.write_text("\n".join(record.getMessage() for record in caplog.records) + "\n")
    done = [r.getMessage() for r in caplog.records if "done" in r.getMessage()]
    assert len(done) == 1 and done[0].startswith("tiny done: best")
    assert stage_times.fit_seconds(log) == pytest.approx(float(done[0].rsplit(", ", 1)[1].split()[0]))
    assert stage_times.FIT_DONE.search(done[0])
