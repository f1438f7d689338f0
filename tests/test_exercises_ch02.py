"""Notebook 02's checkers: the reference passes, each typical mistake gets its own explanation."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch02 import (
    check_minibatch_epoch,
    check_mse_grad,
    check_regression_dataset,
    check_steps_prediction,
)
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


class _Dataset(Dataset):
    """The reference: rows of X and y as float32 tensors."""

    def __init__(self, X, y):
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same number of rows, got {len(X)} and {len(y)}")
        self.X, self.y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


class _NumpyItems(_Dataset):
    def __getitem__(self, i):
        return self.X[i].numpy(), self.y[i].numpy()


class _Float64(_Dataset):
    def __init__(self, X, y):
        super().__init__(X, y)
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)


class _OffByOne(_Dataset):
    def __len__(self):
        return len(self.X) - 1


class _FeatureCount(_Dataset):
    def __len__(self):
        return self.X.shape[1]


class _Swapped(_Dataset):
    def __getitem__(self, i):
        return self.y[i], self.X[i]


class _WrongRow(_Dataset):
    def __getitem__(self, i):
        return self.X[i], self.y[len(self.y) - 1 - i]


class _NoLengthCheck(_Dataset):
    def __init__(self, X, y):
        self.X, self.y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)


class _VagueLengthError(_Dataset):
    def __init__(self, X, y):
        if len(X) != len(y):
            raise ValueError("bad input")
        super().__init__(X, y)


class _NotADataset:
    __init__, __len__, __getitem__ = _Dataset.__init__, _Dataset.__len__, _Dataset.__getitem__


class _NotWritten(_Dataset):
    def __init__(self, X, y):
        raise NotImplementedError("your turn")


def test_check_regression_dataset_passes_the_reference(capsys: pytest.CaptureFixture) -> None:
    check_regression_dataset(_Dataset)
    assert "[passed] Exercise 2.4" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (_NumpyItems, "returned NumPy arrays"),
    (_Float64, "expected float32 tensors.*torch.float64"),
    (_OffByOne, "off by one: 9 for 10 rows"),
    (_FeatureCount, "the number of features"),
    (_Swapped, "wrong order"),
    (_WrongRow, "not row i of X and entry i of y"),
    (_NoLengthCheck, "accepted X with 10 rows and y with 9"),
    (_VagueLengthError, "should name both lengths"),
    (_NotADataset, "should subclass torch.utils.data.Dataset"),
])
def test_check_regression_dataset_explains_mistakes(wrong: type, message: str) -> None:
    with pytest.raises(ExerciseFailed, match=message):
        check_regression_dataset(wrong)


def _not_written(*args):
    raise NotImplementedError("your turn: replace this line with your code")


@pytest.mark.parametrize(("check", "args"), [
    (check_mse_grad, (_not_written,)),
    (check_minibatch_epoch, (_not_written,)),
    (check_regression_dataset, (_NotWritten,)),
    (check_steps_prediction, (_not_written, 0.5, np.array([0.1, 1.9]), 22)),
])
def test_not_attempted_prints_not_done(check, args, capsys: pytest.CaptureFixture) -> None:
    check(*args)   # does not raise: the learner copy runs top to bottom
    out = capsys.readouterr().out
    assert out.startswith("[not done] Exercise 2.") and "not attempted yet" in out


LR, CURVATURES = 0.5, np.array([0.1, 1.9])   # factors |1 - lr * c|: 0.95 (flat) and 0.05 (steep)


def _reference_prediction(lr, curvatures):
    return int(np.ceil(np.log(10) / -np.log(abs(1 - lr * curvatures.min()))))


def _measured_steps(lr: float, curvatures: np.ndarray) -> int:
    error, steps = 1.0, 0
    while error > 0.1:
        error, steps = error * abs(1 - lr * curvatures.min()), steps + 1
    return steps


def test_check_steps_prediction_passes_the_reference(capsys: pytest.CaptureFixture) -> None:
    measured = _measured_steps(LR, CURVATURES)
    assert measured == 45
    check_steps_prediction(_reference_prediction, LR, CURVATURES, measured)
    assert "[passed] Exercise 2.3" in capsys.readouterr().out
    check_steps_prediction(lambda lr, c: measured + 1.0, LR, CURVATURES, measured)   # one step off is close enough
    assert "[passed]" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda lr, c: 1, "count for the steep direction"),
    (lambda lr, c: 23, "counts the loss"),
    (lambda lr, c: float(np.ceil(np.log(10) / -np.log(abs(1 - lr * c.mean())))), "mean curvature"),
    (lambda lr, c: 100, "off by 55"),
    (lambda lr, c: "45", "return one number"),
    (lambda lr, c: -3, "positive finite"),
    (lambda lr, c: float("nan"), "positive finite"),
])
def test_check_steps_prediction_explains_mistakes(wrong, message: str) -> None:
    with pytest.raises(ExerciseFailed, match=message):
        check_steps_prediction(wrong, LR, CURVATURES, _measured_steps(LR, CURVATURES))
