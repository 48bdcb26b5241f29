"""The solver template's helpers: what a backend returns (`Answer`) and how the core turns it into
a Solution it can vouch for.

A backend built on the template (`Solver.solve_group`) only solves; the core does the rest, the
same way for every backend, ours or a third party's:

- `precheck`: decided once, before any backend runs — the backend's capability, r ≤ 0 (δ = 0 is
  optimal), a direction that no decoder row reaches (infeasible, relative to the decoder's scale),
  and numbers outside the range the core supports (declined, naming the range); `prechecks` does
  the same for a batch, the figures of problems that differ in r only computed together;
- `clean`: negative entries of δ that are rounding are set to 0 (larger ones are reported);
- `accept`: an answer the backend calls optimal is accepted only if the core's own figures agree —
  violation ≤ 1e-6·max(1, |r|), a finite objective, and a duality gap ≤ 1e-5 (relative) or
  multipliers the core computes itself that certify it; otherwise the Solution is not optimal and
  its message says why;
- `infeasible_message`: why a problem has no solution and which setting to change.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import attrs
import numpy as np

from steerkit._arrays import FloatArray
from steerkit._blas import one_thread_when_busy
from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.solution import (
    Duals,
    Solution,
    Status,
    _negative,
    _Sparse,
    certificate,
    certify_many,
)

__all__ = [
    "CERTIFY_TOL",
    "CLIP_RELATIVE",
    "FEASIBILITY_RTOL",
    "GAP_RTOL",
    "ORTHOGONAL_RTOL",
    "RANGE",
    "Answer",
    "Outcome",
    "accept",
    "accept_many",
    "all_excluded",
    "allowed_violation",
    "blocked_directions",
    "check",
    "clean",
    "infeasible_message",
    "is_checked",
    "out_of_range",
    "precheck",
    "prechecks",
    "recompute_duals",
    "refuse_unless_verified",
    "relative_dual_infeasibility",
    "reweigh",
    "verify",
]

#: An optimal answer may violate no constraint by more than this, relative to max(1, max |r|).
FEASIBILITY_RTOL = 1e-6
#: An optimal answer's duality gap (relative to max(1, |objective|)) must be at most this, and
#: its multipliers' dual infeasibility (minus the most negative reduced cost) at most this, or
#: at most this relative to each reduced cost's terms (`relative_dual_infeasibility`): the gap
#: bounds the distance to the optimum only at a dual feasible point ...
GAP_RTOL = 1e-5
#: ... unless multipliers the core computes certify it: gap and dual infeasibility at most this.
CERTIFY_TOL = 1e-5
#: Negative entries of δ no larger in magnitude than this fraction of max |δ| are rounding.
CLIP_RELATIVE = 1e-7
#: A direction wᵢ is orthogonal to every decoder row when maxⱼ dⱼ·wᵢ ≤ this · ‖wᵢ‖ · maxⱼ ‖dⱼ‖
#: (float64 rounding of a dot product of a few thousand terms is ~1e-13 of that scale).
ORTHOGONAL_RTOL = 1e-12
#: The magnitudes the core solves: ‖dⱼ‖, ‖wᵢ‖, positive rᵢ, λ or ε, and the size of δ and of the
#: objective derived from them, must lie in [RANGE[0], RANGE[1]] (beyond, products of them
#: overflow or underflow float64 in the backends).
RANGE = (1e-100, 1e100)


class Outcome(str, enum.Enum):
    """How a backend's solve of one problem ended, in the classes the core distinguishes."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    LIMIT = "limit"  # an iteration or time limit
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def _outcome(value: Any) -> Outcome:
    return value if isinstance(value, Outcome) else Outcome(str(value))


@attrs.frozen(eq=False)
class Answer:
    """What a backend returns for one problem; the core's `accept` makes the Solution.

    outcome: optimal, infeasible, limit or error. delta (d_sae,): the backend's point, required for
    an optimal outcome (cleaned and checked by the core). duals: the backend's multipliers, if it
    has them (the core checks them, and computes its own when they do not certify the point).
    inaccurate: the backend itself doubts the answer. message: what the backend says (e.g. its raw
    status); advice: what the user should change if the answer is refused or fails (e.g. "raise
    max_iter"). min_eps: for an infeasible SOCP, the smallest feasible ε when the backend knows it;
    reason: why there is no solution, when the backend can say it better than the core's message.
    seconds: this problem's own time, when the backend measures it (else the core does).
    support: instead of a dense δ, (index, values) of its non-zero entries (index unique): the
    core then makes the dense δ itself, once, and checks a batch of such answers together.
    """

    outcome: Outcome = attrs.field(converter=_outcome)
    delta: Any = None
    duals: Duals | None = None
    iterations: int | None = None
    inaccurate: bool = False
    message: str = ""
    advice: str = ""
    min_eps: float | None = None
    reason: str = ""
    flags: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    info: Mapping[str, Any] = attrs.field(factory=dict)
    seconds: float | None = None
    support: tuple[Any, Any] | None = None


