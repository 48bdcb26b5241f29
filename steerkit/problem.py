"""The convex steering problem handed from a steering method to a solver.

Over δ ≥ 0 (one entry per SAE feature) with k linear concept constraints A δ ≥ r, where
A = W Dᵀ (k × d_sae), D is the decoder (d_sae × d_model) and W the concept directions (k × d_model):

    qp:   min cᵀδ + (λ/2)‖Dᵀδ‖₂²   s.t.  A δ ≥ r
    socp: min cᵀδ                  s.t.  A δ ≥ r,  ‖Dᵀδ‖₂ ≤ ε

The steering vector is Dᵀδ. c is a positive cost per feature: all ones (`costs=None`) unless the
problem is cost-weighted; an infinite cost excludes a feature (δᵢ = 0). A weighted problem is the
unweighted one over the rows dᵢ / cᵢ of the finite-cost features (δ'ᵢ = cᵢ δᵢ): `unweighted()`.
"""

from __future__ import annotations

import collections
import copy
import enum
import math
import threading
from typing import Any

import attrs
import numpy as np

from steerkit._arrays import (
    FloatArray,
    describe,
    float_array,
    positive_scalar,
    readonly,
    to_numpy,
)
from steerkit.decoder import Decoder, _needs_copy, _validation_pass_with, private_copy
from steerkit.errors import ValidationError

__all__ = ["ProblemKind", "SteeringProblem"]

_OWNER = "SteeringProblem"


class ProblemKind(str, enum.Enum):
    """Which program: the quadratic penalty (QP) or the hard norm budget (SOCP)."""

    QP = "qp"
    SOCP = "socp"

    def __str__(self) -> str:
        return self.value


#: the scalar types a right-hand side usually comes as: taken without numpy's conversions
_SCALARS = frozenset({float, int, np.float64, np.float32})


def _rhs(value: Any, k: int) -> FloatArray:
    # a sweep's `with_rhs(r)`: 1.0 against 4.7 µs. An int numpy cannot hold in 64 bits is
    # refused below, as in an array
    if type(value) in _SCALARS and (type(value) is not int or -(2**63) <= value < 2**64):
        number = float(value)
        if math.isfinite(number):
            rhs = np.full(k, number)
            rhs.flags.writeable = False
            return rhs
    raw = to_numpy(_OWNER, "rhs", value)
    if raw.ndim == 0:
        raw = np.full(k, float(raw))
    if raw.shape != (k,):
        raise ValidationError(
            _OWNER, "rhs", f"a scalar or shape ({k},), one entry per direction", describe(value)
        )
    return readonly(np.array(float_array(_OWNER, "rhs", raw, ndim=1)))  # the problem's own


def _costs(value: Any, d_sae: int) -> FloatArray | None:
    """The validated costs (d_sae,), float64, > 0, +inf allowed; None when absent or all ones
    (exactly the unweighted problem)."""
    if value is None:
        return None
    raw = to_numpy(_OWNER, "costs", value)
    if raw.shape != (d_sae,):
        raise ValidationError(
            _OWNER, "costs", f"shape ({d_sae},), one cost per SAE feature", describe(value)
        )
    try:
        costs = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(_OWNER, "costs", "real numbers", describe(value)) from e
    if np.isnan(costs).any():
        raise ValidationError(
            _OWNER,
            "costs",
            "costs > 0 (inf excludes a feature), no NaN",
            f"NaN at feature(s) {np.flatnonzero(np.isnan(costs))[:5].tolist()}",
        )
    if not (costs > 0).all():
        bad = np.flatnonzero(~(costs > 0))
        raise ValidationError(
            _OWNER,
            "costs",
            "costs > 0 (inf excludes a feature; a zero or negative cost makes a feature free "
            "or paid to use, so the problem has no sparse optimum)",
            f"{costs[bad[0]]!r} at feature(s) {bad[:5].tolist()}",
        )
    if (costs == 1.0).all():
        return None
    return readonly(costs)


def _kind(value: Any) -> ProblemKind:
    try:
        return ProblemKind(value)
    except ValueError as e:
        raise ValidationError(_OWNER, "kind", "'qp' or 'socp'", repr(value)) from e


#: How many Decoders made from callers' arrays the core keeps for reuse by later problems (two
#: entries per decoder: the caller's array and the Decoder's own lead to the same Decoder).
_COPIES_KEPT = 4
_copies: collections.OrderedDict[tuple[Any, ...], Decoder] = collections.OrderedDict()
_copies_lock = threading.Lock()


