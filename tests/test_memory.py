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


def test_saved_bytes_split_by_dtype() -> None:
    x = torch.randn(8, 16, requires_grad=True)
    weight = torch.randn(10, 4, requires_grad=True)
    idx = torch.tensor([1, 2, 3, 4, 5])
    with SavedTensorsMeter(exclude=[weight]) as meter:
        torch.sigmoid(x)                          # saves its float32 output
        torch.nn.functional.embedding(idx, weight)  # saves the int64 indices
    assert meter.bytes_by_dtype() == {torch.float32: 8 * 16 * 4, torch.int64: 5 * 8}
    assert sum(meter.bytes_by_dtype().values()) == meter.bytes


def test_peak_meter_adds_created_storages_and_subtracts_freed_ones() -> None:
    from course_lib.memory import PeakTensorMeter

    before = torch.ones(1000)  # created outside: not counted
    with PeakTensorMeter() as meter:
        a = before * 2                                # 4000 B
        b = torch.ones(500)                           # 2000 B: live 6000, the peak
        b_view = b[:10]                               # a view: same storage, no new bytes
        del a                                         # 2000
        c = torch.zeros(100, dtype=torch.float64)     # 800: live 2800
    assert meter.peak == 6000 and meter.live == 2800
    assert b_view.numel() == 10 and c.numel() == 100


def test_peak_meter_sees_recomputation_and_gradients() -> None:
    from torch.utils.checkpoint import checkpoint

    from course_lib.memory import PeakTensorMeter

    torch.manual_seed(0)
    blocks = nn.ModuleList(nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 64)) for _ in range(4))
    x = torch.randn(128, 64, requires_grad=True)
    wide = 128 * 256 * 4  # bytes of one block's inner activation (the tanh output, saved by tanh and the Linear)

    def run(use_checkpoint: bool) -> tuple[int, int]:
        blocks.zero_grad(set_to_none=True)
        with PeakTensorMeter() as meter:
            h = x
            for block in blocks:
                h = checkpoint(block, h, use_reentrant=False) if use_checkpoint else block(h)
            loss = h.sum()
            after_forward = meter.live
            loss.backward()
        return after_forward, meter.peak

    (fwd_plain, peak_plain), (fwd_ckpt, peak_ckpt) = run(False), run(True)
    assert fwd_plain - fwd_ckpt == 4 * wide          # checkpointing dropped exactly the 4 inner activations
    assert peak_ckpt - fwd_ckpt >= wide              # backward brings one block's inner activation back
    assert 0 < peak_plain - peak_ckpt < 4 * wide     # the peak falls, by less than what the forward dropped


def test_allocation_timeline_adds_up_the_allocators_record() -> None:
    from course_lib.memory import allocation_timeline

    x = torch.ones(1000)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        y = x * 2  # 4,000 B
        z = y + 1  # 4,000 B more
        del y  # freed
    timeline = allocation_timeline(prof)
    peak, last = max(alive for _, alive in timeline), timeline[-1][1]
    assert 8000 <= peak < 8100 and peak - 4100 < last <= peak - 4000  # (and a few bytes of scalar temporaries)
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline) and float(z.sum()) == 3000.0
    assert allocation_timeline(prof, "cuda") == []  # nothing on a GPU


def test_training_state_parts_counts_params_grads_and_adams_moments_without_step() -> None:
    from course_lib.memory import training_state_parts

    model = torch.nn.Linear(10, 3)  # 33 parameters
    optimizer = torch.optim.AdamW(model.parameters())
    assert training_state_parts(model, optimizer) == {"params": 132, "params_allocated": 132, "grads": 0,
                                                      "grads_allocated": 0, "optimizer": 0, "optimizer_allocated": 0}
    model(torch.randn(2, 10)).sum().backward()
    optimizer.step()
    parts = training_state_parts(model, optimizer)
    assert (parts["params"], parts["grads"], parts["optimizer"]) == (132, 132, 264)  # 4 + 4 + 8 B per parameter

