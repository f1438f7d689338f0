"""Byte counters: saved tensors for backward, parameters, gradients, optimizer state."""

import pytest
import torch
from torch import nn

from course_lib.memory import (
    SavedTensorsMeter,
    count_parameters,
    gradient_bytes,
    optimizer_state_bytes,
    parameter_bytes,
    storage_bytes,
)


def test_storage_bytes_deduplicates_views() -> None:
    a = torch.zeros(10, 10)
    assert storage_bytes([a, a[2:], a.T, torch.zeros(5, dtype=torch.float64)]) == 10 * 10 * 4 + 5 * 8
    with pytest.raises(TypeError, match="expects tensors"):
        storage_bytes([1.0])


def test_meter_counts_exactly_what_a_small_graph_saves() -> None:
    x = torch.randn(8, 16, requires_grad=True)
    with SavedTensorsMeter() as meter:
        y = torch.sigmoid(x)  # saves its output: 8*16*4 bytes
        z = (y * y).sum()  # saves y twice: same storage, counted once
    assert meter.count == 3
    assert meter.bytes == 8 * 16 * 4
    z.backward()  # the identity unpack hook leaves gradients untouched
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, 2 * s * s * (1 - s))


def test_meter_excludes_parameters_and_reads_zero_without_grad() -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    X = torch.randn(10, 32)
    with SavedTensorsMeter(exclude=model.parameters()) as meter:
        model(X)
    # first Linear saves X (10x32); ReLU saves its output (10x64), also the second Linear's input
    assert meter.bytes == 10 * 32 * 4 + 10 * 64 * 4
    with SavedTensorsMeter() as with_params:
        model(X)
    assert with_params.bytes > meter.bytes
    for context in (torch.no_grad, torch.inference_mode):
        with SavedTensorsMeter() as meter, context():
            model(X)
        assert meter.bytes == 0 and meter.count == 0


def test_parameter_gradient_and_adam_state_bytes() -> None:
    model = nn.Linear(100, 10)
    P = count_parameters(model)
    assert P == 100 * 10 + 10 and parameter_bytes(model) == 4 * P and gradient_bytes(model) == 0
    optimizer = torch.optim.Adam(model.parameters())
    assert optimizer_state_bytes(optimizer) == {}
    model(torch.randn(4, 100)).sum().backward()
    optimizer.step()
    assert gradient_bytes(model) == 4 * P
    state = optimizer_state_bytes(optimizer)
    assert state["exp_avg"] == 4 * P and state["exp_avg_sq"] == 4 * P
    assert state["step"] == 2 * 4  # one float32 step counter per parameter tensor
    model.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == model.bias.numel()


def test_checkpointing_keeps_only_the_segment_input() -> None:
    from torch.utils.checkpoint import checkpoint

    linear = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8, requires_grad=True)

    def block(h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(linear(h)).exp()

    with SavedTensorsMeter(exclude=linear.parameters()) as plain:
        block(x)
    with SavedTensorsMeter(exclude=linear.parameters()) as ckpt:
        checkpoint(block, x, use_reentrant=False)
    assert plain.bytes == 3 * 4 * 8 * 4 and plain.distinct == 3  # x, tanh output, exp output
    assert ckpt.bytes == 4 * 8 * 4 and ckpt.distinct == 1        # x only: the rest is recomputed in backward


def test_tensor_bytes_counts_each_tensor() -> None:
    from course_lib.memory import tensor_bytes

    assert tensor_bytes([torch.zeros(3, dtype=torch.float64), torch.zeros(4, dtype=torch.int8)]) == 3 * 8 + 4 * 1
