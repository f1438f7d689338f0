"""course_lib: the helpers the PyTorch Foundations notebooks import.

The public surface is small on purpose: a notebook starts with

    from course_lib import setup, check_int, check_float, check_choice

and imports topic helpers from their modules (``course_lib.autograd``, ``course_lib.data``, ...).
"""

from course_lib.env import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    get_device,
    output_dir,
    repo_root,
    seed_everything,
    setup,
)

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "get_device",
    "output_dir",
    "repo_root",
    "seed_everything",
    "setup",
]
__version__ = "0.1.0"
