"""Notebook 02's checkers: the reference passes, each typical mistake gets its own explanation."""

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch02 import check_minibatch_epoch, check_mse_grad, check_zero_grad_loop
from course_lib.gradient_descent import mse_grad


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda X, y, w: -mse_grad(X, y, w), "sign is flipped"),
    (lambda X, y, w: mse_grad(X, y, w) / 2, "factor 2"),
    (lambda X, y, w: mse_grad(X, y, w) * len(y), "mean, not a sum"),
    (lambda X, y, w: mse_grad(X, y, w)[:, None], "expected shape"),
    (lambda X, y, w: mse_grad(X, y, w) + 1, "values differ"),
])
def test_check_mse_grad_explains_mistakes(wrong, message: str, capsys: pytest.CaptureFixture) -> None:
    check_mse_grad(mse_grad)
    assert "[passed]" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match=message):
        check_mse_grad(wrong)


def _minibatch(X, y, w, lr, batch_size, order, *, use_order=True, drop_last=False):
    stop = len(y) - len(y) % batch_size if drop_last else len(y)
    for start in range(0, stop, batch_size):
        rows = order[start:start + batch_size] if use_order else np.arange(start, min(start + batch_size, len(y)))
        w = w - lr * mse_grad(X[rows], y[rows], w)
    return w


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda X, y, w, lr, b, order: w - lr * mse_grad(X, y, w), "one step on the whole data set"),
    (lambda X, y, w, lr, b, order: _minibatch(X, y, w, lr, b, order, use_order=False), "in the given order"),
    (lambda X, y, w, lr, b, order: _minibatch(X, y, w, lr, b, order, drop_last=True), "was skipped"),
    (lambda X, y, w, lr, b, order: w, "did not change"),
    (lambda X, y, w, lr, b, order: None, "return the weights"),
])
def test_check_minibatch_epoch_explains_mistakes(wrong, message: str, capsys: pytest.CaptureFixture) -> None:
    check_minibatch_epoch(_minibatch)
    assert "[passed]" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match=message):
        check_minibatch_epoch(wrong)


def _train_steps(model, X, y, lr, steps, *, zero_grad=True, step=True):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        nn.MSELoss()(model(X).squeeze(1), y).backward()
        if step:
            optimizer.step()
    return model


def test_check_zero_grad_loop_detects_accumulated_gradients(capsys: pytest.CaptureFixture) -> None:
    check_zero_grad_loop(_train_steps)
    assert "[passed]" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="gradients accumulate"):
        check_zero_grad_loop(lambda *args: _train_steps(*args, zero_grad=False))
    with pytest.raises(ExerciseFailed, match="did not change"):
        check_zero_grad_loop(lambda *args: _train_steps(*args, step=False))
    with pytest.raises(ExerciseFailed, match="not attempted yet"):
        check_zero_grad_loop(lambda *args: (_ for _ in ()).throw(NotImplementedError()))
