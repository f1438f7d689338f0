"""Checkers for notebook 02 (gradient descent, NumPy to PyTorch)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from course_lib.data import batch_indices
from course_lib.exercises import attempt, checker, expect, expect_close, passed
from course_lib.gradient_descent import SGD, descend, mse_grad


def _regression(seed: int, m: int = 9, d: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)), rng.normal(size=m), rng.normal(size=d)


@checker
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


@checker
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


def _item_problem(item: object, x_expected: torch.Tensor, y_expected: torch.Tensor) -> str | None:
    """What is wrong with one ``dataset[i]`` against the expected ``(x_i, y_i)``, or None."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        return (f"dataset[i] must return a pair (x_i, y_i), got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""))
    x_i, y_i = item
    if any(isinstance(v, np.ndarray) for v in item):
        return ("dataset[i] returned NumPy arrays; return tensors, e.g. convert X and y once in __init__ with "
                "torch.as_tensor(X, dtype=torch.float32)")
    if not all(isinstance(v, torch.Tensor) for v in item):
        return f"dataset[i] must return two tensors, got ({type(x_i).__name__}, {type(y_i).__name__})"
    if x_i.shape == y_expected.shape and y_i.shape == x_expected.shape and x_i.shape != y_i.shape:
        return "the pair is in the wrong order: return (x_i, y_i), features first, then the target"
    if x_i.shape != x_expected.shape or y_i.shape != y_expected.shape:
        return (f"expected x_i of shape {tuple(x_expected.shape)} (one row of X) and y_i of shape "
                f"{tuple(y_expected.shape)} (one entry of y), got {tuple(x_i.shape)} and {tuple(y_i.shape)}")
    if x_i.dtype != torch.float32 or y_i.dtype != torch.float32:
        return (f"expected float32 tensors (the dtype of nn.Linear's weights), got {x_i.dtype} and {y_i.dtype}; "
                "torch.from_numpy keeps NumPy's float64: convert with dtype=torch.float32")
    if torch.equal(x_i, x_expected) and torch.equal(y_i, y_expected):
        return None
    return "the values are not row i of X and entry i of y: index both with the same i"


@checker
def check_regression_dataset(dataset_cls: type) -> None:
    """Exercise 2.4: ``dataset_cls(X, y)`` is a map-style Dataset whose item i is ``(X[i], y[i])`` as float32."""
    title = "Exercise 2.4 (custom Dataset)"
    X, y, _ = _regression(seed=24, m=10, d=3)
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    dataset = attempt(title, dataset_cls, X, y)
    expect(title, isinstance(dataset, Dataset),
           f"{type(dataset).__name__} should subclass torch.utils.data.Dataset: class RegressionDataset(Dataset)")
    length = attempt(title, len, dataset)
    expect(title, length != X.shape[1], f"len(dataset) is {length}, the number of features; "
           f"it must be the number of rows, {len(X)}: return len(self.X)")
    expect(title, abs(length - len(X)) != 1, f"len(dataset) is off by one: {length} for {len(X)} rows")
    expect(title, length == len(X), f"len(dataset) must be the number of rows, {len(X)}, got {length}")
    for i in range(len(X)):
        problem = _item_problem(attempt(title, dataset.__getitem__, i), X_t[i], y_t[i])
        expect(title, problem is None, f"dataset[{i}]: {problem}")
    column = attempt(title, dataset_cls, X, y[:, None])[0]
    problem = _item_problem(column, X_t[0], y_t[:1])
    expect(title, problem is None, f"with y of shape ({len(y)}, 1), dataset[0]: {problem}")
    try:
        dataset_cls(X, y[:-1])
    except ValueError as exc:
        expect(title, str(len(X)) in str(exc) and str(len(X) - 1) in str(exc),
               f"the ValueError for X with {len(X)} rows and y with {len(X) - 1} should name both lengths, "
               f"got {str(exc)!r}")
    except Exception as exc:
        expect(title, False, f"X with {len(X)} rows and y with {len(X) - 1} raised {type(exc).__name__}: "
               "raise ValueError in __init__ instead, naming both lengths")
    else:
        expect(title, False, f"RegressionDataset(X, y) accepted X with {len(X)} rows and y with {len(X) - 1}: "
               "check len(X) == len(y) in __init__ and raise ValueError naming both lengths")
    batches = attempt(title, list, DataLoader(dataset, batch_size=4))
    expect(title, [len(X_batch) for X_batch, _ in batches] == [4, 4, 2],
           f"DataLoader(dataset, batch_size=4) should give batches of 4, 4 and 2 rows, got "
           f"{[len(X_batch) for X_batch, _ in batches]}")
    for k, (X_batch, y_batch) in enumerate(batches):
        rows = slice(4 * k, 4 * k + 4)
        expect(title, torch.equal(X_batch, X_t[rows]) and torch.equal(y_batch, y_t[rows]),
               f"batch {k} of DataLoader(dataset, batch_size=4) is not rows {rows.start} to "
               f"{min(rows.stop, len(X)) - 1} of (X, y)")
    passed(title, f"{len(X)} rows, float32 (x_i, y_i) pairs, DataLoader batches of 4, 4, 2 in order")


