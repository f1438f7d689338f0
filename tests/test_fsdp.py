"""course_lib.distributed, course_lib.sharding and the FSDP script, run with real processes.

Default: sharded training equals single-process training (2 ranks, float64 and float32), a rank that
raises fails the job fast with its traceback and leaves no process behind, the script gives the same
results on 1 rank (in-process) and on 2 (torchrun). Opt-in (``pytest --run-slow``): the 2-rank job
started 30 times in a row without a failure (the shutdown race of ``exit_process``), a hung rank
ended by the collective timeout, the whole-job timeout, workers dying with their parent, run_fsdp.sh.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from course_lib.distributed import (
    RunSpec,
    WorkerFailed,
    global_batches,
    launch,
    new_run_dir,
    rank_slice,
    run_in_turns,
)
from course_lib.sharding import padding_elements, shard_rows, zero_bytes_per_rank

from course_lib.memory import count_parameters
from course_lib.models import SimpleCNN

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_pytorch_fsdp.py"


def _processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line contains ``text`` (the workers carry their work folder)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if text in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_two_rank_fsdp_equals_single_process(tmp_path: Path) -> None:
    short = dict(max_steps=4, global_batch_size=96)
    runs = [RunSpec("single64", strategy="single", dtype="float64", **short),
            RunSpec("fsdp64", dtype="float64", profile=True, **short),
            RunSpec("single32", strategy="single", **short),
            RunSpec("fsdp32", **short)]
    results = launch(runs, world_size=2, out_dir=tmp_path, timeout_s=240)
    state = {name: torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in results}
    assert _max_difference(state["fsdp64"], state["single64"]) < 1e-12
    assert _max_difference(state["fsdp32"], state["single32"]) < 1e-5
    for rank in range(2):
        fsdp, single = results["fsdp64"][rank], results["single64"][rank]
        assert max(abs(a - b) for a, b in zip(fsdp["losses"], single["losses"], strict=True)) < 1e-12
        for part in ("params", "grads", "optimizer"):  # every dim 0 is even: exactly half, no padding
            assert 2 * fsdp["memory"][part] == single["memory"][part] == 2 * fsdp["memory"][f"{part}_allocated"]
        fc1 = next(f for f in fsdp["shards"] if f["name"] == "fc1.weight")
        assert (fc1["global_shape"], fc1["local_shape"], fc1["placements"]) == ([320, 256], [160, 256], ["S(0)"])
    n_params = count_parameters(SimpleCNN(channels=(32, 64), hidden=320))
    assert results["fsdp64"][0]["gathered_after_forward"] == 0
    assert results["fsdp64"][0]["gathered_during_forward"]["fc1"] == 8 * (320 * 256 + 320)
    assert results["single64"][0]["memory"]["params"] == 8 * n_params
    assert results["fsdp64"][0]["collectives_per_step"] == {"all_gather": 8, "reduce_scatter": 4, "all_reduce": 0,
                                                             "broadcast": 0}
    assert not _processes_mentioning(str(tmp_path))


def test_a_failing_rank_fails_the_job_fast_and_leaves_no_process(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(WorkerFailed, match="rank 1 of 2 failed") as info:
        launch([RunSpec("boom", fault_rank=1, max_steps=5)], world_size=2, out_dir=tmp_path, timeout_s=120)
    assert time.monotonic() - start < 60
    assert info.value.rank == 1
    assert "RuntimeError: rank 1: deliberate failure after the first step" in str(info.value)
    assert not _processes_mentioning(str(tmp_path))


def test_bad_arguments_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"global_batch_size must be divisible by world_size \(2\), got 95"):
        launch([RunSpec("odd", global_batch_size=95)], world_size=2, out_dir=tmp_path)
    with pytest.raises(ValueError, match="distinct names"):
        launch([RunSpec("a"), RunSpec("a")], world_size=2, out_dir=tmp_path)
    with pytest.raises(ValueError, match="strategy must be one of 'single', 'ddp', 'fsdp', got 'zero'"):
        RunSpec("x", strategy="zero")
    with pytest.raises(ValueError, match="are FSDP options"):
        RunSpec("x", strategy="ddp", mixed_precision=True)
    assert not (tmp_path / "ranks" / "rank0.log").exists()


def test_global_batches_split_evenly_and_identically_on_every_rank() -> None:
    batches = global_batches(1347, 96, seed=0, epoch=1)
    assert len(batches) == 1347 // 96 and all(len(b) == 96 for b in batches)
    assert torch.equal(torch.cat(batches), torch.cat(global_batches(1347, 96, seed=0, epoch=1)))
    assert len(set(torch.cat(batches).tolist())) == 14 * 96  # no sample twice in an epoch
    for world_size in (1, 2, 3, 4):
        parts = [rank_slice(batches[0], rank, world_size) for rank in range(world_size)]
        assert torch.equal(torch.cat(parts), batches[0])
    with pytest.raises(ValueError, match="does not split evenly across 5 ranks"):
        rank_slice(batches[0], 0, 5)


def test_run_in_turns_takes_one_step_of_each_run_until_all_have_finished() -> None:
    order = []

    def training(name: str, steps: int):
        for step in range(steps):
            order.append(f"{name}{step}")
            yield
        return {"name": name}

    assert run_in_turns([training("a", 3), training("b", 1)]) == [{"name": "a"}, {"name": "b"}]
    assert order == ["a0", "b0", "a1", "a2"]


def test_new_run_dir_gives_each_launch_its_own_folder_and_keeps_the_newest(tmp_path: Path) -> None:
    folders = [new_run_dir(tmp_path, keep=2) for _ in range(4)]
    assert len(set(folders)) == 4 and all(folder.parent == tmp_path for folder in folders)
    assert sorted(tmp_path.iterdir()) == folders[1:]  # the 2 newest earlier ones and the new one


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_shard_rows_and_padding_follow_torch_chunk(world_size: int) -> None:
    for dim0 in (1, 3, 10, 32, 320):
        chunks = torch.arange(dim0).chunk(world_size)
        expected = [len(c) for c in chunks] + [0] * (world_size - len(chunks))
        assert shard_rows(dim0, world_size) == expected
        assert padding_elements((dim0, 5), world_size) == 5 * (world_size * max(expected) - dim0)


def test_zero_bytes_per_rank() -> None:
    assert zero_bytes_per_rank(100, 4, 0) == {"params": 400, "grads": 400, "optimizer": 800}
    assert zero_bytes_per_rank(100, 4, 2) == {"params": 400, "grads": 100, "optimizer": 200}
    assert zero_bytes_per_rank(100, 4, 3, "mixed") == {"params": 50, "grads": 50, "optimizer": 300}
    with pytest.raises(ValueError, match="stage must be one of 0, 1, 2, 3, got 4"):
        zero_bytes_per_rank(100, 4, 4)


def _script_main():
    spec = importlib.util.spec_from_file_location("train_pytorch_fsdp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_script_refuses_bad_options(capfd: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        _script_main()(["--epochs", "0"])
    assert info.value.code == 2
    assert "epochs must be an int >= 1, got 0" in capfd.readouterr().err


def test_script_gives_the_same_results_on_one_and_two_ranks(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = ["--epochs", "1", "--global-batch-size", "96"]
    assert _script_main()(args + ["--out", str(tmp_path / "one.pt"), "--metrics-json", str(tmp_path / "one.json")]) == 0
    printed = capfd.readouterr().out
    for line in ("World size: 1", "Wrapping model with FSDP", "Epoch 1/1, Loss:", "Test Accuracy:", "Model saved to"):
        assert line in printed
    model = SimpleCNN(channels=(32, 64), hidden=320)
    model.load_state_dict(torch.load(tmp_path / "one.pt", weights_only=True))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(SCRIPT), *args, "--out", str(tmp_path / "two.pt"),
                           "--metrics-json", str(tmp_path / "two.json")],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("World size: 2") == 1  # rank 0 prints, rank 1 does not
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert max(abs(a - b) for a, b in zip(one["losses"], two["losses"], strict=True)) < 1e-5
    assert one["test_accuracy"] == two["test_accuracy"]
    assert _max_difference(torch.load(tmp_path / "one.pt", weights_only=True),
                           torch.load(tmp_path / "two.pt", weights_only=True)) < 1e-5


# ------------------------------------------------------------------------------------------------
# Opt-in: pytest --run-slow
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_stress_thirty_two_rank_launches_without_a_failure(tmp_path: Path) -> None:
    runs = [RunSpec("fsdp", max_steps=2), RunSpec("ddp", strategy="ddp", max_steps=2)]
    failures, start = [], time.monotonic()
    for attempt in range(30):
        try:
            launch(runs, world_size=2, out_dir=tmp_path, timeout_s=180)
        except (WorkerFailed, TimeoutError) as exc:
            failures.append(f"launch {attempt}: {exc}")
    print(f"\n30 launches of the 2-rank job in {time.monotonic() - start:.0f} s, {len(failures)} failed")
    assert not failures, "\n".join(failures)
    assert not _processes_mentioning(str(tmp_path))


@pytest.mark.slow
def test_a_hung_rank_is_ended_by_the_collective_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(WorkerFailed, match="rank 0 of 2 failed") as info:
        launch([RunSpec("hang", fault_rank=1, fault="hang", max_steps=5)], world_size=2, out_dir=tmp_path,
               timeout_s=120, collective_timeout_s=10)
    assert time.monotonic() - start < 60
    assert "timed out" in str(info.value).lower() or "timeout" in str(info.value).lower()
    assert not _processes_mentioning(str(tmp_path))


@pytest.mark.slow
def test_the_whole_job_times_out(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match="did not finish within 20 s"):
        launch([RunSpec("hang", fault_rank=1, fault="hang", max_steps=5)], world_size=2, out_dir=tmp_path,
               timeout_s=20, collective_timeout_s=120)
    assert not _processes_mentioning(str(tmp_path))


@pytest.mark.slow
def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    code = ("import sys; from course_lib.distributed import RunSpec, launch; "
            f"launch([RunSpec('hang', fault_rank=1, fault='hang')], 2, out_dir={str(tmp_path)!r}, "
            "collective_timeout_s=300)")
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while len(_processes_mentioning(str(tmp_path / "ranks"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(_processes_mentioning(str(tmp_path / "ranks"))) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    time.sleep(3)
    assert not _processes_mentioning(str(tmp_path / "ranks"))


@pytest.mark.slow
def test_run_fsdp_sh(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "run_fsdp.sh"), "--epochs", "1",
                           "--out", str(tmp_path / "m.pt"), "--metrics-json", str(tmp_path / "m.json")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected_ranks = torch.cuda.device_count() or 2
    assert json.loads((tmp_path / "m.json").read_text())["world_size"] == expected_ranks
