"""Timing done the same way everywhere: warm-up, several repeats, the median, GPUs synchronised."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from types import TracebackType

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


class Timer:
    """Context manager: wall seconds of its ``with`` block, with GPU work synchronised at both ends.

    Example::

        with Timer(device) as timer:
            loss = train_one_epoch(model, batches, loss_fn, optimizer, device)
        print(timer.seconds)

    ``device`` as for :func:`synchronize` (None: every GPU present), so queued kernels count as unfinished.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.seconds = float("nan")

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


def sample_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
                   min_seconds: float = 0.05) -> list[float]:
    """Wall times of ``fn()``, one per call, after ``warmup`` untimed calls.

    Calls ``fn`` at least ``repeats`` times and until ``min_seconds`` have been spent, so very short
    calls get enough samples for their median to shrug off a few slow ones (a busy machine). CUDA work
    and MPS work is synchronised before and after each call, so queued kernels count as unfinished.
    """
    check_int("repeats", repeats, min_value=1)
    check_int("warmup", warmup, min_value=0)
    check_float("min_seconds", min_seconds, min_value=0.0)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_seconds:
        with Timer() as timer:
            fn()
        times.append(timer.seconds)
    return times


def median(seconds: Iterable[float]) -> float:
    """The median of measured times (the mean of the two middle ones for an even count), in their unit."""
    values = list(seconds)
    if not values:
        raise ValueError("median of no measurements")
    return statistics.median(values)


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, min_seconds: float = 0.05) -> float:
    """Median wall time of ``fn()``: the typical call, over the samples of :func:`sample_seconds`."""
    return median(sample_seconds(fn, repeats, warmup, min_seconds))


def limit_cpu_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in PyTorch and in NumPy's BLAS (on tiny tensors one thread is fastest)."""
    check_int("threads", threads, min_value=1)
    torch.set_num_threads(threads)
    threadpool_limits(threads)
