"""course_lib: the helpers the PyTorch Foundations notebooks import.

Layout rule: each lesson's own concepts live in one module named after the lesson (``autograd``,
``gradient_descent``, ``cnn``, ``bce``, ``fsdp``, ``finetuning``), each concern the lessons share lives in
exactly one module (``env``, ``data``, ``models``, ``training``, ``timing``, ``memory``, ``plotting``,
``report``), and tooling that is not taught (runner, learner copy, environment check) lives in ``tools/``.

What every notebook needs is importable from the package itself:

    from course_lib import setup, check_int, check_float, bound, median_seconds
"""

from course_lib.env import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    display_path,
    get_device,
    output_dir,
    repo_root,
    seed_everything,
    setup,
)
from course_lib.report import bound, roundoff
from course_lib.timing import limit_cpu_threads, median_seconds, synchronize

__all__ = [
    "bound",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "display_path",
    "get_device",
    "limit_cpu_threads",
    "median_seconds",
    "output_dir",
    "repo_root",
    "roundoff",
    "seed_everything",
    "setup",
    "synchronize",
]
__version__ = "0.1.0"
