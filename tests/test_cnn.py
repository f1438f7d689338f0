"""course_lib.cnn: the NumPy layers agree with PyTorch autograd in float64, the NumPy model trains like
the PyTorch one, and the measurements behind notebook 03's table."""

import copy
import math

import numpy as np
import pytest
import torch

from course_lib import cnn
from course_lib.cnn import (
    SweepRow,
    code_lines,
    compare_layer,
    compare_loss,
    compare_models,
    crossover,
    fit_numpy,
    fit_torch,
    speed_sweep,
    standard_cases,
    train_step_seconds,
)
from course_lib.data import digits_split, minibatches
from course_lib.models import SimpleCNN

CASES = standard_cases(np.float64)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_autograd_float64(case) -> None:
    _, layer, x = case
    diffs = compare_layer(layer, x)
    assert set(diffs) >= {"output", "grad_input"} | {f"grad_{p}" for p in layer.param_names}
    assert max(diffs.values()) <= 1e-8, diffs


@pytest.mark.parametrize("case", standard_cases(np.float32), ids=[c[0] for c in CASES])
def test_layer_works_in_float32(case) -> None:
    _, layer, x = case
    out = layer.forward(x)
    assert out.dtype == np.float32 and layer.backward(np.ones_like(out)).dtype == np.float32
    assert max(compare_layer(layer, x).values()) <= 1e-4


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c[1], cnn.Conv2D)], ids=lambda c: c[0])
def test_loop_convolution_equals_im2col(case) -> None:
    _, conv, x = case
    loops = cnn.Conv2DLoops(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                             dtype=np.float64)
    loops.weights, loops.bias = conv.weights.copy(), conv.bias.copy()
    grad_output = np.random.default_rng(1).standard_normal(conv.forward(x).shape)
    np.testing.assert_allclose(loops.forward(x), conv.forward(x), atol=1e-12)
    np.testing.assert_allclose(loops.backward(grad_output), conv.backward(grad_output), atol=1e-12)
    np.testing.assert_allclose(loops.grad_weights, conv.grad_weights, atol=1e-12)
    np.testing.assert_allclose(loops.grad_bias, conv.grad_bias, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_matches_torch_and_is_stable(scale: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 10)) * scale  # exp(1000) overflows without the max shift
    targets = rng.integers(0, 10, 6)
    diffs = compare_loss(logits, targets)
    assert np.isfinite(cnn.cross_entropy_loss(logits, targets)[0])
    assert max(diffs.values()) <= 1e-8 * scale


def _twin_models(dtype=np.float64) -> tuple[cnn.SimpleCNN, SimpleCNN]:
    torch.manual_seed(0)
    torch_model = SimpleCNN().to(torch.float64 if dtype == np.float64 else torch.float32)
    numpy_model = cnn.SimpleCNN(dtype=dtype, seed=1)
    numpy_model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    return numpy_model, torch_model


@pytest.mark.parametrize("batch", [1, 5])
def test_whole_model_forward_and_backward_match_autograd(batch: int) -> None:
    numpy_model, torch_model = _twin_models()
    rng = np.random.default_rng(batch)
    diffs = compare_models(numpy_model, torch_model, rng.standard_normal((batch, 1, 8, 8)), rng.integers(0, 10, batch))
    assert len(diffs) == 2 + 2 * len(numpy_model.named_layers())  # logits, loss, grad_weights and grad_bias each
    assert max(diffs.values()) <= 1e-8, diffs


def test_weights_copy_both_ways_without_sharing_memory() -> None:
    numpy_model, torch_model = _twin_models(np.float32)
    assert numpy_model.conv1.weights.shape == torch_model.conv1.weight.shape == (8, 1, 3, 3)
    channels, hidden, image_size = (8, 16), 64, 8  # SimpleCNN's defaults
    fc1_shape = (hidden, channels[1] * (image_size // 4) ** 2)  # two 2x2 poolings shrink each side by 4
    assert numpy_model.fc1.weights.shape == torch_model.fc1.weight.shape == fc1_shape
    numpy_model.conv1.weights += 1.0  # must not change the torch model
    assert not np.allclose(numpy_model.conv1.weights, torch_model.conv1.weight.detach().numpy())
    fresh = SimpleCNN()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in numpy_model.state_dict().items()})
    assert torch.equal(fresh.conv1.weight, torch.from_numpy(numpy_model.conv1.weights))


def test_sgd_with_momentum_follows_torch_step_for_step() -> None:
    """Same weights, same batches, float64: the NumPy and PyTorch training trajectories coincide."""
    numpy_model, torch_model = _twin_models()
    split = digits_split(dtype=np.float64)
    optimizer = cnn.ModelSGD(lr=0.05, momentum=0.9)
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=0.9)
    X, y = split.X_train[:160], split.y_train[:160]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    numpy_losses = [cnn.train_one_epoch_numpy(numpy_model, [b], optimizer)
                    for b in minibatches(X, y, 32, np.random.default_rng(0))]
    torch_losses = []
    for xb, yb in minibatches(Xt, yt, 32, np.random.default_rng(0)):
        torch_optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch_model(xb), yb)
        loss.backward()
        torch_optimizer.step()
        torch_losses.append(loss.item())
    assert len(numpy_losses) == 5
    np.testing.assert_allclose(numpy_losses, torch_losses, atol=1e-10)
    np.testing.assert_allclose(numpy_model.fc2.weights, torch_model.fc2.weight.detach().numpy(), atol=1e-10)


