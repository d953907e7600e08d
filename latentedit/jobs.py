"""What every workflow script does first (:func:`setup_job`): log to the rule's log, keep the memory a step frees for
the next (:func:`latentedit.allocator.keep_freed_memory`), give torch the rule's thread count and make MKL's first
vector-math call on one thread.

This module does not import torch. The jobs that draw figures, build the digits or aggregate tables never touch it,
and ``import torch`` is 1.5–1.9 s of a fresh interpreter (and ≈ 90 MB): when a job has not imported torch by the time
it calls :func:`setup_job`, the thread count goes into ``OMP_NUM_THREADS``, which torch reads when it is first
imported, so a job that imports it later still runs on the rule's threads. (In a local run most jobs start as forks
of :mod:`latentedit.forkserver`'s server, with torch already imported and set to the rule's threads.)

**MKL's first vector-math call** (:func:`warm_up_vector_math`). ATen computes ``exp``, ``log``, ``sqrt``, ``tanh``,
``erf``, ``sin`` … of a float tensor with MKL's vector-math library (VML), each thread on its own chunk, and MKL sets
VML up at its first call in a process. When that first call comes from two threads at once, it races: one thread's
chunk may go through another code path, and its results differ in the last bits. A job's outputs then depended on
the race. Under Slurm, where every job is a fresh process, the encoder refinement's first evaluation read val PSNR
5.1764717 or 5.1764708 instead of 5.1764817, and 2 of the 416 cells of ``metrics.parquet`` differed. Two of four
Slurm runs of the tiny pipeline differed from the local run this way, which made tests/test_slurm_integration.py's
byte-for-byte checks fail at random. ``bench/vml_first_call.py`` measures the race. So :func:`setup_job` makes one
8-element call on the job's main thread, as soon as torch is imported.

**Timing.** Each job writes its own timing record (``setup_job(..., timing=path)``, the rule's output ``timing``) when
its interpreter exits: one tab-separated row with the columns of Snakemake's ``benchmark:`` files (``s``, ``h:m:s``,
``max_rss`` in MB, ``cpu_time``), then the ``start`` and ``end`` Unix times, from the kernel's own accounting
(``VmHWM``, ``getrusage``; the start is the process's). Snakemake's ``benchmark:`` directive measured
from outside, sampling each job with psutil's ``memory_full_info`` every 0.5 s for its first 15 s, and each sample
walks the job's page tables (``/proc/<pid>/smaps_rollup``: 19 ms of CPU for a 730 MB process); in a default run
that was ≈ 21 s of the Snakemake process's CPU and ≈ 24 s of system time (README "Measured"). What the record
measures differs in two ways:

- ``s`` runs from the process's start to its ``atexit`` handlers. It leaves out what Snakemake does before it starts
  the interpreter and after the job ends, and the interpreter's own shutdown: ≈ 1 s per job in a default run
  (README "Measured"), which ``benchmark:``'s ``s`` included. A job forked from :mod:`latentedit.forkserver`
  starts at the fork, after the imports it no longer pays for.
- ``max_rss`` is the kernel's high-water mark of the job's process (:func:`peak_rss_bytes`), where a sampled
  benchmark could miss a peak between samples, but summed the job's child processes at each sample. ``cpu_time``
  includes the children the job waited for (inductor's compile workers); their memory is not in the record.

Because the record is a declared output, Snakemake removes it when a job fails and reports a job that did not write
it; a job that ends with an uncaught exception does not write it.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import logging
import os
import sys
import time

from latentedit.allocator import keep_freed_memory


def setup_job(log_path: str | None, threads: int | None = None, timing: str | None = None) -> logging.Logger:
    """Log to ``log_path`` (:func:`setup_logging`), apply the allocator setting and, with ``threads``, set torch's
    intra-op threads: at once when torch is imported, else through ``OMP_NUM_THREADS`` for its first import (module
    docstring). With ``timing``, write the job's timing record there when the interpreter exits, unless an uncaught
    exception ended it (:func:`write_timing`). Returns the ``latentedit`` logger."""
    logger = setup_logging(log_path)
    if timing:
        failed = []
        previous_hook = sys.excepthook

        def excepthook(*exc_info):
            failed.append(True)
            previous_hook(*exc_info)

        sys.excepthook = excepthook
        atexit.register(lambda: failed or write_timing(timing))
    keep_freed_memory()
    torch = sys.modules.get("torch")
    if torch is not None:
        warm_up_vector_math(torch)
    elif not any(isinstance(finder, _WarmUpOnTorchImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WarmUpOnTorchImport())
    if threads is not None:
        if torch is not None:
            torch.set_num_threads(int(threads))
        else:
            os.environ["OMP_NUM_THREADS"] = str(int(threads))
    return logger


def warm_up_vector_math(torch) -> None:
    """Make this process's first call into MKL's vector math on this thread alone (module docstring): 8 elements
    are below ATen's parallel grain, so no other thread takes part."""
    torch.exp(torch.zeros(8))


class _WarmUpOnTorchImport(importlib.abc.MetaPathFinder):
    """For a job that imports torch after :func:`setup_job`: finds nothing itself, but when ``torch`` is imported it
    removes itself, lets the other finders find it and wraps their loader, so that :func:`warm_up_vector_math` runs
    once the module has executed."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def execute_then_warm_up(module):
                execute(module)
                warm_up_vector_math(module)

            spec.loader.exec_module = execute_then_warm_up
        return spec


def setup_logging(log_path: str | None = None) -> logging.Logger:
    """Log to ``log_path`` (the rule's log file) and stderr; returns the ``latentedit`` logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    return logging.getLogger("latentedit")


def job_timing() -> dict[str, float | str]:
    """This process's timing so far (module docstring): wall seconds since it started, its peak RSS in MB, the CPU
    seconds of it and its waited-for children, and its start and end as Unix times (for a run's timeline)."""
    import resource

    import psutil  # a Snakemake dependency; the process start time on every platform

    start, end = psutil.Process().create_time(), time.time()
    wall = max(0.0, end - start)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    hours, rest = divmod(int(wall), 3600)
    return {"s": round(wall, 4), "h:m:s": f"{hours}:{rest // 60:02d}:{rest % 60:02d}",
            "max_rss": round(peak_rss_bytes() / 2**20, 2),
            "cpu_time": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 2),
            "start": round(start, 3), "end": round(end, 3)}


def peak_rss_bytes() -> float:
    """This process's peak resident memory: Linux's ``VmHWM``, the high-water mark of the process image it runs now.
    Not ``getrusage``'s ``ru_maxrss``, which Linux carries across ``exec`` from the process that forked: a job
    started from Snakemake through a shell would report at least Snakemake's resident memory, and a subprocess of
    pytest 3 GB. Elsewhere ``ru_maxrss`` (bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024.0  # kB
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1.0 if sys.platform == "darwin" else 1024.0)


def write_timing(path: str) -> None:
    """Write :func:`job_timing` to ``path`` as a one-row TSV (:func:`latentedit.io.atomic.atomic_path`)."""
    from latentedit.io.atomic import atomic_path

    record = job_timing()
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(record) + "\n" + "\t".join(str(v) for v in record.values()) + "\n")
