"""The exercise mechanism shared by every notebook: helpful checker messages and learner copies."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_lib.__main__ import main
from course_lib.exercises import ExerciseFailed, attempt, expect_close, strip_solution

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_expect_close_says_what_is_wrong() -> None:
    ref = torch.zeros(3)
    with pytest.raises(ExerciseFailed, match=r"expected shape \(3,\), got \(3, 1\)"):
        expect_close("t", torch.zeros(3, 1), ref)
    with pytest.raises(ExerciseFailed, match="expected dtype torch.float32, got torch.float64"):
        expect_close("t", torch.zeros(3, dtype=torch.float64), ref)
    with pytest.raises(ExerciseFailed, match=r"largest difference at index \(1,\): expected 0, got 0.5"):
        expect_close("t", torch.tensor([0.0, 0.5, 0.1]), ref)
    with pytest.raises(ExerciseFailed, match="expected a numpy ndarray, got list"):
        expect_close("t", [1.0], np.ones(1))
    with pytest.raises(ExerciseFailed, match=r"expected 2, got 3 \(off by 1"):
        expect_close("t", 3.0, 2.0)


def test_attempt_turns_placeholders_and_crashes_into_messages() -> None:
    def todo():
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="not attempted yet"):
        attempt("Ex", todo)
    with pytest.raises(ExerciseFailed, match="your code raised ZeroDivisionError"):
        attempt("Ex", lambda: 1 / 0)


def test_strip_solution_keeps_indentation() -> None:
    source = "def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\ncheck(f)"
    stripped = strip_solution(source)
    assert "return 2 * x" not in stripped
    assert '    raise NotImplementedError("your turn' in stripped
    compile(stripped, "cell", "exec")
    with pytest.raises(ValueError, match="without"):
        strip_solution("# BEGIN SOLUTION\nx = 1")


def test_learner_copies_of_every_notebook(tmp_path: Path, capsys) -> None:
    assert main(["learner-copy", str(NOTEBOOKS), "--output-dir", str(tmp_path)]) == 0
    for src in sorted(NOTEBOOKS.glob("*.ipynb")):
        copy = nbformat.read(tmp_path / src.name, as_version=4)
        code = [c for c in copy.cells if c.cell_type == "code"]
        assert all(not c.outputs for c in code)
        text = "\n".join(c.source for c in code)
        assert "BEGIN SOLUTION" not in text
        assert text.count("NotImplementedError") >= 2, f"{src.name} has fewer than 2 exercises"
        for cell in code:  # still valid Python (IPython magics and shell lines left out)
            python = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            compile(python, src.name, "exec")
    assert "exercise(s) left for you" in capsys.readouterr().out


def test_checker_reports_an_exercise_not_attempted_instead_of_failing(capsys: pytest.CaptureFixture) -> None:
    from course_lib.exercises import ExerciseFailed, attempt, checker, expect

    @checker
    def check_double(fn: object) -> None:
        expect("Exercise 0.1", attempt("Exercise 0.1", fn, 2) == 4, "double 2: expected 4")

    check_double(lambda x: (_ for _ in ()).throw(NotImplementedError))  # what a learner copy's placeholder does
    assert "[not done] Exercise 0.1: not attempted yet" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="expected 4"):
        check_double(lambda x: 3)

