"""Checkers for notebook 01 (tensors and autograd)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from course_lib.autograd import Value
from course_lib.exercises import attempt, expect, expect_close, passed


def check_shared_tensor(to_tensor: Callable[[np.ndarray], torch.Tensor]) -> None:
    """Exercise 1.1: ``to_tensor(a)`` must return a tensor that shares memory with ``a``."""
    title = "Exercise 1.1 (shared memory)"
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = attempt(title, to_tensor, a)
    expect(title, isinstance(t, torch.Tensor), f"expected a torch.Tensor, got {type(t).__name__}")
    expect_close(title, t, torch.from_numpy(a.copy()))
    a[0, 0] = 100.0
    expect(title, t[0, 0].item() == 100.0,
           "the tensor did not change when the array changed: it holds a copy "
           "(torch.tensor and torch.as_tensor with a dtype copy; torch.from_numpy shares)")
    passed(title, "the tensor is a view of the array's memory")


def check_sigmoid(sigmoid: Callable[[Value], Value]) -> None:
    """Exercise 1.3: ``sigmoid(v)`` built from Value primitives; value and gradient match torch."""
    title = "Exercise 1.3 (sigmoid for Value)"
    for x in (-3.0, -0.5, 0.0, 0.8, 4.0):
        v = Value(x)
        out = attempt(title, sigmoid, v)
        expect(title, isinstance(out, Value), f"sigmoid must return a Value, got {type(out).__name__}")
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        ref = torch.sigmoid(t)
        ref.backward()
        expect_close(f"{title}, value at x={x}", out.data, ref.item(), atol=1e-9)
        out.backward()
        expect(title, v.grad != 0.0 or x == 0.0,
               f"the input's gradient is 0 at x={x}: was the result built from Value operations?")
        expect_close(f"{title}, gradient at x={x}", v.grad, t.grad.item(), atol=1e-9)
    passed(title, "values and gradients match torch.sigmoid at 5 points")


def check_gradients_for(gradients_for: Callable[[list[float]], list[float]]) -> None:
    """Exercise 1.2: dw/dx for w = 4 (x^2 + 3) at several points, reusing one leaf tensor."""
    title = "Exercise 1.2 (zero the gradient)"
    xs = [1.0, 2.0, 3.0]
    got = attempt(title, gradients_for, xs)
    expected = [8 * x for x in xs]
    accumulated = list(np.cumsum(expected))
    got_list = [float(g) for g in got]
    expect(title, len(got_list) == len(xs), f"expected {len(xs)} gradients, got {len(got_list)}")
    expect(title, got_list != accumulated,
           f"got {got_list}: each gradient includes the previous ones; call x.grad.zero_() "
           "(or set x.grad = None) before each backward()")
    for x, g, e in zip(xs, got_list, expected, strict=True):
        expect_close(f"{title}, dw/dx at x={x}", g, e)
    passed(title, f"gradients {got_list} = 8x")