def _memory_key(array: np.ndarray[Any, Any]) -> tuple[Any, ...]:
    interface = array.__array_interface__
    return (interface["data"][0], array.shape, array.strides, array.dtype.str)


#: At most this many directions are multiplied in the validation pass, one matrix-vector
#: product per block each; more are left to `constraint_matrix`'s one matrix product.
_PASS_DIRECTIONS = 8


def _directions_float32(directions: Any, d_model: int) -> FloatArray | None:
    """The directions as (d_model, k) float32 columns when they plainly are a finite (k,
    d_model) or (d_model,) numpy array of at most _PASS_DIRECTIONS rows; None otherwise (they
    are validated properly later)."""
    if not isinstance(directions, np.ndarray) or directions.dtype.kind not in "fiu":
        return None
    rows = directions.reshape(1, -1) if directions.ndim == 1 else directions
    if rows.ndim != 2 or rows.shape[1] != d_model or rows.shape[0] > _PASS_DIRECTIONS:
        return None
    if not np.isfinite(rows).all():
        return None
    columns: FloatArray = np.ascontiguousarray(rows.T, dtype=np.float32)
    return columns


def _dictionary(value: Any, directions: Any = None) -> tuple[Decoder, FloatArray | None]:
    """The problem's Decoder: `value` itself when it is one (no pass over it), else the Decoder
    made from the caller's array. Problems built from the same unchanged array share one Decoder
    (recognised by address, shape, strides and dtype, and a fingerprint of the content, from the
    one validation pass an array costs), so a later in-place change of the caller's array cannot
    change a problem. An array with no Decoder kept for it is copied in that pass
    (`private_copy`); one changed since its Decoder was made is copied after it; a read-only
    array that owns its memory is not copied (as `Decoder` adopts it). With a float32
    array, the same pass multiplies it by the `directions` (float32, as `alignment_estimate`
    does): (k, d_sae) estimates of D w, else None."""
    if isinstance(value, Decoder):
        return value, None
    decoder = float_array(_OWNER, "decoder", value, ndim=2, keep_float32=True, check=False)
    columns = None
    if decoder.dtype == np.float32:
        columns = _directions_float32(directions, int(decoder.shape[1]))
    if isinstance(value, np.ndarray) and not np.may_share_memory(decoder, value):
        # converted (another dtype): already the core's own
        squares, prints, products = _validation_pass_with(decoder, columns)
        return Decoder._validated(decoder, squares, prints), products
    # a read-only array that owns its memory is adopted, not copied (as `Decoder` does)
    adopt = not _needs_copy(decoder, value)
    key = _memory_key(decoder)
    with _copies_lock:
        kept = _copies.get(key)
    if kept is None and not adopt:  # copied and validated in one pass (the figures the copy's)
        private, squares, prints, products = private_copy(decoder, columns)
    else:
        squares, prints, products = _validation_pass_with(decoder, columns)
        if (
            kept is not None
            and np.array_equal(kept.row_squares, squares, equal_nan=True)
            and np.array_equal(kept.fingerprint, prints, equal_nan=True)
        ):  # the Decoder made for this array before: the array is unchanged
            with _copies_lock:
                if key in _copies:
                    _copies.move_to_end(key)
            return kept, products
        # adopted as it is, or changed since its Decoder was made: copied as validated (a
        # copying pass would read it once more)
        private = decoder if adopt else readonly(np.array(decoder, copy=True, order="C"))
    made = Decoder._validated(private, squares, prints)
    with _copies_lock:
        _copies[key] = made
        # a problem built from another problem's decoder array shares that Decoder too
        _copies[_memory_key(private)] = made
        while len(_copies) > _COPIES_KEPT:
            _copies.popitem(last=False)
    return made, products


def forget_decoder_copies() -> None:
    """Drop the Decoders kept for reuse by problems built from arrays (problems keep theirs)."""
    with _copies_lock:
        _copies.clear()


