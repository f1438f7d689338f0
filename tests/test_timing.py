"""course_lib.timing: the one timing helper (warm-up, repeats, median, GPUs synchronised)."""

from __future__ import annotations

import time

import pytest
import torch

from course_lib import timing
from course_lib.timing import Timer, limit_cpu_threads, median_seconds

NAP = 0.01  # seconds a timed function sleeps


def test_timer_measures_at_least_the_time_spent_in_its_block() -> None:
    with Timer() as timer:
        time.sleep(NAP)
    assert NAP <= timer.seconds < NAP + 1.0


def test_timer_and_median_seconds_synchronise_before_and_after_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(timing, "synchronize", lambda device=None: events.append(f"sync {device}"))
    with Timer(torch.device("cuda")):
        events.append("work")
    assert events == ["sync cuda", "work", "sync cuda"]
    events.clear()
    median_seconds(lambda: events.append("work"), repeats=2, warmup=0, min_seconds=0.0)
    assert events == ["sync None", "work", "sync None"] * 2


def test_median_seconds_calls_warmup_then_repeats_and_returns_the_median() -> None:
    naps = iter([0.0, 0.0, NAP, 20 * NAP, NAP])  # two warm-up calls, then three timed ones: median NAP
    calls = []

    def nap() -> None:
        calls.append(1)
        time.sleep(next(naps))

    seconds = median_seconds(nap, repeats=3, warmup=2, min_seconds=0.0)
    assert len(calls) == 5 and NAP <= seconds < 20 * NAP


def test_median_seconds_repeats_short_calls_until_min_seconds() -> None:
    calls = []
    median_seconds(lambda: calls.append(1), repeats=1, warmup=0, min_seconds=0.01)
    assert len(calls) > 1


def test_synchronize_waits_only_for_the_device_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append("cuda"))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append("mps"))
    timing.synchronize(torch.device("cpu"))
    assert waited == []
    timing.synchronize(torch.device("mps"))
    assert waited == ["mps"]
    timing.synchronize()
    assert waited == ["mps", "cuda", "mps"]


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


def test_sample_seconds_returns_one_time_per_call() -> None:
    from course_lib.timing import sample_seconds

    calls: list[int] = []
    times = sample_seconds(lambda: calls.append(1), repeats=3, warmup=2, min_seconds=0.0)
    assert len(times) == 3 and len(calls) == 5 and all(t >= 0 for t in times)


def test_median_is_the_middle_or_the_mean_of_the_two_middle_ones() -> None:
    from course_lib.timing import median

    assert median([3.0, 1.0, 2.0]) == 2.0 and median([4.0, 1.0, 2.0, 3.0]) == 2.5  # torch.median would give 2.0
    with pytest.raises(ValueError, match="no measurements"):
        median([])

