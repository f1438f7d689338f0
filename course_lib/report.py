"""Printing results that hold on any CPU.

A round-off-sized difference changes with the kernel tier (AVX-512, AVX2, SSE), the thread count
and the BLAS library, so a notebook never prints its digits: it asserts the value against a bound
and prints the bound. ``bound`` does both in one call::

    print(bound(np.abs(a - b).max(), 1e-12, reason="float64 round-off"))
    # max |difference| below 1e-12 (float64 round-off)

``roundoff`` derives such a bound from a dtype, so the tolerance follows from the arithmetic and is
not a number typed in by hand.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def roundoff(dtype: torch.dtype | np.dtype | type, scale: float = 1.0, ulps: float = 1000.0) -> float:
    """The power of ten at or above ``ulps`` machine epsilons of ``dtype`` times ``scale``.

    ``scale`` is the size of the values compared (round-off is relative); ``ulps`` leaves room for the
    errors that pile up over a sum or a chain of operations. float64 gives 1e-12, float32 1e-3.
    """
    eps = torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else float(np.finfo(dtype).eps)
    if not (scale > 0 and ulps > 0):
        raise ValueError(f"scale and ulps must be > 0, got scale={scale}, ulps={ulps}")
    return 10.0 ** math.ceil(math.log10(eps * ulps * scale))


def bound(value: float, limit: float, label: str = "max |difference|", reason: str = "") -> str:
    """Assert ``0 <= value < limit`` and return the line to print, e.g. ``max |difference| below 1e-12 (...)``.

    The exact value is checked, not printed: its digits depend on the CPU, the bound does not.
    """
    value = float(value)
    if not limit > 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    if not (math.isfinite(value) and 0 <= value < limit):
        raise AssertionError(f"{label} = {value:.3e}, expected a value in [0, {limit:.0e})")
    return f"{label} below {limit:.0e}" + (f" ({reason})" if reason else "")


def dtype_name(dtype: torch.dtype | np.dtype | type) -> str:
    """``torch.float32`` -> ``"float32"``, ``np.float64`` -> ``"float64"``: the name printed in results and tables."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return np.dtype(dtype).name
