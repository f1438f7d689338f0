"""Byte counts that explain where training memory goes: saved activations, parameters, gradients, optimizer state.

``SavedTensorsMeter`` counts what autograd keeps for the backward pass, using
``torch.autograd.graph.saved_tensors_hooks``; ``PeakTensorMeter`` follows every tensor created in a
block (activations, recomputed activations, gradients) and records the peak of their live bytes;
``allocation_timeline`` reads the allocator's own record from the torch profiler (every buffer, also those
a library allocates out of sight, such as FSDP's all-gather buffers); the other helpers count tensors a
model or an optimizer holds. Every count deduplicates storages: two
views of one block of memory count once.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from types import TracebackType

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def _storage_key(tensor: torch.Tensor) -> tuple[str, int]:
    storage = tensor.untyped_storage()
    return str(tensor.device), storage.data_ptr()


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of the distinct storages behind ``tensors`` (views and repeats count once)."""
    seen: dict[tuple[str, int], int] = {}
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"storage_bytes expects tensors, got {type(tensor).__name__}")
        seen[_storage_key(tensor)] = tensor.untyped_storage().nbytes()
    return sum(seen.values())


class SavedTensorsMeter:
    """Context manager: bytes of the tensors autograd saves for backward inside the ``with`` block.

    Example::

        with SavedTensorsMeter(exclude=model.parameters()) as meter:
            loss = loss_fn(model(X), y)
        print(meter.bytes, meter.count)   # activation memory kept alive until backward

    ``bytes`` counts each storage once (a ReLU output saved by the ReLU and by the next Linear
    counts once); ``count`` is the number of save events; storages of ``exclude`` (typically the
    parameters, which exist anyway) are not counted. Nothing is saved under ``torch.no_grad()`` or
    ``torch.inference_mode()``, so the meter reads 0 there. Tensors saved inside an inner
    ``saved_tensors_hooks`` region (e.g. non-reentrant activation checkpointing) are handled by
    that region's hooks and not seen here.
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._excluded = {_storage_key(t) for t in exclude}
        self._storages: dict[tuple[str, int], torch.UntypedStorage] = {}
        self._dtypes: dict[tuple[str, int], torch.dtype] = {}
        self.count = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.count += 1
        key = _storage_key(tensor)
        if key not in self._excluded:
            # Holding the storage keeps it alive, so a freed address cannot be reused and miscounted.
            self._storages[key] = tensor.untyped_storage()
            self._dtypes[key] = tensor.dtype
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @property
    def bytes(self) -> int:
        """Bytes of the distinct storages saved so far."""
        return sum(storage.nbytes() for storage in self._storages.values())

    def bytes_by_dtype(self) -> dict[torch.dtype, int]:
        """Bytes of the distinct storages saved so far, per dtype of the tensor that saved them."""
        totals: dict[torch.dtype, int] = {}
        for key, storage in self._storages.items():
            totals[self._dtypes[key]] = totals.get(self._dtypes[key], 0) + storage.nbytes()
        return totals

    @property
    def distinct(self) -> int:
        """Number of distinct storages saved so far (``count`` counts every save event)."""
        return len(self._storages)

    def __enter__(self) -> SavedTensorsMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._hooks.__exit__(exc_type, exc, tb)


class PeakTensorMeter(TorchDispatchMode):
    """Context manager: live and peak bytes of the tensors created inside the ``with`` block.

    Example::

        with PeakTensorMeter() as meter:
            model(X).sum().backward()
        print(meter.peak)   # the most bytes of activations, recomputed activations and gradients alive at once

    Every operation's outputs are counted once per storage when created and subtracted when freed, so
    the peak is a property of the program, not of an allocator: the same on every CPU. Tensors that
    existed before the block (parameters, inputs) and the scratch memory inside a kernel are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._alive: dict[int, weakref.finalize] = {}

    def _release(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._alive.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's protocol)
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and id(storage := tensor.untyped_storage()) not in self._alive:
                nbytes = storage.nbytes()
                self._alive[id(storage)] = weakref.finalize(storage, self._release, id(storage), nbytes)
                self.live += nbytes
                self.peak = max(self.peak, self.live)
        return out

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        super().__exit__(exc_type, exc, tb)
        for finalizer in list(self._alive.values()):
            finalizer.detach()  # tensors that outlive the block stop being tracked; live keeps their bytes
        self._alive.clear()


def allocation_timeline(prof: torch.profiler.profile, device: torch.device | str = "cpu") -> list[tuple[float, int]]:
    """``(ms since profiling began, bytes allocated since then and still alive)`` after each allocation or free.

    ``prof`` is a finished ``torch.profiler.profile(profile_memory=True)``: torch's allocator reported each
    allocation and free on ``device`` made by the profiled thread. Memory allocated before profiling began
    is not counted, nor its frees (the allocator does not know their size); memory a library allocates
    out of torch's sight (gloo's and NCCL's own buffers) is not seen. Reads ``prof.profiler.kineto_results``,
    the profiler's raw events: its public views fold the allocations into the operators' totals.
    """
    device = torch.device(device)
    kind = torch.autograd.DeviceType.CUDA if device.type == "cuda" else torch.autograd.DeviceType.CPU
    results = prof.profiler.kineto_results
    start = results.trace_start_ns()
    events = sorted((e.start_ns(), e.nbytes()) for e in results.events()
                    if e.name() == "[memory]" and e.device_type() == kind)
    timeline, live = [], 0
    for time_ns, nbytes in events:
        live += nbytes
        timeline.append(((time_ns - start) / 1e6, live))
    return timeline


def local(tensor: torch.Tensor) -> torch.Tensor:
    """The part of ``tensor`` this process holds: a ``DTensor``'s local shard, any other tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor  # duck-typed: no import of DTensor


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of ``tensors`` (their local shards) as ``numel * element_size``; shared storage counts twice."""
    return sum(t.numel() * t.element_size() for t in map(local, tensors))


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters (the storages of this process's shards under FSDP)."""
    return storage_bytes(map(local, model.parameters()))


def gradient_bytes(model: nn.Module) -> int:
    """Bytes of the ``.grad`` tensors a model's parameters hold now (0 before backward or after zero_grad)."""
    return storage_bytes(local(p.grad) for p in model.parameters() if p.grad is not None)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of an optimizer's state per entry name (e.g. Adam's ``exp_avg``, ``exp_avg_sq``, ``step``).

    The state is created lazily, so it is empty until the first ``optimizer.step()``.
    """
    by_name: dict[str, list[torch.Tensor]] = {}
    for state in optimizer.state.values():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                by_name.setdefault(name, []).append(local(value))
    return {name: storage_bytes(tensors) for name, tensors in sorted(by_name.items())}


def training_state_parts(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes held for ``params``, ``grads`` and ``optimizer`` (its tensors but the scalar ``step`` counters).

    ``<part>`` counts the elements of the tensors this process holds; ``<part>_allocated`` the storages behind
    them, which include FSDP's padding.
    """
    params = list(model.parameters())
    parts = {"params": params, "grads": [p.grad for p in params if p.grad is not None],
             "optimizer": [v for state in optimizer.state.values() for k, v in state.items()
                           if k != "step" and isinstance(v, torch.Tensor)]}
    report = {}
    for part, tensors in parts.items():
        report[part] = tensor_bytes(tensors)
        report[f"{part}_allocated"] = storage_bytes(map(local, tensors))
    return report


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