def allowed_violation(problem: SteeringProblem) -> float:
    """The largest constraint violation an optimal answer may have: 1e-6 · max(1, max |r|)."""
    return FEASIBILITY_RTOL * max(1.0, float(np.abs(problem.rhs).max()))


def clean(delta: Any) -> tuple[np.ndarray[Any, Any], set[str], list[str]]:
    """(δ, flags, notes): negative entries that are rounding (≥ −1e-7 · max |δ|) set to 0; larger
    ones are kept, for the core's violation figure, and reported."""
    d = np.asarray(delta, dtype=np.float64).reshape(-1)
    return _clip(d, d.size)


def _clip(values: FloatArray, size: int) -> tuple[FloatArray, set[str], list[str]]:
    """`clean` of δ's entries `values` (all of them, or its non-zero ones out of `size`)."""
    flags: set[str] = set()
    notes: list[str] = []
    top = float(np.abs(values).max(initial=0.0))
    tiny = values >= -CLIP_RELATIVE * top
    values = np.where(tiny & (values < 0), 0.0, values)
    if not tiny.all():
        lowest = float(values.min()) if values.size == size else min(0.0, float(values.min()))
        flags.add("negative_entries")
        notes.append(
            f"{int((~tiny).sum())} entries of δ are negative beyond rounding (min {lowest:.3g})"
        )
    return values, flags, notes


def blocked_directions(problem: SteeringProblem) -> list[int]:
    """The directions i with rᵢ > 0 that no decoder row reaches: maxⱼ dⱼ·wᵢ is at most
    ORTHOGONAL_RTOL of the decoder's scale ‖wᵢ‖ · maxⱼ ‖dⱼ‖ (no δ ≥ 0 can meet them)."""
    positive = np.flatnonzero(problem.rhs > 0)
    if positive.size == 0:
        return []
    reached = _directions_reached(problem, positive)[2]
    return [int(i) for i in positive if i not in reached]


def _directions_reached(
    problem: SteeringProblem, positive: np.ndarray[Any, Any]
) -> tuple[float, float, list[int]]:
    """(smallest ‖wᵢ‖, largest ‖wᵢ‖, the directions some decoder row reaches) over the
    directions `positive`; kept per decoder family and set of directions (a batch's problems
    differ in r only, so every precheck of it reads the same)."""
    family = problem._cache["family"]
    key = ("reached", positive.tobytes())
    found = family.get(key)
    if found is None:
        norms = problem.direction_norms[positive]
        top = problem.max_alignment
        with np.errstate(over="ignore"):
            scale = norms * problem.max_row_norm
        reached = [int(i) for i, s in zip(positive, scale) if top[i] > ORTHOGONAL_RTOL * s]
        found = family[key] = (float(norms.min()), float(norms.max()), reached)
    return found  # type: ignore[no-any-return]


def out_of_range(problem: SteeringProblem) -> str | None:
    """Why `problem`'s numbers are outside the range the core solves (RANGE), or None."""
    lo, hi = RANGE
    positive = np.flatnonzero(problem.rhs > 0)
    for name, values in _range_figures(problem, problem.rhs[None, :], positive):
        if not _in_range(values)[0]:
            value = float(values[0])
            return (
                f"{name} is {value:.3g}, outside the range the solvers support "
                f"[{lo:.0e}, {hi:.0e}] (decoder row norms, direction norms, r, λ or ε, and the "
                f"size of δ they imply); rescale the data into this range (scaling the "
                f"directions W and r by one factor leaves δ unchanged)"
            )
    return None


def _range_figures(
    problem: SteeringProblem, rhs: FloatArray, positive: np.ndarray[Any, Any]
) -> list[tuple[str, FloatArray]]:
    """RANGE's figures, each named and with one value per row of `rhs` (m, k): right-hand sides
    of `problem`'s family whose positive entries are the directions `positive` (the same for
    every row) — what `out_of_range` checks for one problem and `prechecks` for many at once."""
    m = rhs.shape[0]
    rows = problem.max_row_norm
    figures = [("the largest decoder row norm", np.full(m, rows))]
    if positive.size:
        smallest, largest, reached = _directions_reached(problem, positive)
        r = rhs[:, positive]
        figures += [
            ("the smallest direction norm", np.full(m, smallest)),
            ("the largest direction norm", np.full(m, largest)),
            ("the largest r", r.max(axis=1)),
            ("the smallest positive r", r.min(axis=1)),
        ]
        if reached:
            with np.errstate(all="ignore"):  # an overflow is reported as inf
                reach = (rhs[:, reached] / problem.max_alignment[reached]).max(axis=1)
                figures.append(("the size of δ (r / max Dw)", reach))
                if problem.kind is ProblemKind.QP:
                    assert problem.lam is not None
                    energy = np.float64(problem.lam) * (reach * rows) ** 2
                    figures.append(("λ (r ‖d‖ / max Dw)², the size of λ‖Dᵀδ‖²", energy))
    if problem.kind is ProblemKind.QP:
        figures.append(("λ", np.full(m, float(problem.lam or 0.0))))
    else:
        figures.append(("ε", np.full(m, float(problem.eps or 0.0))))
    return figures


