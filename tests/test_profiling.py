"""Measuring helpers: bytes saved for backward, median wall time, tensor bytes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from course_lib.profiling import median_seconds, saved_tensor_bytes, tensor_bytes


def test_saved_tensor_bytes_counts_activations_not_parameters() -> None:
    linear = torch.nn.Linear(10, 10)
    x = torch.randn(7, 10, requires_grad=True)
    with saved_tensor_bytes(exclude=linear.parameters()) as saved:
        y = torch.tanh(linear(x))
    # linear saves its input x (7x10 float32); tanh saves its output (7x10); the weight is excluded
    assert saved.bytes == 2 * 7 * 10 * 4 and saved.count == 2
    y.sum().backward()


def test_checkpointing_keeps_only_the_segment_input() -> None:
    linear = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8, requires_grad=True)

    def block(h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(linear(h)).exp()

    with saved_tensor_bytes(exclude=linear.parameters()) as plain:
        block(x)
    with saved_tensor_bytes(exclude=linear.parameters()) as ckpt:
        checkpoint(block, x, use_reentrant=False)
    assert plain.bytes == 3 * 4 * 8 * 4  # x, tanh output, exp output
    assert ckpt.bytes == 4 * 8 * 4       # x only: the rest is recomputed in backward


def test_median_seconds_and_tensor_bytes() -> None:
    calls = []
    seconds = median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and seconds >= 0
    assert tensor_bytes([torch.zeros(3, dtype=torch.float64), torch.zeros(4, dtype=torch.int8)]) == 28
    with pytest.raises(ValueError, match="repeats must be"):
        median_seconds(lambda: None, repeats=0)
