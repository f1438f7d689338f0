"""Validation of notebook and script parameters.

Every check raises ``ValueError`` naming the parameter, the value given and what is allowed, e.g.
``ValueError: epochs must be an int >= 1, got -1``. They return the value so a notebook can write
``epochs = check_int("epochs", epochs, min_value=1)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _fail(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {expected}, got {value!r}")


def check_int(name: str, value: Any, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) within the optional bounds."""
    expected = "an int" + _bounds(min_value, max_value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, expected, value)
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        raise _fail(name, expected, value)
    return value


def check_float(
    name: str,
    value: Any,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    min_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float if it is a finite number within the optional bounds."""
    low = None if min_value is None else (min_value if min_inclusive else f"> {min_value}")
    expected = "a number" + _bounds(low, max_value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
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