def _in_range(values: FloatArray) -> np.ndarray[Any, Any]:
    """Whether each value lies in RANGE; an exact zero is no scale and passes (a zero direction
    or decoder is unreachable: infeasible, not out of range)."""
    lo, hi = RANGE
    with np.errstate(invalid="ignore"):
        inside: np.ndarray[Any, Any] = (values == 0.0) | (
            np.isfinite(values) & (values >= lo) & (values <= hi)
        )
    return inside


def precheck(problem: SteeringProblem, solver: Any, *, satisfied: bool = True) -> Solution | None:
    """The Solution the core decides without a backend, or None when the backend must solve.

    In order: the backend cannot solve the problem (error, with its reason); r ≤ 0 (δ = 0,
    optimal); numbers outside RANGE (error, naming the range); a direction with r > 0 that no
    decoder row reaches (infeasible). `solver`: the backend class or instance.
    """
    name = str(solver.name)
    reason = solver.cannot_solve(problem)
    if reason is not None:
        return _failure(problem, name, Status.ERROR, f"{name} {reason}")
    if problem.already_satisfied:
        if not satisfied:
            return None  # the backend answers these itself
        zero = Solution.satisfied(problem, solver=name)
        _mark(zero)
        return zero
    reason = out_of_range(problem)
    if reason is not None:
        return _failure(problem, name, Status.ERROR, f"{name} declined: {reason}")
    if blocked_directions(problem):
        return _failure(problem, name, Status.INFEASIBLE, infeasible_message(problem))
    return None


#: Fewer problems of one family than this are prechecked one by one (`prechecks`).
_TOGETHER = 8


def prechecks(
    problems: Sequence[SteeringProblem], solver: Any, *, satisfied: bool = True
) -> list[Solution | None]:
    """`precheck` of every problem, the same Solutions. The problems made from one by
    `with_rhs` (they share its cache, so they differ in r only) whose every r is positive have
    RANGE's figures computed together from their stacked r; those whose figures are all in
    range and whose directions some row reaches are left to the backend (None) without a
    precheck each; every other problem goes through `precheck` itself, which says why."""
    out: list[Solution | None] = [None] * len(problems)
    families: dict[int, list[int]] = {}
    for j, problem in enumerate(problems):
        families.setdefault(id(problem._cache), []).append(j)
    alone: list[int] = []
    for members in families.values():
        first = problems[members[0]]
        if len(members) < _TOGETHER or any(not _siblings(first, problems[j]) for j in members[1:]):
            alone += members
            continue
        rhs = np.stack([problems[j].rhs for j in members])  # (m, k)
        clear = _in_range_together(first, rhs)
        for j, fine in zip(members, clear):
            if not fine or solver.cannot_solve(problems[j]) is not None:
                alone.append(j)
    for j in alone:
        out[j] = precheck(problems[j], solver, satisfied=satisfied)
    return out


def _siblings(first: SteeringProblem, other: SteeringProblem) -> bool:
    """Whether `other` is `first` but for r: the same objects wherever `with_rhs` shares them."""
    return (
        other._cache is first._cache
        and other.kind is first.kind
        and other.dictionary is first.dictionary
        and other.directions is first.directions
        and other.costs is first.costs
        and other.lam == first.lam
        and other.eps == first.eps
    )


def _in_range_together(problem: SteeringProblem, rhs: FloatArray) -> np.ndarray[Any, Any]:
    """For each row of `rhs` (m, k), r of a sibling of `problem`: whether `precheck` would leave
    that sibling to the backend as far as r is concerned — every r positive (not satisfied),
    every figure of `out_of_range` within RANGE (`_range_figures`, the same computation), every
    direction reached. False means: ask `precheck`."""
    every = np.arange(rhs.shape[1])
    if len(_directions_reached(problem, every)[2]) < every.size:  # a blocked direction
        return np.zeros(rhs.shape[0], dtype=bool)  # (infeasible: `precheck` says which)
    fine: np.ndarray[Any, Any] = np.asarray((rhs > 0).all(axis=1))
    for _, values in _range_figures(problem, rhs, every):
        fine &= _in_range(values)
    return fine


