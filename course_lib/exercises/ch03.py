"""Checkers for notebook 03 (a CNN in NumPy vs PyTorch)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import cnn
from course_lib.exercises import ExerciseFailed, attempt, checker, expect, expect_close, passed


@checker
def check_conv_output_size(conv_output_size: Callable[[int, int, int, int], int]) -> None:
    """Exercise 3.1: ``conv_output_size(size, kernel_size, stride, padding)`` matches ``nn.Conv2d``."""
    title = "Exercise 3.1 (conv output size)"
    cases = [(8, 3, 1, 1), (8, 3, 1, 0), (28, 5, 1, 0), (8, 2, 2, 0), (7, 3, 2, 1), (9, 3, 2, 0), (5, 3, 2, 2),
             (32, 4, 3, 1), (1, 1, 1, 0)]
    for size, k, s, p in cases:
        got = attempt(title, conv_output_size, size, k, s, p)
        expected = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1]
        where = f"size={size}, kernel_size={k}, stride={s}, padding={p}"
        expect(title, isinstance(got, (int, np.integer)) and not isinstance(got, bool),
               f"return an int, got {type(got).__name__} {got!r} for {where} (use // for floor division)")
        if got != expected and p and got == (size - k) // s + 1:
            raise ExerciseFailed(f"{title}: for {where} you returned {got}, nn.Conv2d gives {expected}: "
                                 "padding adds p pixels on both sides, so the size grows by 2p")
        expect(title, got == expected, f"for {where} you returned {got}, nn.Conv2d gives {expected}; "
                                       "the formula is floor((size + 2*padding - kernel_size) / stride) + 1")
    passed(title, f"{len(cases)} shapes match nn.Conv2d")


@checker
def check_maxpool_backward(maxpool_backward: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> None:
    """Exercise 3.2: ``maxpool_backward(x, grad_output, kernel_size)`` equals autograd through ``F.max_pool2d``."""
    title = "Exercise 3.2 (MaxPool2D backward)"
    rng = np.random.default_rng(3)
    for shape, k in [((2, 3, 4, 4), 2), ((1, 2, 6, 6), 3), ((2, 1, 7, 5), 2)]:
        x = rng.standard_normal(shape)
        x_t = torch.tensor(x, requires_grad=True)
        out = F.max_pool2d(x_t, k)
        grad_output = rng.standard_normal(tuple(out.shape))
        out.backward(torch.from_numpy(grad_output))
        expected = x_t.grad.numpy()
        got = attempt(title, maxpool_backward, x.copy(), grad_output.copy(), k)
        case = f"input {shape}, kernel_size {k}"
        expect(title, isinstance(got, np.ndarray), f"return a NumPy array, got {type(got).__name__}")
        expect(title, got.shape == x.shape,
               f"for {case} the gradient must have the input's shape {shape}, got {got.shape}")
        winners = expected != 0
        expect(title, not np.any(got[~winners]),
               f"for {case} your gradient is non-zero at {int(np.count_nonzero(got[~winners]))} positions that "
               "were not the maximum of their window; only each window's winner receives gradient")
        expect(title, np.isclose(got.sum(), grad_output.sum()),
               f"for {case} your gradients sum to {got.sum():.4f}, the output gradients to {grad_output.sum():.4f}: "
               "each output's gradient must go to exactly one input")
        expect_close(f"{title}, {case}", got, expected, atol=1e-10)
    passed(title, "matches autograd through F.max_pool2d, odd sizes included")


@checker
def check_initial_loss(predict_initial_loss: Callable[[int], float], measured_loss: float,
                       num_classes: int = 10) -> None:
    """Exercise 3.3 (predict, then run): the cross-entropy of an untrained ``num_classes``-way classifier."""
    title = "Exercise 3.3 (the loss before training)"
    predicted = attempt(title, predict_initial_loss, num_classes)
    expect(title, isinstance(predicted, (int, float, np.integer, np.floating)) and not isinstance(predicted, bool),
           f"return a number (your prediction), got {type(predicted).__name__} {predicted!r}")
    predicted = float(predicted)
    expect(title, math.isfinite(predicted) and predicted >= 0,
           f"a cross-entropy is a finite number >= 0 (minus the log of a probability), you predicted {predicted}")
    measured = f"the untrained model's measured loss is {measured_loss:.2f}"
    if abs(predicted - measured_loss) <= 0.1:
        passed(title, f"you predicted {predicted:.2f}, {measured}: with small random weights every class gets "
                      f"about 1/{num_classes} of the probability, and the loss is minus the log of the true "
                      "class's probability. A first loss far from this means a bug (or a bad initialisation)")
        return
    close = [(1 / num_classes, f"{predicted:.3g} is the probability an untrained model gives the true class; "
                               "the loss is minus the log of that probability"),
             (math.log10(num_classes), "you took the log in base 10: cross-entropy uses the natural log"),
             (math.log2(num_classes), "you took the log in base 2 (bits): cross-entropy uses the natural log"),
             (0.0, "0 is the loss of a perfect model; an untrained one guesses"),
             (1.0, "a loss is not an accuracy or a probability: it is minus the log of the true class's probability")]
    for value, why in close:
        if abs(predicted - value) <= 0.02:
            raise ExerciseFailed(f"{title}: you predicted {predicted:.3g}, {measured}. {why}")
    raise ExerciseFailed(f"{title}: you predicted {predicted:.3g}, {measured}. Hint: an untrained model's "
                         f"logits are all close to each other; what probability does softmax then give each of the "
                         f"{num_classes} classes, and what is minus its log?")


@checker
def check_dense_module(module_class: type[nn.Module]) -> None:
    """Exercise 3.4: an ``nn.Module`` port of ``cnn.Dense``; autograd must reproduce the hand-written backward."""
    title = "Exercise 3.4 (Dense as an nn.Module)"
    module = attempt(title, module_class, 7, 5)
    params = dict(module.named_parameters())
    expect(title, len(params) == 2,
           f"expected 2 parameters (weight and bias) registered on the module, found {sorted(params)}; "
           "wrap the tensors in nn.Parameter and assign them as attributes in __init__")
    shapes = sorted(tuple(p.shape) for p in params.values())
    expect(title, shapes == [(5,), (5, 7)], f"expected parameter shapes (5, 7) and (5,), got {shapes}")
    weight = next(p for p in params.values() if p.ndim == 2)
    bias = next(p for p in params.values() if p.ndim == 1)

    rng = np.random.default_rng(0)
    layer = cnn.Dense(7, 5, dtype=np.float64, rng=rng)
    module = module.double()
    with torch.no_grad():
        weight.copy_(torch.from_numpy(layer.weights))
        bias.copy_(torch.from_numpy(layer.bias))
    x = rng.standard_normal((4, 7))
    grad_output = rng.standard_normal((4, 5))
    out = attempt(title, module, torch.from_numpy(x))
    expect(title, isinstance(out, torch.Tensor), f"forward must return a tensor, got {type(out).__name__}")
    expect_close(f"{title}, forward", out, torch.from_numpy(layer.forward(x)), atol=1e-10)
    expect(title, out.requires_grad, "the output does not require grad: did forward use .detach() or NumPy?")
    out.backward(torch.from_numpy(grad_output))
    layer.backward(grad_output)
    expect_close(f"{title}, autograd's weight gradient vs Dense.backward", weight.grad,
                 torch.from_numpy(layer.grad_weights), atol=1e-10)
    expect_close(f"{title}, autograd's bias gradient vs Dense.backward", bias.grad,
                 torch.from_numpy(layer.grad_bias), atol=1e-10)
    passed(title, "forward matches cnn.Dense and autograd reproduces its hand-written backward")
