"""course_lib.tools.launch: N ranks started from Python fail fast, time out, and leave nothing behind.

Opt-in (``pytest --run-slow``): the 2-rank job started 20 times in a row without a failure (the shutdown
race that ``exit_process`` avoids).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed import leftover_processes, port_is_free
from torch.multiprocessing import ProcessRaisedException

from course_lib import fsdp
from course_lib.tools import fsdp_lab
from course_lib.tools.fsdp_lab import RunSpec
from course_lib.tools.launch import free_port, launch, new_run_dir


def _fail_in_second_step_on_rank_1(runs: list[RunSpec], out_dir: Path, timeout_s: float, data: tuple) -> list:
    """A worker whose rank 1 raises in its second training step, while rank 0 waits in a collective."""
    if os.environ["RANK"] == "1":
        real_step, calls = fsdp_lab.train_step, itertools.count()

        def failing_step(*args: object) -> torch.Tensor:
            if next(calls) == 1:
                raise RuntimeError("rank 1: deliberate failure in the second step")
            return real_step(*args)

        fsdp_lab.train_step = failing_step  # this process only: training() looks it up in the module
    return fsdp_lab.run_rank(runs, out_dir, timeout_s, data)


def test_a_failing_rank_ends_the_job_fast_with_its_traceback(tmp_path: Path) -> None:
    port, start = free_port(), time.monotonic()
    with pytest.raises(ProcessRaisedException) as info:
        launch([RunSpec("boom", max_steps=5)], world_size=2, run_dir=tmp_path, port=port,
               worker=_fail_in_second_step_on_rank_1)
    assert time.monotonic() - start < 60
    assert info.value.error_index == 1
    assert "Traceback" in str(info.value) and "in failing_step" in str(info.value)
    assert "RuntimeError: rank 1: deliberate failure in the second step" in str(info.value)
    assert not leftover_processes() and port_is_free(port)


def _hang_on_rank_1(runs: list[RunSpec], out_dir: Path, timeout_s: float, data: tuple) -> list:
    """A worker whose rank 1 never joins rank 0's collective."""
    fsdp.setup_process_group(timeout_s)
    if dist.get_rank() == 1:
        time.sleep(600)
    dist.all_reduce(torch.ones(1))
    return []


def test_a_hung_collective_ends_with_the_process_group_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ProcessRaisedException) as info:
        launch([RunSpec("hang")], world_size=2, run_dir=tmp_path, collective_timeout_s=3, worker=_hang_on_rank_1)
    assert time.monotonic() - start < 60
    assert info.value.error_index == 0  # the rank that waited: its all_reduce timed out
    assert "timed out" in str(info.value).lower() or "timeout" in str(info.value).lower()
    assert "all_reduce" in str(info.value)
    assert not leftover_processes()


def test_bad_arguments_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"global_batch_size must be divisible by world_size \(2\), got 95"):
        launch([RunSpec("odd", global_batch_size=95)], world_size=2, run_dir=tmp_path)
    with pytest.raises(ValueError, match="distinct names"):
        launch([RunSpec("a"), RunSpec("a")], world_size=2, run_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_new_run_dir_gives_each_launch_its_own_folder_and_keeps_the_newest(tmp_path: Path) -> None:
    folders = [new_run_dir(tmp_path, keep=2) for _ in range(4)]
    assert len(set(folders)) == 4 and all(folder.parent == tmp_path for folder in folders)
    assert sorted(tmp_path.iterdir()) == folders[1:]  # the 2 newest earlier ones and the new one


@pytest.mark.slow
def test_stress_twenty_two_rank_launches_without_a_failure(tmp_path: Path) -> None:
    runs = [RunSpec("fsdp", max_steps=2), RunSpec("ddp", strategy="ddp", max_steps=2)]
    failures, start = [], time.monotonic()
    for attempt in range(20):
        try:
            launch(runs, world_size=2, run_dir=new_run_dir(tmp_path))
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            failures.append(f"launch {attempt}: {exc}")
    print(f"\n20 launches of the 2-rank job in {time.monotonic() - start:.0f} s, {len(failures)} failed")
    assert not failures, "\n".join(failures)
    assert not leftover_processes()
