"""Timing shared by the benchmarks: the median wall time of a call, synchronising CUDA around it."""

from __future__ import annotations

import statistics
import time

import torch


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of fn() over ``repeats`` runs, after one warm-up run (seconds)."""
    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()
    return statistics.median(once() for _ in range(repeats))
