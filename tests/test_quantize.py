"""Absmax int8 and blockwise 4-bit (NF4-style) quantization written by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.finetuning import (
    Linear4bit,
    dequantize_4bit,
    dequantize_int8,
    nf4_levels,
    quantize_4bit,
    quantize_int8,
    quantize_linears_4bit,
)


def test_int8_round_trip_error_is_at_most_half_a_step() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 32)
    codes, scale = quantize_int8(w)
    assert codes.dtype == torch.int8 and scale.shape == (16, 1)
    assert codes.abs().amax(dim=1).eq(127).all()  # each row's largest value maps to +-127
    err = (dequantize_int8(codes, scale) - w).abs()
    assert (err <= scale / 2 + 1e-7).all()


def test_nf4_levels_are_sixteen_sorted_values_with_exact_zero_and_ends() -> None:
    levels = nf4_levels()
    assert levels.shape == (16,)
    assert torch.all(levels[1:] > levels[:-1])
    assert levels[0] == -1 and levels[-1] == 1 and (levels == 0).sum() == 1
    assert (levels > 0).sum() == 8 and (levels < 0).sum() == 7


def test_4bit_stores_half_a_byte_per_value_and_picks_the_nearest_level() -> None:
    torch.manual_seed(0)
    w = torch.randn(10, 13)  # 130 values: not a multiple of the block size, so the last block is padded
    q = quantize_4bit(w, block_size=64)
    assert q.packed.dtype == torch.uint8 and q.packed.numel() == 3 * 64 // 2 and q.absmax.numel() == 3
    restored = dequantize_4bit(q)
    assert restored.shape == w.shape
    levels = nf4_levels()
    flat = torch.nn.functional.pad(w.flatten(), (0, 62)).view(3, 64)
    normalised = flat / flat.abs().amax(dim=1, keepdim=True)
    nearest = levels[(normalised[..., None] - levels).abs().argmin(dim=-1)]
    expected = (nearest * flat.abs().amax(dim=1, keepdim=True)).flatten()[:130].view(10, 13)
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-6)


def test_4bit_error_is_larger_than_int8_but_bounded() -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 64)
    err8 = (dequantize_int8(*quantize_int8(w)) - w).abs().mean()
    err4 = (dequantize_4bit(quantize_4bit(w)) - w).abs().mean()
    assert err8 < err4 < 0.1 * w.abs().mean()


def test_linear4bit_matches_a_linear_with_the_dequantized_weight() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(32, 8)
    q = Linear4bit(linear)
    x = torch.randn(3, 32)
    ref = x @ dequantize_4bit(quantize_4bit(linear.weight)).T + linear.bias
    torch.testing.assert_close(q(x), ref)
    assert list(q.parameters()) == []


def test_quantize_linears_skips_the_head() -> None:
    model = nn.Sequential()
    model.add_module("up", nn.Linear(4, 8))
    model.add_module("lm_head", nn.Linear(8, 4))
    assert quantize_linears_4bit(model) == 1
    assert isinstance(model.up, Linear4bit) and isinstance(model.lm_head, nn.Linear)


def test_bad_block_size_is_refused() -> None:
    with pytest.raises(ValueError, match="block_size must be even"):
        quantize_4bit(torch.ones(8), block_size=3)
