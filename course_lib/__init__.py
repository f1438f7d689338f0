"""course_lib: the helpers the PyTorch Foundations notebooks import.

Layout rule: each lesson's own concepts live in one module named after the lesson (``autograd``,
``gradient_descent``, ``cnn``, ``bce``, ``fsdp``, ``finetuning``), each concern the lessons share lives in
exactly one module (``env``, ``data``, ``models``, ``training``, ``timing``, ``memory``, ``plotting``,
``report``), and tooling that is not taught (runner, learner copy, environment check) lives in ``tools/``.

What every notebook needs is importable from the package itself:

    from course_lib import setup, check_int, check_float, bound, median_seconds

Those names are loaded on first use (PEP 562), so that ``import course_lib.tools.runner`` and
``python -m course_lib --help`` start without importing torch: a process imports only what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("check_bool", "check_choice", "check_float", "check_int", "display_path", "get_device",
                     "output_dir", "repo_root", "seed_everything", "setup"), "env"),
    **dict.fromkeys(("bound", "roundoff"), "report"),
    **dict.fromkeys(("limit_cpu_threads", "median_seconds", "synchronize"), "timing"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` when it is first asked for (``from course_lib import setup``)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"course_lib.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

