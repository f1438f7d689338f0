"""The notebook runner: parameters, atomic replacement, reproducible bytes, clear failures."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from importcheck import heavy, run_and_list_imports
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib.__main__ import main
from course_lib.tools.runner import normalize, parse_value


def tiny_notebook(path: Path) -> Path:
    """A notebook in the course's layout (imports, parameters, checks) that needs no torch: the kernel starts fast."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    nb.cells = [
        new_markdown_cell("# tiny"),
        new_code_cell("from course_lib.env import DEVICES, check_choice, check_int"),
        new_code_cell("seed = 0\ndevice = 'cpu'\nn = 3"),
        new_code_cell("n = check_int('n', n, min_value=1)\ndevice = check_choice('device', device, DEVICES)"),
        new_code_cell("import sys\nfor i in range(n):\n    print(i, flush=True)\nprint('done')"),
    ]
    nb.cells[2].metadata["tags"] = ["parameters"]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runner")


def test_parse_value() -> None:
    assert parse_value("20") == 20
    assert parse_value("1e-3") == 0.001
    assert parse_value("True") is True
    assert parse_value("cuda") == "cuda"


def test_run_to_output_dir_keeps_source_and_applies_parameters(workdir: Path, capsys) -> None:
    src = tiny_notebook(workdir / "tiny.ipynb")
    before = src.read_bytes()
    assert main(["run", str(src), "-p", "n", "2", "--output-dir", str(workdir / "out")]) == 0
    assert src.read_bytes() == before
    out = nbformat.read(workdir / "out" / "tiny.ipynb", as_version=4)
    streams = [o for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"]
    assert [s.text for s in streams] == ["0\n1\ndone\n"]  # one merged stream, n overridden to 2
    assert "papermill" not in out.metadata
    assert (workdir / "out" / "tiny.ipynb").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in out.cells)
    summary = capsys.readouterr().out
    assert "tiny.ipynb" in summary and " ok " in summary and "1 ok, 0 failed" in summary


def test_in_place_twice_is_byte_identical(workdir: Path) -> None:
    src = tiny_notebook(workdir / "again.ipynb")
    assert main(["run", str(src), "--in-place"]) == 0
    first = src.read_bytes()
    assert main(["run", str(src), "--in-place"]) == 0
    assert src.read_bytes() == first
    assert json.loads(first)["cells"][4]["execution_count"] == 4


