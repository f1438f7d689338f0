"""The course on a GPU: every notebook runs to the end with ``-p device cuda`` (execution, not stored outputs).

Skipped where torch sees no CUDA device, which includes CI. The stored outputs are CPU outputs, so on a GPU the
notebooks are executed by the runner, as pytorch/tutorials does, not compared by nbval.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the course is run with -p device cuda)")
def test_every_notebook_runs_to_the_end_on_cuda(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "course_lib", "run", *map(str, NOTEBOOKS), "--output-dir", str(tmp_path),
               "-p", "device", "cuda"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert f"{len(NOTEBOOKS)} ok, 0 failed" in done.stdout
    for notebook in NOTEBOOKS:
        assert (tmp_path / notebook.name).is_file()
