"""Checkers for notebook 02 (gradient descent, NumPy to PyTorch)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from course_lib.data import batch_indices
from course_lib.exercises import attempt, expect, expect_close, passed
from course_lib.gradient_descent import SGD, descend, mse_grad


def _regression(seed: int, m: int = 9, d: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=d)


def check_mse_grad(grad_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> None:
    """Exercise 2.1: ``grad_fn(X, y, w)`` is the gradient of mean((y - X w)^2), checked against autograd."""
    title = "Exercise 2.1 (MSE gradient)"
    X, y, w = _regression(seed=21)
    w_t = torch.tensor(w, requires_grad=True)
    torch.mean((torch.from_numpy(y) - torch.from_numpy(X) @ w_t) ** 2).backward()
    expected = w_t.grad.numpy()
    got = attempt(title, grad_fn, X, y, w.copy())
    expect(title, isinstance(got, np.ndarray), f"expected a NumPy array, got {type(got).__name__}")
    expect(title, got.shape == expected.shape,
           f"expected shape {expected.shape} (one entry per weight), got {got.shape}; "
           "X.T @ error has the right shape when error is 1-D")
    hints = [(-expected, "the sign is flipped: the error is y - X w, so the gradient is -2/m X^T (y - X w)"),
             (expected / 2, "missing the factor 2 from differentiating the square"),
             (expected * len(y), "the gradient is len(y) times too large: divide by m (a mean, not a sum)"),
             (expected / len(y), "the gradient is len(y) times too small: divide by m only once")]
    for wrong, hint in hints:
        if np.allclose(got, wrong, atol=1e-10) and not np.allclose(got, expected, atol=1e-10):
            expect(title, False, hint)
    expect_close(title, got, expected, atol=1e-10, rtol=1e-10)
    passed(title, "matches torch.autograd in float64")


def check_minibatch_epoch(epoch_fn: Callable[..., np.ndarray]) -> None:
    """Exercise 2.2: ``epoch_fn(X, y, w, lr, batch_size, order)`` = one epoch of mini-batch descent."""
    title = "Exercise 2.2 (mini-batch loop)"
    X, y, w0 = _regression(seed=22, m=10)
    lr, batch_size = 0.05, 4
    order = np.random.default_rng(22).permutation(len(y))
    got = attempt(title, epoch_fn, X, y, w0.copy(), lr, batch_size, order.copy())
    expected = descend(X, y, w0, SGD(lr), order[None, :], batch_size).weights[-1]
    expect(title, isinstance(got, np.ndarray) and got.shape == w0.shape,
           f"return the weights after the epoch, an array of shape {w0.shape}, got {getattr(got, 'shape', got)!r}")
    one_batch_step = w0 - lr * mse_grad(X, y, w0)
    in_index_order = descend(X, y, w0, SGD(lr), np.arange(len(y))[None, :], batch_size).weights[-1]
    w = w0.copy()
    for idx in batch_indices(order, batch_size)[:-1]:
        w = w - lr * mse_grad(X[idx], y[idx], w)
    if not np.allclose(got, expected, atol=1e-12):
        expect(title, not np.allclose(got, one_batch_step),
               "this is one step on the whole data set (batch descent): step once per batch of batch_size rows")
        expect(title, not np.allclose(got, in_index_order),
               "the batches follow rows 0, 1, 2, ...: take them in the given order, X[order[start:start + batch_size]]")
        expect(title, not np.allclose(got, w),
               f"the last, smaller batch ({len(y) % batch_size} rows of {len(y)}) was skipped: range(0, m, batch_size)")
        expect(title, not np.allclose(got, w0), "the weights did not change: update w after each batch")
    expect_close(title, got, expected, atol=1e-12, rtol=1e-12)
    passed(title, f"{len(batch_indices(order, batch_size))} steps in the given order, same weights as course_lib")


def check_zero_grad_loop(train_steps: Callable[[nn.Module, torch.Tensor, torch.Tensor, float, int], nn.Module]) -> None:
    """Exercise 2.3: ``train_steps(model, X, y, lr, steps)`` must reset gradients before each backward."""
    title = "Exercise 2.3 (zero_grad)"
    X_np, y_np, w0 = _regression(seed=23, m=12)
    X, y = torch.from_numpy(X_np), torch.from_numpy(y_np)
    lr, steps = 0.05, 4

    def fresh_model() -> nn.Module:
        model = nn.Linear(3, 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_(torch.from_numpy(w0)[None, :])
        return model

    def run(zero: bool) -> np.ndarray:
        model = fresh_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(steps):
            if zero:
                optimizer.zero_grad()
            nn.functional.mse_loss(model(X).squeeze(1), y).backward()
            optimizer.step()
        return model.weight.detach().numpy().ravel()

    model = attempt(title, train_steps, fresh_model(), X, y, lr, steps)
    expect(title, isinstance(model, nn.Module), f"return the trained model, got {type(model).__name__}")
    got = model.weight.detach().numpy().ravel()
    expect(title, not np.allclose(got, run(zero=False)),
           f"after {steps} steps the weights match a loop whose gradients accumulate: each .grad held the sum "
           "of all earlier gradients; call optimizer.zero_grad() before loss.backward()")
    expect(title, not np.allclose(got, w0), "the weights did not change: call optimizer.step() after backward()")
    expect_close(title, got, run(zero=True), atol=1e-12, rtol=1e-12)
    passed(title, f"{steps} steps, each with a fresh gradient")
