"""``python -m course_lib run``: execute notebooks with papermill, reproducibly.

Each notebook runs in a child process (so the kernel's peak memory can be read from ``getrusage``), into a
temporary file that replaces the target only when the run succeeds; ``jobs`` of them at a time. A process
imports only what it uses: the parent neither papermill nor nbformat, the child papermill, and only the
kernel imports torch. nbclient merges stream outputs and records no timings, and papermill's metadata is
stripped, so regenerating an unchanged notebook gives the same bytes.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm  # a terminal tool: the plain bar, without tqdm.auto's IPython probe

from course_lib.env import display_path

if TYPE_CHECKING:
    from nbformat import NotebookNode

KERNEL = "python3"
# Applied to every kernel the course starts (runner and tests), so outputs do not depend on the caller.
KERNEL_ENV = {"TQDM_DISABLE": "1", "PYTHONHASHSEED": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
# papermill's per-cell record, and what editors save: timings (JupyterLab's recordTiming, ExecuteTime), view state
_VOLATILE_CELL_KEYS = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")


@dataclass
class RunResult:
    """What one notebook run did."""

    notebook: Path
    ok: bool
    seconds: float
    peak_mib: float | None
    target: Path | None = None
    error: str = ""


def parse_value(text: str) -> Any:
    """Turn a ``-p`` value into a Python literal when it is one (``20``, ``1e-3``, ``True``), else a str."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def find_notebooks(paths: list[str]) -> list[Path]:
    """Expand files and folders into a sorted list of ``.ipynb`` files (checkpoints skipped)."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            # skip hidden files: the runner's own temporary ``.name-XXXX.ipynb`` while a run is going
            found += sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise ValueError(f"expected a notebook (.ipynb) or a folder of notebooks, got {item!r}")
    if not found:
        raise ValueError(f"no notebooks found in {', '.join(paths)}")
    return found


def normalize(nb: NotebookNode) -> NotebookNode:
    """Strip run-to-run metadata and give the injected parameters cell a fixed id, in place; return ``nb``."""
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for index, cell in enumerate(nb.cells):
        for key in _VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        elif not cell.get("id"):
            cell["id"] = f"cell-{index:03d}"
    return nb


def execute(src: Path, target: Path, parameters: dict[str, Any], timeout: int | None,
            env: dict[str, str] | None = None) -> RunResult:
    """Run one notebook in a child process (``env`` adds defaults); on success it replaces ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".ipynb", prefix=f".{src.stem}-", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    job = {"src": str(src.resolve()), "dst": str(tmp), "parameters": parameters, "timeout": timeout}
    env = {**(env or {}), **os.environ, **KERNEL_ENV}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "course_lib.tools.runner", json.dumps(job)],
                              capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        report = _last_json_line(proc.stdout)
        if report is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return RunResult(src, False, seconds, None, error=f"runner crashed: {tail}")
        if not report["ok"]:
            return RunResult(src, False, seconds, report["peak_mib"], error=report["error"])
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, target)
        return RunResult(src, True, seconds, report["peak_mib"], target=target)
    finally:
        tmp.unlink(missing_ok=True)


def _last_json_line(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def _child(job: dict) -> dict:
    """Executed in the child process: check the parameters, run the notebook, write it normalized once.

    papermill writes its output file at every cell's start and end; with no output path it writes
    nothing, and the child writes the finished notebook once (seconds saved on a large notebook).
    """
    # jsonschema, which nbformat imports, builds rfc3987_syntax's grammar on import (about 1 s) for its optional
    # "iri" format check; nbformat's notebook schema uses no such format, so the child does without it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import nbformat
    import papermill as pm

    declared = pm.inspect_notebook(job["src"])
    unknown = sorted(set(job["parameters"]) - set(declared))
    if unknown:
        error = f"unknown parameter(s) {', '.join(unknown)}; this notebook takes: {', '.join(declared) or 'none'}"
        return {"ok": False, "error": error, "peak_mib": None}
    error = ""
    try:
        nb = pm.execute_notebook(job["src"], None, parameters=job["parameters"], kernel_name=KERNEL,
                                 cwd=str(Path(job["src"]).parent), execution_timeout=job["timeout"],
                                 progress_bar=False, log_output=False, record_timing=False, coalesce_streams=True)
        nbformat.write(normalize(nb), job["dst"])
    except pm.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # timeouts, dead kernels: report in one line, not a traceback wall
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return {"ok": not error, "error": error, "peak_mib": _children_peak_mib()}


def _children_peak_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def run(notebooks: list[Path], parameters: dict[str, Any], out_dir: Path | None, timeout: int | None,
        jobs: int = 1) -> list[RunResult]:
    """Run ``notebooks``, ``jobs`` at a time, into ``out_dir`` (``None``: in place); print a summary.

    Progress goes to stderr: a bar in a terminal, else one line per finished notebook.
    """
    # kernels sharing the cores get a share of them each, and idle OpenMP threads sleep instead of spinning
    # (torchrun does the same for its ranks; outputs do not depend on the thread count)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": threads} if jobs > 1 else {}

    def run_one(src: Path) -> RunResult:
        return execute(src, out_dir / src.name if out_dir else src, parameters, timeout, env)

    tty, total = sys.stderr.isatty(), len(notebooks)
    bar = tqdm(total=total, unit="notebook", file=sys.stderr, leave=False, disable=not tty or total < 2)
    pool = ThreadPoolExecutor(jobs)
    try:
        futures = [pool.submit(run_one, src) for src in notebooks]
        for done, future in enumerate(as_completed(futures), 1):
            r = future.result()
            bar.update()
            if not tty:
                print(f"[{done}/{total}] {r.notebook.stem} {'ok' if r.ok else 'FAILED'} {r.seconds:.1f} s",
                      file=sys.stderr, flush=True)
    finally:
        pool.shutdown(cancel_futures=True)  # after Ctrl-C, start no more notebooks
        bar.close()
    results = [future.result() for future in futures]
    print_summary(results)
    return results


def print_summary(results: list[RunResult]) -> None:
    """Print one row per notebook: status, wall seconds, kernel peak MiB, where the result went."""
    width = max(len(r.notebook.name) for r in results)
    print(f"{'notebook':<{width}}  status  seconds  peak MiB  result")
    for r in results:
        peak = f"{r.peak_mib:8.0f}" if r.peak_mib is not None else "       -"
        where = display_path(r.target) if r.target else r.error
        print(f"{r.notebook.name:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:7.1f}  {peak}  {where}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} ok, {failed} failed")


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
