"""What every workflow script does first (:func:`setup_job`): log to the rule's log, keep the memory a step frees for
the next (:func:`latentedit.allocator.keep_freed_memory`) and give torch the rule's thread count.

This module does not import torch. The jobs that draw figures, build the digits or aggregate tables never touch it,
and ``import torch`` is 1.5–1.9 s of a fresh interpreter (and ≈ 90 MB): when a job has not imported torch by the time
it calls :func:`setup_job`, the thread count goes into ``OMP_NUM_THREADS``, which torch reads when it is first
imported, so a job that imports it later still runs on the rule's threads.
"""

from __future__ import annotations

import logging
import os
import sys

from latentedit.allocator import keep_freed_memory


def setup_job(log_path: str | None, threads: int | None = None) -> logging.Logger:
    """Log to ``log_path`` (:func:`setup_logging`), apply the allocator setting and, with ``threads``, set torch's
    intra-op threads: at once when torch is imported, else through ``OMP_NUM_THREADS`` for its first import (module
    docstring). Returns the ``latentedit`` logger."""
    logger = setup_logging(log_path)
    keep_freed_memory()
    if threads is not None:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(int(threads))
        else:
            os.environ["OMP_NUM_THREADS"] = str(int(threads))
    return logger


def setup_logging(log_path: str | None = None) -> logging.Logger:
    """Log to ``log_path`` (the rule's log file) and stderr; returns the ``latentedit`` logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    return logging.getLogger("latentedit")
