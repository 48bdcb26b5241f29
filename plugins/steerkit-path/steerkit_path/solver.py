"""The `path` backend: exact solutions of one-constraint QPs and SOCPs from a homotopy path.

One path per (decoder, direction) is computed once, cached, and extended only as far as the
inputs need; every input, λ and ε is then a closed-form lookup on it (see `steerkit_path.path`).
Importing this module imports neither scipy nor the homotopy code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from steerkit import (
    Answer,
    Duals,
    Outcome,
    ProblemKind,
    Solution,
    Solver,
    SolverCapabilityError,
    SteeringProblem,
)
from steerkit.answer import accept_many
from steerkit.solver import ACCEPT_CHUNK

if TYPE_CHECKING:
    from steerkit_path.path import Path, PathPoints

__all__ = ["OPTIONS", "PathSolver"]

#: The options `PathSolver.solve` and `solve_batch` accept.
OPTIONS: Mapping[str, str] = {
    "cache": "bool: reuse the path cached for this decoder and direction (default True)",
    "min_eps": "bool: SOCP: report the exact smallest feasible ε in info['min_eps'] even when "
    "feasible (computes the whole path; default False: reported when already known)",
    "pool_size": "int: the homotopy's initial candidate pool (default 256; it grows as needed)",
    "max_steps": "int: the most homotopy steps before giving up (default 20·min(d_sae, "
    "d_model) + 200)",
}


class PathSolver(Solver):
    """Exact, batched QP and SOCP solutions for one linear constraint (k = 1)."""

    name = "path"
    kinds = frozenset({ProblemKind.QP, ProblemKind.SOCP})
    max_constraints = 1
    batch = True
    warm_start = True
    answers_satisfied = True  # with the path's figures (min_eps, path_steps) in info
    priority = 100
    requires = ("numpy", "scipy", "numba")
    install = "steerkit-path"
    description = (
        "exact positive-Lasso homotopy path (k = 1): one path per probe and SAE answers every "
        "input, λ and ε in closed form"
    )

    @classmethod
    def options_doc(cls) -> dict[str, str]:
        """Every accepted option and what it does."""
        return dict(OPTIONS)

    @staticmethod
    def path(problem: SteeringProblem, **options: Any) -> Path:
        """The (cached) path of `problem`'s decoder and direction; keep it to query it directly
        (`Path.qp`, `Path.socp`, `Path.min_eps`, `steerkit_path.pareto`)."""
        reason = PathSolver.cannot_solve(problem)
        if reason is not None:
            raise SolverCapabilityError(f"the path solver {reason} ({problem.describe()})")
        cache, path_options = _path_options(options)
        return _path(problem, cache, path_options)

    # -- the core's template (steerkit.Solver.solve_batch) -----------------------------------

    def check_options(self, options: Mapping[str, Any]) -> tuple[bool, dict[str, Any], bool]:
        """(cache, path options, min_eps); an unknown option raises TypeError naming it."""
        cache, path_options = _path_options(options)
        return cache, path_options, bool(options.get("min_eps", False))

    def same_group(self, first: SteeringProblem, other: SteeringProblem) -> bool:
        """One path serves every λ, ε and kind of a (decoder, direction): group by those."""
        if first.decoder is other.decoder and first.directions is other.directions:
            return True  # `with_rhs` siblings share both arrays: nothing to compare (~5 µs)
        return _memory_key(first.decoder) == _memory_key(other.decoder) and np.array_equal(
            first.directions, other.directions
        )

    def solve_group(
        self, problems: Sequence[SteeringProblem], settings: tuple[bool, dict[str, Any], bool]
    ) -> Iterator[Answer | Solution] | list[Answer]:
        """Problems sharing decoder and direction share one path, and each is a lookup on it.
        `seconds` is the input's own lookup plus an equal share of the path."""
        cache, path_options, min_eps = settings
        start = time.perf_counter()
        try:
            return _group(problems, cache, path_options, min_eps)
        except Exception as e:
            from steerkit_path.homotopy import PathStepLimitError

            if not isinstance(e, PathStepLimitError):
                raise
            return _limits(e, len(problems), (time.perf_counter() - start) / len(problems))


def _path_options(options: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"path: unknown option(s) {', '.join(repr(u) for u in unknown)}; "
            f"accepted: {', '.join(OPTIONS)}"
        )
    path_options: dict[str, Any] = {}
    for key in ("pool_size", "max_steps"):
        value = options.get(key)
        if value is not None:
            if int(value) < 1:
                raise ValueError(f"path: {key} must be a positive integer, got {value!r}")
            path_options[key] = int(value)
    return bool(options.get("cache", True)), path_options


def _memory_key(array: np.ndarray[Any, Any]) -> tuple[Any, ...]:
    interface = array.__array_interface__
    return (interface["data"][0], array.shape, array.strides, array.dtype.str)


