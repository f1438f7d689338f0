"""What a command imports: ``python -X importtime`` lists every module a process loads, on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Packages a process of the course loads only when it uses them: each costs from 0.3 s to several seconds.
HEAVY = ("torch", "numpy", "sklearn", "scipy", "matplotlib", "torchvision", "transformers", "peft", "nbformat",
         "papermill", "IPython")


def run_and_list_imports(args: list[str], timeout: float = 120) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime ARGS`` in the repository; return the process and the top-level packages it loaded."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
              if line.startswith("import time:") and not line.rstrip().endswith("package")}
    return proc, loaded


def heavy(loaded: set[str]) -> list[str]:
    """The heavy packages among ``loaded``."""
    return sorted(set(HEAVY) & loaded)