def _failure(problem: SteeringProblem, solver: str, status: Status, message: str) -> Solution:
    socp = problem.kind is ProblemKind.SOCP
    info = {"min_eps": math.inf} if status is Status.INFEASIBLE and socp else {}
    solution = Solution.failure(
        solver=solver, message=message, seconds=0.0, status=status, info=info
    )
    _mark(solution)
    return solution


def infeasible_message(problem: SteeringProblem, min_eps: float | None = None) -> str:
    """Why the problem has no solution, and the setting to change (with the smallest feasible ε
    of an SOCP when it is known)."""
    parameter = "ε" if problem.kind is ProblemKind.SOCP else "λ"
    blocked = blocked_directions(problem)
    if blocked:
        top = float(problem.max_alignment[blocked].max())
        return (
            f"no δ ≥ 0 reaches the margin at any {parameter}: no decoder row has a positive "
            f"component along direction(s) {blocked}, which have r > 0 (max Dw = {top:.3g}, "
            f"at most {ORTHOGONAL_RTOL:.0e} of the decoder's scale ‖w‖·max‖d‖); choose another "
            f"concept direction or SAE"
        )
    if problem.kind is ProblemKind.SOCP and (min_eps is None or math.isfinite(min_eps)):
        hint = (
            f" to at least {min_eps:.6g} (the smallest feasible ε: the smallest ‖Dᵀδ‖ that "
            f"reaches them)"
            if min_eps is not None
            else ""
        )
        return (
            f"no δ ≥ 0 reaches the margins with ‖Dᵀδ‖ ≤ ε = {problem.eps:.6g}; increase ε{hint} "
            f"(or lower the margin r)"
        )
    return (
        f"no δ ≥ 0 satisfies A δ ≥ r for every direction at once (at any {parameter}): the "
        f"directions cannot be reached together by non-negative combinations of the decoder "
        f"rows; lower the margin r or drop a direction"
    )


def recompute_duals(problem: SteeringProblem, delta: np.ndarray[Any, Any]) -> Duals:
    """Multipliers computed by the core from δ alone: least squares on the stationarity
    conditions over δ's support (QP: cⱼ + λ dⱼ·v = aⱼᵀμ; SOCP: cⱼ = aⱼᵀμ − ν dⱼ·v/‖v‖), with μᵢ = 0
    for a constraint δ leaves slack and ν = 0 for a slack norm (complementary slackness), clipped at
    0. The activity tolerance is tried at 1e-6 and 1e-3 (relative); the multipliers with the
    better certificate are returned. Zero multipliers for δ = 0."""
    socp = problem.kind is ProblemKind.SOCP
    support = np.flatnonzero(delta > 1e-5 * float(delta.max(initial=0.0)))
    if support.size == 0:
        return Duals(linear=np.zeros(problem.n_constraints), norm=0.0 if socp else None)
    rows = problem.decoder[support].astype(np.float64)
    costs = np.ones(support.size) if problem.costs is None else problem.costs[support]
    v = problem.steering_vector(delta)
    a_support = rows @ problem.directions.T  # (|S|, k): column j of A on the support
    slack = problem.directions @ v - problem.rhs
    norm_v = float(np.linalg.norm(v))
    best: tuple[float, Duals] | None = None
    for tol in (1e-6, 1e-3):
        active = np.flatnonzero(slack <= tol * np.maximum(1.0, np.abs(problem.rhs)))
        columns = [a_support[:, active]]
        if socp:
            assert problem.eps is not None
            if norm_v > 0 and norm_v >= problem.eps * (1 - tol):
                columns.append(-(rows @ v)[:, None] / norm_v)
            target = costs
        else:
            assert problem.lam is not None
            target = costs + problem.lam * (rows @ v)
        matrix = np.hstack(columns)
        fitted = _nonnegative_least_squares(matrix, target)
        mu = np.zeros(problem.n_constraints)
        mu[active] = fitted[: active.size]
        nu = (float(fitted[active.size]) if fitted.size > active.size else 0.0) if socp else None
        duals = Duals(linear=mu, norm=nu)
        with np.errstate(all="ignore"):
            cert = certificate(problem, delta, duals)
        score = max(cert.gap, cert.dual_infeasibility)
        if best is None or score < best[0]:
            best = (score, duals)
    assert best is not None
    return best[1]


def _nonnegative_least_squares(matrix: np.ndarray[Any, Any], target: FloatArray) -> FloatArray:
    """argmin ‖M x − t‖ over x ≥ 0 (Lawson and Hanson's active-set method; M is small: the
    support's rows by the active constraints)."""
    n = matrix.shape[1]
    x = np.zeros(n)
    if n == 0:
        return x
    free = np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(float).eps * float(np.abs(matrix).sum(axis=0).max()) * max(matrix.shape)
    for _ in range(3 * n + 10):
        gradient = matrix.T @ (target - matrix @ x)
        if free.all() or float(np.max(np.where(free, -np.inf, gradient))) <= tol:
            break
        free[int(np.argmax(np.where(free, -np.inf, gradient)))] = True
        while True:
            z = np.zeros(n)
            z[free] = np.linalg.lstsq(matrix[:, free], target, rcond=None)[0]
            if z[free].min() > 0:
                x = z
                break
            blocking = free & (z <= 0)
            step = float(np.min(x[blocking] / (x[blocking] - z[blocking])))
            x = x + step * (z - x)
            free &= x > tol
            x[~free] = 0.0
    return x


