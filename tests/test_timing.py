"""The shared timing helper."""

from __future__ import annotations

import pytest
import torch

from course_lib.timing import limit_cpu_threads, median_seconds


def test_median_seconds_calls_warmup_then_repeats() -> None:
    calls = []
    seconds = median_seconds(lambda: calls.append(1), repeats=3, warmup=2, min_seconds=0.0)
    assert len(calls) == 5 and seconds >= 0


def test_median_seconds_repeats_short_calls_until_min_seconds() -> None:
    calls = []
    median_seconds(lambda: calls.append(1), repeats=1, warmup=0, min_seconds=0.01)
    assert len(calls) > 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeats must be an int >= 1, got 0"):
        median_seconds(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="threads must be an int >= 1, got 0"):
        limit_cpu_threads(0)


def test_limit_cpu_threads_sets_torch_threads() -> None:
    before = torch.get_num_threads()
    try:
        limit_cpu_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        limit_cpu_threads(before)
