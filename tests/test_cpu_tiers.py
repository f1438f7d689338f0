"""The notebooks' kernels really start under the CPU tier that ``--cpu-tiers`` names (conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]


PROBE = ('import os\nfrom numpy._core._multiarray_umath import __cpu_features__\n'  # X86_V3: AVX2 (x86 only)
         'print(os.environ.get("ATEN_CPU_CAPABILITY", "unset"), "NumPy AVX2:", __cpu_features__.get("X86_V3", False))')


def probe_notebook(stored: str) -> Path:
    """A one-cell notebook whose stored output claims what the kernel saw: torch's tier and NumPy's AVX2 dispatch."""
    cell = new_code_cell(PROBE, execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text=f"{stored}\n")]
    nb = new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})
    # inside the repo, so that conftest.py applies
    path = ROOT / "build" / "test-cpu-tiers" / f"probe_{stored.split()[0]}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def run_pytest(notebook: Path, tiers: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", str(notebook), "-n", "0", "-q", "--no-header", "-rf",
                           "--cpu-tiers", tiers], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_sse_tier_reaches_the_kernel_and_native_does_not() -> None:
    notebook = probe_notebook("default NumPy AVX2: False")  # the SSE tier: torch's default kernels, NumPy's SSE
    both = run_pytest(notebook, "native,sse")
    assert both.returncode == 1 and "1 failed, 1 passed" in both.stdout, both.stdout + both.stderr
    # the failure names the tier
    assert "FAILED build/test-cpu-tiers/probe_default.ipynb::native::Cell 0" in both.stdout
    assert "::sse::" not in both.stdout.split("short test summary info")[-1]  # the SSE tier's check passed


def test_an_unknown_tier_is_a_usage_error() -> None:
    proc = run_pytest(probe_notebook("unset NumPy AVX2: False"), "native,avx9")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's exit code for a usage error
    assert "--cpu-tiers takes a comma-separated list of native, avx2, sse, got 'native,avx9'" in proc.stderr