def verify(problem: SteeringProblem, solution: Solution) -> tuple[Solution, str | None]:
    """(solution, None) when the core vouches for an optimal solution — possibly with the core's
    own multipliers attached — or (solution, why not). Non-optimal solutions pass unchanged."""
    if not solution.ok:  # an optimal Solution has δ (a sparse one is not made dense here)
        return solution, None
    if not math.isfinite(solution.objective):
        return solution, f"its objective is {solution.objective} (the numbers overflow)"
    allowed = allowed_violation(problem)
    if not solution.violation <= allowed:
        return solution, (
            f"its point violates the constraints by {solution.violation:.3g} (the core's figure; "
            f"allowed {allowed:.1g})"
        )
    relative = math.nan  # the dual infeasibility relative to the reduced costs' terms
    if solution.gap <= GAP_RTOL:
        if solution.dual_infeasibility <= GAP_RTOL:
            return solution, None
        relative = relative_dual_infeasibility(problem, solution)
        if relative <= GAP_RTOL:
            return solution, None
    duals = recompute_duals(problem, np.asarray(solution.delta))
    with np.errstate(all="ignore"):  # overflowing figures fail the test below
        cert = certificate(problem, np.asarray(solution.delta), duals)
    if cert.gap <= CERTIFY_TOL and cert.dual_infeasibility <= CERTIFY_TOL:
        return (
            attrs.evolve(
                solution,
                duals=duals,
                gap=cert.gap,
                dual_infeasibility=cert.dual_infeasibility,
                flags=solution.flags | {"duals_recomputed"},
            ),
            None,
        )
    if math.isnan(solution.gap):
        figures = "its duality gap is unknown (no multipliers)"
    elif math.isnan(relative):
        figures = f"its duality gap is {solution.gap:.3g} (allowed {GAP_RTOL:.0e})"
    else:
        figures = (
            f"its multipliers' dual infeasibility is {solution.dual_infeasibility:.3g} "
            f"({relative:.3g} relative to the reduced costs' terms; allowed {GAP_RTOL:.0e})"
        )
    return solution, f"{figures}, and no multipliers the core computes from δ certify it optimal"


def relative_dual_infeasibility(problem: SteeringProblem, solution: Solution) -> float:
    """maxᵢ −sᵢ / (cᵢ + ‖dᵢ‖·T), at least 0, over every feature, with the reduced costs
    sᵢ = cᵢ + dᵢ·u at `solution`'s multipliers and T the size of u's terms: ‖Wᵀμ‖ + λ‖Dᵀδ‖ for a
    QP (u = λDᵀδ − Wᵀμ), ‖Wᵀμ‖ + ν for an SOCP (u = −Wᵀμ + νDᵀδ/‖Dᵀδ‖) — the dual infeasibility
    measured, feature by feature, against what it is a difference of, as interior-point solvers
    measure their dual residual: at λ = 100 the two terms of u are ~100 times the unit cost and
    cancel to it on the support, so an answer exact to 1e-6 of them is dual infeasible by ~1e-4.
    The same figure for a cost-weighted problem and its unweighted form (rows dᵢ/cᵢ). A negative
    multiplier counts as it is (−μ, −ν). One float64 pass over the decoder: `verify` asks only
    when the absolute dual infeasibility exceeds its tolerance. NaN without multipliers."""
    if solution.duals is None or not solution.ok:
        return math.nan
    mu = np.asarray(solution.duals.linear, dtype=np.float64)
    nu = float(solution.duals.norm or 0.0) if problem.kind is ProblemKind.SOCP else 0.0
    worst = _negative(mu, nu)
    pulled = -(problem.directions.T @ mu)
    v = problem.steering_vector(solution.delta)
    if problem.kind is ProblemKind.QP:
        assert problem.lam is not None
        pushed, size = problem.lam * v, problem.lam * float(np.linalg.norm(v))
    else:
        norm = float(np.linalg.norm(v))
        pushed = (nu / norm) * v if nu > 0 and norm > 0 else np.zeros_like(v)
        size = abs(nu)
    terms = float(np.linalg.norm(pulled)) + size
    costs = np.ones(problem.d_sae) if problem.costs is None else problem.costs
    with np.errstate(all="ignore"):
        reduced = costs + problem.dictionary.times(pushed + pulled)
        ratio = -reduced / (costs + problem.row_norm_bounds * terms)
    ratio = ratio[np.isfinite(costs)]
    if not np.isfinite(ratio).all():
        return math.inf
    return max(worst, float(ratio.max(initial=0.0)))


