"""Environment check and lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from course_lib.tools.checkenv import check_packages, main, read_pins

ROOT = Path(__file__).resolve().parents[1]


def test_read_pins_parses_requirements(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("# comment\ntorch==2.14.1   # why\nnumpy==2.4.6\n\nsomething-unpinned\n")
    assert read_pins(req) == {"torch": "2.14.1", "numpy": "2.4.6"}


def test_check_packages_reports_ok_and_fail() -> None:
    rows = check_packages({"pytest": __import__("pytest").__version__, "numpy": "0.0.1",
                           "no-such-package-xyz": "1.0"})
    assert rows[0] == (True, f"[OK] pytest {__import__('pytest').__version__}")
    assert rows[1][0] is False and "(required 0.0.1)" in rows[1][1]
    assert rows[2] == (False, "[FAIL] no-such-package-xyz: not installed (required 1.0)")


def test_check_env_passes_here_and_fails_on_a_wrong_pin(tmp_path: Path, capsys) -> None:
    assert main() == 0
    out = capsys.readouterr().out
    assert "torch build:" in out and "environment OK" in out
    bad = tmp_path / "requirements.txt"
    bad.write_text("numpy==0.0.1\n")
    assert main(bad) == 1
    assert "[FAIL] numpy" in capsys.readouterr().out


def test_check_env_command_line_exit_status() -> None:
    proc = subprocess.run([sys.executable, "-m", "course_lib", "check-env"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_passes_on_library_scripts_tests_and_notebooks() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
