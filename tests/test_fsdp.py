"""course_lib.fsdp (the lesson's functions) and the FSDP script, run with real processes.

Default: the ZeRO arithmetic and FSDP2's rows per rank; a one-process group; a model built on the meta
device gets exactly the seeded weights on 3 ranks; the script gives the same results on 1 rank
(in-process), on 2 (torchrun) and on 2 "machines" x 1 rank (two torchruns, one c10d rendezvous), resumes
a 2-rank checkpoint on 1, 2 and 3 ranks, and refuses foreign checkpoints. Opt-in (``pytest --run-slow``):
2 machines x 2 ranks against 1 x 4, run_fsdp.sh. The measuring runs of notebook 05 are tested in
``test_fsdp_lab.py``, the launcher in ``test_launch.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed import leftover_processes, max_difference

from course_lib import fsdp, roundoff
from course_lib.fsdp import padding_elements, shard_rows
from course_lib.fsdp import zero_bytes_per_rank as zero_bytes
from course_lib.models import SimpleCNN
from course_lib.tools.fsdp_lab import RunSpec
from course_lib.tools.launch import free_port, launch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_pytorch_fsdp.py"
TORCHRUN_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
MODEL = {"channels": (32, 64), "hidden": 321}  # notebook 05's model: fc1's 321 rows do not split evenly


def test_one_process_group_and_ranks_disagree() -> None:
    with fsdp.one_process_group() as mesh:
        assert dist.get_world_size() == 1 and mesh.size() == 1
        with pytest.raises(RuntimeError, match="already has a process group"), fsdp.one_process_group():
            pass
        model = SimpleCNN(channels=(4, 8), hidden=9)
        assert fsdp.ranks_disagree(model) == []  # one rank agrees with itself
    assert not dist.is_initialized()


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_shard_rows_and_padding_follow_torch_chunk(world_size: int) -> None:
    for dim0 in (1, 3, 10, 32, 320):
        chunks = torch.arange(dim0).chunk(world_size)
        expected = [len(c) for c in chunks] + [0] * (world_size - len(chunks))
        assert shard_rows(dim0, world_size) == expected
        assert padding_elements((dim0, 5), world_size) == 5 * (world_size * max(expected) - dim0)


def test_zero_bytes_per_rank() -> None:
    assert zero_bytes(100, 4, 0) == {"params": 400, "grads": 400, "optimizer": 800}
    assert zero_bytes(100, 4, 2) == {"params": 400, "grads": 100, "optimizer": 200}
    assert zero_bytes(100, 4, 3, "mixed") == {"params": 50, "grads": 50, "optimizer": 300}
    with pytest.raises(ValueError, match="stage must be one of 0, 1, 2, 3, got 4"):
        zero_bytes(100, 4, 4)


# ------------------------------------------------------------------------------------------------
# The script: one process, torchrun, several "machines"
# ------------------------------------------------------------------------------------------------

def _script_main():
    spec = importlib.util.spec_from_file_location("train_pytorch_fsdp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _torchrun(nodes: list[list[str]], script_args: list[str] | list[list[str]], timeout_s: float = 240) -> list[str]:
    """Start one torchrun per node (each with its own options and script arguments), all at once; return their output.

    ``script_args`` is one list for every node, or a list per node. Each torchrun runs in its own session: on
    a failure or a timeout the whole session (torchrun and its ranks) is killed, so no process is left behind.
    """
    per_node = script_args if script_args and isinstance(script_args[0], list) else [script_args] * len(nodes)
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *options, str(SCRIPT), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=TORCHRUN_ENV,
                              start_new_session=True) for options, args in zip(nodes, per_node, strict=True)]
    outputs, deadline = [], time.monotonic() + timeout_s
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
            assert proc.returncode == 0, outputs[-1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return outputs


def _rendezvous(nnodes: int, nproc_per_node: int) -> list[list[str]]:
    """torchrun options for ``nnodes`` "machines" on 127.0.0.1 meeting at one c10d rendezvous."""
    endpoint = f"127.0.0.1:{free_port()}"
    return [[f"--nnodes={nnodes}", f"--nproc_per_node={nproc_per_node}", "--rdzv-backend=c10d",
             f"--rdzv-endpoint={endpoint}", "--rdzv-id=test"]] * nnodes


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())


def test_script_refuses_bad_options(capfd: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        _script_main()(["--epochs", "0"])
    assert info.value.code == 2
    assert "epochs must be an int >= 1, got 0" in capfd.readouterr().err


def _clear_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No torchrun variables, and what the script sets in this process undone after the test."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(name, "")  # recorded, so that what the script sets is undone after the test
        monkeypatch.delenv(name)


def _meta_model_weights(runs: list[RunSpec], out_dir: Path, timeout_s: float, data: tuple) -> list:
    """A worker: the script's model built on the meta device, sharded, given rank 0's seeded weights, gathered."""
    device = fsdp.setup_process_group(timeout_s)
    with torch.device("meta"):
        model = SimpleCNN(channels=(32, 64), hidden=320)
    fsdp.shard_meta_model(model, device)
    torch.manual_seed(0)
    fsdp.load_full_state_dict(model, SimpleCNN(channels=(32, 64), hidden=320).state_dict() if dist.get_rank() == 0
                              else {})  # the other ranks build nothing
    state = fsdp.gather_full_state_dict(model)
    if dist.get_rank() == 0:
        torch.save(state, out_dir / "initial.pt")
    dist.destroy_process_group()
    return [None]  # one result per run


def test_a_model_built_on_the_meta_device_gets_exactly_the_seeded_weights_on_every_rank(tmp_path: Path) -> None:
    launch([RunSpec("meta")], world_size=3, run_dir=tmp_path, worker=_meta_model_weights)  # uneven shards: 320 / 3
    torch.manual_seed(0)
    expected = SimpleCNN(channels=(32, 64), hidden=320).state_dict()
    assert max_difference(torch.load(tmp_path / "initial.pt", weights_only=True), expected) == 0.0
    assert not leftover_processes()


SCRIPT_ARGS = ["--max-steps", "3", "--global-batch-size", "96"]  # 3 steps per epoch


def _run_args(folder: Path, name: str, epochs: int, checkpoints: bool = True) -> list[str]:
    """The script's arguments for run ``name``: its checkpoints, weights and metrics all go under ``folder``."""
    return [*SCRIPT_ARGS, "--epochs", str(epochs), "--out", str(folder / f"{name}.pt"),
            "--metrics-json", str(folder / f"{name}.json"),
            *(["--checkpoint-dir", str(folder / f"{name}-checkpoints")] if checkpoints else [])]


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The script's torchrun runs, all started at once so that their start-up overlaps; returns their folder and
    the output of "two": 1 machine x 2 ranks for 2 epochs, a checkpoint after each (the uninterrupted run; its
    epoch-1 checkpoint is what a 1-epoch run leaves, resumed below), and "nodes": 2 "machines" x 1 rank (two
    torchruns meeting at one c10d rendezvous)."""
    folder = tmp_path_factory.mktemp("script_runs")
    two, *_ = _torchrun([["--standalone", "--nproc_per_node=2"]] + _rendezvous(nnodes=2, nproc_per_node=1),
                        [_run_args(folder, "two", 2), *[_run_args(folder, "nodes", 2, checkpoints=False)] * 2])
    return folder, two


def test_script_gives_the_same_results_on_one_rank_two_ranks_and_two_machines(
        script_runs: tuple[Path, str], tmp_path: Path, capfd: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_torchrun_environment(monkeypatch)
    folder, two_ranks = script_runs
    assert _script_main()(_run_args(tmp_path, "one", 2, checkpoints=False)) == 0  # in this process: world size 1
    printed = capfd.readouterr().out
    for line in ("World size: 1", "FSDP units: conv1, conv2, fc1, fc2", "Epoch 1/2, Loss:", "Epoch 2/2, Loss:",
                 "Test Accuracy:", "Model saved to"):
        assert line in printed
    assert printed.strip().splitlines()[-1].startswith("Test Accuracy:")  # the script's last line
    SimpleCNN(**MODEL).load_state_dict(torch.load(tmp_path / "one.pt", weights_only=True))
    assert two_ranks.count("World size: 2") == 1  # rank 0 prints, rank 1 does not
    one, two, nodes = _metrics(tmp_path / "one.json"), _metrics(folder / "two.json"), _metrics(folder / "nodes.json")
    assert (one["world_size"], two["world_size"], nodes["world_size"]) == (1, 2, 2)
    tolerance = roundoff(torch.float32, ulps=100)  # 1 rank vs 2: the same batch, summed in another order
    assert max(abs(a - b) for a, b in zip(one["losses"], two["losses"], strict=True)) < tolerance
    assert one["test_accuracy"] == two["test_accuracy"]
    assert max_difference(torch.load(tmp_path / "one.pt", weights_only=True),
                           torch.load(folder / "two.pt", weights_only=True)) < tolerance
    # 2 machines x 1 rank vs 1 machine x 2 ranks: the same ranks doing the same arithmetic, bit for bit
    assert (nodes["losses"], nodes["test_accuracy"]) == (two["losses"], two["test_accuracy"])
    assert not leftover_processes()


def _resume_args(folder: Path, tmp_path: Path, name: str) -> list[str]:
    """Arguments that resume a copy of the 2-rank run's epoch-1 checkpoint for epoch 2, writing into ``tmp_path``."""
    shutil.copytree(folder / "two-checkpoints" / "epoch-1", tmp_path / f"{name}-checkpoints" / "epoch-1")
    return [*_run_args(tmp_path, name, 2), "--resume"]