def accept(
    problem: SteeringProblem,
    answer: Answer,
    *,
    solver: str,
    seconds: float,
    info: Mapping[str, Any] | None = None,
) -> Solution:
    """The Solution of `answer`: for an optimal outcome, δ cleaned and the claim checked by the
    core (`verify`); a refused claim becomes iteration_limit (if the backend said inaccurate) or
    error, with the reason and the backend's advice."""
    details = {**answer.info, **(info or {})}
    label = f"{solver} ({answer.message})" if answer.message else solver
    flags = set(answer.flags) | ({"inaccurate"} if answer.inaccurate else set())
    if answer.outcome is Outcome.OPTIMAL:
        if answer.delta is None and answer.support is None:
            return _fail(solver, seconds, answer, details, f"{label} reported optimal but no δ")
        dense = answer.delta
        if dense is None and answer.support is not None:
            dense = _dense(problem, answer.support)
            if dense is None:
                text = (
                    f"{label} reported optimal with a support that is not (index, values) of "
                    f"one length, index in [0, {problem.d_sae})"
                )
                return _fail(solver, seconds, answer, details, text)
        delta, cleaned, notes = clean(dense)
        if answer.inaccurate:
            notes.insert(0, f"{label}: the solution is inaccurate")
        solution = Solution.build(
            problem,
            delta,
            status=Status.OPTIMAL,
            solver=solver,
            seconds=seconds,
            iterations=answer.iterations,
            message="; ".join(notes),
            duals=answer.duals,
            flags=flags | cleaned,
            info=details,
        )
        return refuse_unless_verified(problem, solution, answer.inaccurate, answer.advice, label)
    if answer.outcome is Outcome.INFEASIBLE:
        solution = Solution.build(
            problem,
            None,
            status=Status.INFEASIBLE,
            solver=solver,
            seconds=seconds,
            iterations=answer.iterations,
            message=answer.reason or infeasible_message(problem, answer.min_eps),
            flags=flags,
            info=details,
        )
        _mark(solution)
        return solution
    if answer.outcome is Outcome.LIMIT:
        advice = answer.advice or "raise the backend's iteration or time limit and solve again"
        text = f"{label}: stopped at its iteration or time limit before converging; {advice}"
        return _fail(solver, seconds, answer, details, text, Status.ITERATION_LIMIT)
    text = f"{solver}: {answer.message}" if answer.message else f"{solver}: the solve failed"
    return _fail(solver, seconds, answer, details, text)


def _dense(problem: SteeringProblem, support: tuple[Any, Any]) -> FloatArray | None:
    """δ (d_sae,) from a backend's (index, values), or None when they are not of one length
    or an index is outside [0, d_sae) (a negative index must not wrap around)."""
    index = np.asarray(support[0]).reshape(-1)
    values = np.asarray(support[1], dtype=np.float64).reshape(-1)
    if index.shape != values.shape or (index.size and not np.issubdtype(index.dtype, np.integer)):
        return None
    if index.size and (index.min() < 0 or index.max() >= problem.d_sae):
        return None
    dense = np.zeros(problem.d_sae)
    dense[index] = values
    return dense


def accept_many(
    problems: Sequence[SteeringProblem],
    answers: Sequence[Answer],
    *,
    solver: str,
    seconds: Sequence[float],
    info: Mapping[str, Any] | None = None,
) -> list[Solution]:
    """`accept` of every answer, the same Solutions, with the optimal claims that come as a
    sparse δ (`Answer.support`) with multipliers, on one Decoder without costs, certified
    together (`steerkit.solution.certify_many`: one gather of their rows, matrix products, a
    shared screen); the others one by one. Its products run with one BLAS thread while the
    machine is busy (`steerkit._blas`), for a backend that certifies through it as for the
    core's own acceptance."""
    with one_thread_when_busy():
        return _accept_many(problems, answers, solver=solver, seconds=seconds, info=info)


