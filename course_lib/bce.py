"""Binary cross-entropy computed three ways: float64 reference, stable by hand, and compared with PyTorch.

For a logit ``z`` and a target ``y`` in [0, 1], with ``p = sigmoid(z)``:

    loss(z, y) = -[y log p + (1 - y) log(1 - p)] = (1 - y) z + log(1 + exp(-z))
    log(1 + exp(-z)) = logsumexp(0, -z) = m + log(exp(-m) + exp(-z - m)),  m = max(0, -z)
    d loss / d z = p - y

The log-sum-exp form never exponentiates a positive number and never takes the log of a number
that rounded to 0, which is why ``BCEWithLogitsLoss`` is stable where ``BCELoss(sigmoid(z))`` is not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def stable_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor,
                           pos_weight: float | torch.Tensor | None = None) -> torch.Tensor:
    """Elementwise BCE of ``sigmoid(logits)`` against ``targets``, stable for any logit, in the input dtype.

    With ``pos_weight`` the positive term is weighted, as in ``nn.BCEWithLogitsLoss(pos_weight=...)``:
    ``-[w y log p + (1 - y) log(1 - p)] = (1 - y) z + (1 + (w - 1) y) softplus(-z)``.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits and targets must have the same shape, got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")
    if not (logits.is_floating_point() and targets.is_floating_point()):
        raise ValueError(f"logits and targets must be floating point, got {logits.dtype} and {targets.dtype}")
    softplus_neg = torch.logsumexp(torch.stack([torch.zeros_like(logits), -logits]), dim=0)  # log(1 + e^-z)
    if pos_weight is None:
        return (1 - targets) * logits + softplus_neg
    return (1 - targets) * logits + (1 + (pos_weight - 1) * targets) * softplus_neg


def bce_reference(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 reference: elementwise loss and its gradient ``sigmoid(z) - y`` with respect to the logit.

    Both are written to stay accurate where they are tiny: the loss as
    ``(1 - y) z + max(-z, 0) + log1p(exp(-|z|))``, the gradient as ``(1 - y) sigmoid(z) - y sigmoid(-z)``.
    """
    z, y = logits.detach().double(), targets.detach().double()
    if z.shape != y.shape:
        raise ValueError(f"logits and targets must have the same shape, got {tuple(z.shape)} and {tuple(y.shape)}")
    loss = (1 - y) * z + torch.clamp(-z, min=0) + torch.log1p(torch.exp(-z.abs()))
    return loss, (1 - y) * torch.sigmoid(z) - y * torch.sigmoid(-z)


def loss_and_grad(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor,
                  targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise ``loss_fn(logits, targets)`` and its gradient with respect to each logit (by autograd).

    ``loss_fn`` must return one loss per element (e.g. a loss built with ``reduction="none"``).
    """
    z = logits.detach().clone().requires_grad_(True)
    loss = loss_fn(z, targets)
    if loss.shape != z.shape:
        raise ValueError(f"loss_fn must return one loss per logit (shape {tuple(z.shape)}), "
                         f"got shape {tuple(loss.shape)}: use reduction='none'")
    (grad,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach(), grad


def close_to_reference(got: torch.Tensor, reference: torch.Tensor, rtol: float = 1e-5,
                       atol: float = 1e-6) -> torch.Tensor:
    """Boolean mask: each value within ``rtol`` relative *or* ``atol`` absolute of the float64 reference."""
    error = (got.double() - reference.double()).abs()
    return (error <= atol) | (error <= rtol * reference.double().abs())


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``|got - reference| / |reference|`` in float64 (``inf`` where the reference is 0 and got is not)."""
    error = (got.double() - reference.double()).abs()
    return torch.where(error == 0, torch.zeros_like(error), error / reference.double().abs())
