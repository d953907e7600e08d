"""Keep freed memory in the process: glibc malloc's trim and mmap thresholds raised for the CPU training loops.

A CPU training step allocates its activations and gradients, frees them, and allocates them again at the next step.
glibc's malloc (Linux) returns memory to the kernel in two ways, and each costs a page fault per 4 KiB page, zeroed
by the kernel, when the memory is next used:

* blocks larger than ``M_MMAP_THRESHOLD`` get their own ``mmap`` and are unmapped when freed;
* free memory at the top of the heap beyond ``M_TRIM_THRESHOLD`` is handed back (``brk``) after a ``free``.

By default both thresholds are dynamic: freeing an mmapped block raises the mmap threshold to its size, at most
32 MiB, and sets the trim threshold to twice that (glibc ``malloc/malloc.c``, ``mallopt(3)``). The projection's
steps (a batch of 128 images through the generator, forward and backward) outgrow those maxima, so their memory is
given back and faulted in again at every step: 1.6–1.7 million minor page faults for 384 images × 25 steps, 0.17
million with the thresholds below. :func:`keep_freed_memory` fixes the mmap threshold at :data:`MMAP_THRESHOLD`
and the trim threshold at :data:`TRIM_THRESHOLD` with ``mallopt``, so the pages a step frees serve the next one.

Measured (alone on the 2-core machine; README "Measured"):

* ``bench/allocator.py``, each loop in a fresh process that has first freed a 30 MiB block, as a job reading its
  stores has: the projection's per-image steps 1.24–1.27× faster (system time 3.9–5.0 → 0.8 s, peak RSS within
  ±3 %); an evaluation's rendering 1.05× and LW's steps 1.02×: glibc's raised dynamic thresholds already keep
  their smaller blocks.
* The whole default pipeline, the same commit from two fresh clones one after the other: 707 → 684 s wall, system
  time 198 → 88 s, the projection job 243 → 197 s, the image judge in each evaluation 2.3 → 1.5 s (median);
  ``summary.csv`` identical.

It is a process-wide setting: workflow jobs call it through :func:`latentedit.jobs.setup_job`; importing
:mod:`latentedit` changes nothing. It does nothing off glibc (macOS, musl), when the user has set glibc's own
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES`` (theirs stand), or with
``LATENTEDIT_MALLOC=default`` (the A/B switch of the benchmark).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD = 512 * 2**20  # blocks below this come from the heap and are reused (tests/test_allocator.py)
TRIM_THRESHOLD = 1024 * 2**20  # free memory kept at the heap's top
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
SWITCH = "LATENTEDIT_MALLOC"


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds (module docstring); True when both were set, False when left alone
    (not glibc, a user setting, ``LATENTEDIT_MALLOC=default``, or ``mallopt`` refused a value)."""
    if os.environ.get(SWITCH, "") == "default":
        return False
    user = [name for name in USER_SETTINGS if name in os.environ]
    if user:
        log.debug("malloc settings left to the user's %s", user)
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, version = libc.mallopt, libc.gnu_get_libc_version  # glibc only: musl and macOS lack these
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    version.restype = ctypes.c_char_p
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        log.warning("glibc %s refused mallopt thresholds %d / %d: the allocator keeps its defaults",
                    version().decode(errors="replace"), MMAP_THRESHOLD, TRIM_THRESHOLD)
    return ok