def _path(problem: SteeringProblem, cache: bool, options: Mapping[str, Any]) -> Path:
    from steerkit_path.path import Path, path_for

    # a = D w is estimated in float32 and made exact only where the path looks (projection.py);
    # the row norms are the problem's, which the core's certificate shares
    def norms() -> np.ndarray[Any, Any]:
        return problem.row_norm_bounds

    # the core's D w (computed for its precheck) serves the path too: no second pass
    def estimate() -> np.ndarray[Any, Any]:
        return problem.alignment_estimate(0)

    exact = estimate if problem.decoder.dtype == np.float64 else None
    shared = {"row_norms": norms, "estimate": None if exact else estimate}
    if cache:
        return path_for(problem.decoder, problem.directions[0], exact, **shared, **options)
    return Path(
        problem.decoder, problem.directions[0], exact() if exact else None, **shared, **options
    )


def _group(
    problems: Sequence[SteeringProblem],
    cache: bool,
    options: Mapping[str, Any],
    min_eps: bool,
) -> Iterator[Answer | Solution]:
    """Answer problems that share one path: QPs and SOCPs each in one vectorised lookup. The
    path and the lookups are computed here; the answers are made a chunk at a time when the core
    asks for them, so a group never holds all of its dense δ at once (`_certified`)."""
    start = time.perf_counter()
    path = _path(problems[0], cache, options)
    steps_before = path.steps
    answers = _lookups(path, problems, range(len(problems)), min_eps, checked=False)
    shared = (time.perf_counter() - start) / len(problems)
    new_steps = path.steps - steps_before
    return _certified(path, problems, answers, min_eps, shared=shared, new_steps=new_steps)


def _lookups(
    path: Path,
    problems: Sequence[SteeringProblem],
    which: Iterable[int],
    min_eps: bool,
    *,
    checked: bool,
) -> dict[int, tuple[PathPoints, int]]:
    """{i: (the lookup, its row)} for problems `which`: the QPs and the SOCPs each in one."""
    answers: dict[int, tuple[PathPoints, int]] = {}
    which = list(which)
    for kind in (ProblemKind.QP, ProblemKind.SOCP):
        rows = [i for i in which if problems[i].kind is kind]
        if not rows:
            continue
        rhs = np.array([float(problems[i].rhs[0]) for i in rows])
        if kind is ProblemKind.QP:
            lams = np.array([problems[i].lam for i in rows], dtype=np.float64)
            points = path.qp(lams, rhs, checked=checked)
        else:
            eps = np.array([problems[i].eps for i in rows], dtype=np.float64)
            points = path.socp(eps, rhs, min_eps=min_eps, checked=checked)
        for j, i in enumerate(rows):
            answers[i] = (points, j)
    return answers


def _certified(
    path: Path,
    problems: Sequence[SteeringProblem],
    answers: dict[int, tuple[PathPoints, int]],
    min_eps: bool,
    *,
    shared: float,
    new_steps: int,
) -> Iterator[Answer | Solution]:
    """The group's answers, a chunk at a time. An answer on a segment whose ends the path has
    not checked over every feature (NaN `kkt`: its lookups skip those checks) is certified by
    the core first (`steerkit.answer.accept_many`, which verifies every answer anyway): it
    stands when the core's dual infeasibility — the same max (cᵢ − α)/α over every feature,
    at the answer itself — is within the path's own tolerance; otherwise the problem is looked
    up again with its segment's ends checked (and the path repaired where they fail), and that
    Answer goes to the core. The core's certificate thus stands for the path's check of the
    segment ends: one verification instead of two (~0.2 s of 1.4 s on the GPT-2-scale grid)."""
    from steerkit_path.homotopy import VIOLATION_RTOL

    # a chunk as the core accepts them: one gather of their decoder rows, one shared screen
    for first in range(0, len(problems), ACCEPT_CHUNK):
        chunk = range(first, min(first + ACCEPT_CHUNK, len(problems)))
        made: list[Answer | Solution] = [
            _answer(problems[i], path, *answers[i], shared=shared, new_steps=new_steps)
            for i in chunk
        ]
        unchecked = [k for k, a in enumerate(made) if _unchecked(a)]
        if unchecked:
            solutions = accept_many(
                [problems[first + k] for k in unchecked],
                [made[k] for k in unchecked],  # type: ignore[misc]
                solver=PathSolver.name,
                seconds=[made[k].seconds or 0.0 for k in unchecked],
            )
            again = []
            for k, solution in zip(unchecked, solutions):
                if solution.ok and solution.dual_infeasibility <= VIOLATION_RTOL:
                    # the core's figure at the answer (the Solution's own info dict, made for it)
                    cast(dict[str, Any], solution.info)["kkt_max_violation"] = (
                        solution.dual_infeasibility
                    )
                    made[k] = solution
                else:
                    again.append(first + k)
            if again:
                for i, answer in _looked_up_again(path, problems, again, min_eps, shared):
                    made[i - first] = answer
        yield from made


