"""Checkers for notebook 01 (tensors and autograd)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from course_lib.autograd import Value
from course_lib.exercises import attempt, expect, expect_close, passed


def check_shared_tensor(to_float32: Callable[[np.ndarray], torch.Tensor]) -> None:
    """Exercise 1.1: ``to_float32(a)`` gives a float32 tensor of ``a``, sharing memory when ``a`` is float32."""
    title = "Exercise 1.1 (float32, shared when possible)"
    for dtype in (np.float32, np.float64, np.int64):
        a = np.arange(6, dtype=dtype).reshape(2, 3)
        t = attempt(title, to_float32, a)
        expect(title, isinstance(t, torch.Tensor), f"expected a torch.Tensor, got {type(t).__name__}")
        expect(title, t.dtype == torch.float32,
               f"for a {np.dtype(dtype).name} array the tensor's dtype is {t.dtype}, expected torch.float32 "
               "(torch.from_numpy keeps the array's dtype; pass dtype= or convert)")
        expect_close(f"{title}, values of a {np.dtype(dtype).name} array", t,
                     torch.arange(6, dtype=torch.float32).reshape(2, 3))
        a[0, 0] = 100
        expect(title, dtype is not np.float32 or t[0, 0].item() == 100.0,
               "for a float32 array the tensor did not change when the array changed: it holds a copy, "
               "but nothing needed converting, so it could share the array's memory (torch.tensor always copies)")
    passed(title, "float32 tensors; a float32 array's memory is shared, float64 and int64 arrays are converted")


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


def check_mul(mul: Callable[[Value, Value], Value]) -> None:
    """Exercise 1.2: ``mul(a, b)`` as a Value op whose backward accumulates, checked on a branching graph."""
    title = "Exercise 1.2 (mul for Value, gradients accumulate)"
    a, b = Value(3.0), Value(-2.0)
    out = attempt(title, mul, a, b)
    expect(title, isinstance(out, Value), f"mul must return a Value, got {type(out).__name__}")
    expect_close(f"{title}, mul(3, -2).data", out.data, -6.0)
    expect(title, any(c is a for c in out._prev) and any(c is b for c in out._prev),
           "the result's children must be (a, b), e.g. Value(a.data * b.data, (a, b), '*'): "
           "backward() only reaches the nodes listed there")
    scaled = out * 5.0  # out.grad will be 5, not 1
    attempt(title, scaled.backward)
    expect(title, (a.grad, b.grad) != (0.0, 0.0),
           "a.grad and b.grad stayed 0 after backward(): set out._backward to your closure")
    expect(title, (a.grad, b.grad) != (-2.0, 3.0),
           f"for 5 * mul(a, b) got a.grad={a.grad:g}, b.grad={b.grad:g}, the gradients of mul alone: "
           "multiply the local derivatives by out.grad (the chain rule)")
    expect_close(f"{title}, d(5ab)/da = 5b at a=3, b=-2", a.grad, -10.0)
    expect_close(f"{title}, d(5ab)/db = 5a at a=3, b=-2", b.grad, 15.0)
    _check_branching(title, mul)
    passed(title, "d(a*a + a*b)/da = 2a + b: the three paths back to a are summed")


def _check_branching(title: str, mul: Callable[[Value, Value], Value]) -> None:
    """Two paths lead back to a in mul(a, a), three in f(a, b) = a*a + a*b; a.grad must be the sum over them."""
    overwrite = ("your backward assigns (a.grad = ...) and overwrites what the other path put there; "
                 "use += so they are summed")
    ta = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    (ta * ta + ta * tb).backward()
    a = Value(3.0)
    square = attempt(title, mul, a, a)
    attempt(title, square.backward)
    expect(title, a.grad != a.data,
           f"for mul(a, a) at a=3, a.grad is {a.grad:g}, expected 6 = 2a: a is both operands, two paths. " + overwrite)
    expect_close(f"{title}, d(a*a)/da at a=3", a.grad, 6.0)
    for order in ("a*a + a*b", "a*b + a*a"):  # both orders: an overwrite may happen to come first in one
        a, b = Value(3.0), Value(-2.0)
        terms = [attempt(title, mul, a, a), attempt(title, mul, a, b)]
        f = terms[0] + terms[1] if order == "a*a + a*b" else terms[1] + terms[0]
        attempt(title, f.backward)
        expect(title, a.grad not in (a.data, b.data),  # the contribution of a single path
               f"for f = {order} at a=3, b=-2, a.grad is {a.grad:g}, expected 4 = 2a + b, "
               "the sum over a's three paths. " + overwrite)
        expect_close(f"{title}, df/da for f = {order} at a=3, b=-2 (torch.autograd: 2a + b)", a.grad, ta.grad.item())
        expect_close(f"{title}, df/db for f = {order} at a=3, b=-2 (torch.autograd: a)", b.grad, tb.grad.item())
