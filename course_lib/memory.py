"""Byte counts that explain where training memory goes: saved activations, parameters, gradients, optimizer state.

``SavedTensorsMeter`` counts what autograd keeps for the backward pass, using
``torch.autograd.graph.saved_tensors_hooks``; the other helpers count tensors a model or an
optimizer holds. Every count deduplicates storages: two views of one block of memory count once.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import torch
from torch import nn


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
        self._storages: dict[tuple[str, int], int] = {}
        self.count = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.count += 1
        key = _storage_key(tensor)
        if key not in self._excluded:
            self._storages[key] = tensor.untyped_storage().nbytes()
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @property
    def bytes(self) -> int:
        """Bytes of the distinct storages saved so far."""
        return sum(self._storages.values())

    def __enter__(self) -> SavedTensorsMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._hooks.__exit__(exc_type, exc, tb)


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters."""
    return storage_bytes(model.parameters())


def gradient_bytes(model: nn.Module) -> int:
    """Bytes of the ``.grad`` tensors a model's parameters hold now (0 before backward or after zero_grad)."""
    return storage_bytes(p.grad for p in model.parameters() if p.grad is not None)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of an optimizer's state per entry name (e.g. Adam's ``exp_avg``, ``exp_avg_sq``, ``step``).

    The state is created lazily, so it is empty until the first ``optimizer.step()``.
    """
    by_name: dict[str, list[torch.Tensor]] = {}
    for state in optimizer.state.values():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                by_name.setdefault(name, []).append(value)
    return {name: storage_bytes(tensors) for name, tensors in sorted(by_name.items())}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
