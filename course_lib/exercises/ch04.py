"""Checkers for notebook 04 (nn.Module, the training loop, BCELoss vs BCEWithLogitsLoss)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.bce import close_to_reference
from course_lib.exercises import attempt, expect, expect_close, passed

# The checker's hints name these exact expressions (z: logits, y: targets); tests run them through the checker.
SOFTPLUS_NEG_HINT = "torch.logsumexp(torch.stack([torch.zeros_like(z), -z]), dim=0)"
MAX_FORM_HINT = "torch.maximum(z, torch.zeros_like(z)) - z * y + torch.log1p(torch.exp(-z.abs()))"
EXTREME_LOGITS = (-200.0, -120.0, -89.0, -40.0, -17.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 17.0, 40.0, 89.0, 120.0, 200.0)


def check_bce_with_logits(bce_with_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 4.2: elementwise stable BCE-with-logits; values and gradients match PyTorch's at extreme logits."""
    title = "Exercise 4.2 (stable BCE with logits)"
    logits = torch.tensor(EXTREME_LOGITS * 3, dtype=torch.float32)
    targets = torch.tensor([0.0] * len(EXTREME_LOGITS) + [1.0] * len(EXTREME_LOGITS) + [0.3] * len(EXTREME_LOGITS))
    z = logits.clone().requires_grad_(True)
    got = attempt(title, bce_with_logits, z, targets)
    expect(title, isinstance(got, torch.Tensor), f"expected a torch.Tensor, got {type(got).__name__}")
    expect(title, got.shape == logits.shape,
           f"expected one loss per logit, shape {tuple(logits.shape)}, got shape {tuple(got.shape)} "
           "(do not average: return the elementwise loss)")
    expect(title, got.dtype == torch.float32, f"expected float32 (the input dtype), got {got.dtype}: "
           "compute in the logits' dtype, do not convert to float64")
    bad = ~torch.isfinite(got.detach())
    if bad.any():
        i = int(bad.nonzero()[0])
        raise_msg = (f"the loss is {got[i].item()} at logit {logits[i].item():g} (target {targets[i].item():g}): "
                     "exp(-z) overflows for very negative z and log(sigmoid(z)) hits log(0); "
                     "write the loss as (1 - y) * z + log(1 + exp(-z)) and compute log(1 + exp(-z)) as "
                     f"{SOFTPLUS_NEG_HINT}, a log-sum-exp that never exponentiates a positive number")
        expect(title, False, raise_msg)
    reference = F.binary_cross_entropy_with_logits(logits.double(), targets.double(), reduction="none")
    ok = close_to_reference(got.detach(), reference)
    if not ok.all():
        i = int((~ok).nonzero()[0])
        expect(title, False, f"at logit {logits[i].item():g} (target {targets[i].item():g}) the loss is "
               f"{got[i].item():.7g}, expected {reference[i].item():.7g} (within 1e-5 relative or 1e-6 absolute)")
    expect(title, got.grad_fn is not None, "the result has no grad_fn: build it from torch operations on "
           "the logits (no .item(), .numpy() or torch.no_grad()) so autograd can differentiate it")
    (grad,) = torch.autograd.grad(got.sum(), z)
    expected_grad = torch.sigmoid(logits.double()) - targets.double()
    ok = close_to_reference(grad, expected_grad)
    if not ok.all():
        i = int((~ok).nonzero()[0])
        expect(title, logits[i].item() != 0.0 or not ok[logits != 0].all(),
               f"values are right but the gradient at logit 0 is {grad[i].item():.6g}, expected "
               f"{expected_grad[i].item():.6g} = sigmoid(0) - y. The loss is smooth at 0, but max(z, 0) and |z| "
               "each have a kink there, and autograd takes one fixed one-sided slope at a kink (0 for "
               "clamp(min=0), relu and abs), so the pieces no longer add up to sigmoid(0) - y. Compute "
               f"log(1 + exp(-z)) as {SOFTPLUS_NEG_HINT} (smooth), or write max(z, 0) as "
               "torch.maximum(z, torch.zeros_like(z)), whose gradient at a tie is 1/2")
        expect(title, False, f"values are right but the gradient at logit {logits[i].item():g} (target "
               f"{targets[i].item():g}) is {grad[i].item():.6g}, expected sigmoid(z) - y = "
               f"{expected_grad[i].item():.6g}: a clamp or a detached piece stops the gradient")
    passed(title, f"{len(logits)} losses and gradients match, logits from {min(EXTREME_LOGITS):g} "
           f"to {max(EXTREME_LOGITS):g}")


