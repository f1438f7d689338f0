"""course_lib.env: parameter validation, seeding and device choice."""

import random
import re

import numpy as np
import pytest
import torch

from course_lib import check_bool, check_choice, check_float, check_int, get_device, seed_everything, setup


def test_check_int_accepts_and_returns() -> None:
    assert check_int("epochs", 3, min_value=1) == 3
    value = check_int("epochs", np.int64(3), min_value=1)  # a NumPy integer, e.g. from a papermill grid
    assert value == 3 and type(value) is int


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True, None])
def test_check_int_rejects_with_name_value_and_rule(value) -> None:
    with pytest.raises(ValueError, match=r"epochs must be an int >= 1, got") as info:
        check_int("epochs", value, min_value=1)
    assert repr(value) in str(info.value)


def test_check_float_bounds() -> None:
    assert check_float("lr", 1, min_value=0, min_inclusive=False) == 1.0
    with pytest.raises(ValueError, match=r"lr must be a number > 0, got 0"):
        check_float("lr", 0, min_value=0, min_inclusive=False)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\], got 1.5"):
        check_float("p", 1.5, min_value=0, max_value=1)
    for value in (float("nan"), float("inf"), -float("inf"), np.float32("nan"), 10**400):
        with pytest.raises(ValueError, match=re.escape(f"lr must be a number, got {value!r}")):
            check_float("lr", value)
    value = check_float("lr", np.float32(0.5), min_value=0)  # NumPy scalars are numbers too
    assert value == 0.5 and type(value) is float


def test_check_choice_and_bool() -> None:
    assert check_choice("device", "cpu", ["auto", "cpu"]) == "cpu"
    with pytest.raises(ValueError, match=r"device must be one of 'auto', 'cpu', got 'banana'"):
        check_choice("device", "banana", ["auto", "cpu"])
    with pytest.raises(ValueError, match="use_compile must be True or False, got 1"):
        check_bool("use_compile", 1)


def test_seed_everything_repeats_all_generators() -> None:
    seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool,
                                           expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device("auto") == torch.device(expected)
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_named_device_that_is_missing_is_refused(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"device must be available on this machine, got '{device}'"):
        get_device(device)
    with pytest.raises(ValueError, match="device must be one of"):
        get_device("tpu9")


def test_setup_validates_seed() -> None:
    assert setup(0, "cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -5"):
        setup(-5)
