"""Bounds printed instead of round-off digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.report import bound, roundoff


def test_roundoff_follows_the_dtype() -> None:
    assert roundoff(torch.float64) == pytest.approx(1e-12)
    assert roundoff(np.float64) == pytest.approx(1e-12)
    assert roundoff(torch.float32) == pytest.approx(1e-3)
    assert roundoff(torch.float32, ulps=10) == pytest.approx(1e-5)
    assert roundoff(torch.float64, scale=100) == pytest.approx(1e-10)
    with pytest.raises(ValueError, match="scale and ulps must be > 0"):
        roundoff(torch.float32, scale=0)


def test_bound_prints_the_bound_not_the_digits() -> None:
    assert bound(3.3e-16, 1e-12, reason="float64 round-off") == "max |difference| below 1e-12 (float64 round-off)"
    assert bound(0.0, 1e-5, label="max |grad difference|") == "max |grad difference| below 1e-05"


@pytest.mark.parametrize("value", [2e-12, float("nan"), float("inf"), -1e-20])
def test_bound_fails_loudly_with_the_value(value: float) -> None:
    with pytest.raises(AssertionError, match=r"expected a value in \[0, 1e-12\)"):
        bound(value, 1e-12)


def test_bound_rejects_a_nonpositive_limit() -> None:
    with pytest.raises(ValueError, match="limit must be > 0"):
        bound(0.0, 0.0)


def test_dtype_name_drops_the_torch_prefix_and_names_numpy_dtypes() -> None:
    from course_lib import dtype_name

    assert [dtype_name(d) for d in (torch.float32, torch.bfloat16, torch.int64)] == ["float32", "bfloat16", "int64"]
    assert [dtype_name(d) for d in (np.float64, np.dtype("float32"))] == ["float64", "float32"]

