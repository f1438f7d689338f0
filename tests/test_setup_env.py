"""setup_env.sh in a sandbox: which installer it picks, what it runs, when it installs again.

Nothing real is installed: the sandbox's lock names a package no index has, uv is a fake that logs
its arguments, and ``course_lib`` is a stub whose check-env prints OK. Only the venv is real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = "course-no-such-package==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"


def sandbox(tmp_path: Path, fake_uv: bool) -> tuple[Path, dict[str, str]]:
    """A copy of the set-up files and a PATH holding only the tools the script uses (and a fake uv)."""
    repo, bin_dir, no_wheels = tmp_path / "repo", tmp_path / "bin", tmp_path / "no-wheels"
    (repo / "course_lib").mkdir(parents=True)
    bin_dir.mkdir()
    no_wheels.mkdir()
    for name in ("setup_env.sh", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "requirements.lock").write_text(LOCK)
    (repo / "course_lib" / "__init__.py").write_text("")
    (repo / "course_lib" / "__main__.py").write_text(  # check-env: fails when STUB_CHECK_FAILS is set
        "import os, sys\nfailed = 'STUB_CHECK_FAILS' in os.environ\n"
        "print('[FAIL] stub' if failed else 'environment OK')\nsys.exit(failed)\n")
    for tool in ("cat", "dirname", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    if fake_uv:
        (bin_dir / "uv").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {tmp_path / 'uv.log'}\n")
        (bin_dir / "uv").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHON": sys.executable,
           # pip finds nothing, offline: so bootstrapping uv fails, and so does installing the sandbox's lock
           "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(no_wheels)}
    return repo, env


def setup_env(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = [shutil.which("bash"), str(repo / "setup_env.sh")]
    return subprocess.run(script, capture_output=True, text=True, env=env, timeout=300)


def test_without_uv_it_falls_back_to_pip_with_a_notice(tmp_path: Path) -> None:
    repo, env = sandbox(tmp_path, fake_uv=False)
    # where the base interpreter has pip (and no uv), a .venv that uses it is made in a tenth of the time of one
    # with its own (every real set-up, CI's included, creates .venv itself)
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    has_pip_not_uv = "import importlib.util as u, sys; sys.exit(not u.find_spec('pip') or bool(u.find_spec('uv')))"
    if base.exists() and subprocess.run([str(base), "-c", has_pip_not_uv], capture_output=True).returncode == 0:
        subprocess.run([str(base), "-m", "venv", "--without-pip", "--system-site-packages", str(repo / ".venv")],
                       check=True)
    proc = setup_env(repo, env)
    assert proc.returncode == 1
    assert "installing uv==" in proc.stderr  # it tried to bootstrap uv with pip first
    notice = [line for line in proc.stdout.splitlines() if line.startswith("uv is not available")]
    assert notice == ["uv is not available (none on PATH, and pip could not install uv==0.13.9): "
                      "installing requirements.lock with pip (slower)"]
    # pip really ran on the lock: its own message, then the script's
    assert "course-no-such-package==1.0" in proc.stderr
    assert proc.stderr.rstrip().endswith("setup_env.sh: error: pip could not install requirements.lock "
                                         "(see pip's message above; network or disk space?)")
    assert not (repo / ".venv" / "bin" / "uv").exists() and not (repo / ".venv" / ".course-install-stamp").exists()


def test_with_uv_on_path_it_syncs_the_lock_and_installs_again_when_needed(tmp_path: Path) -> None:
    repo, env = sandbox(tmp_path, fake_uv=True)
    # a .venv without pip, made in a tenth of the time (creating one is tested above): with uv, pip is not needed
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(repo / ".venv")], check=True)
    log = tmp_path / "uv.log"
    first = setup_env(repo, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"installing requirements.lock into .venv with {tmp_path}/bin/uv" in first.stdout
    assert "installing uv==" not in first.stderr  # the uv on PATH is used, none is bootstrapped
    assert log.read_text().splitlines() == [
        "pip sync --quiet --python .venv/bin/python --require-hashes --compile-bytecode requirements.lock",
        "pip install --quiet --python .venv/bin/python --no-deps --no-build-isolation -e .",
    ]
    assert first.stdout.rstrip().endswith("environment OK")

    second = setup_env(repo, env)
    assert second.returncode == 0
    assert "requirements unchanged since the last install: nothing to install" in second.stdout
    assert len(log.read_text().splitlines()) == 2

    with (repo / "requirements.lock").open("a") as lock:
        lock.write("# refreshed\n")
    third = setup_env(repo, env)
    assert third.returncode == 0 and "installing requirements.lock" in third.stdout
    assert len(log.read_text().splitlines()) == 4

    # a failed environment check (say, a package changed by hand) makes the next run install again
    assert setup_env(repo, {**env, "STUB_CHECK_FAILS": "1"}).returncode == 1
    fourth = setup_env(repo, env)
    assert fourth.returncode == 0 and "installing requirements.lock" in fourth.stdout
    assert len(log.read_text().splitlines()) == 6


@pytest.mark.parametrize(("python", "message"), [
    ("case \"$2\" in *version_info*) exit 1;; *) echo 3.10.14;; esac",
     "setup_env.sh: error: Python >= 3.11 is required, '{python}' is 3.10.14"),
    ("case \"$2\" in *version_info*) exit 0;; *'import venv'*) exit 1;; esac",
     "setup_env.sh: error: the Python 'venv' module (with ensurepip) is missing; "
     "on Debian/Ubuntu: sudo apt install python3-venv"),
], ids=["old-python", "no-venv-module"])
def test_old_python_or_missing_venv_is_a_clear_error(tmp_path: Path, python: str, message: str) -> None:
    repo, env = sandbox(tmp_path, fake_uv=True)
    fake = tmp_path / "python3.10"
    fake.write_text(f"#!/bin/sh\n{python}\n")
    fake.chmod(0o755)
    proc = setup_env(repo, {**env, "PYTHON": str(fake)})
    assert proc.returncode == 1
    assert proc.stderr.strip() == message.format(python=fake)
    assert not (repo / ".venv").exists()


def test_a_venv_of_an_old_python_is_a_clear_error(tmp_path: Path) -> None:
    repo, env = sandbox(tmp_path, fake_uv=True)
    (repo / ".venv" / "bin").mkdir(parents=True)
    old = repo / ".venv" / "bin" / "python"  # a .venv left from Python 3.10: PYTHON= is not used once it exists
    old.write_text("#!/bin/sh\ncase \"$2\" in *version_info*) exit 1;; *) echo 3.10.14;; esac\n")
    old.chmod(0o755)
    proc = setup_env(repo, env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("setup_env.sh: error: .venv was made with Python 3.10.14; Python >= 3.11 is "
                                   "required: remove .venv and run this again")
    assert not (tmp_path / "uv.log").exists()  # nothing was installed


def test_help_prints_the_header() -> None:
    proc = subprocess.run(["bash", str(ROOT / "setup_env.sh"), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.startswith("# Set up the course environment in .venv")
    assert "--kernel" in proc.stdout and "PYTHONDONTWRITEBYTECODE" in proc.stdout and "set -euo" not in proc.stdout


def test_an_old_python3_on_path_does_not_matter_once_the_venv_exists(tmp_path: Path) -> None:
    repo, env = sandbox(tmp_path, fake_uv=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(repo / ".venv")], check=True)
    old = tmp_path / "python3.10"
    old.write_text("#!/bin/sh\ncase \"$2\" in *version_info*) exit 1;; *) echo 3.10.14;; esac\n")
    old.chmod(0o755)
    proc = setup_env(repo, {**env, "PYTHON": str(old)})  # .venv made earlier with another Python
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("environment OK")


def test_help_works_from_another_directory(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(Path(os.path.relpath(ROOT, tmp_path)) / "setup_env.sh"), "--help"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("# Set up the course environment"), proc.stderr
