"""The PyTorch training loop, written once: one step, one epoch of training, evaluation, and fit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from course_lib.data import batch_slices
from course_lib.env import check_int
from course_lib.timing import Timer, median


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], X: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
    """One optimizer step on the batch ``(X, y)``; return its loss (still attached to the graph's values)."""
    optimizer.zero_grad()
    loss = loss_fn(model(X), y)  # FSDP: all-gather each unit just before its forward, free it after
    loss.backward()  # DDP averages the gradients across ranks here; FSDP also reduce-scatters: each keeps 1/N
    optimizer.step()  # FSDP: each rank updates only its own shard
    return loss


def train_one_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu") -> float:
    """Train on every ``(X, y)`` batch once; return the mean loss weighted by batch size.

    Example: ``loss = train_one_epoch(model, loader, nn.CrossEntropyLoss(), optimizer, device)``
    """
    model.train()
    total, count = 0.0, 0
    for X, y in batches:
        X, y = X.to(device), y.to(device)
        loss = train_step(model, optimizer, loss_fn, X, y)
        total += loss.item() * len(X)
        count += len(X)
    if count == 0:
        raise ValueError("train_one_epoch got no batches: is the data loader empty?")
    return total / count


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             batch_size: int = 1024) -> tuple[float, float]:
    """Return ``(mean loss, accuracy)`` of a classifier on ``X, y`` (loss is NaN without ``loss_fn``)."""
    check_int("batch_size", batch_size, min_value=1)
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for rows in batch_slices(len(X), batch_size):
        xb, yb = X[rows].to(device), y[rows].to(device)
        logits = model(xb)
        if loss_fn is not None:
            total_loss += loss_fn(logits, yb).item() * len(xb)
        correct += (logits.argmax(dim=1) == yb).sum().item()
    return (total_loss / len(X) if loss_fn is not None else float("nan")), correct / len(X)


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
        return median(self.epoch_seconds)


def fit(train_epoch: Callable[[], float], score: Callable[[], tuple[float, float, float]], epochs: int,
        log: Callable[[str], None] | None = print, device: torch.device | None = None) -> History:
    """Run ``epochs`` epochs: ``train_epoch()`` returns the mean training loss (and is timed, GPU work on
    ``device`` included), then ``score()`` returns ``(train accuracy, test loss, test accuracy)``.
    Logs one line per epoch."""
    check_int("epochs", epochs, min_value=1)
    history = History()
    for epoch in range(1, epochs + 1):
        with Timer(device) as timer:
            loss = train_epoch()
        history.epoch_seconds.append(timer.seconds)
        train_accuracy, test_loss, test_accuracy = score()
        for values, value in zip((history.train_loss, history.train_accuracy, history.test_loss, history.test_accuracy),
                                 (loss, train_accuracy, test_loss, test_accuracy), strict=True):
            values.append(value)
        if log is not None:
            log(f"epoch {epoch}/{epochs}  loss {loss:.4f}  train accuracy {train_accuracy:.2%}  "
                f"test accuracy {test_accuracy:.2%}")
    return history
