"""Shared data, model and training-loop helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import seed_everything
from course_lib.data import digits_split
from course_lib.models import SimpleCNN
from course_lib.training import evaluate, train_one_epoch


def test_digits_split_shapes_and_standardisation() -> None:
    split = digits_split()
    assert split.X_train.shape[1:] == (1, 8, 8) and split.X_train.dtype == np.float32
    assert len(split.X_train) + len(split.X_test) == 1797
    assert abs(split.X_train.mean()) < 1e-5 and abs(split.X_train.std() - 1) < 1e-4
    assert set(np.unique(split.y_test)) == set(range(10))
    with pytest.raises(ValueError, match="test_fraction must be a number > 0.0"):
        digits_split(test_fraction=0.0)


def test_simple_cnn_shapes() -> None:
    model = SimpleCNN()
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert SimpleCNN(image_size=16)(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(ValueError, match="image_size must be divisible by 4, got 10"):
        SimpleCNN(image_size=10)


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
