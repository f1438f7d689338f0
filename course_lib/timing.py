"""Timing done the same way everywhere: warm-up, several repeats, the median, GPUs synchronised."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from threadpoolctl import threadpool_limits

from course_lib.env import check_float, check_int


def synchronize(device: torch.device | None = None) -> None:
    """Wait for queued GPU work (CUDA or MPS; all available when ``device`` is None), so a timer measures the work."""
    kind = device.type if device is not None else None
    if kind in (None, "cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(device)
    if kind in (None, "mps") and hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.synchronize()


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, min_seconds: float = 0.05) -> float:
    """Median wall time of ``fn()`` after ``warmup`` untimed calls.

    Calls ``fn`` at least ``repeats`` times and until ``min_seconds`` have been spent, so very short
    calls get enough samples for the median to shrug off a few slow ones (a busy machine). CUDA work
    and MPS work is synchronised before and after each call, so queued kernels count as unfinished.
    """
    check_int("repeats", repeats, min_value=1)
    check_int("warmup", warmup, min_value=0)
    check_float("min_seconds", min_seconds, min_value=0.0)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_seconds:
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def limit_cpu_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in PyTorch and in NumPy's BLAS (on tiny tensors one thread is fastest)."""
    check_int("threads", threads, min_value=1)
    torch.set_num_threads(threads)
    threadpool_limits(threads)
