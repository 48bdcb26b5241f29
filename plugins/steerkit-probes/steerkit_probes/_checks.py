"""Checking what users hand a probe: activation matrices, binary labels, options.

Every failure is a steerkit ValidationError naming the owner, the field, what was expected and
what was received.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from steerkit import ValidationError

__all__ = ["binary_labels", "describe", "finite_number", "hidden_matrix", "positive_int"]

FloatMatrix = np.ndarray[Any, np.dtype[np.float64]]


def describe(value: Any) -> str:
    """A short description of a user's value, for error messages."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        dtype = getattr(value, "dtype", "?")
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return repr(value)


def _as_numpy(owner: str, field: str, value: Any) -> np.ndarray[Any, Any]:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, torch not imported
        tensor = value.detach().cpu()
        if str(getattr(tensor, "dtype", "")) in {"torch.bfloat16", "torch.float16"}:
            tensor = tensor.float()
        value = tensor.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValidationError(owner, field, "an array of numbers", describe(value)) from e
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValidationError(owner, field, "an array of numbers", describe(value))
    return array


def _check_finite(owner: str, field: str, array: np.ndarray[Any, Any]) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        raise ValidationError(
            owner,
            field,
            "finite values",
            f"{len(bad)} NaN or infinite entr{'y' if len(bad) == 1 else 'ies'} "
            f"(first at index {first[0] if len(first) == 1 else first}: {array[first]})",
        )


def hidden_matrix(
    owner: str, field: str, value: Any, *, d_model: int | None = None, n: int | None = None
) -> FloatMatrix:
    """A finite float64 (n, d_model) matrix of activations, one row per example."""
    array = _as_numpy(owner, field, value)
    expected = "a 2-d array (n, d_model)" if d_model is None else f"shape (n, {d_model})"
    if n is not None:
        expected = f"shape ({n}, d_model)" if d_model is None else f"shape ({n}, {d_model})"
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValidationError(owner, field, expected + ", non-empty", describe(value))
    if (d_model is not None and array.shape[1] != d_model) or (
        n is not None and array.shape[0] != n
    ):
        raise ValidationError(owner, field, expected, describe(value))
    matrix = array.astype(np.float64)
    _check_finite(owner, field, matrix)
    return matrix


def integer_labels(owner: str, field: str, value: Any, *, n: int) -> np.ndarray[Any, Any]:
    """(n,) int64 class labels."""
    array = _as_numpy(owner, field, value)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValidationError(
            owner, field, f"a 1-d array of {n} labels, one per row", describe(value)
        )
    _check_finite(owner, field, array.astype(np.float64))
    if not np.all(np.mod(array, 1) == 0):
        raise ValidationError(owner, field, "integer class labels", describe(value))
    return array.astype(np.int64)


def binary_labels(
    owner: str, field: str, value: Any, *, n: int, min_per_class: int = 1
) -> tuple[np.ndarray[Any, Any], tuple[int, int]]:
    """(n,) int64 labels of exactly two classes, each with at least `min_per_class` examples;
    and the two classes, sorted."""
    labels = integer_labels(owner, field, value, n=n)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) != 2:
        found = (
            f"one class only ({int(classes[0])}, {n} examples)"
            if len(classes) == 1
            else f"{len(classes)} classes {classes.tolist()}"
        )
        raise ValidationError(
            owner, field, "two classes (a binary task), each with examples", found
        )
    if counts.min() < min_per_class:
        raise ValidationError(
            owner,
            field,
            f"at least {min_per_class} examples of each class",
            f"counts {dict(zip(classes.tolist(), counts.tolist()))}",
        )
    return labels, (int(classes[0]), int(classes[1]))


def positive_int(owner: str, field: str, value: Any, *, minimum: int = 1) -> int:
    """An integer ≥ minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(owner, field, f"an integer ≥ {minimum}", repr(value))
    return int(value)


def finite_number(
    owner: str, field: str, value: Any, *, positive: bool = False, at_most: float | None = None
) -> float:
    """A finite float (> 0 when `positive`; ≤ at_most when given)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValidationError(owner, field, "a finite number", repr(value))
    number = float(value)
    expected = "a positive finite number" if positive else "a finite number"
    if at_most is not None:
        expected += f" ≤ {at_most}"
    if (
        not math.isfinite(number)
        or (positive and number <= 0)
        or (at_most is not None and number > at_most)
    ):
        raise ValidationError(owner, field, expected, repr(value))
    return number
