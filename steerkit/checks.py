"""The checks steerkit runs on what users hand it, public for plugins: arrays (numpy, torch
tensors, lists) and numbers, each failure a `ValidationError` naming the owner, the field, what
was expected and what was received.

    from steerkit.checks import float_array, integer, positive_scalar

    class MyMethod(steerkit.SteeringMethod):
        def __init__(self, *, lam: float = 1.0, k: int = 10) -> None:
            self.lam = positive_scalar(self.name, "lam", lam)  # a finite float > 0
            self.k = integer(self.name, "k", k, minimum=1)  # an int ≥ 1, bools refused

Constructors that validate this way let `steerkit run` reject a bad [[methods]] value when it
reads the config, with its key and line. Needs numpy only; torch tensors are converted without
importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from steerkit._arrays import (
    FloatArray,
    check_finite,
    describe,
    float_array,
    positive_scalar,
    readonly,
    to_numpy,
)
from steerkit.errors import ValidationError

__all__ = [
    "FloatArray",
    "check_finite",
    "choice",
    "describe",
    "finite_number",
    "float_array",
    "fraction",
    "integer",
    "optional_integer",
    "positive_scalar",
    "readonly",
    "string",
    "to_numpy",
]

_NUMBER_TYPES = (int, float, np.integer, np.floating)


def integer(
    owner: str,
    field: str,
    value: Any,
    *,
    minimum: int | None = None,
    expected: str | None = None,
) -> int:
    """A Python or numpy integer (≥ minimum when given), as an int; bools are refused.
    `expected` replaces the error's wording ("an integer ≥ 1")."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or (minimum is not None and value < minimum)
    ):
        if expected is None:
            expected = "an integer" if minimum is None else f"an integer ≥ {minimum}"
        raise ValidationError(owner, field, expected, repr(value))
    return int(value)


def optional_integer(
    owner: str,
    field: str,
    value: Any,
    *,
    minimum: int | None = None,
    expected: str | None = None,
) -> int | None:
    """None, or what `integer` accepts ("an integer ≥ 1 or None" in errors, unless
    `expected` says otherwise)."""
    if value is None:
        return None
    if expected is None:
        expected = ("an integer" if minimum is None else f"an integer ≥ {minimum}") + " or None"
    return integer(owner, field, value, minimum=minimum, expected=expected)


def finite_number(
    owner: str, field: str, value: Any, *, positive: bool = False, at_most: float | None = None
) -> float:
    """A finite int or float (> 0 when `positive`, ≤ at_most when given), as a float; bools,
    strings and other types are refused."""
    expected = "a positive finite number" if positive else "a finite number"
    if at_most is not None:
        expected += f" ≤ {at_most}"
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        raise ValidationError(owner, field, expected, repr(value))
    number = float(value)
    if (
        not math.isfinite(number)
        or (positive and number <= 0)
        or (at_most is not None and number > at_most)
    ):
        raise ValidationError(owner, field, expected, repr(value))
    return number


def fraction(owner: str, field: str, value: Any, *, include_one: bool = False) -> float:
    """A number in (0, 1), or in (0, 1] with `include_one` (a share, a probability threshold)."""
    expected = "a number in (0, 1]" if include_one else "a number in (0, 1)"
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        raise ValidationError(owner, field, expected, repr(value))
    number = float(value)
    if not (0.0 < number < 1.0 or (include_one and number == 1.0)):
        raise ValidationError(owner, field, expected, repr(value))
    return number


def choice(owner: str, field: str, value: Any, choices: Sequence[str]) -> str:
    """One of `choices` (strings, compared exactly)."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValidationError(owner, field, f"one of {listed}", repr(value))
    return value


def string(owner: str, field: str, value: Any) -> str:
    """A str."""
    if not isinstance(value, str):
        raise ValidationError(owner, field, "a string", repr(value))
    return value
