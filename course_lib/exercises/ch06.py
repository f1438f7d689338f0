"""Checkers for notebook 06 (efficient fine-tuning), in notebook order: LoRA forward, a predicted LoRA count,
segment checkpointing, absmax int8."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_lib.exercises import ExerciseFailed, attempt, checker, expect, expect_close, passed
from course_lib.finetuning import lora_parameter_count
from course_lib.memory import SavedTensorsMeter


@checker
def check_lora_forward(lora_forward: Callable[..., torch.Tensor]) -> None:
    """Exercise 6.1: ``lora_forward(x, weight, bias, A, B, alpha)`` = base output + (alpha / r) x A^T B^T."""
    title = "Exercise 6.1 (LoRA forward)"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    bias = torch.randn(5, generator=gen, dtype=torch.float64)
    A = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    B = torch.zeros(5, 2, dtype=torch.float64)
    base = x @ weight.T + bias
    out = attempt(title, lora_forward, x, weight, bias, A, B, 4.0)
    expect(title, isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    expect_close(f"{title}, with B = 0 the output must equal the base layer's", out, base, atol=1e-10)
    B = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    out = attempt(title, lora_forward, x, weight, bias, A, B, 4.0)
    unscaled = base + x @ A.T @ B.T
    expect(title, not (out.shape == base.shape and torch.allclose(out, unscaled)),
           "the update is not scaled: multiply x @ A.T @ B.T by alpha / r (here 4 / 2 = 2)")
    expect_close(f"{title}, with B != 0", out, base + 2.0 * x @ A.T @ B.T, atol=1e-10)
    passed(title, "unchanged at B = 0, and base + (alpha / r) x A^T B^T otherwise")


@checker
def check_lora_count(lora_count: Callable[[nn.Module, int], int], model: nn.Module, r: int, measured: int) -> None:
    """Exercise 6.2 (predict, then run): ``lora_count(model, r)`` against ``measured``, peft's count for ``r``."""
    title = "Exercise 6.2 (predict the LoRA count)"
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    for rank in (r, 1, 8):
        got = attempt(title, lora_count, model, rank)
        expected = measured if rank == r else lora_parameter_count(model, targets, rank)
        source = "peft counted" if rank == r else "the layers give"
        expect(title, isinstance(got, int) and not isinstance(got, bool),
               f"return a Python int, got {type(got).__name__} {got!r}")
        if got == expected:
            continue
        layers = [m for name, m in model.named_modules()
                  if name.rsplit(".", 1)[-1] in targets and isinstance(m, nn.Linear)]
        square = sum(rank * 2 * m.in_features for m in layers)
        full = sum(m.in_features * m.out_features for m in layers)
        if got == square:
            hint = ("did you assume every projection is square? With grouped-query attention k_proj and v_proj "
                    "output fewer features than they take in")
        elif got == full:
            hint = "that is the number of values in the frozen weights; LoRA trains two thin factors instead"
        elif got * 2 == expected or got == 2 * expected:
            hint = "off by a factor of 2: count both factors, A (r x in_features) and B (out_features x r), once each"
        else:
            hint = (f"each of the {len(layers)} adapted layers adds A: r x in_features and B: out_features x r "
                    "(no bias)")
        raise ExerciseFailed(f"{title}: for r={rank} you predicted {got:,}, {source} {expected:,}: {hint}")
    passed(title, f"your {measured:,} for r = {r} is what peft trains; r = 1 and 8 match too")


@checker
def check_checkpointed_stack(checkpointed_stack: Callable[[list[nn.Module], torch.Tensor, int], torch.Tensor]) -> None:
    """Exercise 6.3: ``checkpointed_stack(blocks, x, every)`` = the blocks in order, keeping one input per segment."""
    title = "Exercise 6.3 (checkpointed segments)"
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 8)).double() for _ in range(4)]
    params = [p for block in blocks for p in block.parameters()]
    x = torch.randn(16, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    with SavedTensorsMeter(exclude=params) as plain:
        expected = x
        for block in blocks:
            expected = block(expected)
    expected.sum().backward()
    expected_grads = [t.grad.clone() for t in (x, *params)]
    input_bytes = x.numel() * x.element_size()
    names = ["x", *(f"blocks[{i}].{n}" for i, block in enumerate(blocks) for n, _ in block.named_parameters())]
    details = []
    for every in (1, 2, 4):
        for t in (x, *params):
            t.grad = None
        with SavedTensorsMeter(exclude=params) as saved:
            out = attempt(title, checkpointed_stack, list(blocks), x, every)
        expect(title, isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
        expect(title, out.requires_grad, "the output carries no gradient: don't run the blocks under "
               "torch.no_grad() or detach them; activation checkpointing keeps the graph")
        expect_close(f"{title}, output with every={every}", out, expected, atol=1e-12)
        out.sum().backward()
        for name, t, grad in zip(names, (x, *params), expected_grads, strict=True):
            expect(title, t.grad is not None, f"with every={every} no gradient reached {name}")
            expect_close(f"{title}, gradient of {name} with every={every}", t.grad, grad, atol=1e-12)
        segments = -(-len(blocks) // every)
        if saved.bytes == plain.bytes:
            problem = ("nothing was recomputed: run each segment through PyTorch's activation checkpointing "
                       "(torch.utils.checkpoint, use_reentrant=False)")
        elif saved.bytes == len(blocks) * input_bytes and segments != len(blocks):
            problem = f"that is one input per block: group {every} consecutive blocks into one checkpointed segment"
        else:
            problem = (f"expected the input of each of the {segments} segments, {segments} x {input_bytes} B "
                       f"(all blocks plain: {plain.bytes} B)")
        expect(title, saved.bytes == segments * input_bytes,
               f"with every={every} the forward saved {saved.bytes} B for backward; {problem}")
        details.append(f"every={every}: {saved.bytes} B")
    passed(title, f"same output and gradients; saved {', '.join(details)} instead of {plain.bytes} B")


@checker
def check_absmax_int8(quantize: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                      dequantize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 6.4: per-tensor absmax int8, round trip within half a quantization step."""
    title = "Exercise 6.4 (absmax int8)"
    w = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    codes, scale = attempt(title, quantize, w)
    expect(title, isinstance(codes, torch.Tensor) and codes.dtype == torch.int8,
           f"codes must be an int8 tensor, got {getattr(codes, 'dtype', type(codes).__name__)}")
    expect(title, codes.shape == w.shape, f"codes must have the weight's shape {tuple(w.shape)}, got "
           f"{tuple(codes.shape)}")
    step = w.abs().max().item() / 127
    expect(title, abs(float(scale) - step) <= 1e-7 + 1e-5 * step,
           f"scale {float(scale):.6g}, expected {step:.6g}: one step must be the tensor's largest |w| "
           f"({w.abs().max().item():.4f}) divided by 127, so that the whole code range -127..127 is used")
    expect(title, codes.abs().max().item() == 127, "the largest |weight| must map to code +-127: "
           f"got max |code| = {codes.abs().max().item()}")
    restored = attempt(title, dequantize, codes, scale)
    err = (restored.float() - w).abs().max().item()
    expect(title, err <= step / 2 + 1e-6, f"round-trip error {err:.3g} exceeds half a step ({step / 2:.3g}): "
           "round to the nearest code (torch.round), don't truncate")
    passed(title, f"max round-trip error {err:.4f} <= half a step {step / 2:.4f}")
