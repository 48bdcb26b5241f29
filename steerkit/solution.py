"""What a solver returns: δ, a status, and the numbers that say how good it is.

Every Solution built with `Solution.build` carries figures the core computes itself from δ and the
problem — objective, constraint violation — and, when the backend hands over its multipliers, a
KKT certificate: the duality gap and the largest dual-feasibility violation over all d_sae features.
Those figures do not trust the backend's own word.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs
import numpy as np

from steerkit._arrays import FloatArray, blocks64, describe, gathered64, readonly, to_numpy
from steerkit.errors import InfeasibleError, SolverError, ValidationError
from steerkit.problem import ProblemKind, SteeringProblem

__all__ = ["Certificate", "Duals", "Figures", "Solution", "Status", "certify_many"]

_OWNER = "Solution"

#: Entries below this fraction of the largest entry of δ do not count towards L0.
L0_RELATIVE_THRESHOLD = 1e-5


class Status(str, enum.Enum):
    """How a solve ended."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    ITERATION_LIMIT = "iteration_limit"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(eq=False)
class Duals:
    """Lagrange multipliers: `linear` (k,) ≥ 0 for A δ ≥ r, `norm` ≥ 0 for ‖Dᵀδ‖ ≤ ε (SOCP)."""

    linear: FloatArray
    norm: float | None = None


@attrs.frozen
class Certificate:
    """KKT figures for (δ, duals), computed over every feature.

    `gap`: primal minus dual objective, relative to max(1, |objective|).
    `dual_infeasibility`: minus the most negative reduced cost, or of a multiplier (0 when dual
    feasible).
    """

    gap: float
    dual_infeasibility: float


class _Support:
    """δ's support, its decoder rows in float64 and v = Dᵀδ, gathered once for every figure."""

    __slots__ = ("index", "rows", "v")

    def __init__(self, problem: SteeringProblem, delta: FloatArray) -> None:
        self.index = np.flatnonzero(delta)
        if problem.decoder.dtype == np.float64 or self.index.size * 4 >= delta.size:
            self.rows = None
            self.v = problem.steering_vector(delta)
        else:
            self.rows = problem.decoder[self.index].astype(np.float64)
            self.v = self.rows.T @ delta[self.index]

    def reduced(self, problem: SteeringProblem, u: FloatArray) -> FloatArray:
        """dᵢ·u over the support, float64."""
        if self.rows is not None:
            result: FloatArray = self.rows @ u
            return result
        return problem.decoder[self.index].astype(np.float64) @ u

    def objective(self, problem: SteeringProblem, delta: FloatArray) -> float:
        """`SteeringProblem.objective` from the gathered figures."""
        used = delta[self.index]
        value = (
            float(used.sum()) if problem.costs is None else float(problem.costs[self.index] @ used)
        )
        if problem.kind is ProblemKind.QP:
            assert problem.lam is not None
            value += 0.5 * problem.lam * float(self.v @ self.v)
        return value

    def violation(self, problem: SteeringProblem, delta: FloatArray) -> float:
        """`SteeringProblem.violation` from the gathered figures."""
        worst = max(0.0, float(-delta.min()))
        worst = max(worst, float(np.max(problem.rhs - problem.directions @ self.v)))
        if problem.kind is ProblemKind.SOCP:
            assert problem.eps is not None
            worst = max(worst, float(np.linalg.norm(self.v)) - problem.eps)
        return worst