def _assert_resumed_equals_uninterrupted(folder: Path, tmp_path: Path, name: str, tolerance: float) -> None:
    full, resumed = _metrics(folder / "two.json"), _metrics(tmp_path / f"{name}.json")
    assert (full["first_epoch"], resumed["first_epoch"]) == (1, 2)
    assert len(full["losses"]) == 6 and len(resumed["losses"]) == 3  # --max-steps: 3 steps in each epoch
    loss_difference = max(abs(a - b) for a, b in zip(full["losses"][3:], resumed["losses"], strict=True))
    weight_difference = max_difference(torch.load(folder / "two.pt", weights_only=True),
                                        torch.load(tmp_path / f"{name}.pt", weights_only=True))
    print(f"\n{name}: max |loss difference| {loss_difference:.3g}, max |weight difference| {weight_difference:.3g}")
    assert loss_difference <= tolerance and weight_difference <= tolerance
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert sorted(p.name for p in (tmp_path / f"{name}-checkpoints").iterdir()) == ["epoch-1", "epoch-2"]


def test_script_resumes_a_two_rank_checkpoint_on_two_ranks_one_and_three(
        script_runs: tuple[Path, str], tmp_path: Path, capfd: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = script_runs
    _clear_torchrun_environment(monkeypatch)
    assert _script_main()(_resume_args(folder, tmp_path, "one")) == 0  # in this process: world size 1
    printed = capfd.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("Test Accuracy:")  # the script's last line
    with pytest.raises(SystemExit) as info:  # its checkpoints have trained all the epochs asked for
        _script_main()(["--resume", "--epochs", "2", "--checkpoint-dir", str(tmp_path / "one-checkpoints")])
    assert info.value.code == 2
    assert "epoch-2 has trained 2 epochs already; expected --epochs > 2" in capfd.readouterr().err
    two, _ = _torchrun([["--standalone", "--nproc_per_node=2"], ["--standalone", "--nproc_per_node=3"]],
                       [_resume_args(folder, tmp_path, "two"), _resume_args(folder, tmp_path, "three")])
    assert "resumed from" in two and "Epoch 1/2" not in two and "Epoch 2/2" in two
    # the same ranks doing the same arithmetic from the saved shards and optimizer state: bit for bit
    _assert_resumed_equals_uninterrupted(folder, tmp_path, "two", tolerance=0.0)
    tolerance = roundoff(torch.float32, ulps=100)  # DCP reshards; the same batches, summed in another order
    for name, world_size in (("one", 1), ("three", 3)):
        assert _metrics(tmp_path / f"{name}.json")["world_size"] == world_size
        _assert_resumed_equals_uninterrupted(folder, tmp_path, name, tolerance)
    assert not leftover_processes()


def _foreign_checkpoint(directory: Path) -> None:
    """A DCP checkpoint as the script writes it, but of another model: SimpleCNN's default sizes."""
    with fsdp.one_process_group():
        torch.manual_seed(0)
        model = fsdp.shard_model(SimpleCNN())
        fsdp.save_checkpoint(directory, model, torch.optim.AdamW(model.parameters()), epoch=1)


def test_script_refuses_to_resume_from_anything_but_its_own_checkpoints(
        tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_torchrun_environment(monkeypatch)
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "text" / "epoch-3").mkdir()  # a folder by that name, but no DCP checkpoint in it
    _foreign_checkpoint(tmp_path / "other_model")
    expected = ("expected epoch-N folders of DCP checkpoints holding this SimpleCNN, its AdamW state and the epoch "
                "(save_checkpoint)")
    cases = {
        (): "--resume expects --checkpoint-dir DIR, the directory of an earlier run's checkpoints",
        **{("--checkpoint-dir", tmp_path / name): f"{expected} in {tmp_path / name}, found none"
           for name in ("missing", "empty", "text")},
        ("--checkpoint-dir", tmp_path / "other_model"): f"{expected}, but {tmp_path / 'other_model' / 'epoch-1'} "
                                                         "holds other tensors: model.conv1.bias has shape (8,), "
                                                         "expected (32,)",
    }
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for args, message in cases.items():
        with pytest.raises(SystemExit) as info:
            _script_main()(["--resume", "--epochs", "2", *map(str, args), "--out", str(tmp_path / "model.pt"),
                            "--metrics-json", str(tmp_path / "metrics.json")])
        assert info.value.code == 2
        error = capfd.readouterr().err.strip().splitlines()[-1]  # one line, after the usage lines
        assert error.endswith(f": error: {'' if not args else '--resume: '}{message}"), error
    with pytest.raises(SystemExit) as info:  # a new run must not mix its checkpoints with an earlier run's
        _script_main()(["--checkpoint-dir", str(tmp_path / "other_model"), "--out", str(tmp_path / "model.pt")])
    assert info.value.code == 2
    assert "other_model already holds checkpoints: add --resume to continue them" in capfd.readouterr().err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written


# ------------------------------------------------------------------------------------------------
# Opt-in: pytest --run-slow
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_machines_of_two_ranks_equal_one_machine_of_four(tmp_path: Path) -> None:
    args = ["--epochs", "2"]
    _torchrun(_rendezvous(nnodes=2, nproc_per_node=2),
              args + ["--out", str(tmp_path / "nodes.pt"), "--metrics-json", str(tmp_path / "nodes.json")], 480)
    _torchrun([["--standalone", "--nproc_per_node=4"]],
              args + ["--out", str(tmp_path / "one.pt"), "--metrics-json", str(tmp_path / "one.json")], 480)
    nodes, one = _metrics(tmp_path / "nodes.json"), _metrics(tmp_path / "one.json")
    print(f"\n2 x 2 ranks: final loss {nodes['final_loss']:.6f}, test accuracy {nodes['test_accuracy']:.4f}; "
          f"1 x 4 ranks: {one['final_loss']:.6f}, {one['test_accuracy']:.4f}")
    assert (nodes["world_size"], one["world_size"]) == (4, 4)
    assert (nodes["final_loss"], nodes["test_accuracy"]) == (one["final_loss"], one["test_accuracy"])
    assert max_difference(torch.load(tmp_path / "nodes.pt", weights_only=True),
                           torch.load(tmp_path / "one.pt", weights_only=True)) == 0.0
    assert not leftover_processes()


@pytest.mark.slow
def test_run_fsdp_sh(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "run_fsdp.sh"), "--epochs", "1",
                           "--out", str(tmp_path / "m.pt"), "--metrics-json", str(tmp_path / "m.json")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected_ranks = torch.cuda.device_count() or 2
    assert _metrics(tmp_path / "m.json")["world_size"] == expected_ranks
