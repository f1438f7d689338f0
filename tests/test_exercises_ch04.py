"""Notebook 04's checkers accept the reference solutions and explain the common mistakes."""

import pytest
import torch

from course_lib.bce import stable_bce_with_logits
from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch04 import (
    MAX_FORM_HINT,
    SOFTPLUS_NEG_HINT,
    check_accuracy,
    check_bce_with_logits,
    check_train_step,
)


def test_bce_checker() -> None:
    check_bce_with_logits(lambda z, y: stable_bce_with_logits(z, y))
    naive = lambda z, y: -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z)))
    with pytest.raises(ExerciseFailed, match=r"exp\(-z\) overflows"):
        check_bce_with_logits(naive)
    clamped = lambda z, y: -(y * torch.log(torch.sigmoid(z)).clamp(min=-100)
                             + (1 - y) * torch.log(1 - torch.sigmoid(z)).clamp(min=-100))
    with pytest.raises(ExerciseFailed, match="expected"):
        check_bce_with_logits(clamped)
    kinked = lambda z, y: (1 - y) * z + z.neg().clamp(min=0) + torch.log1p(torch.exp(-z.abs()))
    with pytest.raises(ExerciseFailed, match="kink there"):
        check_bce_with_logits(kinked)
    with pytest.raises(ExerciseFailed, match="do not average"):
        check_bce_with_logits(lambda z, y: stable_bce_with_logits(z, y).mean())
    with pytest.raises(ExerciseFailed, match="not attempted"):
        check_bce_with_logits(lambda z, y: (_ for _ in ()).throw(NotImplementedError()))


def test_accuracy_checker() -> None:
    check_accuracy(lambda logits, y: ((logits.squeeze(1) >= 0).float() == y).float().mean().item())
    check_accuracy(lambda logits, y: ((torch.sigmoid(logits).squeeze(1) >= 0.5).float() == y).float().mean())
    with pytest.raises(ExerciseFailed, match="broadcasts"):
        check_accuracy(lambda logits, y: ((logits >= 0).float() == y).float().mean().item())
    with pytest.raises(ExerciseFailed, match="logit of 0"):
        check_accuracy(lambda logits, y: ((logits.squeeze(1) >= 0.5).float() == y).float().mean().item())


def _step(order: str):
    def train_step(model, loss_fn, optimizer, X, y):
        loss = None
        for call in order.split():
            if call == "zero":
                optimizer.zero_grad()
            elif call == "forward":
                loss = loss_fn(model(X), y)
            elif call == "backward":
                loss.backward()
            else:
                optimizer.step()
        return loss.item()
    return train_step


def test_train_step_checker() -> None:
    check_train_step(_step("zero forward backward step"))
    check_train_step(_step("forward backward step zero"))
    with pytest.raises(ExerciseFailed, match="accumulate"):
        check_train_step(_step("forward backward step"))
    with pytest.raises(ExerciseFailed, match="did not change"):
        check_train_step(_step("zero forward step backward zero"))
    with pytest.raises(ExerciseFailed, match="did not change"):
        check_train_step(_step("forward backward zero step"))
    with pytest.raises(ExerciseFailed, match="Python float"):
        check_train_step(lambda *args: torch.tensor(_step("zero forward backward step")(*args)))


def test_bce_checker_hints_lead_to_formulas_that_pass() -> None:
    """Each formula a hint spells out passes the same checker (no hint leads into the kink-at-0 failure)."""
    naive = lambda z, y: -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z)))
    with pytest.raises(ExerciseFailed) as overflow:
        check_bce_with_logits(naive)
    assert SOFTPLUS_NEG_HINT in str(overflow.value)
    check_bce_with_logits(eval(f"lambda z, y: (1 - y) * z + {SOFTPLUS_NEG_HINT}"))  # the first hint, as written

    clamp_form = lambda z, y: torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))
    with pytest.raises(ExerciseFailed, match="gradient at logit 0 is 0, expected 0.5") as kink:
        check_bce_with_logits(clamp_form)  # slope 0 at the kink instead of 1/2: off by exactly 0.5
    assert SOFTPLUS_NEG_HINT in str(kink.value) and "torch.maximum(z, torch.zeros_like(z))" in str(kink.value)
    check_bce_with_logits(eval(f"lambda z, y: {MAX_FORM_HINT}"))  # the kink hint's max form, as written
