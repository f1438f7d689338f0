"""The notebooks' kernels really start under the CPU tier that ``--cpu-tiers`` names (conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]


def probe_notebook(stored: str) -> Path:
    """A one-cell notebook whose stored output claims the kernel saw ``ATEN_CPU_CAPABILITY=stored``."""
    cell = new_code_cell('import os\nprint(os.environ.get("ATEN_CPU_CAPABILITY", "unset"))', execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text=f"{stored}\n")]
    nb = new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})
    path = ROOT / "build" / "test-cpu-tiers" / f"probe_{stored}.ipynb"  # inside the repo: conftest.py applies
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def run_pytest(notebook: Path, tiers: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", str(notebook), "-n", "0", "-q", "--no-header",
                           "--cpu-tiers", tiers], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_sse_tier_reaches_the_kernel_and_native_does_not() -> None:
    notebook = probe_notebook("default")  # ATEN_CPU_CAPABILITY=default is the SSE tier's setting
    sse = run_pytest(notebook, "sse")
    assert sse.returncode == 0 and "1 passed" in sse.stdout, sse.stdout + sse.stderr
    both = run_pytest(notebook, "native,sse")
    assert both.returncode == 1 and "1 failed, 1 passed" in both.stdout, both.stdout + both.stderr
    assert "::native::Cell 0" in both.stdout  # the failure names the tier


def test_an_unknown_tier_is_a_usage_error() -> None:
    proc = run_pytest(probe_notebook("unset"), "native,avx9")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's exit code for a usage error
    assert "--cpu-tiers takes a comma-separated list of native, avx2, sse, got 'native,avx9'" in proc.stderr
