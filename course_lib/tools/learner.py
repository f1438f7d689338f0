"""``python -m course_lib learner-copy``: write notebooks with the exercise solutions removed."""

from __future__ import annotations

from pathlib import Path

import nbformat

from course_lib.env import display_path
from course_lib.exercises import BEGIN, strip_solution


def learner_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """Return a copy of ``nb`` with solutions stripped and outputs cleared, and the number of exercises."""
    copy = nbformat.from_dict(nb)
    count = 0
    for cell in copy.cells:
        if cell.cell_type != "code":
            continue
        if BEGIN in cell.source:
            count += cell.source.count(BEGIN)
            cell.source = strip_solution(cell.source)
        cell.outputs, cell.execution_count = [], None
    return copy, count


def write_learner_copies(notebooks: list[Path], output_dir: Path) -> list[tuple[Path, int]]:
    """Write one learner copy per notebook under ``output_dir``; return (path, exercise count) pairs."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in notebooks:
        copy, count = learner_notebook(nbformat.read(src, as_version=4))
        target = output_dir / src.name
        nbformat.write(copy, target)
        written.append((target, count))
        print(f"{display_path(target)}: {count} exercise(s) left for you")
    return written
