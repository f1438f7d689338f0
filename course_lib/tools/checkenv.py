"""``python -m course_lib check-env``: one line per required package, so a bug report starts from facts.

The top-level pins of ``requirements.txt`` get a line each; the rest of the stack is compared with
``requirements.lock`` (the file ``setup_env.sh`` installs) and only a difference gets a line.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from course_lib.env import repo_root

MIN_PYTHON = (3, 11)
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)")


def read_pins(requirements: Path) -> dict[str, str]:
    """Return ``{package: version}`` for every ``name==version`` line of a requirements file."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1))] = match.group(2)
    return pins


def read_lock(lock: Path) -> dict[str, str]:
    """Return ``{package: version}`` for the entries of a uv lock (requirements format) whose markers hold here."""
    from packaging.requirements import Requirement

    pins = {}
    for line in lock.read_text().splitlines():
        if line[:1].isalnum():  # an entry; its hashes and "# via" notes are indented, comments start with '#'
            req = Requirement(line.rstrip(" \\"))
            if req.marker is None or req.marker.evaluate():
                pins[req.name] = next(iter(req.specifier)).version
    return pins


def check_packages(pins: dict[str, str], source: str = "required {}") -> list[tuple[bool, str]]:
    """Compare installed versions with the pins; return ``(ok, line)`` per package."""
    rows = []
    for name, wanted in pins.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            rows.append((False, f"[FAIL] {name}: not installed ({source.format(wanted)})"))
            continue
        ok = found == wanted or found.split("+")[0] == wanted.split("+")[0]
        rows.append((ok, f"[{'OK' if ok else 'FAIL'}] {name} {found}" + ("" if ok else f" ({source.format(wanted)})")))
    return rows


def check_lock(lock: Path, checked: dict[str, str]) -> list[tuple[bool, str]]:
    """Compare the packages of ``lock`` not in ``checked`` with what is installed: a line per difference."""
    from packaging.utils import canonicalize_name

    skip = {canonicalize_name(name) for name in checked}
    rest = {name: version for name, version in read_lock(lock).items() if canonicalize_name(name) not in skip}
    rows = check_packages(rest, source=f"locked {{}} in {lock.name}")
    return [row for row in rows if not row[0]] or [(True, f"[OK] {lock.name}: {len(rows)} other packages match")]


def describe_torch() -> list[tuple[bool, str]]:
    """Report the torch build (CUDA or CPU) and the device ``"auto"`` picks."""
    try:
        import torch

        from course_lib.env import get_device
    except Exception as exc:  # a broken torch install is exactly what this check must report
        return [(False, f"[FAIL] import torch: {type(exc).__name__}: {exc}")]
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
    device = get_device("auto")
    extra = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
    return [(True, f"[OK] torch build: {build}; device 'auto' -> {device.type}{extra}")]


def main(requirements: Path | None = None, lock: Path | None = None) -> int:
    """Print the report and return 0 when everything is OK, 1 otherwise."""
    rows = [(sys.version_info >= MIN_PYTHON, "[{}] python {}.{}.{} (required >= {}.{})".format(
        "OK" if sys.version_info >= MIN_PYTHON else "FAIL", *sys.version_info[:3], *MIN_PYTHON))]
    requirements = requirements or repo_root() / "requirements.txt"
    lock = lock or repo_root() / "requirements.lock"
    rows += [(False, f"[FAIL] requirements file not found: {p.name}") for p in (requirements, lock) if not p.exists()]
    pins = read_pins(requirements) if requirements.exists() else {}
    rows += check_packages(pins) + (check_lock(lock, pins) if lock.exists() else [])
    rows += describe_torch()
    for _, line in rows:
        print(line)
    failures = sum(not ok for ok, _ in rows)
    print("environment OK" if not failures else f"environment check: {failures} problem(s); re-run ./setup_env.sh")
    return 1 if failures else 0
