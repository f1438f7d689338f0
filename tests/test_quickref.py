"""Every Python block of every quick-reference sheet runs.

Blocks of one sheet run in order in one namespace (a sheet reads top to bottom), in a temporary
working directory. A block that cannot run alone (GPU only, shell, multi-process launch) starts
with the line ``# not run: <reason>`` and is only compiled, so it still cannot hold a syntax error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

QUICKREF = Path(__file__).resolve().parents[1] / "quickref"
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NOT_RUN = "# not run:"


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """Return ``(line number, code)`` for each fenced python block of a markdown file."""
    text = path.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


SHEETS = sorted(QUICKREF.glob("*.md"))


@pytest.mark.parametrize("sheet", SHEETS, ids=[p.name for p in SHEETS])
def test_quickref_blocks_run(sheet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"quickref_{sheet.stem}"}
    for line, code in python_blocks(sheet):
        compiled = compile(code, f"{sheet.name}:{line}", "exec")
        if code.lstrip().startswith(NOT_RUN):
            continue
        try:
            exec(compiled, namespace)
        except Exception as exc:
            pytest.fail(f"{sheet.name}, block at line {line}: {type(exc).__name__}: {exc}")


def test_every_notebook_has_a_sheet_listed_in_the_index() -> None:
    index = (QUICKREF / "README.md").read_text()
    for notebook in sorted((QUICKREF.parent / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        sheets = list(QUICKREF.glob(f"{notebook.name[:2]}_*.md"))
        assert sheets, f"no quickref sheet for {notebook.name}"
        assert sheets[0].name in index, f"{sheets[0].name} is not linked from quickref/README.md"