def test_model_dtype_follows_weights() -> None:
    x = np.zeros((2, 1, 8, 8))
    assert cnn.SimpleCNN().forward(x).dtype == np.float32
    assert cnn.SimpleCNN(dtype=np.float64).forward(x).dtype == np.float64


def test_im2col_shape_and_output_size() -> None:
    x = np.arange(2 * 3 * 7 * 9, dtype=np.float64).reshape(2, 3, 7, 9)
    assert cnn.output_size(7, 3, 2, 1) == 4 and cnn.output_size(9, 3, 2, 1) == 5
    cols = cnn.im2col(x, 3, stride=2, padding=1)
    assert cols.shape == (2 * 4 * 5, 3 * 9)
    assert np.array_equal(cols[0].reshape(3, 3, 3)[:, 1:, 1:], x[0, :, :2, :2])  # top-left window, padded


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"Conv2D expects input \(N, 1, H, W\), got \(5, 3, 8, 8\)"):
        cnn.Conv2D(1, 8, 3, padding=1).forward(np.zeros((5, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"targets must be integer class indices in \[0, 10\)"):
        cnn.cross_entropy_loss(np.zeros((2, 10)), np.array([0, 10]))
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1, got 0"):
        cnn.MaxPool2D(0)
    with pytest.raises(ValueError, match="state dict keys must be"):
        cnn.SimpleCNN().load_state_dict({"conv1.weight": np.zeros((8, 1, 3, 3))})


def test_train_step_numpy_takes_one_step_and_returns_the_loss() -> None:
    model = cnn.SimpleCNN(dtype=np.float64)
    X, y = np.random.default_rng(0).standard_normal((4, 1, 8, 8)), np.array([0, 1, 2, 3])
    before = model.fc2.weights.copy()
    loss = cnn.train_step_numpy(model, cnn.ModelSGD(lr=0.1), X, y)
    assert loss == pytest.approx(cnn.cross_entropy_loss(cnn.SimpleCNN(dtype=np.float64).forward(X), y)[0])
    assert not np.array_equal(before, model.fc2.weights)


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
    times = [(1, 8, 1.0, 2.0), (16, 8, 3.0, 2.0), (64, 8, 9.0, 3.0), (1, 32, 1.0, 0.5), (16, 32, 8.0, 2.0),
             (1, 16, 1.0, 2.0)]
    rows = [SweepRow(*row, numpy_fastest_ms=row[2], torch_fastest_ms=row[3] / 2) for row in times]
    assert crossover(rows) == {8: 16, 16: None, 32: 1}
    assert rows[0].torch_speedup == 0.5 and rows[0].fastest_speedup == 1.0


def test_speed_sweep_times_both_models_at_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_samples(model, X, y, repeats):  # NumPy: 1 ms per image; PyTorch: 2 ms + 0.1 ms per image; load varies
        step = 1e-3 * len(X) if isinstance(model, cnn.SimpleCNN) else 2e-3 + 1e-4 * len(X)
        return [3 * step, step, 2 * step]  # median 2 steps, fastest 1

    monkeypatch.setattr(cnn, "train_step_samples", fake_samples)
    rows = speed_sweep([1, 4], [8, 16], torch.device("cpu"), repeats=1)
    assert [(r.batch_size, r.image_size) for r in rows] == [(1, 8), (4, 8), (1, 16), (4, 16)]
    for row in rows:
        assert row.numpy_ms == pytest.approx(2 * row.batch_size)
        assert row.torch_ms == pytest.approx(2 * (2 + 0.1 * row.batch_size))
        assert row.numpy_fastest_ms == pytest.approx(row.batch_size)
        assert row.torch_fastest_ms == pytest.approx(2 + 0.1 * row.batch_size)
        assert row.fastest_speedup == pytest.approx(row.torch_speedup)  # load slowed both alike here
    assert crossover(rows) == {8: 4, 16: 4}


@pytest.mark.parametrize("make_model", [lambda: cnn.SimpleCNN(conv_layer=cnn.Conv2DLoops), SimpleCNN],
                         ids=["numpy-loops", "torch"])
def test_train_step_seconds_times_real_training_steps(make_model) -> None:
    model = make_model()
    before = copy.deepcopy(model.state_dict())
    X, y = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32), np.array([0, 1])
    seconds = train_step_seconds(model, X, y, repeats=1)
    assert math.isfinite(seconds) and seconds > 0
    changed = [name for name, value in model.state_dict().items() if not np.array_equal(np.asarray(value),
                                                                                         np.asarray(before[name]))]
    assert changed, "train_step_seconds must run SGD steps that update the weights"


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
    assert len(torch_history.epoch_seconds) == 3
    assert torch_history.median_epoch_seconds() == sorted(torch_history.epoch_seconds)[1]


def test_fit_rejects_zero_epochs() -> None:
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        fit_numpy(cnn.SimpleCNN(), digits_split(), epochs=0)
