"""What a probe checks beyond steerkit's public checks: activation matrices and class labels.

Every failure is a steerkit ValidationError naming the owner, the field, what was expected and
what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steerkit import ValidationError
from steerkit.checks import check_finite, describe, to_numpy

__all__ = ["FloatMatrix", "binary_labels", "hidden_matrix", "integer_labels"]

FloatMatrix = np.ndarray[Any, np.dtype[np.float64]]


def hidden_matrix(
    owner: str, field: str, value: Any, *, d_model: int | None = None, n: int | None = None
) -> FloatMatrix:
    """A finite float64 (n, d_model) matrix of activations, one row per example."""
    array = to_numpy(owner, field, value)
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
    check_finite(owner, field, matrix)
    return matrix


def integer_labels(owner: str, field: str, value: Any, *, n: int) -> np.ndarray[Any, Any]:
    """(n,) int64 class labels."""
    array = to_numpy(owner, field, value)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValidationError(
            owner, field, f"a 1-d array of {n} labels, one per row", describe(value)
        )
    check_finite(owner, field, array.astype(np.float64))
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
