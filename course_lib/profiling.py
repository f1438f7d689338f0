"""Measuring what training costs: bytes autograd keeps for backward, and wall time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from course_lib.params import check_int


@dataclass
class SavedBytes:
    """Running total of :func:`saved_tensor_bytes`: bytes and count of distinct storages saved for backward."""

    bytes: int = 0
    count: int = 0
    _seen: dict[int, object] = field(default_factory=dict, repr=False)  # holding storages keeps addresses unique


@contextmanager
def saved_tensor_bytes(exclude: Iterable[torch.Tensor] = ()) -> Iterator[SavedBytes]:
    """Count the bytes of the distinct tensor storages autograd saves for backward inside the block.

    This is the activation memory of a forward pass, measured on any device. Storages of tensors in
    ``exclude`` (typically ``model.parameters()``, which exist anyway) are not counted, and a storage
    saved twice counts once. Run ``backward()`` after the block, not inside it.
    """
    total = SavedBytes()
    total._seen.update((t.untyped_storage().data_ptr(), None) for t in exclude)

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in total._seen:
            total._seen[storage.data_ptr()] = storage
            total.bytes += storage.nbytes()
            total.count += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls (CUDA synchronised)."""
    check_int("repeats", repeats, min_value=1)
    check_int("warmup", warmup, min_value=0)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of ``tensors`` (``numel * element_size``)."""
    return sum(t.numel() * t.element_size() for t in tensors)
