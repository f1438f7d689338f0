"""Notebook 03's checkers accept the reference solutions and explain the typical mistakes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch03 import (
    check_conv_output_size,
    check_dense_module,
    check_initial_loss,
    check_maxpool_backward,
)


def good_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def good_maxpool_backward(x, grad_output, k):
    n, c, oh, ow = grad_output.shape
    win = x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k)
    is_max = win == win.max(axis=(3, 5), keepdims=True)
    grad = np.zeros_like(x)
    grad[:, :, :oh * k, :ow * k] = (is_max * grad_output[:, :, :, None, :, None]).reshape(n, c, oh * k, ow * k)
    return grad


class GoodDense(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias


class PlainTensorDense(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = torch.zeros(out_features, in_features)

    def forward(self, x):
        return x @ self.weight.T


def test_checkers_pass_reference_solutions(capsys) -> None:
    check_conv_output_size(good_size)
    check_maxpool_backward(good_maxpool_backward)
    check_initial_loss(lambda num_classes: math.log(num_classes), measured_loss=2.306)
    check_dense_module(GoodDense)
    assert capsys.readouterr().out.count("[passed]") == 4


@pytest.mark.parametrize("fn, message", [
    (lambda size, k, s, p: (size - k) // s + 1, "padding adds p pixels on both sides"),
    (lambda size, k, s, p: (size + 2 * p - k) / s + 1, "return an int"),
    (lambda size, k, s, p: size + 2 * p - k + 1, r"floor\(\(size \+ 2\*padding - kernel_size\) / stride\) \+ 1"),
])
def test_conv_size_checker_explains(fn, message) -> None:
    with pytest.raises(ExerciseFailed, match=message):
        check_conv_output_size(fn)


@pytest.mark.parametrize("fn, message", [
    (lambda x, g, k: np.repeat(np.repeat(g, k, 2), k, 3), "shape|not the maximum"),
    (lambda x, g, k: np.zeros_like(x), "sum to 0.0000"),
    (lambda x, g, k: F.max_pool2d(torch.from_numpy(x), k).numpy(), "must have the input's shape"),
])
def test_maxpool_checker_explains(fn, message) -> None:
    with pytest.raises(ExerciseFailed, match=message):
        check_maxpool_backward(fn)


def test_dense_checker_explains_unregistered_parameters() -> None:
    with pytest.raises(ExerciseFailed, match="wrap the tensors in nn.Parameter"):
        check_dense_module(PlainTensorDense)


def not_written(*args):
    raise NotImplementedError("your turn: replace this line with your code")


class NotWrittenDense(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        not_written()


@pytest.mark.parametrize("check, args", [
    (check_conv_output_size, (not_written,)),
    (check_maxpool_backward, (not_written,)),
    (check_initial_loss, (not_written, 2.306)),
    (check_dense_module, (NotWrittenDense,)),
])
def test_not_attempted_prints_not_done(check, args, capsys) -> None:
    check(*args)  # does not raise: the learner copy runs top to bottom
    out = capsys.readouterr().out
    assert out.startswith("[not done] Exercise 3.") and "not attempted yet" in out


@pytest.mark.parametrize("prediction, message", [
    (0.1, "probability an untrained model gives the true class"),
    (1.0, "log in base 10"),
    (math.log2(10), "base 2"),
    (0.0, "perfect model"),
    (5.0, "what probability does softmax then give each of the 10 classes"),
    (-1.0, "finite number >= 0"),
    ("2.3", "return a number"),
])
def test_initial_loss_checker_explains(prediction, message) -> None:
    with pytest.raises(ExerciseFailed, match=message):
        check_initial_loss(lambda num_classes: prediction, measured_loss=2.306)
