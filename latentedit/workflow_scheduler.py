"""Snakemake's scheduler with at most one pending wake-up timer (:func:`bound_scheduler_wakeups`, applied by
``rules/common.smk`` when the Snakefile is parsed).

**What it fixes.** Snakemake 9 (9.27.1, the newest release when measured) limits job submissions with
``--max-jobs-per-timespan`` (default ``100/1s``). After every scheduling round its ``JobScheduler`` starts a
``threading.Timer`` that wakes the scheduler again one timespan later
(``JobScheduler._schedule_reevalutation``), and each round that timer triggers starts the next one: a chain of
one wake-up per second. But every finished job also wakes the scheduler, and that round starts a timer of its own,
so each finished job adds a chain that never ends. After n finished jobs the scheduler runs ≈ n rounds a second, and
each round stats every input file of every job that is ready but waiting for a core
(``JobScheduler.update_input_sizes``): our jobs list 15–90 input files each, their code among them
(``latentedit.code_inputs``). So Snakemake's own process works in proportion to jobs finished × jobs waiting.

**Measured** (the default digits pipeline, 2 cores, 89 jobs): the Snakemake process held 34 threads once 29 jobs had
finished (a main thread, the job threads and one timer per chain), and a py-spy profile of it spent 62 s in
``update_input_sizes``'s existence and size checks and 66 s starting timer threads, out of its 198 s of active
samples. With the change, the same pipeline's Snakemake process used 9.0 s of CPU and at most 6 threads, against
64.7 s and 85 threads in the run right after it without. ``bench/scheduler_wakeups.py`` (90 CPU-bound jobs of 2 s on
2 cores): 103.6 s wall and 16.6 s of Snakemake CPU as installed, 95.3 s and 3.0 s with the change (README
"Measured").

**The change.** :func:`bound_scheduler_wakeups` replaces ``_schedule_reevalutation`` by one that starts a timer only
when none is pending, as a daemon thread (so the process does not wait for it at exit). The scheduler still wakes
once a timespan when it has nothing else to wake it, which is all the rate limit needs, and at once when a job
finishes, as before. Nothing else of Snakemake's is touched. Where its scheduler lacks the method (another version),
the function changes nothing and says so; ``tests/test_workflow_scheduler.py`` checks that it applies to the
installed version and that the Snakemake process's thread count stays bounded while jobs finish.
"""

from __future__ import annotations

import threading

from latentedit.snakemake_patch import replace_method


def bound_scheduler_wakeups() -> bool:
    """Patch Snakemake's ``JobScheduler`` so that at most one wake-up timer is pending (module docstring). Returns
    whether the patch is in place; idempotent."""
    return replace_method("snakemake.scheduling.job_scheduler", "JobScheduler", "_schedule_reevalutation",
                          lambda original: _schedule_reevalutation, "its wake-up timers are left as they are")


def _schedule_reevalutation(self, delay) -> None:
    """``JobScheduler._schedule_reevalutation`` with at most one pending timer (module docstring)."""
    # A race between two threads can at worst start a second timer, which then ends its chain like any other.
    if getattr(self, "_wakeup_pending", False):
        return
    self._wakeup_pending = True

    def wake() -> None:
        self._wakeup_pending = False
        self._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()