def certificate(
    problem: SteeringProblem, delta: FloatArray, duals: Duals, support: _Support | None = None
) -> Certificate:
    """The duality gap and dual-feasibility violation of δ with the given multipliers.

    QP, with s = c + λ D Dᵀδ − Aᵀμ:  gap = δᵀs + μᵀ(Aδ − r), the Wolfe dual at δ.
    SOCP, with u = Dᵀδ/‖Dᵀδ‖ and s = c − Aᵀμ + ν D u:  gap = cᵀδ − μᵀr + νε.
    c: the problem's costs (ones when unweighted; an infinite cost's reduced cost is +inf).
    In both, s ≥ 0 makes the dual point feasible, so the gap is then a true optimality bound.
    """
    mu = np.asarray(duals.linear, dtype=np.float64)
    if mu.shape != (problem.n_constraints,):
        raise ValidationError(
            "Duals", "linear", f"shape ({problem.n_constraints},)", describe(duals.linear)
        )
    gathered = support if support is not None else _Support(problem, delta)
    v = gathered.v
    objective = gathered.objective(problem, delta)
    # Aᵀμ = D Wᵀμ, so every reduced cost is sᵢ = cᵢ + dᵢ·u for one vector u (d_model,)
    u = -(problem.directions.T @ mu)
    known = None
    if problem.kind is ProblemKind.QP:
        assert problem.lam is not None
        u += problem.lam * v
        index = gathered.index
        offsets = 1.0 if problem.costs is None else problem.costs[index]
        on_support = offsets + gathered.reduced(problem, u)
        known = (index, on_support)
        gap = float(delta[index] @ on_support + mu @ (problem.directions @ v - problem.rhs))
    else:
        assert problem.eps is not None
        nu = float(duals.norm or 0.0)
        norm_v = float(np.linalg.norm(v))
        if norm_v > 0 and nu > 0:
            u += (nu / norm_v) * v
        linear = objective  # cᵀδ: the SOCP's objective
        gap = float(linear - mu @ problem.rhs + nu * problem.eps)
    return Certificate(
        gap=abs(gap) / max(1.0, abs(objective)),
        dual_infeasibility=max(
            _negative(mu, duals.norm if problem.kind is ProblemKind.SOCP else None),
            -_reduced_cost_floor(problem, u, known),
        ),
    )


def _negative(mu: FloatArray, nu: float | None) -> float:
    """How far the multipliers are below 0 (μ ≥ 0, ν ≥ 0 are dual feasibility too), at least 0."""
    return max(0.0, -float(mu.min(initial=0.0)), -float(nu or 0.0))


#: The δ that `Solution.build` is making from the core's own figures (per thread).
_made = threading.local()
_made.delta = None

#: Bytes of the float64 blocks of decoder rows a batch of certificates multiplies at a time
#: (`certify_many`). Rows that fit one block are gathered and converted once for both products
#: (a single answer's support: a fresh float64 buffer per product cost ~0.45 ms of page faults
#: at L0 268 on the 4096 × 640 SAE); else they are gathered once, in the decoder's precision,
#: when they take at most _GATHER_BYTES and converted a block at a time, twice (once per
#: product), else gathered a block at a time — gathering a chunk's whole union at once (up to
#: 32 MB at Gemma-2-2B scale) was the grid's memory peak.
_BLOCK_BYTES = 4 * 2**20
_GATHER_BYTES = 8 * 2**20


@attrs.frozen
class Figures:
    """What `certify_many` computes for one answer: the core's objective, violation and
    certificate of δ (given by its support and values) with the backend's multipliers."""

    objective: float
    violation: float
    certificate: Certificate


