"""Notebook 04's checkers accept the reference solutions and explain the common mistakes."""

import math

import pytest
import torch
from torch import nn

from course_lib.bce import stable_bce_with_logits
from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch04 import (
    MAX_FORM_HINT,
    SOFTPLUS_NEG_HINT,
    check_accuracy,
    check_bce_with_logits,
    check_init,
    check_parameter_prediction,
)

NOT_DONE = lambda *args: (_ for _ in ()).throw(NotImplementedError())  # what a learner copy's placeholder does


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
    with pytest.raises(ExerciseFailed, match="your code raised RuntimeError"):
        check_bce_with_logits(lambda z, y: z.item())


@pytest.mark.parametrize("check", [check_bce_with_logits, check_accuracy, check_init])
def test_not_attempted_prints_not_done(check, capsys: pytest.CaptureFixture) -> None:
    check(NOT_DONE)  # does not raise: the learner copy runs top to bottom
    assert "[not done] Exercise 4." in capsys.readouterr().out


def test_parameter_prediction_checker(capsys: pytest.CaptureFixture) -> None:
    check_parameter_prediction(lambda: 5, 5, 65, 5)
    assert "[passed] Exercise 4.1" in capsys.readouterr().out
    check_parameter_prediction(lambda: 5.0, 5, 65, 5)
    with pytest.raises(ExerciseFailed, match="a Python list is none of these"):
        check_parameter_prediction(lambda: 65, 5, 65, 5)
    with pytest.raises(ExerciseFailed, match="assigned as an attribute"):
        check_parameter_prediction(lambda: 0, 5, 65, 5)
    with pytest.raises(ExerciseFailed, match="a \\* b weights and b biases"):
        check_parameter_prediction(lambda: 16, 5, 65, 5)
    with pytest.raises(ExerciseFailed, match="one whole number"):
        check_parameter_prediction(lambda: "5", 5, 65, 5)
    check_parameter_prediction(NOT_DONE, 5, 65, 5)
    assert "[not done] Exercise 4.1" in capsys.readouterr().out


def _init(weight_init, bias_init=nn.init.zeros_, kind=nn.Linear):
    def init_linear(module: nn.Module) -> None:
        if isinstance(module, kind):
            weight_init(module.weight)
            if bias_init is not None:
                bias_init(module.bias)
    return init_linear


def test_init_checker(capsys: pytest.CaptureFixture) -> None:
    check_init(_init(nn.init.xavier_uniform_))
    assert "[passed] Exercise 4.2" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="beyond the Xavier-uniform bound"):
        check_init(_init(nn.init.xavier_normal_))
    with pytest.raises(ExerciseFailed, match="beyond the Xavier-uniform bound"):
        check_init(_init(lambda w: nn.init.xavier_uniform_(w, gain=2.0)))
    with pytest.raises(ExerciseFailed, match="do not fill it"):
        check_init(_init(lambda w: nn.init.uniform_(w, -math.sqrt(6 / 100), math.sqrt(6 / 100)) if w.shape[0] == 10
                         else nn.init.xavier_uniform_(w)))  # 40 -> 10 with another layer's bound
    with pytest.raises(ExerciseFailed, match="bias is not all zeros"):
        check_init(_init(nn.init.xavier_uniform_, bias_init=None))
    with pytest.raises(ExerciseFailed, match="default weights: your function did not reach it"):
        check_init(lambda m: _init(nn.init.xavier_uniform_)(m) if isinstance(m, nn.Linear) and m.in_features != 30
                   else None)  # misses the nested layer

    def zero_every_bias(m: nn.Module) -> None:
        _init(nn.init.xavier_uniform_)(m)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)

    with pytest.raises(ExerciseFailed, match="batch norm's bias changed"):
        check_init(zero_every_bias)
    with pytest.raises(ExerciseFailed, match="no longer an nn.Parameter"):
        check_init(lambda m: setattr(m, "weight", None) if isinstance(m, nn.Linear) else None)
    with pytest.raises(ExerciseFailed, match="your code raised RuntimeError"):
        check_init(lambda m: m.weight.uniform_() if isinstance(m, nn.Linear) else None)  # in place, outside no_grad


def test_accuracy_checker() -> None:
    check_accuracy(lambda logits, y: ((logits.squeeze(1) >= 0).float() == y).float().mean().item())
    check_accuracy(lambda logits, y: ((torch.sigmoid(logits).squeeze(1) >= 0.5).float() == y).float().mean())
    with pytest.raises(ExerciseFailed, match="broadcasts"):
        check_accuracy(lambda logits, y: ((logits >= 0).float() == y).float().mean().item())
    with pytest.raises(ExerciseFailed, match="logit of 0"):
        check_accuracy(lambda logits, y: ((logits.squeeze(1) >= 0.5).float() == y).float().mean().item())


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
