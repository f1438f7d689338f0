"""course_lib.training: the PyTorch training loop, evaluation and fit."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import seed_everything
from course_lib.data import digits_split
from course_lib.models import SimpleCNN
from course_lib.training import evaluate, fit, train_one_epoch, train_step


def test_training_improves_accuracy_on_digits() -> None:
    seed_everything(0)
    X_train, y_train, X_test, y_test = digits_split().tensors()
    model = SimpleCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    _, before = evaluate(model, X_test, y_test)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    losses = [train_one_epoch(model, loader, nn.CrossEntropyLoss(), optimizer) for _ in range(3)]
    loss, after = evaluate(model, X_test, y_test, nn.CrossEntropyLoss())
    assert losses[-1] < losses[0] and after > 0.9 > before
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match="got no batches"):
        train_one_epoch(model, [], nn.CrossEntropyLoss(), optimizer)


def test_evaluate_does_not_depend_on_the_batch_size() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    X, y = torch.randn(10, 3), torch.randint(0, 4, (10,))
    logits = model(X)
    expected_loss = nn.functional.cross_entropy(logits, y).item()
    expected_accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    for batch_size in (1, 3, 10, 64):
        loss, accuracy = evaluate(model, X, y, nn.CrossEntropyLoss(), batch_size=batch_size)
        assert loss == pytest.approx(expected_loss, rel=1e-6) and accuracy == pytest.approx(expected_accuracy)
    assert np.isnan(evaluate(model, X, y)[0])
    with pytest.raises(ValueError, match="non-empty and of equal length, got 10 and 9"):
        evaluate(model, X, y[:-1])


def test_train_one_epoch_returns_the_loss_averaged_over_samples() -> None:
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    batches = [(torch.ones(3, 1), torch.full((3, 1), 2.0)), (torch.ones(1, 1), torch.full((1, 1), 6.0))]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay 0: losses are 2**2 and 6**2
    assert train_one_epoch(model, batches, nn.MSELoss(), optimizer) == pytest.approx((3 * 2**2 + 1 * 6**2) / 4)


def test_fit_times_each_epoch_and_logs_one_line_per_epoch() -> None:
    nap, lines = 0.01, []

    def train_epoch() -> float:
        time.sleep(nap)
        return 0.5

    history = fit(train_epoch, lambda: (0.75, 0.25, 0.5), epochs=2, log=lines.append)
    assert len(history.epoch_seconds) == 2 and min(history.epoch_seconds) >= nap
    assert history.train_loss == [0.5, 0.5] and history.test_accuracy == [0.5, 0.5]
    assert lines == [f"epoch {e}/2  loss 0.5000  train accuracy 75.00%  test accuracy 50.00%" for e in (1, 2)]
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        fit(train_epoch, lambda: (0.0, 0.0, 0.0), epochs=0)


def test_train_step_takes_one_optimizer_step_and_returns_the_loss() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    X, y = torch.randn(8, 3), torch.randn(8, 1)
    weight, bias = model.weight.detach().clone(), model.bias.detach().clone()
    loss = train_step(model, optimizer, nn.functional.mse_loss, X, y)
    grad = torch.autograd.functional.jacobian(lambda w: nn.functional.mse_loss(X @ w.T + bias, y), weight)
    assert torch.allclose(model.weight.detach(), weight - 0.5 * grad, atol=1e-6)  # one SGD step, from zeroed grads
    assert loss.item() == nn.functional.mse_loss(X @ weight.T + bias, y).item()  # the loss before the step