def test_bad_parameter_fails_with_the_notebooks_message(workdir: Path, capsys) -> None:
    src = tiny_notebook(workdir / "bad.ipynb")
    before = src.read_bytes()
    assert main(["run", str(src), "-p", "device", "banana", "--in-place"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "ValueError: device must be one of 'auto', 'cpu', 'cuda', 'mps', got 'banana'" in out
    assert "Traceback" not in out
    assert src.read_bytes() == before  # a failed run never replaces the target
    assert not list(workdir.glob(".bad-*.ipynb"))  # and leaves no temporary file


def test_unknown_parameter_is_refused_before_running(workdir: Path, capsys) -> None:
    src = tiny_notebook(workdir / "unknown.ipynb")
    assert main(["run", str(src), "-p", "epochs", "3", "--output-dir", str(workdir / "o2")]) == 1
    assert "unknown parameter(s) epochs; this notebook takes: seed, device, n" in capsys.readouterr().out


def test_bad_paths_and_options(workdir: Path, capsys) -> None:
    assert main(["run", str(workdir / "missing.ipynb")]) == 2
    assert "expected a notebook" in capsys.readouterr().err
    for option in ("--timeout", "--jobs"):
        with pytest.raises(SystemExit) as exit_info:
            main(["run", str(tiny_notebook(workdir / "t.ipynb")), option, "0"])
        assert exit_info.value.code == 2  # argparse's usage error, before anything runs
        assert "must be a positive whole number, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "x.ipynb", "--in-place", "--output-dir", "y"])


def test_normalize_strips_run_metadata_and_fixes_the_injected_cell_id() -> None:
    nb = new_notebook()
    cell, injected = new_code_cell("x"), new_code_cell("n = 2")
    cell.outputs = [new_output("stream", name="stdout", text="a")]
    cell.metadata["papermill"] = {"duration": 0.5}
    cell.metadata["ExecuteTime"] = {"end_time": "2026-01-01"}
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [cell, injected]
    nb.metadata["papermill"] = {"duration": 1.0}
    normalize(nb)
    assert nb.cells[0].metadata == {} and "papermill" not in nb.metadata
    assert nb.cells[0].outputs == [new_output("stream", name="stdout", text="a")]
    assert nb.cells[1].id == "injected-parameters"


def barrier_notebook(path: Path, finish_after: Path | None = None) -> Path:
    """A notebook that waits until every notebook in its folder has started (then until ``finish_after`` exists)."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    nb.cells = [new_code_cell(
        "import os, pathlib, time\n"
        "def wait_until(done, what):\n"
        "    deadline = time.monotonic() + 120\n"
        "    while not done():\n"
        "        assert time.monotonic() < deadline, f'waited 120 s for {what}'\n"
        "        time.sleep(0.05)\n"
        f"pathlib.Path('{path.stem}.started').touch()\n"
        "here = pathlib.Path('.')\n"
        "wait_until(lambda: len(list(here.glob('*.started'))) == len(list(here.glob('*.ipynb'))), 'the others')\n"
        + (f"wait_until(pathlib.Path({str(finish_after)!r}).exists, 'the other result')\n" if finish_after else "")
        + "print('all running at once; OMP_WAIT_POLICY', os.environ.get('OMP_WAIT_POLICY'), "
          "'OMP_NUM_THREADS', os.environ.get('OMP_NUM_THREADS'))")]
    nbformat.write(nb, path)
    return path


def test_jobs_runs_notebooks_at_once_and_keeps_their_order(tmp_path: Path, capsys) -> None:
    # each notebook blocks until all have started, so this passes only if they run at the same time;
    # the first finishes only once the second's result is written, so the second finishes first
    folder, out = tmp_path / "nbs", tmp_path / "out"
    folder.mkdir()
    barrier_notebook(folder / "n1_slow.ipynb", finish_after=out / "n2_fast.ipynb")
    barrier_notebook(folder / "n2_fast.ipynb")
    assert main(["run", str(folder), "--jobs", "2", "--output-dir", str(out)]) == 0
    captured = capsys.readouterr()
    rows = [line.split()[0] for line in captured.out.splitlines()[1:-1]]
    assert rows == ["n1_slow.ipynb", "n2_fast.ipynb"]  # the summary keeps the notebooks' order
    # not a terminal: one plain line per finished notebook, in the order they finished, no bar
    lines = captured.err.splitlines()
    assert len(lines) == 2 and "\r" not in captured.err
    assert re.fullmatch(r"\[1/2\] n2_fast ok \d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"\[2/2\] n1_slow ok \d+\.\d s", lines[1]), lines
    result = nbformat.read(out / "n1_slow.ipynb", as_version=4)
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // 2)))  # a share of the cores
    expected = f"all running at once; OMP_WAIT_POLICY PASSIVE OMP_NUM_THREADS {threads}\n"
    assert result.cells[0].outputs[0].text == expected


def test_the_runner_and_its_help_import_no_torch(tmp_path: Path) -> None:
    proc, loaded = run_and_list_imports(["-m", "course_lib", "--help"])
    assert proc.returncode == 0 and "check-env" in proc.stdout
    assert heavy(loaded) == []
    # the parent of a run: finds the notebooks, starts a child per notebook, prints the summary
    proc, loaded = run_and_list_imports(["-c", "import course_lib.__main__, course_lib.tools.runner"])
    assert proc.returncode == 0 and heavy(loaded) == [], heavy(loaded)


def test_the_child_that_executes_a_notebook_imports_papermill_and_no_torch(tmp_path: Path) -> None:
    src = tiny_notebook(tmp_path / "tiny.ipynb")
    job = {"src": str(src), "dst": str(tmp_path / "out.ipynb"), "parameters": {"n": 1}, "timeout": 120}
    proc, loaded = run_and_list_imports(["-m", "course_lib.tools.runner", json.dumps(job)])
    assert json.loads(proc.stdout.splitlines()[-1])["ok"], proc.stdout + proc.stderr
    assert heavy(loaded) == ["IPython", "nbformat", "papermill"]  # papermill's engine loads IPython's utilities