def _steps_to_shrink(factor: float, shrink: float) -> float:
    """Steps for an error multiplied by ``factor`` per step to become ``shrink`` times smaller (inf if never)."""
    factor = abs(factor)
    if factor >= 1:
        return float("inf")
    if factor == 0:
        return 1.0
    return float(np.ceil(np.log(shrink) / -np.log(factor)))


@checker
def check_steps_prediction(predict_fn: Callable[[float, np.ndarray], float], lr: float, curvatures: np.ndarray,
                           measured: int, shrink: float = 10.0) -> None:
    """Exercise 2.3: ``predict_fn(lr, curvatures)`` predicted the ``measured`` steps plain batch descent took."""
    title = "Exercise 2.3 (predict, then run)"
    curvatures = np.asarray(curvatures, dtype=np.float64)
    got = attempt(title, predict_fn, lr, curvatures.copy())
    expect(title, isinstance(got, (int, float, np.integer, np.floating)) and not isinstance(got, bool),
           f"return one number, the predicted count of steps, got {type(got).__name__}")
    expect(title, np.isfinite(got) and got > 0, f"a count of steps is a positive finite number, got {got}")
    flat, steep = curvatures.min(), curvatures.max()
    if abs(got - measured) <= 1:
        passed(title, f"you predicted {float(got):g} steps, batch descent took {measured}: the flat direction "
               f"(curvature {flat:.3g}) sets the pace, its error shrinks by |1 - lr * {flat:.3g}| "
               f"= {abs(1 - lr * flat):.3f} per step")
        return
    hints = [(_steps_to_shrink(1 - lr * steep, shrink),
              "that is the count for the steep direction (the largest curvature); the question is about the "
              "flattest direction, the smallest curvature"),
             (_steps_to_shrink((1 - lr * flat) ** 2, shrink),
              "that counts the loss, which shrinks by the square of the factor per step; "
              "the question is about the distance along the flat direction, shrunk by |1 - lr * curvature| per step"),
             (_steps_to_shrink(1 - lr * curvatures.mean(), shrink),
              "that uses the mean curvature; each direction has its own factor, and the flattest one is the slowest")]
    for wrong, hint in hints:
        if np.isfinite(wrong) and abs(got - wrong) < 0.5 and abs(wrong - measured) > 1:
            expect(title, False, f"you predicted {float(got):g} steps, batch descent took {measured}: {hint}")
    expect(title, False, f"you predicted {float(got):g} steps, batch descent took {measured} "
           f"(off by {abs(float(got) - measured):g}): each step multiplies the error along an eigenvector of H by "
           f"1 - lr * (its curvature); count the steps until that factor, raised to their number, reaches "
           f"1/{shrink:g} for the flattest direction")
