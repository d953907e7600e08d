"""Atomic output files: write to a temporary sibling, rename onto the final name only when complete.

A job killed mid-write therefore never leaves a file that looks finished; at worst a ``.<name>.tmp-<pid>``
sibling remains, which nothing reads, and which the next successful write of the same file removes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Test hook (tests/test_faults.py): a writer whose final path matches this glob stops in the middle of the write, its
# output half-written under the temporary name, so that a test can kill the job there deterministically.
PAUSE_ENV = "LATENTEDIT_TEST_PAUSE_WRITING"
PAUSE_SECONDS = 600


def pause_if_requested(final: str | os.PathLike) -> None:
    """Sleep ``PAUSE_SECONDS`` when ``$LATENTEDIT_TEST_PAUSE_WRITING`` is a glob matching ``final``; else return."""
    pattern = os.environ.get(PAUSE_ENV)
    if pattern and fnmatch.fnmatch(str(final), pattern):
        print(f"{PAUSE_ENV}: pausing in the middle of writing {final}", file=sys.stderr, flush=True)
        time.sleep(PAUSE_SECONDS)


def temporary_siblings(final: str | os.PathLike) -> list[Path]:
    """The temporaries of ``final`` that writers left behind (killed mid-write, or still writing)."""
    final = Path(final)
    return sorted(final.parent.glob(f".{glob.escape(final.name)}.tmp-*"))


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success ``os.replace`` it onto ``final``.

    On any exception the temporary file is removed and ``final`` is left untouched. After a success, temporaries
    of ``final`` left by earlier writers that were killed are removed too.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    try:
        yield tmp
        pause_if_requested(final)
        os.replace(tmp, final)
        for stale in temporary_siblings(final):
            stale.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
