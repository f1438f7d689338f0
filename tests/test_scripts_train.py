"""scripts/train_pytorch.py: trains, saves, reloads with weights_only=True, and refuses bad options clearly."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_pytorch.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_pytorch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_trains_saves_and_reloads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "weights" / "cnn.pt"
    status = load_script().main(["--epochs", "2", "--device", "cpu", "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "device: cpu" in printed and "epoch 1/2" in printed and "epoch 2/2" in printed
    assert "test accuracy:" in printed and "weights_only=True" in printed
    state = torch.load(out, weights_only=True)
    assert state["conv1.weight"].shape == (8, 1, 3, 3) and state["fc2.bias"].shape == (10,)


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be an int >= 1, got 0"),
    (["--device", "tpu9"], "device must be one of 'auto', 'cpu', 'cuda', 'mps', got 'tpu9'"),
    (["--batch-size", "-3"], "--batch-size must be an int >= 1, got -3"),
    (["--epochs", "two"], "invalid int value: 'two'"),
])
def test_bad_options_exit_2_with_a_clear_message(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        load_script().main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_runs_as_a_command(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--threads", "1", "--device", "cpu",
                           "--out", str(tmp_path / "w.pt")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "saved weights to w.pt" in proc.stdout and proc.stderr == ""
