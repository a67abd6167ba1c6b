"""Checks of numeric hyper-parameters, shared by optimizers, schedules, callbacks, layers.

Each returns the value as a Python number or raises a ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math

import numpy as np


def number(name: str, value) -> float:
    """``value`` as a float; bools, strings and None are refused."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def positive(name: str, value, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``)."""
    result = number(name, value)
    if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return result


def fraction(name: str, value, upper_inclusive: bool = False) -> float:
    """A number in [0, 1) (or [0, 1] with ``upper_inclusive``)."""
    result = number(name, value)
    if not (0 <= result < 1 or (upper_inclusive and result == 1)):
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return result


def count(name: str, value, minimum: int = 0) -> int:
    """An int >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)
