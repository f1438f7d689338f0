"""The exercise mechanism shared by every notebook.

A "your turn" cell holds the reference solution between two marker lines::

    def mse_grad(X, y, w):
        # BEGIN SOLUTION
        return -2 / len(y) * X.T @ (y - X @ w)
        # END SOLUTION

and the next cell calls a checker, e.g. ``check_mse_grad(mse_grad)`` from
``course_lib.exercises.ch02``. The stored notebook therefore runs top to bottom (nbval tests the
reference solutions against the checkers); ``python -m course_lib learner-copy`` writes the copy a
learner works in, where each marked block becomes ``raise NotImplementedError``.

Checkers raise :class:`ExerciseFailed` with a message that says *what* is wrong (shape, dtype,
which value is off and by how much, gradient not zeroed, ...) and print one line when they pass.
A checker decorated with :func:`checker` prints ``[not done] ...`` for an exercise not attempted yet
(the learner copy's placeholder raises ``NotImplementedError``) instead of failing, so that a learner's
copy runs top to bottom before any exercise is done.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
PLACEHOLDER = 'raise NotImplementedError("your turn: replace this line with your code")'


class ExerciseFailed(AssertionError):
    """A checker found a mistake; the message says what is wrong."""


class NotAttempted(ExerciseFailed):
    """The learner's code still raises the placeholder's ``NotImplementedError``."""


Check = TypeVar("Check", bound=Callable[..., None])


def checker(check: Check) -> Check:
    """Decorate a ``check_*`` function: an exercise not attempted yet prints ``[not done] ...`` and returns."""
    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            check(*args, **kwargs)
        except NotAttempted as not_done:
            print(f"[not done] {not_done}")

    return run  # type: ignore[return-value]


def attempt(title: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn``; turn "not written yet" and crashes into a helpful message."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted(f"{title}: not attempted yet; write your code in the cell above") from None
    except ExerciseFailed:
        raise
    except Exception as exc:
        raise ExerciseFailed(f"{title}: your code raised {type(exc).__name__}: {exc}") from exc


def expect_close(title: str, got: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Check type, shape, dtype and values of an array or tensor; say precisely what differs."""
    kind = torch.Tensor if isinstance(expected, torch.Tensor) else np.ndarray
    if isinstance(expected, (int, float)):
        got_value = float(got.item() if hasattr(got, "item") else got)
        if not np.isclose(got_value, expected, atol=atol, rtol=rtol):
            raise ExerciseFailed(f"{title}: expected {expected:.6g}, got {got_value:.6g} "
                                 f"(off by {abs(got_value - expected):.3g}; tolerance {atol:g})")
        return
    if not isinstance(got, kind):
        raise ExerciseFailed(f"{title}: expected a {kind.__module__.split('.')[0]} {kind.__name__}, "
                             f"got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise ExerciseFailed(f"{title}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype != expected.dtype:
        raise ExerciseFailed(f"{title}: expected dtype {expected.dtype}, got {got.dtype}")
    got_np = _to_numpy(got)
    exp_np = _to_numpy(expected)
    if not np.allclose(got_np, exp_np, atol=atol, rtol=rtol, equal_nan=False):
        diff = np.abs(got_np - exp_np)
        where = np.unravel_index(np.nanargmax(np.where(np.isnan(diff), np.inf, diff)), diff.shape)
        raise ExerciseFailed(
            f"{title}: values differ; largest difference at index {tuple(int(i) for i in where)}: "
            f"expected {exp_np[where]:.6g}, got {got_np[where]:.6g} (tolerance atol={atol:g}, rtol={rtol:g})")


def expect(title: str, condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(f"{title}: {message}")


def passed(title: str, detail: str = "") -> None:
    """Print the one line a learner sees when a check passes."""
    print(f"[passed] {title}" + (f": {detail}" if detail else ""))


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def strip_solution(source: str) -> str:
    """Replace each ``BEGIN/END SOLUTION`` block of a cell's source with a placeholder at its indent."""
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r} marker")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{PLACEHOLDER}")
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r}")
    return "\n".join(out)