def certify_many(
    problems: list[SteeringProblem],
    supports: list[tuple[np.ndarray[Any, Any], FloatArray]],
    duals: list[Duals],
) -> list[Figures]:
    """`Solution.build`'s figures for many answers on one Decoder (unit costs), computed together:
    the rows of every support are gathered in float64 once, Dᵀδ of every answer and the support's
    reduced costs are two matrix products, and the reduced costs over every feature are screened
    together (`Decoder.min_reduced_costs`). supports: (index, values) of δ's non-zero entries,
    index sorted and unique. The rows of the supports' union are gathered once while they take
    at most _GATHER_BYTES, else a block at a time."""
    if not problems:
        return []
    dictionary = problems[0].dictionary
    if any(p.dictionary is not dictionary or p.costs is not None for p in problems):
        raise ValueError("certify_many: problems on one Decoder, without costs")
    union = np.unique(np.concatenate([index for index, _ in supports] or [np.empty(0, int)]))
    block = max(1, _BLOCK_BYTES // (8 * dictionary.d_model))
    if union.size <= block:  # one block: gathered and converted once, for both products
        rows64 = np.asarray(dictionary.array[union], dtype=np.float64)

        def row_blocks() -> Iterator[tuple[int, FloatArray]]:
            return iter([(0, rows64)])
    elif union.size * dictionary.d_model * dictionary.dtype.itemsize <= _GATHER_BYTES:
        gathered = dictionary.array[union]  # once, then converted a block at a time

        def row_blocks() -> Iterator[tuple[int, FloatArray]]:
            return blocks64(gathered, block)
    else:

        def row_blocks() -> Iterator[tuple[int, FloatArray]]:
            return gathered64(dictionary.array, union, block)

    m = len(problems)
    places = [np.searchsorted(union, index) for index, _ in supports]
    weights = np.zeros((union.size, m))
    for j, (place, (_, values)) in enumerate(zip(places, supports)):
        weights[place, j] = values
    vs = np.zeros((dictionary.d_model, m))
    for start, part in row_blocks():
        vs += part.T @ weights[start : start + part.shape[0]]
    vs = vs.T  # (m, d_model): Dᵀδ of every answer
    for problem, dual in zip(problems, duals):
        if np.shape(dual.linear) != (problem.n_constraints,):
            raise ValidationError(
                "Duals", "linear", f"shape ({problem.n_constraints},)", describe(dual.linear)
            )
    directions = np.stack([p.directions for p in problems])  # (m, k, d_model)
    rhs = np.stack([p.rhs for p in problems])  # (m, k)
    mus = np.stack([np.asarray(d.linear, dtype=np.float64) for d in duals])  # (m, k)
    qp = np.array([p.kind is ProblemKind.QP for p in problems])
    lams = np.array([p.lam if p.lam is not None else 0.0 for p in problems])
    eps = np.array([p.eps if p.eps is not None else 0.0 for p in problems])
    nus = np.array([0.0 if q else float(d.norm or 0.0) for q, d in zip(qp, duals)])
    reached = np.einsum("mkd,md->mk", directions, vs)
    # −min δ (0 counts: a support never covers the gathered rows and beyond), A δ ≥ r, ‖v‖ ≤ ε
    violations = np.maximum(0.0, -weights.min(axis=0, initial=0.0))
    violations = np.maximum(violations, (rhs - reached).max(axis=1))
    norms = np.sqrt(np.einsum("md,md->m", vs, vs))
    violations = np.where(qp, violations, np.maximum(violations, norms - eps))
    objectives = weights.sum(axis=0) + np.where(qp, 0.5 * lams * norms**2, 0.0)
    # every reduced cost is 1 + dᵢ·u, u = −Wᵀμ + λ v (QP) or + (ν/‖v‖) v (SOCP, ν, ‖v‖ > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(qp, lams, np.where((nus > 0) & (norms > 0), nus / norms, 0.0))
    us = scale[:, None] * vs - np.einsum("mk,mkd->md", mus, directions)
    on_rows = np.empty((union.size, m))  # reduced costs of the gathered rows
    for start, part in row_blocks():
        on_rows[start : start + part.shape[0]] = part @ us.T
    on_rows += 1.0
    # QP: δᵀs + μᵀ(Aδ − r), the Wolfe dual at δ; SOCP: cᵀδ − μᵀr + νε
    gaps = np.where(
        qp,
        np.einsum("im,im->m", weights, on_rows) + np.einsum("mk,mk->m", mus, reached - rhs),
        objectives - np.einsum("mk,mk->m", mus, rhs) + nus * eps,
    )
    known = [
        (index, on_rows[place, j]) for j, ((index, _), place) in enumerate(zip(supports, places))
    ]
    floors = dictionary.min_reduced_costs(us, known)
    below = np.maximum(0.0, np.maximum(-mus.min(axis=1, initial=0.0), -nus))  # μ, ν ≥ 0 too
    return [
        Figures(
            objective=float(objectives[j]),
            violation=float(violations[j]),
            certificate=Certificate(
                gap=abs(float(gaps[j])) / max(1.0, abs(float(objectives[j]))),
                dual_infeasibility=max(float(below[j]), -float(floors[j])),
            ),
        )
        for j in range(m)
    ]


def _reduced_cost_floor(
    problem: SteeringProblem,
    u: FloatArray,
    known: tuple[np.ndarray[Any, Any], FloatArray] | None = None,
) -> float:
    """m with max(0, −m) = max(0, −minᵢ sᵢ): unit costs are screened against the dual points the
    problem's Decoder keeps (`Decoder.min_reduced_cost`, O(d_sae) work for an answer near one),
    cost-weighted problems take the full pass (`_min_reduced_cost`)."""
    if problem.costs is None:
        return problem.dictionary.min_reduced_cost(u, known)
    return _min_reduced_cost(problem, u)


def _min_reduced_cost(problem: SteeringProblem, u: FloatArray) -> float:
    """min over all d_sae features of cᵢ + dᵢ·u (cᵢ = 1 unweighted), to float64 accuracy, in one
    full pass over the decoder (no kept dual point is used or kept).

    A float32 decoder is multiplied in float32 (one pass, no copy); the features whose exact
    value could be the minimum, given the product's worst-case rounding bound
    |dᵢ·u − estimateᵢ| ≤ (d_model + 2)·2⁻²⁴·‖dᵢ‖‖u‖, are then recomputed in float64.
    """
    decoder = problem.decoder
    costs = problem.costs
    if decoder.dtype == np.float64:
        values = decoder @ u
        return 1.0 + float(values.min()) if costs is None else float((costs + values).min())
    estimate = (decoder @ u.astype(np.float32)).astype(np.float64)
    if costs is not None:
        estimate += costs
    scale = (problem.d_model + 2) * 2.0**-24 * 1.01 * float(np.linalg.norm(u))
    bound = problem.row_norm_bounds * scale
    candidates = np.flatnonzero(estimate - bound <= float((estimate + bound).min()))
    exact = decoder[candidates].astype(np.float64) @ u
    if costs is None:
        return 1.0 + float(exact.min())
    return float((costs[candidates] + exact).min())


def _status(value: Any) -> Status:
    try:
        return Status(value)
    except ValueError as e:
        allowed = ", ".join(s.value for s in Status)
        raise ValidationError(_OWNER, "status", f"one of {allowed}", repr(value)) from e


def _flags(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


class _Sparse:
    """δ given by its non-zero entries (index sorted and unique, values finite), as the core
    certified it (`certify_many`): the dense (d_sae,) array is made the first time
    `Solution.delta` is read. A sweep that reads an answer's figures, L0 or support never
    writes its d_sae zeros (on the GPT-2-scale grid, 2,304 dense δ of 24576 were ~0.13 s of
    1.4 s, most of it the kernel's fresh pages)."""

    __slots__ = ("index", "size", "values")

    def __init__(self, index: np.ndarray[Any, Any], values: FloatArray, size: int) -> None:
        self.index, self.values, self.size = index, values, size

    def dense(self) -> FloatArray:
        delta = np.zeros(self.size)
        delta[self.index] = self.values
        return readonly(delta)


@attrs.frozen(eq=False, repr=False)
class Solution:
    """A solver's answer to a SteeringProblem.

    delta: (d_sae,) ≥ 0 over every SAE feature, or None when there is no solution (never a
    silent zero vector). objective, violation and the certificate are computed from δ by the core;
    `gap` and `dual_infeasibility` are NaN when the backend gave no multipliers.
    """

    status: Status = attrs.field(converter=_status)
    #: δ (the `delta` property), or its non-zero entries until it is first read
    _delta: FloatArray | _Sparse | None
    objective: float
    gap: float
    violation: float
    dual_infeasibility: float
    iterations: int | None
    seconds: float
    solver: str
    message: str = ""
    duals: Duals | None = None
    flags: frozenset[str] = attrs.field(default=frozenset(), converter=_flags)
    info: Mapping[str, Any] = attrs.field(factory=dict)
    #: set by the core once `steerkit.answer` has checked this Solution (not part of its value)
    _checked: bool = attrs.field(default=False, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.status is Status.OPTIMAL and self._delta is None:
            raise ValidationError(_OWNER, "delta", "an array for an optimal solution", "None")
        if self._delta is not None and not isinstance(self._delta, _Sparse):
            delta = to_numpy(_OWNER, "delta", self._delta).astype(np.float64, copy=False)
            if delta.ndim != 1:
                raise ValidationError(_OWNER, "delta", "shape (d_sae,)", describe(self._delta))
            made = getattr(_made, "delta", None) is self._delta and math.isfinite(self.objective)
            if not made and not np.isfinite(delta).all():
                raise ValidationError(_OWNER, "delta", "finite values", "NaN or inf entries")
            object.__setattr__(self, "_delta", readonly(delta))
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValidationError(_OWNER, "seconds", "a finite number ≥ 0", repr(self.seconds))
        if not self.solver:
            raise ValidationError(_OWNER, "solver", "the backend's name", repr(self.solver))

    @classmethod
    def build(
        cls,
        problem: SteeringProblem,
        delta: Any,
        *,
        status: Status | str,
        solver: str,
        seconds: float,
        iterations: int | None = None,
        message: str = "",
        duals: Duals | None = None,
        flags: Iterable[str] = (),
        info: Mapping[str, Any] | None = None,
        _figures: Figures | None = None,
    ) -> Solution:
        """A Solution whose objective, violation and certificate are computed here from δ.
        (`_figures`: the core's own, from `certify_many`, for a float64 δ the core made from
        finite values — kept as it is, its finiteness not checked again — or for the `_Sparse`
        δ it certified, made dense when first read.)"""
        figures = _figures
        status = _status(status)
        d: FloatArray | None = None
        cert: Certificate | None = None
        objective = violation = math.nan
        stored: FloatArray | _Sparse | None = None
        if isinstance(delta, _Sparse):  # the core's own, certified by `certify_many`
            if figures is None or delta.size != problem.d_sae:
                raise ValueError("Solution.build: a sparse δ comes with the core's figures")
            cert, objective, violation = figures.certificate, figures.objective, figures.violation
            stored = delta
        elif delta is not None:
            d = to_numpy(_OWNER, "delta", delta).astype(np.float64, copy=figures is None)
            d = d.reshape(-1)
            if d.shape != (problem.d_sae,):
                raise ValidationError(_OWNER, "delta", f"shape ({problem.d_sae},)", describe(delta))
            if figures is None:
                gathered = _Support(problem, d)
                cert = certificate(problem, d, duals, gathered) if duals is not None else None
                objective = gathered.objective(problem, d)
                violation = gathered.violation(problem, d)
            else:
                cert, objective, violation = (
                    figures.certificate,
                    figures.objective,
                    figures.violation,
                )
                _made.delta = d  # finite: its figures are (and every fresh page stays untouched)
            stored = d
        try:
            return cls(
                status=status,
                delta=stored,
                objective=objective,
                gap=cert.gap if cert else math.nan,
                violation=violation,
                dual_infeasibility=cert.dual_infeasibility if cert else math.nan,
                iterations=iterations,
                seconds=seconds,
                solver=solver,
                message=message,
                duals=duals,
                flags=_flags(flags),
                info=dict(info or {}),
            )
        finally:
            _made.delta = None

    @classmethod
    def satisfied(
        cls,
        problem: SteeringProblem,
        *,
        solver: str,
        seconds: float = 0.0,
        info: Mapping[str, Any] | None = None,
    ) -> Solution:
        """δ = 0 for an input already past every margin (r ≤ 0), flagged `already_satisfied`.

        Optimal without a solve: δ = 0 is feasible and the objective is ≥ 0 on δ ≥ 0 with equality
        only there; μ = 0 (and ν = 0) certify it, every reduced cost being cᵢ > 0 (1 unweighted).
        """
        if not problem.already_satisfied:
            raise ValidationError(
                _OWNER, "problem", "every right-hand side ≤ 0", f"max r = {problem.rhs.max():.6g}"
            )
        return cls.build(
            problem,
            np.zeros(problem.d_sae),
            status=Status.OPTIMAL,
            solver=solver,
            seconds=seconds,
            iterations=0,
            message="r ≤ 0: the input is already past the margin, δ = 0 is optimal",
            duals=Duals(
                linear=np.zeros(problem.n_constraints),
                norm=0.0 if problem.kind is ProblemKind.SOCP else None,
            ),
            flags={"already_satisfied"},
            info=info,
        )

    @classmethod
    def failure(
        cls,
        *,
        solver: str,
        message: str,
        seconds: float,
        status: Status | str = Status.ERROR,
        iterations: int | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> Solution:
        """A Solution without δ (error, iteration limit, infeasible): the message says why."""
        if _status(status) is Status.OPTIMAL:
            raise ValidationError(_OWNER, "status", "a status other than optimal", "optimal")
        if not message:
            raise ValidationError(_OWNER, "message", "why there is no δ", "an empty message")
        return cls(
            status=_status(status),
            delta=None,
            objective=math.nan,
            gap=math.nan,
            violation=math.nan,
            dual_infeasibility=math.nan,
            iterations=iterations,
            seconds=seconds,
            solver=solver,
            message=message,
            duals=None,
            flags=frozenset(),
            info=dict(info or {}),
        )

    def __repr__(self) -> str:
        return (
            f"Solution({self.solver}: {self.status.value}, objective {self.objective:.6g}, "
            f"L0 {self.l0}, gap {self.gap:.1e}, violation {self.violation:.1e}, "
            f"{self.seconds:.3f} s)"
        )

    @property
    def delta(self) -> FloatArray | None:
        """δ, shape (d_sae,), read-only; None when there is no solution."""
        delta = self._delta
        if isinstance(delta, _Sparse):  # made once (two threads may both make it: equal)
            dense = delta.dense()
            object.__setattr__(self, "_delta", dense)
            return dense
        return delta

    @property
    def ok(self) -> bool:
        return self.status is Status.OPTIMAL

    def raise_for_status(self) -> Solution:
        """Self if optimal; otherwise raise InfeasibleError or SolverError with the message."""
        if self.status is Status.OPTIMAL:
            return self
        text = f"{self.solver}: {self.status.value}" + (f": {self.message}" if self.message else "")
        if self.status is Status.INFEASIBLE:
            raise InfeasibleError(text)
        raise SolverError(text)

    def support(self, relative_threshold: float = L0_RELATIVE_THRESHOLD) -> np.ndarray[Any, Any]:
        """Indices of the features whose δ exceeds `relative_threshold` × max δ."""
        delta = self._delta
        if delta is None:
            return np.empty(0, dtype=np.int64)
        values = delta.values if isinstance(delta, _Sparse) else delta
        top = float(values.max(initial=0.0))
        if top <= 0:
            return np.empty(0, dtype=np.int64)
        if isinstance(delta, _Sparse):
            return np.asarray(delta.index[values > relative_threshold * top], dtype=np.int64)
        return np.flatnonzero(delta > relative_threshold * top)

    @property
    def l0(self) -> int:
        """Number of features in the support (threshold: 1e-5 of the largest entry)."""
        return int(self.support().size)

    @property
    def l1(self) -> float:
        delta = self._delta
        if delta is None:
            return math.nan
        # over the non-zero entries in index order either way: the same sum before and after
        # a sparse δ is made dense
        values = delta.values if isinstance(delta, _Sparse) else delta[delta != 0]
        return float(np.abs(values).sum())

    def summary(self) -> dict[str, Any]:
        """The figures as plain values, for tables and JSON."""
        return {
            "solver": self.solver,
            "status": self.status.value,
            "objective": self.objective,
            "gap": self.gap,
            "violation": self.violation,
            "dual_infeasibility": self.dual_infeasibility,
            "l0": self.l0,
            "l1": self.l1,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "flags": sorted(self.flags),
            "message": self.message,
        }
