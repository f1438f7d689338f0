"""The notebook's environment: parameter checks, seeding, the device, and where files go.

Every notebook's third cell validates its parameters with ``check_*`` (a clear ``ValueError`` naming
the parameter, the value given and what was expected) and calls ``setup(seed, device)``. Files the
course writes go under the ignored ``outputs/`` folder (``output_dir``).

The checks and paths need no torch: the runner and ``check-env`` use them, and a process imports only
what it uses, so torch and NumPy are imported by the functions that seed and pick the device.
"""

from __future__ import annotations

import math
import numbers
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _fail(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {expected}, got {value!r}")


def check_int(name: str, value: Any, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Return ``value`` as an int if it is a whole number (not a bool; NumPy integers too) within the bounds."""
    expected = "an int" + _bounds(min_value, max_value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(name, expected, value)
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        raise _fail(name, expected, value)
    return int(value)


def check_float(
    name: str,
    value: Any,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    min_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float if it is a finite real number (NumPy scalars too) within the optional bounds."""
    low = None if min_value is None else (min_value if min_inclusive else f"> {min_value}")
    expected = "a number" + _bounds(low, max_value)
    try:
        finite = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise _fail(name, expected, value)
    if min_value is not None and (value < min_value or (not min_inclusive and value == min_value)):
        raise _fail(name, expected, value)
    if max_value is not None and value > max_value:
        raise _fail(name, expected, value)
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise _fail(name, "one of " + ", ".join(repr(c) for c in options), value)
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise _fail(name, "True or False", value)
    return value


def _bounds(low: Any, high: Any) -> str:
    if isinstance(low, str):  # already phrased, e.g. "> 0"
        text = f" {low}"
        return text + (f" and <= {high}" if high is not None else "")
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """Return the repository root (the folder holding ``course_lib/``), or the cwd if installed elsewhere."""
    candidate = _PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").exists() else Path.cwd()


def output_dir(*parts: str) -> Path:
    """Return (and create) ``outputs/<parts...>`` under the repository root; ``outputs/`` is git-ignored."""
    path = repo_root().joinpath("outputs", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def display_path(path: Path | str) -> str:
    """Return ``path`` relative to the repository root when inside it, for printing without user paths."""
    path = Path(path).resolve()
    try:
        return path.relative_to(repo_root()).as_posix()
    except ValueError:
        return path.name


DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs)."""
    import numpy as np
    import torch

    check_int("seed", seed, min_value=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses started from here


def get_device(device: str = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, then MPS, then CPU; refuse a named device that is not present."""
    import torch

    check_choice("device", device, DEVICES)
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ValueError(f"device must be available on this machine, got {device!r} (try 'auto' or 'cpu')")
    return torch.device(device)


def setup(seed: int = 0, device: str = "auto") -> torch.device:
    """Validate and apply the two common parameters: seed everything and return the chosen device."""
    seed_everything(seed)
    return get_device(device)
