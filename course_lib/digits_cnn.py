"""Train the SimpleCNN on scikit-learn's digits, in PyTorch or in NumPy (notebook 03, scripts/train_pytorch.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib import numpy_nn as npnn
from course_lib.benchmark import synchronize
from course_lib.data import Split
from course_lib.gd_numpy import batch_indices
from course_lib.params import check_float, check_int
from course_lib.training import evaluate, train_one_epoch

Array = np.ndarray | torch.Tensor


def minibatches(X: Array, y: Array, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[Array, Array]]:
    """Yield shuffled ``(X, y)`` batches of NumPy arrays or tensors; the order depends only on ``rng``.

    Giving the NumPy and the PyTorch model generators with the same seed gives them the same batches.
    """
    for idx in batch_indices(rng.permutation(len(X)), batch_size):
        if isinstance(X, torch.Tensor):
            idx = torch.from_numpy(idx).to(X.device)
        yield X[idx], y[idx]


@dataclass
class History:
    """Per-epoch results of a training run."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def median_epoch_seconds(self) -> float:
        """Median training time of one epoch (the median ignores a slow first epoch)."""
        return float(np.median(self.epoch_seconds))


def fit(train_epoch: Callable[[], float], score: Callable[[], tuple[float, float, float]], epochs: int,
        log: Callable[[str], None] | None = print, sync: Callable[[], None] = lambda: None) -> History:
    """Run ``epochs`` epochs: ``train_epoch()`` returns the mean training loss (and is timed), then
    ``score()`` returns ``(train accuracy, test loss, test accuracy)``. Logs one line per epoch."""
    check_int("epochs", epochs, min_value=1)
    history = History()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        loss = train_epoch()
        sync()
        history.epoch_seconds.append(time.perf_counter() - start)
        train_accuracy, test_loss, test_accuracy = score()
        for values, value in zip((history.train_loss, history.train_accuracy, history.test_loss, history.test_accuracy),
                                 (loss, train_accuracy, test_loss, test_accuracy), strict=True):
            values.append(value)
        if log is not None:
            log(f"epoch {epoch}/{epochs}  loss {loss:.4f}  train accuracy {train_accuracy:.2%}  "
                f"test accuracy {test_accuracy:.2%}")
    return history


def fit_torch(model: nn.Module, split: Split, *, epochs: int, batch_size: int = 32, lr: float = 0.02,
              momentum: float = 0.9, seed: int = 0, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
              log: Callable[[str], None] | None = print) -> History:
    """Train a PyTorch classifier with SGD and ``nn.CrossEntropyLoss`` on the device its parameters are on.

    ``augment``, if given, transforms each training image (C, H, W) every time it is drawn.
    """
    check_float("lr", lr, min_value=0.0, min_inclusive=False)
    device = next(model.parameters()).device
    X_train, y_train, X_test, y_test = split.tensors(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for X, y in minibatches(X_train, y_train, batch_size, rng):
            yield (torch.stack([augment(img) for img in X]) if augment else X), y

    def score() -> tuple[float, float, float]:
        test_loss, test_accuracy = evaluate(model, X_test, y_test, loss_fn)
        return evaluate(model, X_train, y_train)[1], test_loss, test_accuracy

    return fit(lambda: train_one_epoch(model, batches(), loss_fn, optimizer, device), score, epochs, log,
               sync=lambda: synchronize(device))


def fit_numpy(model: npnn.SimpleCNN, split: Split, *, epochs: int, batch_size: int = 32, lr: float = 0.02,
              momentum: float = 0.9, seed: int = 0, log: Callable[[str], None] | None = print) -> History:
    """Train the NumPy SimpleCNN with its own SGD; same batches as :func:`fit_torch` for the same ``seed``."""
    optimizer = npnn.SGD(lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)

    def score() -> tuple[float, float, float]:
        test_loss, test_accuracy = npnn.evaluate(model, split.X_test, split.y_test)
        return npnn.evaluate(model, split.X_train, split.y_train)[1], test_loss, test_accuracy

    return fit(lambda: npnn.train_one_epoch(model, minibatches(split.X_train, split.y_train, batch_size, rng),
                                            optimizer), score, epochs, log)


def save_and_reload(model: nn.Module, path: Path, fresh: nn.Module) -> nn.Module:
    """Save ``model``'s weights to ``path`` and load them into ``fresh`` (same architecture) with
    ``torch.load(..., weights_only=True)``. Returns ``fresh``; raises if any reloaded tensor differs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    fresh.load_state_dict(state)
    for name, tensor in model.state_dict().items():
        if not torch.equal(tensor.cpu(), fresh.state_dict()[name].cpu()):
            raise RuntimeError(f"reloaded weights differ from the saved ones at {name}")
    return fresh