def _accept_many(
    problems: Sequence[SteeringProblem],
    answers: Sequence[Answer],
    *,
    solver: str,
    seconds: Sequence[float],
    info: Mapping[str, Any] | None,
) -> list[Solution]:
    solutions: list[Solution | None] = [None] * len(problems)
    batch: list[tuple[int, _Claim]] = []
    claims = _claims(problems, answers)
    for j, (problem, answer, claim) in enumerate(zip(problems, answers, claims)):
        if claim is None:
            solutions[j] = accept(problem, answer, solver=solver, seconds=seconds[j], info=info)
        else:
            batch.append((j, claim))
    figures = certify_many(
        [problems[j] for j, _ in batch],
        [(claim.rows, claim.values) for _, claim in batch],
        [claim.duals for _, claim in batch],
    )
    for (j, claim), figure in zip(batch, figures):
        answer = answers[j]
        label = f"{solver} ({answer.message})" if answer.message else solver
        solution = Solution.build(
            problems[j],
            _Sparse(claim.rows, claim.values, problems[j].d_sae),  # dense when first read
            _figures=figure,
            status=Status.OPTIMAL,
            solver=solver,
            seconds=seconds[j],
            iterations=answer.iterations,
            message="; ".join(claim.notes),
            duals=claim.duals,
            flags=set(answer.flags) | claim.flags,
            info={**answer.info, **(info or {})},
        )
        solutions[j] = refuse_unless_verified(problems[j], solution, False, answer.advice, label)
    return [s for s in solutions if s is not None]


class _Claim(NamedTuple):
    """A sparse optimal claim, cleaned: δ's non-zero entries (index sorted), the backend's
    multipliers, and what `clean` flags and notes."""

    rows: np.ndarray[Any, Any]
    values: FloatArray
    duals: Duals
    flags: set[str]
    notes: list[str]


def _claims(problems: Sequence[SteeringProblem], answers: Sequence[Answer]) -> list[_Claim | None]:
    """`_sparse` of every answer on the first problem's Decoder and direction shape (None for
    the others), its array checks made once over the answers' concatenated supports: bounds,
    finiteness, order and `clean`'s rounding test. An answer that fails one of them (or whose
    entries are not of one length) goes through `_sparse` itself, which says the same."""
    claims: list[_Claim | None] = [None] * len(problems)
    if not problems:
        return claims
    dictionary, shape = problems[0].dictionary, problems[0].directions.shape
    chosen: list[int] = []
    indices: list[np.ndarray[Any, Any]] = []
    values: list[FloatArray] = []
    for j, (problem, answer) in enumerate(zip(problems, answers)):
        alike = problem.dictionary is dictionary and problem.directions.shape == shape
        if not (alike and _claimed(problem, answer)):
            continue
        assert answer.support is not None
        index = np.asarray(answer.support[0], dtype=np.int64).reshape(-1)
        value = np.asarray(answer.support[1], dtype=np.float64).reshape(-1)
        if index.shape != value.shape:
            continue  # `_sparse` refuses it too: `accept` says why
        chosen.append(j)
        indices.append(index)
        values.append(value)
    if not chosen:
        return claims
    sizes = np.array([index.size for index in indices])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = np.concatenate(indices)
    value = np.concatenate(values)
    owner = np.repeat(np.arange(len(chosen)), sizes)
    bad = np.zeros(len(chosen), dtype=bool)
    outside = (index < 0) | (index >= dictionary.d_sae) | ~np.isfinite(value)
    bad[owner[outside]] = True
    unordered = np.flatnonzero(index[1:] <= index[:-1]) + 1  # a position not above the last
    unordered = unordered[owner[unordered] == owner[unordered - 1]]  # within one answer
    bad[owner[unordered]] = True
    # `clean`: negatives at most CLIP_RELATIVE of the answer's largest |entry| are rounding
    top = np.zeros(len(chosen))
    filled = sizes > 0
    if filled.any():  # each non-empty answer's entries run from its start to the next one's
        top[filled] = np.maximum.reduceat(np.abs(value), starts[filled])
    beyond = value < -CLIP_RELATIVE * top[owner]
    bad[owner[beyond]] = True
    clipped = np.where(value < 0, 0.0, value)
    kept = clipped != 0.0
    for n, j in enumerate(chosen):
        if bad[n]:
            claims[j] = _sparse(problems[j], answers[j])
            continue
        part = slice(starts[n], starts[n] + sizes[n])
        keep = kept[part]
        duals = answers[j].duals
        assert duals is not None
        claims[j] = _Claim(index[part][keep], clipped[part][keep], duals, set(), [])
    return claims


def _claimed(problem: SteeringProblem, answer: Answer) -> bool:
    """Whether `answer` is an optimal claim given as a sparse δ with multipliers of the right
    shape, on a problem without costs, that the backend does not doubt (what a batch certifies)."""
    return (
        answer.outcome is Outcome.OPTIMAL
        and answer.support is not None
        and answer.delta is None
        and answer.duals is not None
        and not answer.inaccurate
        and problem.costs is None
        and np.shape(answer.duals.linear) == (problem.n_constraints,)
    )


