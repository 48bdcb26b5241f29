"""a = D w without a float64 pass over a float32 decoder.

The path needs a exactly only where it looks closely: the candidate pool, the active set, the
largest entry. Everywhere else (choosing the pool, screening for duplicated rows) an estimate
with a guaranteed error bound serves. So a float32 decoder is multiplied once in float32 (a few
milliseconds at GPT-2 scale, against ~16 ms for the exact float64 product), and exact float64
values are computed row by row on demand and remembered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ProjectedRows", "row_norm_bounds"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_U32 = 2.0**-24


def row_norm_bounds(decoder: np.ndarray[Any, Any]) -> FloatArray:
    """Upper bounds on the row norms ‖dᵢ‖, computed in the decoder's own precision."""
    squares = np.einsum("ij,ij->i", decoder, decoder).astype(np.float64)
    slack = (decoder.shape[1] + 8) * _U32 if decoder.dtype == np.float32 else 1e-12
    result: FloatArray = np.sqrt(squares) * (1.0 + slack)
    return result


class ProjectedRows:
    """aᵢ = dᵢ·w for every decoder row: `estimate` (d_sae,) within `bound` (d_sae,) of the exact
    values, and exact float64 values by indexing (`a[idx]`), computed once per row."""

    def __init__(
        self,
        decoder: np.ndarray[Any, Any],
        w: FloatArray,
        row_norms: Callable[[], FloatArray] | None = None,
        estimate: Callable[[], FloatArray] | None = None,
    ) -> None:
        self.decoder = decoder
        self.w = np.asarray(w, dtype=np.float64)
        n = int(decoder.shape[0])
        if decoder.dtype == np.float64:
            exact = np.asarray(decoder @ self.w, dtype=np.float64)
            self._set_exact(exact)
            return
        norms = row_norms() if row_norms is not None else row_norm_bounds(decoder)
        # the float32 product, or the same product already computed elsewhere (the problem's)
        self.estimate: FloatArray = (
            estimate()
            if estimate is not None
            else (decoder @ self.w.astype(np.float32)).astype(np.float64)
        )
        # rounding w to float32, then float32 products and sums: γ_{d+2} ‖dᵢ‖ ‖w‖
        scale = (decoder.shape[1] + 2) * _U32 * 1.01 * float(np.linalg.norm(self.w))
        self.bound: FloatArray = norms * scale
        self._values = np.empty(n)
        self._known = np.zeros(n, dtype=bool)
        self._sorted: tuple[IntArray, FloatArray, float] | None = None

    @classmethod
    def exact(cls, decoder: np.ndarray[Any, Any], w: Any, a: Any) -> ProjectedRows:
        """From exact values computed elsewhere (e.g. the problem's constraint matrix)."""
        self = cls.__new__(cls)
        self.decoder = decoder
        self.w = np.asarray(w, dtype=np.float64).reshape(-1)
        self._set_exact(np.asarray(a, dtype=np.float64).reshape(-1))
        return self

    def _set_exact(self, exact: FloatArray) -> None:
        self.estimate = exact
        self.bound = np.zeros_like(exact)
        self._values = exact
        self._known = np.ones(exact.size, dtype=bool)
        self._sorted = None

    @property
    def size(self) -> int:
        return int(self.estimate.size)

    def __getitem__(self, index: Any) -> Any:
        """Exact values (float64) at `index` (an int, a list or an integer array)."""
        idx = np.asarray(index, dtype=np.int64)
        missing = idx[~self._known[idx]]
        if missing.size:
            missing = np.unique(missing)  # (only when some are missing: ~40 µs a call)
            rows = np.asarray(self.decoder[missing], dtype=np.float64).reshape(-1, self.w.size)
            self._values[missing] = rows @ self.w
            self._known[missing] = True
        return self._values[index] if idx.ndim else float(self._values[int(idx)])

    def learn(self, index: IntArray, rows: np.ndarray[Any, Any]) -> None:
        """Exact values for `index` (unique) from their rows, already at hand (the same product
        `a[index]` would compute after gathering the rows itself): float64 rows, or the
        decoder's float32 rows, of which only the unknown ones are converted."""
        missing = ~self._known[index]
        if missing.any():
            self._values[index[missing]] = np.asarray(rows[missing], dtype=np.float64) @ self.w
            self._known[index[missing]] = True

    def argmax(self) -> int:
        """The index of the exact largest entry (the first, on ties, as numpy's argmax)."""
        floor = float(np.max(self.estimate - self.bound))
        candidates: IntArray = np.flatnonzero(self.estimate + self.bound >= floor)
        return int(candidates[int(np.argmax(self[candidates]))])

    def max(self) -> float:
        return float(self[self.argmax()])

    def near(self, j: int, rtol: float) -> IntArray:
        """Every index whose exact value may be within rtol·(|aⱼ| + max|a|) of aⱼ, sorted."""
        return self.near_many([j], rtol)[0]

    def _windows(self, js: IntArray, rtol: float) -> tuple[FloatArray, FloatArray, Any, Any]:
        """(aⱼ, slackⱼ, lo, hi): every i whose exact value may be within rtol·(|aⱼ| + max|a|) of
        aⱼ is in the sorted estimate's window [lo, hi) (j itself among them)."""
        if self._sorted is None:
            order = np.argsort(self.estimate)
            self._sorted = (order, self.estimate[order], float(self.bound.max()))
        _, ordered, widest = self._sorted
        a_j = np.asarray(self[js], dtype=np.float64).reshape(-1)
        largest = float(np.abs(self.estimate).max())
        slack = self.bound[js] + rtol * (np.abs(a_j) + largest)
        # every i within bound_i + slack_j of a_j lies in the window of half-width widest + slack_j
        lo = np.searchsorted(ordered, a_j - (widest + slack) * (1 + 1e-12), side="left")
        hi = np.searchsorted(ordered, a_j + (widest + slack) * (1 + 1e-12), side="right")
        return a_j, slack, lo, hi

    def window_pairs(self, features: Any, rtol: float) -> tuple[IntArray, IntArray]:
        """(k, i) for every index i in the window of features[k] (a superset of `near`, j
        itself included), flattened: one vectorised search, no work per feature."""
        js = np.asarray(features, dtype=np.int64).reshape(-1)
        _, _, lo, hi = self._windows(js, rtol)
        sizes = (hi - lo).astype(np.int64)
        which = np.repeat(np.arange(js.size, dtype=np.int64), sizes)
        starts = np.cumsum(sizes) - sizes
        positions = lo[which] + np.arange(which.size, dtype=np.int64) - starts[which]
        order = self._sorted[0]  # type: ignore[index]
        return which, np.asarray(order[positions], dtype=np.int64)

    def near_many(self, features: Any, rtol: float) -> list[IntArray]:
        """`near` for each of `features`: one sort of the estimate (kept), then a window of it
        per feature, instead of a pass over all d_sae entries per feature."""
        js = np.asarray(features, dtype=np.int64).reshape(-1)
        a_j, slack, lo, hi = self._windows(js, rtol)
        order = self._sorted[0]  # type: ignore[index]
        out: list[IntArray] = []
        for k in range(js.size):
            window = order[lo[k] : hi[k]]
            if window.size > 1:
                keep = np.abs(self.estimate[window] - a_j[k]) <= self.bound[window] + slack[k]
                window = np.sort(window[keep])
            out.append(window.astype(np.int64, copy=False))
        return out
