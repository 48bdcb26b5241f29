"""The solver template (`Solver.solve_group`) and the core's acceptance of an answer
(`steerkit.answer`): what a backend claims is checked against figures the core computes itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

import steerkit
from steerkit import (
    Answer,
    Duals,
    Outcome,
    Solution,
    Solver,
    SolverError,
    Status,
    SteeringProblem,
)
from steerkit.answer import (
    RANGE,
    accept,
    blocked_directions,
    clean,
    out_of_range,
    precheck,
    prechecks,
    recompute_duals,
)
from steerkit.hookspecs import hookimpl
from steerkit.registry import Register
from steerkit.testing.oracle import reference_solve
from steerkit.testing.problems import random_problem


def _one_feature_qp(r: float = 2.0, lam: float = 0.5) -> SteeringProblem:
    # D = I, w = e₀: the optimum is δ = r e₀ with multiplier μ = 1 + λ r (hand computation)
    return SteeringProblem.qp(decoder=np.eye(4), directions=[1.0, 0, 0, 0], rhs=r, lam=lam)


class Scripted(Solver):
    """A template backend that answers whatever the test scripts, and records its groups."""

    name = "scripted"
    batch = True
    answers: ClassVar[list[Answer]] = []
    groups: ClassVar[list[int]] = []

    def solve_group(self, problems: Sequence[SteeringProblem], settings: Any) -> list[Answer]:
        type(self).groups.append(len(problems))
        return [type(self).answers.pop(0) for _ in problems]


@pytest.fixture
def scripted() -> type[Scripted]:
    Scripted.answers, Scripted.groups = [], []
    return Scripted


# -- accept: the core refuses an "optimal" it cannot vouch for --------------------------------


def test_optimal_with_a_violation_is_refused_with_the_reason(scripted: type[Scripted]) -> None:
    problem = _one_feature_qp()
    scripted.answers = [Answer(Outcome.OPTIMAL, delta=np.zeros(4), duals=Duals(np.ones(1)))]
    solution = scripted().solve(problem)
    assert solution.status is Status.ERROR and not solution.ok and solution.delta is None
    assert "violates the constraints by 2" in solution.message
    with pytest.raises(SolverError, match="core refuses it: its point violates"):
        solution.raise_for_status()


def test_inaccurate_optimal_with_a_violation_is_an_iteration_limit() -> None:
    problem = _one_feature_qp()
    answer = Answer(Outcome.OPTIMAL, delta=[1.0, 0, 0, 0], inaccurate=True, advice="raise it")
    solution = accept(problem, answer, solver="x", seconds=0.0)
    assert solution.status is Status.ITERATION_LIMIT
    assert solution.message.endswith("raise it") and "refused" in solution.flags


def test_a_gap_above_tolerance_is_refused_unless_the_core_certifies_the_point() -> None:
    problem = _one_feature_qp(r=2.0, lam=0.5)
    # the optimum with a wrong multiplier: the backend's gap is large, the core's own μ = 2
    # certifies the point (hand computation: μ = 1 + λ r)
    good = accept(
        problem,
        Answer(Outcome.OPTIMAL, delta=[2.0, 0, 0, 0], duals=Duals(np.array([5.0]))),
        solver="x",
        seconds=0.0,
    )
    assert good.ok and "duals_recomputed" in good.flags
    assert good.duals is not None and good.duals.linear[0] == pytest.approx(2.0)
    assert good.gap <= 1e-12
    # a feasible but suboptimal point (mass on a useless feature): no multiplier certifies it
    worse = accept(
        problem,
        Answer(Outcome.OPTIMAL, delta=[2.0, 0.5, 0, 0], duals=Duals(np.array([2.0]))),
        solver="x",
        seconds=0.0,
    )
    assert worse.status is Status.ERROR and "duality gap" in worse.message


def test_a_zero_gap_from_dual_infeasible_multipliers_is_refused() -> None:
    """A gap bounds the distance to the optimum only at a dual feasible point. D = I₂, w = (1,
    ½), r = 1, λ = 1 (hand computation): δ = (0, 2) is optimal over feature 1 alone, with
    μ = (1 + λ·2)/½ = 6 making its own reduced cost 0 and the gap 0 — but feature 0's reduced
    cost is 1 − 6 = −5, and the optimum is δ = (1, 0), objective 1.5 against 4."""
    problem = SteeringProblem.qp(decoder=np.eye(2), directions=[1.0, 0.5], rhs=1.0, lam=1.0)
    claim = Answer(Outcome.OPTIMAL, delta=[0.0, 2.0], duals=Duals(np.array([6.0])))
    solution = accept(problem, claim, solver="x", seconds=0.0)
    assert solution.status is Status.ERROR and solution.delta is None
    assert "dual infeasibility is 5 " in solution.message
    # the optimum δ = (1, 0) with its multiplier (μ = 1 + λ·1 = 2) is accepted; with a wrong
    # one (μ = 9: reduced costs −7 and −3.5) it gets the core's own
    assert accept(
        problem,
        Answer(Outcome.OPTIMAL, delta=[1.0, 0.0], duals=Duals(np.array([2.0]))),
        solver="x",
        seconds=0.0,
    ).ok
    # one large row orthogonal to w, or one large cost, does not loosen the other features' test
    far = SteeringProblem.qp(
        decoder=np.diag([1.0, 1.0, 1e5]), directions=[1.0, 0.5, 0.0], rhs=1.0, lam=1.0
    )
    dear = SteeringProblem.qp(
        decoder=np.eye(3), directions=[1.0, 0.5, 0.0], rhs=1.0, lam=1.0, costs=[1.0, 1.0, 1e6]
    )
    for other in (far, dear):
        claim = Answer(Outcome.OPTIMAL, delta=[0.0, 2.0, 0.0], duals=Duals(np.array([6.0])))
        assert not accept(other, claim, solver="x", seconds=0.0).ok
    mended = accept(
        problem,
        Answer(Outcome.OPTIMAL, delta=[1.0, 0.0], duals=Duals(np.array([9.0]))),
        solver="x",
        seconds=0.0,
    )
    assert mended.ok and "duals_recomputed" in mended.flags
    assert mended.dual_infeasibility <= 1e-12 and mended.duals is not None
    assert mended.duals.linear[0] == pytest.approx(2.0)


def test_negative_multipliers_are_dual_infeasible() -> None:
    """SOCP, D = I₂, w = (1, ½), r = 1, ε = 10 (hand computation): δ = (0, 2) with μ = 1 and
    ν = −0.1 makes every figure look right (ν < 0 drops out of u, and cᵀδ − μr + νε = 2 − 1 − 1
    = 0), but the optimum is δ = (1, 0), objective 1 against 2: ν ≥ 0 is dual feasibility too."""
    problem = SteeringProblem.socp(decoder=np.eye(2), directions=[1.0, 0.5], rhs=1.0, eps=10.0)
    claim = Answer(Outcome.OPTIMAL, delta=[0.0, 2.0], duals=Duals(np.array([1.0]), norm=-0.1))
    solution = accept(problem, claim, solver="x", seconds=0.0)
    assert solution.status is Status.ERROR and "dual infeasibility is 0.1 " in solution.message
    right = Answer(Outcome.OPTIMAL, delta=[1.0, 0.0], duals=Duals(np.array([1.0]), norm=0.0))
    assert accept(problem, right, solver="x", seconds=0.0).ok


def test_a_sparse_answer_is_made_dense_only_when_its_delta_is_read(
    scripted: type[Scripted],
) -> None:
    """An answer given by its support is certified from it, and its Solution makes the dense δ
    the first time `delta` is read (once); L0, L1 and the support come from the entries, equal
    to those of the dense δ. D = I₄, w = (1, 1, 1, 0), r = 3, λ = 1 (hand computation): δ = (1,
    1, 1, 0), μ = 1 + λ·1 = 2; reduced cost of feature 3 is 1."""
    import pickle

    from steerkit.solution import _Sparse

    problem = SteeringProblem.qp(decoder=np.eye(4), directions=[1.0, 1, 1, 0], rhs=3.0, lam=1.0)
    scripted.answers = [
        Answer(Outcome.OPTIMAL, support=([0, 1, 2], [1.0, 1.0, 1.0]), duals=Duals(np.array([2.0])))
    ]
    solution = scripted().solve(problem)
    assert solution.ok and solution.gap <= 1e-15 and solution.dual_infeasibility == 0.0
    assert solution.objective == pytest.approx(4.5)
    assert isinstance(solution._delta, _Sparse)  # not made by the core's acceptance
    assert (solution.l0, solution.l1, list(solution.support())) == (3, 3.0, [0, 1, 2])
    assert isinstance(solution._delta, _Sparse)  # nor by the figures
    again = pickle.loads(pickle.dumps(solution))
    delta = solution.delta
    assert delta is not None and solution.delta is delta and not delta.flags.writeable
    np.testing.assert_array_equal(delta, [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(again.delta, delta)
    dense = Solution.build(problem, delta, status=Status.OPTIMAL, solver="x", seconds=0.0)
    assert (dense.l0, dense.l1, list(dense.support())) == (3, 3.0, [0, 1, 2])


def test_an_optimum_without_multipliers_gets_the_cores() -> None:
    problem = random_problem(np.random.default_rng(1), "qp", k=2)
    reference = reference_solve(problem)
    solution = accept(
        problem, Answer(Outcome.OPTIMAL, delta=reference.delta), solver="x", seconds=0.0
    )
    assert solution.ok and "duals_recomputed" in solution.flags
    assert solution.gap <= 1e-5 and solution.dual_infeasibility <= 1e-5
    assert solution.duals is not None
    np.testing.assert_allclose(solution.duals.linear, reference.duals.linear, rtol=1e-4, atol=1e-7)


def test_recomputed_multipliers_respect_complementary_slackness() -> None:
    """One feature active, two constraints, the second slack: μ₂ = 0 and μ₁ = 1/a₁ (hand
    computation; least squares over the support alone would split μ between the two)."""
    decoder = np.eye(3) * 1e-3
    directions = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    problem = SteeringProblem.socp(decoder=decoder, directions=directions, rhs=[1.0, 0.5], eps=10)
    delta = np.array([1000.0, 0.0, 0.0])  # A δ = (1, 2) ≥ (1, 0.5): the second is slack
    duals = recompute_duals(problem, delta)
    np.testing.assert_allclose(duals.linear, [1000.0, 0.0])
    assert duals.norm == 0.0


def test_recomputed_socp_multipliers_match_the_reference() -> None:
    from steerkit.testing.oracle import min_feasible_norm

    base = random_problem(np.random.default_rng(2), "socp", k=1)
    problem = SteeringProblem.socp(
        decoder=base.decoder,
        directions=base.directions,
        rhs=base.rhs,
        eps=1.2 * min_feasible_norm(base),
    )
    reference = reference_solve(problem)
    duals = recompute_duals(problem, np.asarray(reference.delta))
    assert duals is not None and reference.duals is not None
    np.testing.assert_allclose(duals.linear, reference.duals.linear, rtol=1e-4)
    assert duals.norm == pytest.approx(reference.duals.norm, rel=1e-3, abs=1e-7)


def test_clean_clips_rounding_and_reports_real_negatives() -> None:
    delta, flags, notes = clean(np.array([1.0, -1e-12, 0.5]))
    assert delta.tolist() == [1.0, 0.0, 0.5] and not flags and not notes
    delta, flags, notes = clean(np.array([1.0, -1e-3, 0.5]))
    assert delta[1] == -1e-3 and flags == {"negative_entries"} and "negative" in notes[0]


# -- the template: precheck, grouping, failures ----------------------------------------------


def test_template_groups_by_structure_and_prechecks(scripted: type[Scripted]) -> None:
    problem = _one_feature_qp(r=2.0)
    other = SteeringProblem.qp(decoder=np.eye(4) * 2, directions=[1.0, 0, 0, 0], rhs=2.0, lam=0.5)
    # r ≤ 0 is decided by the core (no answer consumed); the rest come in two groups
    scripted.answers = [
        Answer(Outcome.OPTIMAL, delta=[2.0, 0, 0, 0]),
        Answer(Outcome.OPTIMAL, delta=[1.0, 0, 0, 0]),
        Answer(Outcome.OPTIMAL, delta=[1.0, 0, 0, 0]),
    ]
    batch = [problem, problem.with_rhs(-1.0), other, problem.with_rhs(1.0)]
    solutions = scripted().solve_batch(batch)
    assert scripted.groups == [2, 1]
    assert [s.status for s in solutions] == [Status.OPTIMAL] * 4
    assert "already_satisfied" in solutions[1].flags
    assert solutions[2].objective == pytest.approx(1.0 + 0.25 * 4)  # δ = 1 on a row of norm 2


def test_template_turns_an_exception_into_error_solutions() -> None:
    class Exploding(Solver):
        name = "exploding"

        def solve_group(self, problems: Sequence[SteeringProblem], settings: Any) -> Any:
            raise RuntimeError("factorisation exploded")

    solutions = Exploding().solve_batch([_one_feature_qp(), _one_feature_qp(3.0)])
    assert [s.status for s in solutions] == [Status.ERROR, Status.ERROR]
    assert "factorisation exploded" in solutions[0].message


def test_template_rejects_unknown_options(scripted: type[Scripted]) -> None:
    with pytest.raises(TypeError, match="'tol'"):
        scripted().solve(_one_feature_qp(), tol=1e-3)


def test_infeasible_and_limit_answers_get_the_cores_messages() -> None:
    problem = SteeringProblem.socp(decoder=np.eye(3), directions=[1.0, 0, 0], rhs=2.0, eps=1.0)
    infeasible = accept(problem, Answer(Outcome.INFEASIBLE, min_eps=2.0), solver="x", seconds=0)
    assert infeasible.status is Status.INFEASIBLE
    assert "increase ε to at least 2" in infeasible.message
    limit = accept(problem, Answer(Outcome.LIMIT, advice="raise max_it"), solver="x", seconds=0)
    assert limit.status is Status.ITERATION_LIMIT and limit.message.endswith("raise max_it")


# -- decided in the core before any backend: unreachable directions, out-of-range numbers -------


def test_direction_orthogonal_up_to_rounding_is_infeasible_before_any_backend() -> None:
    rng = np.random.default_rng(3)
    decoder = rng.normal(size=(64, 16))
    decoder[:, -1] = 1e-15 * rng.normal(size=64)  # max Dw ≈ 1e-15 of the decoder's scale
    direction = np.zeros(16)
    direction[-1] = 1.0
    problem = SteeringProblem.qp(decoder=decoder, directions=direction, rhs=1.0, lam=1.0)
    assert blocked_directions(problem) == [0]
    solution = precheck(problem, _Named("x"))
    assert solution is not None and solution.status is Status.INFEASIBLE
    assert "no decoder row has a positive component along direction(s) [0]" in solution.message
    # a zero direction is unreachable too (not "out of range"), and one with r ≤ 0 is no bar
    zero = SteeringProblem.qp(
        decoder=decoder, directions=np.stack([np.zeros(16), decoder[0]]), rhs=[1.0, 1.0], lam=1.0
    )
    assert precheck(zero, _Named("x")).status is Status.INFEASIBLE  # type: ignore[union-attr]
    assert precheck(zero.with_rhs([-1.0, 1.0]), _Named("x")) is None
    # a direction the rows reach, if weakly (1e-9 of the scale), is left to the backend
    decoder[0, -1] = 1e-9
    weak = SteeringProblem.qp(decoder=decoder, directions=direction, rhs=1.0, lam=1.0)
    assert blocked_directions(weak) == []


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def cannot_solve(self, problem: SteeringProblem) -> str | None:
        return None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"rhs": 1e300}, "the largest r"),
        ({"scale": 1e155}, "the largest decoder row norm"),
        ({"lam": 1e-120}, "λ"),
    ],
)
def test_numbers_outside_the_range_are_declined_naming_it(change: dict, named: str) -> None:
    rng = np.random.default_rng(4)
    decoder = rng.normal(size=(64, 16)) * change.get("scale", 1.0)
    direction = rng.normal(size=16)
    problem = SteeringProblem.qp(
        decoder=decoder, directions=direction, rhs=change.get("rhs", 1.0), lam=change.get("lam", 1)
    )
    reason = out_of_range(problem)
    assert reason is not None and named in reason and f"{RANGE[1]:.0e}" in reason
    solution = precheck(problem, _Named("x"))
    assert solution is not None and solution.status is Status.ERROR
    assert "declined" in solution.message and "outside the range" in solution.message


class _PicksR(_Named):
    """A backend whose refusals depend on r (every precheck must still ask it)."""

    def cannot_solve(self, problem: SteeringProblem) -> str | None:
        return "takes r ≤ 5 only" if float(problem.rhs.max()) > 5 else None


@pytest.mark.parametrize("solver", [_Named("x"), _PicksR("y")])
def test_a_batch_is_prechecked_together_as_each_problem_alone(solver: _Named) -> None:
    """`prechecks` of siblings (made by `with_rhs`) equals `precheck` of each: the same
    Solutions (status, message) and the same problems left to the backend, whether r is in
    range, satisfied, mixed in sign, tiny, huge, or implies a λ‖Dᵀδ‖² out of range, for QPs
    and SOCPs, with a blocked direction, and among problems of other families."""
    rng = np.random.default_rng(9)
    decoder = rng.normal(size=(64, 16))
    w = rng.normal(size=(2, 16))
    values = [0.5, 1.0, 3.0, 7.0, -1.0, 0.0, 1e-120, 1e300, 1e52, 2.0, 4.0, 6.0]
    rhs = [[a, b] for a in values for b in (1.0, -0.5, 1e-120, 2.5)]
    qp = SteeringProblem.qp(decoder=decoder, directions=w, rhs=[1.0, 1.0], lam=1.0)
    socp = SteeringProblem.socp(decoder=decoder, directions=w, rhs=[1.0, 1.0], eps=3.0)
    blocked_w = np.stack([w[0], np.zeros(16)])
    blocked = SteeringProblem.qp(decoder=decoder, directions=blocked_w, rhs=[1.0, 1.0], lam=1.0)
    tiny_lam = SteeringProblem.qp(decoder=decoder, directions=w, rhs=[1.0, 1.0], lam=1e-120)
    problems = [base.with_rhs(r) for base in (qp, socp, blocked, tiny_lam) for r in rhs]
    problems += [SteeringProblem.qp(decoder=decoder, directions=w, rhs=r, lam=1.0) for r in rhs[:5]]
    order = rng.permutation(len(problems))  # families interleaved
    problems = [problems[i] for i in order]
    together = prechecks(problems, solver)
    alone = [precheck(p, solver) for p in problems]
    assert len(together) == len(alone)
    for got, want in zip(together, alone):
        assert (got is None) == (want is None)
        if want is not None:
            assert got is not None
            assert (got.status, got.message) == (want.status, want.message)
    left = sum(s is None for s in alone)
    assert 0 < left < len(problems)  # some go to the backend, some are decided here


# -- the front door checks backends that implement `solve` themselves ---------------------------


class Liar(Solver):
    """Implements `solve` directly and calls δ = 0 optimal."""

    name = "liar"
    priority = 1000

    def solve(self, problem: SteeringProblem, **options: Any) -> Solution:
        return Solution.build(
            problem, np.zeros(problem.d_sae), status="optimal", solver=self.name, seconds=0.0
        )


class LiarPlugin:
    @hookimpl
    def register_solvers(self, register: Register) -> None:
        register(Liar)


def test_the_front_door_refuses_a_backends_own_false_optimum(steerkit_host_factory: Any) -> None:
    host = steerkit_host_factory(("liar", LiarPlugin()))
    problem = _one_feature_qp()
    assert Liar().solve(problem).ok  # the backend's own word
    solution = steerkit.solve(problem, "liar", host=host)
    assert solution.status is Status.ERROR and "violates the constraints" in solution.message
    batch = steerkit.solve_batch([problem, problem.with_rhs(-1.0)], "liar", host=host)
    assert [s.ok for s in batch] == [False, True]
