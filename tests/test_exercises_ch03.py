"""Helpers of notebook 03: batching, training, measuring, and the exercise checkers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import cnn
from course_lib.cnn import SweepRow, code_lines, crossover, fit_numpy, speed_sweep, train_step_seconds
from course_lib.data import digits_split, minibatches
from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch03 import check_conv_output_size, check_dense_module, check_maxpool_backward
from course_lib.models import SimpleCNN
from course_lib.training import fit_torch


def test_minibatches_cover_everything_once_in_the_same_order_for_numpy_and_torch() -> None:
    X, y = np.arange(10.0)[:, None], np.arange(10)
    batches = list(minibatches(X, y, 4, np.random.default_rng(0)))
    tensor_batches = list(minibatches(torch.from_numpy(X), torch.from_numpy(y), 4, np.random.default_rng(0)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == list(range(10))
    assert all(np.array_equal(a[1], t[1].numpy()) for a, t in zip(batches, tensor_batches, strict=True))


def sample(a, b):
    """A docstring is not code."""
    # nor is a comment

    total = a + b
    return (total,
            a)


def test_code_lines_skips_docstrings_comments_and_blank_lines() -> None:
    assert code_lines(sample) == 4  # def, total =, and the two-line return
    assert code_lines(sample, sample) == 8


def test_crossover_is_the_first_batch_size_from_which_torch_stays_faster() -> None:
    rows = [SweepRow(1, 8, 1.0, 2.0), SweepRow(16, 8, 3.0, 2.0), SweepRow(64, 8, 9.0, 3.0),
            SweepRow(1, 32, 1.0, 0.5), SweepRow(16, 32, 8.0, 2.0), SweepRow(1, 16, 1.0, 2.0)]
    assert crossover(rows) == {8: 16, 16: None, 32: 1}
    assert rows[0].torch_speedup == 0.5


def test_speed_sweep_and_step_timing_run_on_cpu() -> None:
    rows = speed_sweep([2], [8, 16], torch.device("cpu"), repeats=1)
    assert [(r.batch_size, r.image_size) for r in rows] == [(2, 8), (2, 16)]
    assert all(r.numpy_ms > 0 and r.torch_ms > 0 for r in rows)
    X, y = np.zeros((2, 1, 8, 8), np.float32), np.array([0, 1])
    assert train_step_seconds(cnn.SimpleCNN(conv_layer=cnn.Conv2DLoops), X, y, repeats=1) > 0


def test_both_models_learn_the_digits_from_the_same_weights() -> None:
    split = digits_split()
    torch.manual_seed(0)
    torch_model = SimpleCNN()
    numpy_model = cnn.SimpleCNN()
    numpy_model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    numpy_history = fit_numpy(numpy_model, split, epochs=3, log=None)
    torch_history = fit_torch(torch_model, split, epochs=3, log=None)
    assert numpy_history.test_accuracy[-1] > 0.75 and torch_history.test_accuracy[-1] > 0.75
    assert abs(numpy_history.train_loss[0] - torch_history.train_loss[0]) < 1e-3  # float32, same batches
    assert len(torch_history.epoch_seconds) == 3 and torch_history.median_epoch_seconds() > 0


def test_fit_rejects_zero_epochs() -> None:
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        fit_numpy(cnn.SimpleCNN(), digits_split(), epochs=0)


# Exercise checkers: reference solutions pass, typical mistakes get a message that says what is wrong.

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
    check_dense_module(GoodDense)
    assert capsys.readouterr().out.count("[passed]") == 3


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
    (lambda x, g, k: (_ for _ in ()).throw(NotImplementedError), "not attempted yet"),
])
def test_maxpool_checker_explains(fn, message) -> None:
    with pytest.raises(ExerciseFailed, match=message):
        check_maxpool_backward(fn)


def test_dense_checker_explains_unregistered_parameters() -> None:
    with pytest.raises(ExerciseFailed, match="wrap the tensors in nn.Parameter"):
        check_dense_module(PlainTensorDense)