@attrs.frozen(eq=False, repr=False)
class SteeringProblem:
    """A validated, immutable steering problem. Build it with `qp(...)` or `socp(...)`.

    `decoder` may be a `steerkit.Decoder` (validated once: building a problem on it does not pass
    over the decoder again) or an array (numpy, torch, lists), made into a Decoder here at the cost
    of one validation pass. `problem.decoder` is the read-only array, `problem.dictionary` the
    Decoder. Arrays are read-only and the problem's own: the decoder is copied when it shares
    memory with the caller's array (problems built from the same unchanged array share one copy),
    so changing the caller's array in place afterwards does not change the problem — unless it
    is a read-only array that owns its memory (an SAE source's `decoder()` is one), which is
    used as it is, as `Decoder` does: it cannot change unless its owner makes it writeable
    again. The decoder stays float32 if given float32.
    """

    kind: ProblemKind = attrs.field(converter=_kind)
    decoder: FloatArray
    directions: FloatArray
    rhs: FloatArray
    lam: float | None = None
    eps: float | None = None
    costs: FloatArray | None = None
    _cache: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)
    #: The validated decoder value (`problem.decoder` is its array).
    dictionary: Decoder = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # a Decoder as it is; an array costs the one validation pass (finiteness, norms, print)
        dictionary, estimates = _dictionary(self.decoder, self.directions)
        decoder = dictionary.array
        d_model = decoder.shape[1]

        raw_dirs = to_numpy(_OWNER, "directions", self.directions)
        if raw_dirs.ndim == 1:
            raw_dirs = raw_dirs[None, :]
        if raw_dirs.ndim != 2 or raw_dirs.shape[1] != d_model:
            raise ValidationError(
                _OWNER,
                "directions",
                f"shape (k, {d_model}) or ({d_model},) to match the decoder's d_model = {d_model}",
                describe(self.directions),
            )
        directions = readonly(np.array(float_array(_OWNER, "directions", raw_dirs, ndim=2)))
        k = directions.shape[0]

        rhs = _rhs(self.rhs, k)

        kind = self.kind
        lam, eps = self.lam, self.eps
        if kind is ProblemKind.QP:
            if eps is not None:
                raise ValidationError(_OWNER, "eps", "None for a QP (use lam)", repr(eps))
            lam = positive_scalar(_OWNER, "lam", lam)
        else:
            if lam is not None:
                raise ValidationError(_OWNER, "lam", "None for an SOCP (use eps)", repr(lam))
            eps = positive_scalar(_OWNER, "eps", eps)

        costs = _costs(self.costs, decoder.shape[0])
        # what derives from the decoder and the directions alone, shared by every problem on both
        self._cache["family"] = family = dictionary.family(directions)
        if estimates is not None and estimates.shape[0] == k:  # D w from the validation pass
            for i in range(k):
                estimate = estimates[i].astype(np.float64)
                estimate.flags.writeable = False
                family.setdefault(f"alignment_estimate_{i}", estimate)

        for name, value in (
            ("dictionary", dictionary),
            ("costs", costs),
            ("decoder", decoder),
            ("directions", directions),
            ("rhs", rhs),
            ("lam", lam),
            ("eps", eps),
        ):
            object.__setattr__(self, name, value)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def qp(
        cls, *, decoder: Any, directions: Any, rhs: Any, lam: float, costs: Any = None
    ) -> SteeringProblem:
        """min cᵀδ + (λ/2)‖Dᵀδ‖² s.t. (D Wᵀ)ᵀδ ≥ r, δ ≥ 0. D: (d_sae, d_model); W: (k, d_model);
        costs c: (d_sae,) > 0, inf excludes a feature, None = all ones."""
        return cls(ProblemKind.QP, decoder, directions, rhs, lam=lam, costs=costs)

    @classmethod
    def socp(
        cls, *, decoder: Any, directions: Any, rhs: Any, eps: float, costs: Any = None
    ) -> SteeringProblem:
        """min cᵀδ s.t. (D Wᵀ)ᵀδ ≥ r, ‖Dᵀδ‖ ≤ ε, δ ≥ 0. D: (d_sae, d_model); W: (k, d_model);
        costs c: (d_sae,) > 0, inf excludes a feature, None = all ones."""
        return cls(ProblemKind.SOCP, decoder, directions, rhs, eps=eps, costs=costs)

    def with_rhs(self, rhs: Any) -> SteeringProblem:
        """The same problem for another input: only the right-hand side changes.

        The decoder is shared, not copied, and so is the cache of what derives from the decoder and
        the directions alone (the constraint matrix, the float64 decoder).
        """
        other = copy.copy(self)  # no re-validation of the (large) decoder; the same cache dict
        object.__setattr__(other, "rhs", _rhs(rhs, self.n_constraints))
        return other

    def unweighted(self) -> tuple[SteeringProblem, np.ndarray[Any, Any], FloatArray] | None:
        """(problem, kept, scale) for a cost-weighted problem: the unweighted problem over the
        rows dᵢ / cᵢ of the finite-cost features `kept`, whose δ' maps back to δ[kept] = δ' / scale
        (scale = c[kept]); the objective, Dᵀδ, A δ and the multipliers are the same. None when
        every feature is excluded. Built once per decoder family (shared by `with_rhs`)."""
        if self.costs is None:
            return self, np.arange(self.d_sae), np.ones(self.d_sae)
        if "unweighted" not in self._cache:
            kept = np.flatnonzero(np.isfinite(self.costs))
            scale = self.costs[kept]
            base = None
            if kept.size:
                rows = np.empty((kept.size, self.d_model))
                for start in range(0, kept.size, 2048):
                    part = kept[start : start + 2048]
                    rows[start : start + part.size] = (
                        self.decoder[part] / scale[start : start + part.size, None]
                    )
                rows.flags.writeable = False  # the Decoder adopts it: no second copy
                adopted: Any = Decoder(rows)  # the field converts a Decoder to its array
                base = SteeringProblem(
                    self.kind, adopted, self.directions, self.rhs, lam=self.lam, eps=self.eps
                )
            self._cache["unweighted"] = (base, kept, scale)
        base, kept, scale = self._cache["unweighted"]
        if base is None:
            return None
        return base.with_rhs(self.rhs), kept, scale

    # -- derived quantities -------------------------------------------------------------------

    @property
    def d_sae(self) -> int:
        return int(self.decoder.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.decoder.shape[1])

    @property
    def n_constraints(self) -> int:
        return int(self.directions.shape[0])

    def decoder_times(self, x: Any) -> FloatArray:
        """D x in float64: (d_sae,) for x (d_model,), (d_sae, m) for x (d_model, m).

        A float32 decoder is never copied whole: it is converted a block of rows at a time
        (two to three times faster than one float64 copy, and no d_sae × d_model allocation).
        """
        return self.dictionary.times(x)

    @property
    def row_norm_bounds(self) -> FloatArray:
        """Upper bounds on ‖dᵢ‖ (d_sae,), within (d_model + 8)·2⁻²⁴ relative of the norms for a
        float32 decoder; computed once per decoder family (shared by `with_rhs` siblings). For
        rounding-error bounds."""
        return self.dictionary.row_norm_bounds

    @property
    def max_row_norm(self) -> float:
        """maxⱼ ‖dⱼ‖ (inf when the squares overflow float64)."""
        return self.dictionary.max_row_norm

    def alignment_estimate(self, i: int) -> FloatArray:
        """dⱼ·wᵢ for every decoder row (d_sae,), float64; once per decoder family. Exact for a
        float64 decoder; for a float32 one the float32 product (no float64 pass over the
        decoder), within (d_model + 2)·2⁻²⁴·1.01·‖wᵢ‖·‖dⱼ‖ of the exact value."""
        key = f"alignment_estimate_{i}"
        family = self._cache["family"]
        if key not in family:
            w = self.directions[i]
            if "A" in family:
                estimate = family["A"][i]
            elif self.decoder.dtype == np.float64:
                estimate = np.asarray(self.decoder @ w, dtype=np.float64)
            else:
                estimate = (self.decoder @ w.astype(np.float32)).astype(np.float64)
            estimate.flags.writeable = False
            family[key] = estimate
        result: FloatArray = family[key]
        return result

    @property
    def max_alignment(self) -> FloatArray:
        """maxⱼ Aᵢⱼ = maxⱼ dⱼ·wᵢ per direction (k,), float64-exact; once per decoder family.

        From `alignment_estimate`: for a float32 decoder the rows whose exact value could be the
        largest, given the product's rounding bound, are recomputed in float64."""
        family = self._cache["family"]
        if "max_alignment" not in family:
            top = np.empty(self.n_constraints)
            for i in range(self.n_constraints):
                estimate = self.alignment_estimate(i)
                w = self.directions[i]
                if self.decoder.dtype == np.float64 or "A" in family:
                    top[i] = float(estimate.max())
                    continue
                scale = (self.d_model + 2) * 2.0**-24 * 1.01 * float(np.linalg.norm(w))
                bound = self.row_norm_bounds * scale
                rows = np.flatnonzero(estimate + bound >= float((estimate - bound).max()))
                top[i] = float((self.decoder[rows].astype(np.float64) @ w).max())
            top.flags.writeable = False
            family["max_alignment"] = top
        result: FloatArray = family["max_alignment"]
        return result

    @property
    def direction_norms(self) -> FloatArray:
        """‖wᵢ‖ per direction (k,); once per decoder family (every precheck reads them)."""
        family = self._cache["family"]
        if "direction_norms" not in family:
            norms = np.linalg.norm(self.directions, axis=1)
            norms.flags.writeable = False
            family["direction_norms"] = norms
        result: FloatArray = family["direction_norms"]
        return result

    @property
    def constraint_matrix(self) -> FloatArray:
        """A = W Dᵀ, shape (k, d_sae), float64; computed once per decoder family (shared by
        `with_rhs` siblings)."""
        family = self._cache["family"]
        if "A" not in family:
            a = np.ascontiguousarray(self.decoder_times(self.directions.T).T)
            a.flags.writeable = False
            family["A"] = a
        result: FloatArray = family["A"]
        return result

    @property
    def already_satisfied(self) -> bool:
        """True when δ = 0 is feasible (every r ≤ 0): the input is already past the margin."""
        return bool(np.all(self.rhs <= 0))

    def same_structure(self, other: SteeringProblem) -> bool:
        """True when `other` differs from this problem in r only (the contract of a batch), so
        one model or factorisation serves both."""
        if self.kind is not other.kind or self.lam != other.lam or self.eps != other.eps:
            return False
        if (self.costs is None) != (other.costs is None) or (
            self.costs is not None
            and self.costs is not other.costs
            and not np.array_equal(self.costs, other.costs)  # type: ignore[arg-type]
        ):
            return False
        for x, y in ((self.decoder, other.decoder), (self.directions, other.directions)):
            if x is not y and (x.shape != y.shape or not np.array_equal(x, y)):
                return False
        return True

    def steering_vector(self, delta: Any) -> FloatArray:
        """Dᵀδ, shape (d_model,), float64. A sparse δ touches only its support's rows."""
        d = np.asarray(delta, dtype=np.float64)
        support = np.flatnonzero(d)
        if self.decoder.dtype == np.float64:
            result: FloatArray = self.decoder.T @ d
            return result
        if support.size * 4 < d.size:
            result = self.decoder[support].astype(np.float64).T @ d[support]
            return result
        result = np.zeros(self.d_model)
        for start, block in self.dictionary.blocks64():
            result += block.T @ d[start : start + block.shape[0]]
        return result

    def objective(self, delta: Any) -> float:
        """The objective value of δ (whether or not it is feasible)."""
        d = np.asarray(delta, dtype=np.float64)
        if self.costs is None:
            value = float(d.sum())
        else:
            used = np.flatnonzero(d)  # 0 · inf is no cost: an excluded feature left at zero
            value = float(self.costs[used] @ d[used])
        if self.kind is ProblemKind.QP:
            v = self.steering_vector(d)
            assert self.lam is not None
            value += 0.5 * self.lam * float(v @ v)
        return value

    def violation(self, delta: Any) -> float:
        """The largest constraint violation of δ (0 when feasible): bounds, concept, norm."""
        d = np.asarray(delta, dtype=np.float64)
        v = self.steering_vector(d)  # A δ = W (Dᵀδ): no pass over the whole decoder
        worst = max(0.0, float(-d.min()))
        worst = max(worst, float(np.max(self.rhs - self.directions @ v)))
        if self.kind is ProblemKind.SOCP:
            assert self.eps is not None
            worst = max(worst, float(np.linalg.norm(v)) - self.eps)
        return worst

    def __repr__(self) -> str:
        return f"SteeringProblem({self.describe()})"

    def describe(self) -> str:
        """One line: kind, sizes and parameter."""
        param = f"λ = {self.lam:g}" if self.kind is ProblemKind.QP else f"ε = {self.eps:g}"
        weights = ""
        if self.costs is not None:
            excluded = int(np.isinf(self.costs).sum())
            weights = ", cost-weighted" + (f" ({excluded} excluded)" if excluded else "")
        return (
            f"{self.kind.value.upper()} over {self.d_sae} features (d_model {self.d_model}), "
            f"{self.n_constraints} constraint{'s' if self.n_constraints != 1 else ''}, "
            f"{param}{weights}"
        )
