"""The PyTorch training loop, written once: one epoch of training, and evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from course_lib.params import check_int


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
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
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
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        logits = model(xb)
        if loss_fn is not None:
            total_loss += loss_fn(logits, yb).item() * len(xb)
        correct += (logits.argmax(dim=1) == yb).sum().item()
    return (total_loss / len(X) if loss_fn is not None else float("nan")), correct / len(X)
