"""course_lib: the helpers the PyTorch Foundations notebooks import.

Layout rule: each lesson's own concepts live in one module named after the lesson (``autograd``,
``gradient_descent``, ``cnn``, ``bce``, ``fsdp``, ``finetuning``), each concern the lessons share lives in
exactly one module (``env``, ``data``, ``models``, ``training``, ``timing``, ``memory``, ``plotting``,
``report``), and tooling that is not taught (runner, learner copy, environment check, the launcher of N
ranks and notebook 05's measuring runs) lives in ``tools/``.

What every notebook needs is importable from the package itself:

    from course_lib import setup, check_int, check_float, bound, median_seconds

Those names are loaded on first use (PEP 562), so that ``import course_lib.tools.runner`` and
``python -m course_lib --help`` start without importing torch: a process imports only what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("check_bool", "check_choice", "check_float", "check_int", "display_path", "get_device",
                     "output_dir", "repo_root", "seed_everything", "setup"), "env"),
    **dict.fromkeys(("bound", "dtype_name", "roundoff"), "report"),
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



if TYPE_CHECKING:  # the same names for type checkers and editors (``x as x``: re-exported)
    from course_lib.env import check_bool as check_bool
    from course_lib.env import check_choice as check_choice
    from course_lib.env import check_float as check_float
    from course_lib.env import check_int as check_int
    from course_lib.env import display_path as display_path
    from course_lib.env import get_device as get_device
    from course_lib.env import output_dir as output_dir
    from course_lib.env import repo_root as repo_root
    from course_lib.env import seed_everything as seed_everything
    from course_lib.env import setup as setup
    from course_lib.report import bound as bound
    from course_lib.report import dtype_name as dtype_name
    from course_lib.report import roundoff as roundoff
    from course_lib.timing import limit_cpu_threads as limit_cpu_threads
    from course_lib.timing import median_seconds as median_seconds
    from course_lib.timing import synchronize as synchronize