def _looked_up_again(
    path: Path, problems: Sequence[SteeringProblem], again: list[int], min_eps: bool, shared: float
) -> list[tuple[int, Answer]]:
    """(i, Answer) of problems `again`, looked up with their segments' ends checked (a repair
    may walk the path again: past `max_steps`, each is an iteration limit, as in `solve_group`)."""
    from steerkit_path.homotopy import PathStepLimitError

    start, steps = time.perf_counter(), path.steps
    try:
        checked = _lookups(path, problems, again, min_eps, checked=True)
    except PathStepLimitError as e:
        seconds = (time.perf_counter() - start) / len(again)
        return list(zip(again, _limits(e, len(again), seconds)))
    extra = (time.perf_counter() - start) / len(again)
    new_steps = path.steps - steps
    return [
        (i, _answer(problems[i], path, *checked[i], shared=shared + extra, new_steps=new_steps))
        for i in again
    ]


def _limits(error: Exception, n: int, seconds: float) -> list[Answer]:
    """n iteration-limit Answers for a walk that ran past `max_steps`, with the advice."""
    message = f"path: {error}"
    return [
        Answer(Outcome.LIMIT, message=message, advice="raise max_steps", seconds=seconds)
        for _ in range(n)
    ]


def _unchecked(answer: Answer | Solution) -> bool:
    value = answer.info.get("kkt_max_violation", 0.0)
    return isinstance(answer, Answer) and answer.support is not None and math.isnan(value)


def _answer(
    problem: SteeringProblem,
    path: Path,
    points: PathPoints,
    j: int,
    *,
    shared: float,
    new_steps: int,
) -> Answer:
    from steerkit_path.path import Regime

    start = time.perf_counter()
    regime = points.regime[j]
    socp = problem.kind is ProblemKind.SOCP
    info: dict[str, Any] = {
        "path_steps": path.steps,
        "new_steps": new_steps,
        "regime": str(regime),
        "pool_size": path.pool_size,
        "repairs": path.repairs,
        "jump_rounds": path.jump_rounds,
    }
    if socp:
        smallest = float(points.min_eps[j])
        info["min_eps"] = None if math.isnan(smallest) else smallest
    if regime is Regime.SATISFIED:
        return Answer(
            Outcome.OPTIMAL,
            delta=np.zeros(problem.d_sae),
            duals=Duals(linear=np.zeros(1), norm=0.0 if socp else None),
            iterations=0,
            flags={"already_satisfied"},
            info={**info, "kkt_max_violation": 0.0},
            seconds=shared + time.perf_counter() - start,
        )
    if regime in (Regime.NO_DIRECTION, Regime.BELOW_MIN_EPS):
        reason = ""
        if regime is Regime.NO_DIRECTION:
            if socp:
                info["min_eps"] = math.inf
        elif math.isnan(float(points.min_eps[j])):  # below r/‖w‖, the path not walked to its end
            bound = float(problem.rhs[0]) / float(np.linalg.norm(problem.directions[0]))
            reason = (
                f"ε = {problem.eps:.6g} is below r/‖w‖ = {bound:.6g}, the shortest steering "
                f"vector that could move the probe by r (wᵀv ≤ ‖w‖‖v‖): the smallest feasible ε "
                f"for this input is at least that (the solver option min_eps=True gives it "
                f"exactly)"
            )
        else:
            reason = (
                f"ε = {problem.eps:.6g} is below the smallest feasible ε = "
                f"{float(points.min_eps[j]):.6g} for this input"
            )
        return Answer(
            Outcome.INFEASIBLE,
            iterations=path.steps,
            reason=reason,
            info=info,
            seconds=shared + time.perf_counter() - start,
        )
    idx, values = points.sparse(j)
    flags: set[str] = set()
    if regime is Regime.SINGLE:
        flags.add("first_segment")
    segment = int(points.segment[j])
    point = points.breakpoints[segment]
    if idx.size > point.active.size:
        flags.add("twins_spread")
    duals = Duals(
        linear=np.array([float(points.mu[j])]),
        norm=float(points.nu[j]) if socp else None,
    )
    # a point found by pivoting (steerkit_path.jump) lies on no walked segment: its rounds
    info.update(
        kkt_max_violation=float(points.kkt[j]),
        segment=None if point.jump else segment,
        jump=point.jump,
        alpha=float(points.alpha[j]),
    )
    return Answer(
        Outcome.OPTIMAL,
        support=(idx, values),  # the core makes the dense δ, and checks a chunk together
        duals=duals,
        iterations=point.jump or segment + 1,
        flags=flags,
        info=info,
        seconds=shared + time.perf_counter() - start,
    )
