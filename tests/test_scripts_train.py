"""scripts/train_pytorch.py as a command: trains, saves, reloads (weights_only=True); bad options: clear errors."""

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


def test_runs_as_a_command_trains_saves_and_reloads(tmp_path: Path) -> None:
    out = tmp_path / "weights" / "cnn.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "2", "--threads", "1", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    printed = proc.stdout
    assert "device: cpu" in printed and "epoch 1/2" in printed and "epoch 2/2" in printed
    assert "test accuracy:" in printed and "weights_only=True" in printed and "saved weights to cnn.pt" in printed
    state = torch.load(out, weights_only=True)
    assert state["conv1.weight"].shape == (8, 1, 3, 3) and state["fc2.bias"].shape == (10,)
