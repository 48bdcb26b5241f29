"""Turning user arrays (numpy, torch, lists) into read-only numpy arrays, checked field by field."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from steerkit.errors import ValidationError

FloatArray = npt.NDArray[np.floating[Any]]


def describe(value: Any) -> str:
    """A short description of what the user handed us, for error messages."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        dtype = getattr(value, "dtype", "?")
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return repr(value)


def to_numpy(owner: str, field: str, value: Any) -> np.ndarray[Any, Any]:
    """Convert numpy arrays, torch tensors (without importing torch) and sequences to numpy."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        tensor = value.detach().cpu()
        if str(getattr(tensor, "dtype", "")) in {"torch.bfloat16", "torch.float16"}:
            tensor = tensor.float()
        value = tensor.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValidationError(owner, field, "an array of numbers", describe(value)) from e
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise ValidationError(owner, field, "an array of numbers", describe(value))
    return array


def float_array(
    owner: str,
    field: str,
    value: Any,
    *,
    ndim: int,
    keep_float32: bool = False,
    check: bool = True,
) -> FloatArray:
    """A read-only, finite float array with exactly `ndim` dimensions.

    float64 unless `keep_float32` and the input is float32 (large decoders stay float32
    rather than doubling their memory). The user's buffer is not copied when it can be viewed.
    `check=False` leaves the finiteness check to the caller (the Decoder's validation pass).
    """
    array = to_numpy(owner, field, value)
    if array.ndim != ndim:
        expected = {0: "a scalar", 1: "a 1-d array", 2: "a 2-d array"}.get(ndim, f"{ndim}-d")
        raise ValidationError(owner, field, expected, describe(value))
    if not (keep_float32 and array.dtype == np.float32):
        array = array.astype(np.float64, copy=False)
    if array.size == 0:
        raise ValidationError(owner, field, "a non-empty array", describe(value))
    if check:
        check_finite(owner, field, array)
    return readonly(array)


#: numpy ≥ 2's row-wise dot product: a row's sum of squares in ~0.8× einsum's time (24576 ×
#: 768 float32, blocks of 256 rows: 7.7 against 9.0 ms for a pass with two matrix-vector
#: products; 2.5 against 3.3 ms for 8192 × 768 float64)
_VECDOT = getattr(np, "vecdot", None)


def squares_by_row(block: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Σⱼ xᵢⱼ² per row of a 2-d array, in its own precision (in whatever order the summation
    takes: the bounds built on these allow any order's rounding). A square beyond the float
    range is inf, silently (as einsum's): the callers decline such a decoder, naming it."""
    with np.errstate(over="ignore"):
        squares: np.ndarray[Any, Any] = (
            _VECDOT(block, block) if _VECDOT is not None else np.einsum("ij,ij->i", block, block)
        )
    return squares


def check_finite(owner: str, field: str, array: np.ndarray[Any, Any]) -> None:
    """Reject NaN and inf, naming how many entries and the first bad index."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        where = first[0] if len(first) == 1 else first
        raise ValidationError(
            owner,
            field,
            "finite values",
            f"{len(bad)} NaN or infinite entr{'y' if len(bad) == 1 else 'ies'} "
            f"(first at index {where}: {array[first]})",
        )


def positive_scalar(owner: str, field: str, value: Any) -> float:
    """A finite float > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ValidationError(owner, field, "a positive finite number", describe(value)) from e
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(owner, field, "a positive finite number", repr(number))
    return number


def readonly(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A read-only view of an array the caller owns."""
    view: np.ndarray[Any, Any] = array.view()
    view.flags.writeable = False
    return view


def blocks64(array: np.ndarray[Any, Any], rows: int) -> Iterator[tuple[int, FloatArray]]:
    """(first row, `rows` rows of a 2-d `array` as float64) block by block: views of a float64
    array, else converted through one reused buffer (no float64 copy of the whole array)."""
    if array.dtype == np.float64:
        for start in range(0, array.shape[0], rows):
            yield start, array[start : start + rows]
        return
    buffer = np.empty((min(rows, array.shape[0]), array.shape[1]))
    for start in range(0, array.shape[0], rows):
        part = array[start : start + rows]
        block = buffer[: part.shape[0]]
        np.copyto(block, part)
        yield start, block


def gathered64(
    array: np.ndarray[Any, Any], index: np.ndarray[Any, Any], rows: int
) -> Iterator[tuple[int, FloatArray]]:
    """(first position, the rows array[index[start : start + rows]] as float64) block by block,
    through one reused buffer: the rows are never all gathered at once."""
    buffer = np.empty((min(rows, index.size), array.shape[1]))
    for start in range(0, index.size, rows):
        part = index[start : start + rows]
        block = buffer[: part.size]
        np.copyto(block, array[part])
        yield start, block
