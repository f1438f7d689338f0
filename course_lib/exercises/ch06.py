"""Checkers for notebook 06 (efficient fine-tuning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_lib.exercises import ExerciseFailed, attempt, expect, expect_close, passed
from course_lib.finetuning import lora_parameter_count
from course_lib.memory import SavedTensorsMeter


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


def check_lora_count(lora_count: Callable[[nn.Module, int], int], model: nn.Module) -> None:
    """Exercise 6.2: trainable LoRA parameters of q/k/v/o in every layer, from the layer shapes."""
    title = "Exercise 6.2 (LoRA parameter count)"
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    for r in (1, 8, 16):
        got = attempt(title, lora_count, model, r)
        expected = lora_parameter_count(model, targets, r)
        if got == expected:
            continue
        square = sum(r * 2 * m.in_features for name, m in model.named_modules()
                     if name.rsplit(".", 1)[-1] in targets and isinstance(m, nn.Linear))
        hint = (" (did you assume every projection is square? with grouped-query attention k_proj and v_proj "
                "output fewer features than they take in)" if got == square else
                " (each adapted layer adds A: r x in_features and B: out_features x r)")
        raise ExerciseFailed(f"{title}: for r={r} expected {expected}, got {got}{hint}")
    passed(title, "matches the model for r = 1, 8 and 16")


def check_checkpointed(checkpointed: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 6.3: ``checkpointed(block, x)`` gives ``block(x)`` and its gradients, saving only ``x`` for backward."""
    title = "Exercise 6.3 (checkpointed block)"
    gen = torch.Generator().manual_seed(0)
    block = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 8)).double()
    x = torch.randn(16, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    with SavedTensorsMeter(exclude=block.parameters()) as plain:
        expected = block(x)
    expected.sum().backward()
    expected_grads = [t.grad.clone() for t in (x, *block.parameters())]
    for t in (x, *block.parameters()):
        t.grad = None
    with SavedTensorsMeter(exclude=block.parameters()) as saved:
        out = attempt(title, checkpointed, block, x)
    expect(title, isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    expect(title, out.requires_grad, "the output carries no gradient: don't run the block under torch.no_grad() "
           "or detach it; torch.utils.checkpoint.checkpoint keeps the graph")
    expect_close(f"{title}, output", out, expected, atol=1e-12)
    out.sum().backward()
    for name, t, grad in zip(("x", *(n for n, _ in block.named_parameters())), (x, *block.parameters()),
                             expected_grads, strict=True):
        expect(title, t.grad is not None, f"no gradient reached {name}")
        expect_close(f"{title}, gradient of {name}", t.grad, grad, atol=1e-12)
    input_bytes = x.numel() * x.element_size()
    expect(title, saved.bytes == input_bytes, f"the forward saved {saved.bytes} bytes for backward, expected only "
           f"the input's {input_bytes} (without checkpointing: {plain.bytes}); call "
           "torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)")
    passed(title, f"same output and gradients; saved {saved.bytes} B (the input) instead of {plain.bytes} B")


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
    expect_close(f"{title}, scale", float(scale), step, atol=1e-7, rtol=1e-5)
    expect(title, codes.abs().max().item() == 127, "the largest |weight| must map to code +-127: "
           f"got max |code| = {codes.abs().max().item()}")
    restored = attempt(title, dequantize, codes, scale)
    err = (restored.float() - w).abs().max().item()
    expect(title, err <= step / 2 + 1e-6, f"round-trip error {err:.3g} exceeds half a step ({step / 2:.3g}): "
           "round to the nearest code (torch.round), don't truncate")
    passed(title, f"max round-trip error {err:.4f} <= half a step {step / 2:.4f}")
