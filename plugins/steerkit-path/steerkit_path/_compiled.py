"""The walk's innermost loops, compiled (numba): each was a run of small numpy operations or a
Python loop of BLAS calls whose per-call overhead, not its arithmetic, made its time. Compiled
on first use and cached on disk (`cache=True`: a later process loads them in ~0.1 s).

Measured on the GPT-2-scale certified grid (865 steps, pool ~1,000 features, |A| ~380 on
average): choosing the entering feature 83 → 31 µs a step, a drop's rotations ~320 → ~45 µs
(line-profiled), the grid's steps 359 → 277 ms. `gram_column` and `combine_rows` are the other
kind: not overhead but bytes — they multiply a float32 decoder's active rows, kept in float32,
in float64 (half the bytes numpy's products read from float64 copies of those rows; the grid
631 → 597 ms).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@numba.njit(cache=True, nogil=True)
def rotate_out(flat: Floats, capacity: int, position: int, n: int) -> None:
    """Restore the upper triangle of the n×n factor R (Fortran order, leading dimension
    `capacity`, element (i, j) at i + j·capacity of `flat`) after its columns position+1 … n−1
    were moved one to the left: a Givens rotation of rows k and k+1 from column k on, for k from
    `position` to n−2, each chosen to zero (k+1, k). Row n−1 is left holding what they move out
    of the triangle (the caller zeroes it)."""
    for k in range(position, n - 1):
        at = k + k * capacity
        p = flat[at]
        q = flat[at + 1]
        h = math.hypot(p, q)
        if h == 0.0:
            continue
        c = p / h
        s = q / h
        for j in range(k, n - 1):
            i = k + j * capacity
            x = flat[i]
            y = flat[i + 1]
            flat[i] = c * x + s * y
            flat[i + 1] = c * y - s * x


@numba.njit(cache=True, nogil=True)
def entering_bracket(
    e: Floats,
    r: Floats,
    norms: Floats,
    slack: Floats,
    candidate: npt.NDArray[np.bool_],
    e_scale: float,
    r_scale: float,
    alpha: float,
    rate_tol: float,
) -> npt.NDArray[np.int64]:
    """The pool positions whose enter-α could be the largest (`Homotopy._entering`), in pool
    order. Feature i's estimates ê = e[i], r̂ = r[i] err by at most de = norms[i]·e_scale +
    slack[i] and dr = norms[i]·r_scale + 1e-12. A candidate whose rate could exceed `rate_tol`
    (r̂ + dr > rate_tol) may enter; when its rate surely does (r̂ − dr > rate_tol), its enter-α
    eᵢ/rᵢ lies in [lower, upper] (each end the quotient of the bracket's ends that bounds it);
    else upper is +inf. With best = min(max lower, α): the candidates with upper ≥ best."""
    size = e.size
    upper = np.empty(size)
    best = -np.inf
    for i in range(size):
        upper[i] = np.nan  # not a candidate that may enter
        if not candidate[i]:
            continue
        dr = norms[i] * r_scale + 1e-12
        r_high = r[i] + dr
        if not r_high > rate_tol:
            continue
        r_low = r[i] - dr
        if not r_low > rate_tol:
            upper[i] = np.inf
            continue
        de = norms[i] * e_scale + slack[i]
        low = e[i] - de
        high = e[i] + de
        lower = low / (r_high if low >= 0 else r_low)
        upper[i] = high / (r_low if high >= 0 else r_high)
        if lower > best:
            best = lower
    best = min(best, alpha)
    count = 0
    for i in range(size):
        if upper[i] >= best:  # False for NaN: not a candidate
            count += 1
    out = np.empty(count, dtype=np.int64)
    count = 0
    for i in range(size):
        if upper[i] >= best:
            out[count] = i
            count += 1
    return out


@numba.njit(cache=True, nogil=True)
def leaving(x: Floats, v: Floats, alpha: float) -> tuple[int, float]:
    """(j, min(x_j/v_j, α)) for the first j with v_j < 0 that maximises it; (0, −inf) when no
    v_j < 0 — the active feature that leaves first as α falls, and where."""
    best = -np.inf
    where = 0
    for j in range(x.size):
        if v[j] < 0:
            value = min(x[j] / v[j], alpha)
            if value > best:
                best = value
                where = j
    return where, best


@numba.njit(cache=True, nogil=True)
def entering_exact(
    rows: npt.NDArray[Any],
    positions: npt.NDArray[np.int64],
    a: Floats,
    F: Floats,
    U: Floats,
    alpha: float,
    rate_tol: float,
) -> tuple[int, float]:
    """(k, its enter-α) for the first k maximising min(eᵢ/rateᵢ, α) over i = positions[k] with
    rateᵢ > rate_tol, eᵢ = a[i] − rows[i]·F and rateᵢ = 1 − rows[i]·U computed in float64 from
    the rows' own values, term by term (the order of the sums differs from BLAS's: the last
    bit may); (−1, −inf) when there is none."""
    best = -np.inf
    where = -1
    for k in range(positions.size):
        i = positions[k]
        dot_f = 0.0
        dot_u = 0.0
        for j in range(F.size):
            value = np.float64(rows[i, j])
            dot_f += value * F[j]
            dot_u += value * U[j]
        rate = 1.0 - dot_u
        if not rate > rate_tol:
            continue
        enter = min((a[i] - dot_f) / rate, alpha)
        if enter > best:
            best = enter
            where = k
    return where, best


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def gram_column(rows: npt.NDArray[Any], n: int, row: Floats) -> Floats:
    """rows[:n] @ row in float64 from the rows' own (float32) values: the Gram matrix's new
    column. The sums may be reordered (vectorised): any order's rounding is float64's."""
    out = np.empty(n)
    for k in range(n):
        total = 0.0
        for j in range(row.size):
            total += np.float64(rows[k, j]) * row[j]
        out[k] = total
    return out


@numba.njit(cache=True, nogil=True)
def combine_rows(coefficients: Floats, rows: npt.NDArray[Any]) -> Floats:
    """Σₖ coefficientsₖ · rows[k] in float64 from the rows' own (float32) values, for k below
    coefficients.size: D_Aᵀc."""
    out = np.zeros(rows.shape[1])
    for k in range(coefficients.size):
        c = coefficients[k]
        for j in range(rows.shape[1]):
            out[j] += c * np.float64(rows[k, j])
    return out