def check_accuracy(accuracy: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Exercise 4.3: accuracy of a binary classifier from logits of shape (N, 1) and 0/1 targets of shape (N,)."""
    title = "Exercise 4.3 (accuracy from logits)"
    logits = torch.tensor([[2.0], [0.3], [-0.2], [-3.0], [0.1], [1.5], [-1.0], [0.4]])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    expected = ((logits.squeeze(1) >= 0).float() == targets).float().mean().item()
    got = attempt(title, accuracy, logits.clone(), targets.clone())
    if isinstance(got, torch.Tensor):
        expect(title, got.numel() == 1, f"expected one number, got a tensor of shape {tuple(got.shape)}: "
               "(N, 1) == (N,) broadcasts to an (N, N) matrix; squeeze the logits to (N,) first")
        got = got.item()
    expect(title, isinstance(got, (float, int)), f"expected a float, got {type(got).__name__}")
    broadcast = ((logits >= 0).float() == targets).float().mean().item()
    logit_threshold = ((logits.squeeze(1) >= 0.5).float() == targets).float().mean().item()
    expect(title, abs(got - broadcast) > 1e-9 or abs(broadcast - expected) < 1e-9,
           f"got {got:.4f}, the mean of an (N, N) matrix: (N, 1) == (N,) broadcasts; squeeze the logits to (N,)")
    expect(title, abs(got - logit_threshold) > 1e-9,
           f"got {got:.4f}: you compared the logits with 0.5; a probability of 0.5 is a logit of 0 "
           "(or apply torch.sigmoid first)")
    expect_close(title, got, expected, atol=1e-9)
    passed(title, f"accuracy {got:.3f} on 8 examples")


def _reference_step(model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, X: torch.Tensor,
                    y: torch.Tensor, zero_grad: bool = True) -> float:
    if zero_grad:
        optimizer.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _run(step: Callable, model: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int,
         **kwargs) -> tuple[list[float], torch.Tensor]:
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = [step(model, nn.BCEWithLogitsLoss(), optimizer, X, y, **kwargs) for _ in range(steps)]
    return losses, torch.cat([p.detach().flatten() for p in model.parameters()])


def check_train_step(train_step: Callable[..., float], steps: int = 5) -> None:
    """Exercise 4.1: ``train_step(model, loss_fn, optimizer, X, y)`` does one correct step and returns the loss."""
    title = "Exercise 4.1 (a training step in the right order)"
    generator = torch.Generator().manual_seed(4)
    X = torch.randn(16, 3, generator=generator)
    y = (X[:, 0] > 0).float()
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(start_dim=0))  # logits of shape (N,)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, -0.2, 0.3]]))
        model[0].bias.fill_(0.05)
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    got_losses, got_weights = attempt(title, _run, train_step, model, X, y, steps)
    ref_losses, ref_weights = _run(_reference_step, model, X, y, steps)
    _, accumulated = _run(_reference_step, model, X, y, steps, zero_grad=False)
    expect(title, not torch.equal(got_weights, start),
           f"the weights did not change in {steps} steps: optimizer.step() ran when there were no gradients "
           "(call loss.backward() before optimizer.step(), and zero_grad() before backward, not between)")
    expect(title, not torch.allclose(got_weights, accumulated, atol=1e-7),
           "your weights match a loop that never clears gradients: they accumulate across steps; "
           "call optimizer.zero_grad() once per step, before loss.backward()")
    expect(title, all(isinstance(v, float) for v in got_losses),
           f"train_step must return the loss as a Python float (loss.item()), got {type(got_losses[0]).__name__}")
    expect_close(f"{title}, weights after {steps} steps", got_weights, ref_weights, atol=1e-6)
    expect_close(f"{title}, loss returned by the last step", got_losses[-1], ref_losses[-1], atol=1e-6)
    passed(title, f"weights and losses match the reference loop after {steps} steps")
