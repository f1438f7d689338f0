"""Stable BCE-with-logits by hand agrees with PyTorch and with a float64 reference at extreme logits."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.bce import bce_reference, close_to_reference, loss_and_grad, relative_error, stable_bce_with_logits

LOGITS = torch.linspace(-150, 150, 601)


@pytest.mark.parametrize("target", [0.0, 1.0, 0.25])
def test_stable_bce_matches_torch_in_float64(target: float) -> None:
    z = LOGITS.double()
    y = torch.full_like(z, target)
    torch.testing.assert_close(stable_bce_with_logits(z, y),
                               F.binary_cross_entropy_with_logits(z, y, reduction="none"), rtol=1e-12, atol=1e-12)


def test_pos_weight_matches_torch() -> None:
    z = LOGITS.double()
    y = (torch.arange(len(z)) % 3 == 0).double()
    expected = F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(7.5, dtype=torch.float64),
                                                  reduction="none")
    torch.testing.assert_close(stable_bce_with_logits(z, y, pos_weight=7.5), expected, rtol=1e-12, atol=1e-12)


def test_reference_gradient_is_sigmoid_minus_target_and_matches_autograd() -> None:
    z = LOGITS.double()
    y = (torch.arange(len(z)) % 2).double()
    loss, grad = bce_reference(z.float(), y.float())
    assert loss.dtype == torch.float64 and grad.dtype == torch.float64
    loss_autograd, grad_autograd = loss_and_grad(lambda a, b: stable_bce_with_logits(a, b), z, y)
    torch.testing.assert_close(loss, loss_autograd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_autograd, rtol=1e-12, atol=1e-12)
    assert (loss >= 0).all() and torch.isfinite(loss).all()


def test_float32_bce_with_logits_within_bounds_but_bce_loss_saturates() -> None:
    z = LOGITS
    y = torch.ones_like(z)
    ref_loss, ref_grad = bce_reference(z, y)
    loss, grad = loss_and_grad(nn.BCEWithLogitsLoss(reduction="none"), z, y)
    assert close_to_reference(loss, ref_loss).all() and close_to_reference(grad, ref_grad).all()
    bce = nn.BCELoss(reduction="none")
    loss_p, grad_p = loss_and_grad(lambda a, b: bce(torch.sigmoid(a), b), z, y)
    assert loss_p[0].item() == 100.0  # BCELoss clamps log(p) at -100
    assert ref_loss[0].item() == pytest.approx(-z[0].item())  # -log(sigmoid(z)) = -z for z << 0
    assert grad_p[0].item() == 0.0 and ref_grad[0].item() == -1.0
    assert not close_to_reference(loss_p, ref_loss).all()


def test_close_to_reference_is_relative_or_absolute() -> None:
    ref = torch.tensor([1e-30, 1000.0, 1.0], dtype=torch.float64)
    got = torch.tensor([0.0, 1000.009, 1.00002])
    assert close_to_reference(got, ref).tolist() == [True, True, False]
    assert relative_error(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        stable_bce_with_logits(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="floating point"):
        stable_bce_with_logits(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction='none'"):
        loss_and_grad(nn.BCEWithLogitsLoss(), torch.zeros(3), torch.zeros(3))