def _sparse(problem: SteeringProblem, answer: Answer) -> _Claim | None:
    """The sparse optimal claim `accept_many` certifies in its batch (`clean` applied to the
    values, zeros dropped), or None for `accept` to take (it says what is wrong, if anything)."""
    if not _claimed(problem, answer):
        return None
    assert answer.support is not None and answer.duals is not None
    index = np.asarray(answer.support[0], dtype=np.int64).reshape(-1)
    values = np.asarray(answer.support[1], dtype=np.float64).reshape(-1)
    if (
        index.shape != values.shape
        or (index.size and (index.min() < 0 or index.max() >= problem.d_sae))
        or not np.isfinite(values).all()
    ):
        return None
    if index.size > 1 and not (index[1:] > index[:-1]).all():
        order = np.argsort(index, kind="stable")
        index, values = index[order], values[order]
        if not (index[1:] > index[:-1]).all():
            return None  # repeated features: `accept` makes the dense δ
    clipped, flags, notes = _clip(values, problem.d_sae)
    kept = clipped != 0.0
    return _Claim(index[kept], clipped[kept], answer.duals, flags, notes)


def check(problem: SteeringProblem, solution: Solution) -> Solution:
    """The core's check of a Solution a backend made itself: an optimal one has its figures
    recomputed from δ and its claim verified (`refuse_unless_verified`); a checked one passes."""
    if is_checked(solution):
        return solution
    if solution.ok and solution.delta is not None:
        solution = Solution.build(
            problem,
            solution.delta,
            status=solution.status,
            solver=solution.solver,
            seconds=solution.seconds,
            iterations=solution.iterations,
            message=solution.message,
            duals=solution.duals,
            flags=solution.flags,
            info=solution.info,
        )
    return refuse_unless_verified(problem, solution)


def refuse_unless_verified(
    problem: SteeringProblem,
    solution: Solution,
    inaccurate: bool = False,
    advice: str = "",
    label: str = "",
) -> Solution:
    """`solution` if `verify` vouches for it (or it is not optimal); otherwise a Solution without
    δ, status iteration_limit (inaccurate) or error, whose message gives the core's reason."""
    checked, reason = verify(problem, solution)
    if reason is None:
        _mark(checked)
        return checked
    inaccurate = inaccurate or "inaccurate" in solution.flags
    advice = advice or (
        "the problem may be badly scaled or the backend's tolerance too loose; tighten its "
        "tolerance or try another solver"
    )
    refused = Solution.build(
        problem,
        None,
        status=Status.ITERATION_LIMIT if inaccurate else Status.ERROR,
        solver=solution.solver,
        seconds=solution.seconds,
        iterations=solution.iterations,
        message=f"{label or solution.solver} "
        f"{'stopped before converging (inaccurate)' if inaccurate else 'reported optimal'}, "
        f"and the core refuses it: {reason}; {advice}",
        flags=set(solution.flags) | {"refused"},
        info={**solution.info, "refused_objective": solution.objective},
    )
    _mark(refused)
    return refused


def _fail(
    solver: str,
    seconds: float,
    answer: Answer,
    info: Mapping[str, Any],
    message: str,
    status: Status = Status.ERROR,
) -> Solution:
    if answer.advice and status is Status.ERROR:
        message = f"{message}; {answer.advice}"
    solution = Solution.failure(
        solver=solver,
        message=message,
        seconds=seconds,
        status=status,
        iterations=answer.iterations,
        info=info,
    )
    _mark(solution)
    return solution


def _mark(solution: Solution) -> None:
    """Record that the core has checked this Solution (the front door does not check it again)."""
    object.__setattr__(solution, "_checked", True)


def is_checked(solution: Solution) -> bool:
    """True when `accept` or `precheck` made (or vouched for) this Solution."""
    return bool(getattr(solution, "_checked", False))


def all_excluded(problem: SteeringProblem, solver: str) -> Solution:
    """The Solution of a cost-weighted problem whose every feature has an infinite cost: δ = 0,
    optimal when r ≤ 0, else infeasible."""
    if problem.already_satisfied:
        zero = Solution.satisfied(problem, solver=solver)
        _mark(zero)
        return zero
    return _failure(
        problem,
        solver,
        Status.INFEASIBLE,
        "every SAE feature is excluded (infinite cost), so no δ reaches the margin; give some "
        "features a finite cost",
    )


def reweigh(problem: SteeringProblem, solution: Solution, kept: Any, scale: FloatArray) -> Solution:
    """The Solution of a cost-weighted `problem` from the `solution` of its unweighted form
    (`SteeringProblem.unweighted`: δ[kept] = δ' / scale, 0 elsewhere; the multipliers carry
    over), with its figures recomputed against the weighted problem and the optimal claim
    checked by the core again."""
    if solution.delta is None:
        return check(problem, attrs.evolve(solution))  # a failure: nothing to map back
    delta = np.zeros(problem.d_sae)
    delta[kept] = np.asarray(solution.delta, dtype=np.float64) / scale
    # a fresh Solution is unchecked: `check` recomputes its figures against `problem`
    return check(problem, attrs.evolve(solution, delta=delta))
