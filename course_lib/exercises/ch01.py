"""Checkers for notebook 01 (tensors and autograd)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from course_lib.autograd import Value
from course_lib.exercises import ExerciseFailed, attempt, checker, expect, expect_close, passed


@checker
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


@checker
def check_sigmoid(sigmoid: Callable[[Value], Value]) -> None:
    """Exercise 1.4: ``sigmoid(v)`` built from Value primitives; value and gradient match torch."""
    title = "Exercise 1.4 (sigmoid for Value)"
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


@checker
def check_mul(mul: Callable[[Value, Value], Value]) -> None:
    """Exercise 1.3: ``mul(a, b)`` as a Value op whose backward accumulates, checked on a branching graph."""
    title = "Exercise 1.3 (mul for Value, gradients accumulate)"
    a, b = Value(3.0), Value(-2.0)
    out = attempt(title, mul, a, b)
    expect(title, isinstance(out, Value), f"mul must return a Value, got {type(out).__name__}")
    expect_close(f"{title}, mul(3, -2).data", out.data, -6.0)
    expect(title, any(c is a for c in out._prev) and any(c is b for c in out._prev),
           "the result's children (its _prev, the second argument of Value) must be a and b: "
           "backward() only reaches the nodes listed there")
    scaled = out * 5.0  # out.grad will be 5, not 1
    attempt(title, scaled.backward)
    expect(title, (a.grad, b.grad) != (0.0, 0.0),
           "a.grad and b.grad stayed 0 after backward(): the result's _backward must be your rule")
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


@checker
def check_accumulation_prediction(predicted_grad: Callable[[], float], measured: float, one_backward: float,
                                  calls: int) -> None:
    """Exercise 1.2: the learner's prediction of ``x.grad`` after ``calls`` backward() calls, against the run."""
    title = "Exercise 1.2 (predict, then run: x.grad after the loop)"
    guess = attempt(title, predicted_grad)
    expect(title, isinstance(guess, (int, float, np.floating, np.integer)) and not isinstance(guess, bool),
           f"return your prediction as a number, got {type(guess).__name__}")
    guess = float(guess)
    if math.isclose(guess, measured, rel_tol=1e-9):
        passed(title, f"you predicted {guess:g} and the loop measured {measured:g}: "
                      f"{calls} backward() calls x {one_backward:g} each, summed in x.grad")
        return
    ran = f"you predicted {guess:g}; the loop measured {measured:g} = {calls} x {one_backward:g}. "
    if math.isclose(guess, one_backward, rel_tol=1e-9):
        raise ExerciseFailed(f"{title}: {ran}{guess:g} is the gradient of one backward() call: each call adds "
                             "into x.grad, it does not overwrite it, and nothing reset x.grad between the calls")
    if guess == 0:
        raise ExerciseFailed(f"{title}: {ran}a new graph does not reset x.grad; only zero_grad() "
                             "(or x.grad = None, x.grad.zero_()) does")
    calls_worth = guess / one_backward
    if calls_worth > 0 and math.isclose(calls_worth, round(calls_worth), rel_tol=1e-9):
        raise ExerciseFailed(f"{title}: {ran}your number is {round(calls_worth)} calls' worth; "
                             f"count the backward() calls in the loop")
    raise ExerciseFailed(f"{title}: {ran}each call adds dw/dx at x to x.grad; work out dw/dx for one call first")


# Functions of a list of numbers written with arithmetic only, so floats and float64 tensors both go through them.
_GRADIENT_CASES: tuple[tuple[str, Callable[[Sequence], object], list[float]], ...] = (
    ("x0**2 * x1 + x1**3", lambda x: x[0] ** 2 * x[1] + x[1] ** 3, [1.5, -2.0]),
    ("x0 * x1 / (x2**2 + 1) + x2**4", lambda x: x[0] * x[1] / (x[2] ** 2 + 1) + x[2] ** 4, [0.5, 3.0, -1.2]),
)


@checker
def check_numerical_grad(numerical_grad: Callable[[Callable[[list[float]], float], list[float], float], list[float]],
                         h: float = 1e-4) -> None:
    """Exercise 1.5: central differences, compared with torch.autograd in float64 on two functions."""
    title = "Exercise 1.5 (finite-difference gradient)"
    for formula, f, point in _GRADIENT_CASES:
        xs = list(point)
        grads = attempt(title, numerical_grad, f, xs, h)
        expect(title, xs == point, f"for f = {formula}, your function changed xs from {point} to {xs}: "
                                   "nudge a copy, so that every difference starts from the same point")
        expect(title, isinstance(grads, (list, tuple)) and len(grads) == len(point),
               f"for f = {formula} of {len(point)} inputs, expected a list of {len(point)} partial derivatives, "
               f"got {type(grads).__name__}" + (f" of length {len(grads)}" if hasattr(grads, "__len__") else ""))
        expect(title, all(isinstance(g, (int, float)) for g in grads),
               f"each partial derivative must be a float, got {[type(g).__name__ for g in grads]}")
        tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in point]
        f(tensors).backward()
        exact = [t.grad.item() for t in tensors]
        f0 = f(point)
        one_sided = [(f(_nudged(point, i, h)) - f0) / h for i in range(len(point))]
        all_at_once = (f([x + h for x in point]) - f([x - h for x in point])) / (2 * h)
        where = f"for f = {formula} at {point} with h={h:g}"
        close = [math.isclose(g, e, rel_tol=1e-6, abs_tol=1e-6) for g, e in zip(grads, exact, strict=True)]
        if all(close):
            continue
        if all(math.isclose(g, 2 * e, rel_tol=1e-6, abs_tol=1e-6) for g, e in zip(grads, exact, strict=True)):
            raise ExerciseFailed(f"{title}: {where} every value is twice torch's: the two nudged points are "
                                 "2h apart, so divide their difference by 2h")
        if all(math.isclose(g, o, rel_tol=1e-9, abs_tol=1e-9) for g, o in zip(grads, one_sided, strict=True)):
            raise ExerciseFailed(f"{title}: {where} you computed the one-sided difference (f(x + h) - f(x)) / h, "
                                 f"off by up to {max(abs(o - e) for o, e in zip(one_sided, exact, strict=True)):.1e}: "
                                 "its error shrinks only like h; nudge both ways, x + h and x - h, and the "
                                 "first-order errors cancel (an error like h**2)")
        if all(math.isclose(g, all_at_once, rel_tol=1e-6, abs_tol=1e-6) for g in grads):
            raise ExerciseFailed(f"{title}: {where} every entry is the same slope {all_at_once:.6g}: you nudged all "
                                 "inputs at once; nudge one input at a time, the others fixed")
        i = close.index(False)
        raise ExerciseFailed(f"{title}: {where} d f / d x{i} is {grads[i]:.8g}, torch.autograd gives {exact[i]:.8g} "
                             f"(tolerance 1e-6)")
    passed(title, f"central differences with h={h:g} match torch.autograd to 1e-6 on {len(_GRADIENT_CASES)} functions")


def _nudged(xs: Sequence[float], i: int, step: float) -> list[float]:
    """A copy of ``xs`` with entry ``i`` moved by ``step``."""
    moved = list(xs)
    moved[i] += step
    return moved
