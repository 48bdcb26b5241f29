"""Discovery, light imports, options, statuses, infeasibility messages, batches (set-up reuse),
k = 5 problems and the KKT certificate of the direct Clarabel and OSQP backends.

Every optimum is compared with steerkit.testing.oracle.reference_solve (Clarabel, 1e-9, written
out independently of this plugin's model)."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import clarabel
import numpy as np
import osqp
import pytest
from steerkit_direct import ClarabelSolver, DirectSolver, OSQPSolver
from steerkit_direct._base import Outcome, RawResult, _Model
from steerkit_direct._model import Form, build

import steerkit
from steerkit import ProblemKind, SolverCapabilityError, Status, SteeringProblem
from steerkit.testing import random_decoder, random_problem
from steerkit.testing.oracle import min_feasible_norm, reference_solve

BACKENDS: list[type[DirectSolver]] = [ClarabelSolver, OSQPSolver]
FORMS = ["lifted", "gram"]


def socp_at(problem: SteeringProblem, factor: float) -> SteeringProblem:
    """The same data as an SOCP whose ε is `factor` × the smallest feasible ε."""
    return SteeringProblem.socp(
        decoder=problem.decoder,
        directions=problem.directions,
        rhs=problem.rhs,
        eps=factor * min_feasible_norm(problem),
    )


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def assert_optimal(solution: steerkit.Solution, problem: SteeringProblem, rtol: float = 1e-6):
    reference = reference_solve(problem)
    assert reference.status is Status.OPTIMAL, reference.raw_status
    assert solution.status is Status.OPTIMAL, solution.message
    assert relative(solution.objective, reference.objective) <= rtol, (
        solution.objective,
        reference.objective,
    )
    assert solution.violation <= 1e-6 * max(1.0, float(np.abs(problem.rhs).max()))


# -- discovery --------------------------------------------------------------------------------


def test_entry_point_registers_both_backends() -> None:
    rows = {r.name: r for r in steerkit.list_plugins() if r.kind == "solver"}
    for name in ("clarabel", "osqp"):
        row = rows[name]
        assert (row.distribution, row.plugin, row.status) == ("steerkit-direct", "direct", "loaded")
    infos = {i.name: i for i in steerkit.available_solvers()}
    assert infos["clarabel"].installed and infos["osqp"].installed
    assert infos["clarabel"].capabilities == {
        "kinds": ["qp", "socp"],
        "max_constraints": None,
        "max_features": None,
        "warm_start": False,
        "batch": True,
        "priority": 50,
    }
    assert infos["osqp"].capabilities["kinds"] == ["qp"]
    assert infos["osqp"].capabilities["priority"] == 30
    assert infos["osqp"].capabilities["warm_start"] and infos["osqp"].capabilities["batch"]


def test_importing_the_plugin_imports_no_backend() -> None:
    code = (
        "import sys, steerkit_direct.plugin, steerkit; steerkit.available_solvers(); "
        "print(sorted(m for m in ('clarabel', 'osqp', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_automatic_selection_prefers_clarabel_and_osqp_declines_socp() -> None:
    problem = random_problem(np.random.default_rng(0), "socp")
    assert steerkit.select_solver(problem, "clarabel") is ClarabelSolver
    with pytest.raises(SolverCapabilityError, match="QP only"):
        steerkit.select_solver(problem, "osqp")
    solution = OSQPSolver().solve(problem)  # called directly: an error Solution, not a raise
    assert solution.status is Status.ERROR and solution.delta is None
    assert "QP only" in solution.message


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_options_are_checked(backend: type[DirectSolver]) -> None:
    problem = random_problem(np.random.default_rng(1), "qp")
    with pytest.raises(TypeError, match="'max_iters'"):
        backend().solve(problem, max_iters=10)
    with pytest.raises(TypeError, match="'no_such_setting'"):
        backend().solve(problem, settings={"no_such_setting": 1})
    with pytest.raises(ValueError, match="form"):
        backend().solve(problem, form="dense")
    with pytest.raises(ValueError, match="tol"):
        backend().solve(problem, tol=-1.0)
    documented = backend.options_doc()
    assert {"verbose", "max_iter", "tol", "time_limit", "form", "settings"} <= set(documented)


def test_clarabel_picks_its_linear_solver_unless_told() -> None:
    problem = random_problem(np.random.default_rng(2), "qp", d_sae=80, d_model=10)
    lifted = ClarabelSolver().solve(problem, form="lifted")
    gram = ClarabelSolver().solve(problem, form="gram")
    told = ClarabelSolver().solve(problem, form="gram", settings={"direct_solve_method": "qdldl"})
    assert lifted.info["direct_solve_method"] == "qdldl"  # small lifted model
    assert gram.info["direct_solve_method"] == "faer"
    assert told.info["direct_solve_method"] == "qdldl"
    for solution in (lifted, gram, told):
        assert_optimal(solution, problem)


# -- status mapping ---------------------------------------------------------------------------


def fake(problem: SteeringProblem, outcome: Outcome, delta: Any = None, mu: Any = None) -> Any:
    """A RawResult in the scaled model's coordinates, from δ and μ in the problem's."""
    data = build(problem, Form.LIFTED, problem.rhs)
    x = None
    if delta is not None:
        y = np.asarray(delta) / data.c
        x = np.concatenate([y, problem.decoder.T @ y / data.s])
    mu_hat = None if mu is None else np.asarray(mu) * data.row / data.gamma
    raw = RawResult(outcome, f"Fake{outcome.value}", x, mu_hat, None, 9, {})
    return raw, _Model(data=data, handle=None, setup_seconds=0.0)


def test_status_mapping() -> None:
    problem = random_problem(np.random.default_rng(3), "qp", k=2)
    reference = reference_solve(problem)
    backend = ClarabelSolver()

    def result(outcome: Outcome, delta: Any = None, mu: Any = None) -> steerkit.Solution:
        raw, model = fake(problem, outcome, delta, mu)
        return backend._result(problem, model, raw, 0.0, {}, {})

    optimal = result(Outcome.OPTIMAL, reference.delta, reference.duals.linear)
    assert optimal.status is Status.OPTIMAL and not optimal.flags and optimal.iterations == 9
    assert optimal.gap < 1e-7 and optimal.dual_infeasibility < 1e-6  # μ mapped back exactly

    inaccurate = result(Outcome.INACCURATE, reference.delta, reference.duals.linear)
    assert inaccurate.status is Status.OPTIMAL and "inaccurate" in inaccurate.flags
    assert "inaccurate" in inaccurate.message

    short = reference.delta * 0.5  # misses the margins by half
    stopped = result(Outcome.INACCURATE, short, reference.duals.linear)
    assert stopped.status is Status.ITERATION_LIMIT and stopped.delta is None
    assert "violates the constraints" in stopped.message
    wrong = result(Outcome.OPTIMAL, short, reference.duals.linear)
    assert wrong.status is Status.ERROR and wrong.delta is None

    for outcome in (Outcome.INFEASIBLE, Outcome.INFEASIBLE_INACCURATE):
        infeasible = result(outcome)
        assert infeasible.status is Status.INFEASIBLE and infeasible.delta is None
        assert "no δ ≥ 0" in infeasible.message
    assert "inaccurate" in result(Outcome.INFEASIBLE_INACCURATE).flags

    limit = result(Outcome.LIMIT)
    assert limit.status is Status.ITERATION_LIMIT and limit.delta is None
    assert "max_iter" in limit.message
    error = result(Outcome.ERROR)
    assert error.status is Status.ERROR and error.delta is None
    assert "Fakeerror" in error.message
    assert result(Outcome.OPTIMAL).status is Status.ERROR  # "optimal" with no point


def test_status_names_are_the_backends_own() -> None:
    from steerkit_direct.clarabel import _OUTCOMES as CLARABEL
    from steerkit_direct.osqp import _OUTCOMES as OSQP

    assert set(CLARABEL) <= {s for s in dir(clarabel.SolverStatus) if not s.startswith("_")}
    assert set(OSQP) <= {s.name for s in osqp.SolverStatus}


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_iteration_limit_gives_no_delta(backend: type[DirectSolver]) -> None:
    problem = random_problem(np.random.default_rng(4), "qp", k=3)
    solution = backend().solve(problem, max_iter=2)
    assert solution.status is Status.ITERATION_LIMIT and solution.delta is None
    assert "raise max_iter" in solution.message


def test_time_limit_gives_iteration_limit() -> None:
    problem = random_problem(np.random.default_rng(5), "socp", k=3)
    solution = ClarabelSolver().solve(problem, time_limit=1e-9)
    assert solution.status is Status.ITERATION_LIMIT and solution.delta is None
    assert solution.info["clarabel_status"] == "MaxTime"


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_backend_exception_is_wrapped(
    backend: type[DirectSolver], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Any, model: Any, *, resume: bool) -> Any:
        raise RuntimeError("linear system exploded")

    monkeypatch.setattr(backend, "_run", explode)
    problem = random_problem(np.random.default_rng(6), "qp")
    solution = backend().solve(problem)
    assert solution.status is Status.ERROR and solution.delta is None
    assert "linear system exploded" in solution.message


# -- infeasibility and trivial inputs ---------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("k", [1, 3])
def test_socp_below_the_smallest_eps_names_it(form: str, k: int) -> None:
    base = random_problem(np.random.default_rng([k, 7]), "qp", k=k)
    smallest = min_feasible_norm(base)
    problem = socp_at(base, 0.6)
    solution = ClarabelSolver().solve(problem, form=form)
    assert solution.status is Status.INFEASIBLE and solution.delta is None
    assert f"‖Dᵀδ‖ ≤ ε = {problem.eps:.6g}; increase ε to at least" in solution.message
    assert relative(solution.info["smallest_eps"], smallest) <= 1e-5
    assert f"{solution.info['smallest_eps']:.6g}" in solution.message
    # and just above it the SOCP is solved (at it exactly, the feasible set is one point, where
    # interior-point methods, the reference's included, stop "almost solved")
    at_smallest = socp_at(base, 1.01)
    assert_optimal(ClarabelSolver().solve(at_smallest, form=form), at_smallest, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_unreachable_direction_names_it(backend: type[DirectSolver]) -> None:
    rng = np.random.default_rng(8)
    decoder = random_decoder(rng, 30, 6)
    decoder[:, 0] = np.abs(decoder[:, 0])  # every row has a positive component along e0
    directions = np.zeros((2, 6))
    directions[0, 0], directions[1, 0] = 1.0, -1.0  # the second is met by no δ ≥ 0
    problem = SteeringProblem.qp(decoder=decoder, directions=directions, rhs=[0.5, 0.5], lam=1.0)
    solution = backend().solve(problem)
    assert solution.status is Status.INFEASIBLE and solution.delta is None
    assert "direction(s) [1]" in solution.message and "any λ" in solution.message


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_already_satisfied_is_exactly_zero_without_a_solve(backend: type[DirectSolver]) -> None:
    problem = random_problem(np.random.default_rng(9), "qp", k=3)
    problem = problem.with_rhs(-np.abs(problem.rhs))
    instance = backend()
    solution = instance.solve(problem)
    assert solution.status is Status.OPTIMAL and "already_satisfied" in solution.flags
    assert solution.delta is not None and not solution.delta.any()
    assert solution.gap == 0.0 and solution.dual_infeasibility == 0.0
    assert instance.setups == 0


# -- k = 5 and the certificate ----------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["qp", "socp"])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_five_constraints(backend: type[DirectSolver], kind: str, form: str) -> None:
    problem = random_problem(np.random.default_rng(10), "qp", k=5, d_sae=150, d_model=20)
    if kind == "socp":
        if ProblemKind.SOCP not in backend.kinds:
            return  # OSQP declines SOCPs (checked above and by the conformance suite)
        problem = socp_at(problem, 1.3)
    solution = backend().solve(problem, form=form)
    assert_optimal(solution, problem)
    assert solution.info["form"] == form
    reference = reference_solve(problem)
    assert np.array_equal(
        solution.support(), np.flatnonzero(reference.delta > 1e-5 * reference.delta.max())
    )


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("kind", ["qp", "socp"])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_multipliers_certify_the_optimum(
    backend: type[DirectSolver], kind: str, k: int, scale: float
) -> None:
    problem = random_problem(np.random.default_rng([k, 18]), "qp", k=k, lam=3.0, scale=scale)
    if kind == "socp":
        if ProblemKind.SOCP not in backend.kinds:
            return
        problem = socp_at(problem, 1.05)
    solution = backend().solve(problem)
    reference = reference_solve(problem)
    assert solution.status is Status.OPTIMAL, solution.message
    assert solution.gap <= 1e-7, solution.gap
    # SOCP reduced costs carry ν D Dᵀδ/‖Dᵀδ‖ evaluated at δ: an interior point's δ leaves ~1e-5
    # there (the reference's own multipliers do the same)
    loose = kind == "socp"
    assert solution.dual_infeasibility <= (1e-4 if loose else 1e-7), solution.dual_infeasibility
    assert solution.duals is not None and reference.duals is not None
    rtol = 1e-3 if loose else 1e-5
    mu = reference.duals.linear
    np.testing.assert_allclose(solution.duals.linear, mu, rtol=rtol, atol=rtol * mu.max())
    if kind == "socp":
        assert solution.duals.norm is not None and reference.duals.norm is not None
        difference = abs(solution.duals.norm - reference.duals.norm) * problem.eps
        assert difference <= rtol * max(1.0, reference.objective), difference


# -- batches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["qp", "socp"])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_batch_of_twenty_sets_up_once(backend: type[DirectSolver], kind: str, form: str) -> None:
    if ProblemKind(kind) not in backend.kinds:
        return
    base = random_problem(np.random.default_rng(12), "qp", k=2, d_sae=80, d_model=12)
    base = socp_at(base, 2.0) if kind == "socp" else base
    factors = np.random.default_rng(13).uniform(0.4, 1.6, size=20)
    factors[5] = -1.0  # already past the margin: no solve
    problems = [base.with_rhs(base.rhs * f) for f in factors]
    batched = backend()
    solutions = batched.solve_batch(problems, form=form)
    assert batched.setups == 1  # one set-up for the 19 inputs that need a solve
    alone = backend()
    for i, (solution, problem) in enumerate(zip(solutions, problems)):
        single = alone.solve(problem, form=form)
        if problem.already_satisfied:
            assert "already_satisfied" in solution.flags and not solution.delta.any()
            continue
        assert_optimal(solution, problem)
        assert math.isclose(solution.objective, single.objective, rel_tol=1e-7)
        assert solution.info["setup"] is (i == 0), (i, solution.info)
        assert solution.gap <= 1e-7
    assert alone.setups == 19  # one per solve call


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_batch_groups_by_structure(backend: type[DirectSolver]) -> None:
    rng = np.random.default_rng(14)
    first = random_problem(rng, "qp", k=2, d_sae=60, d_model=10)
    second = random_problem(rng, "qp", k=2, d_sae=60, d_model=10)  # another decoder
    other_lam = SteeringProblem.qp(
        decoder=first.decoder, directions=first.directions, rhs=first.rhs, lam=7.0
    )
    copied = SteeringProblem.qp(  # equal arrays, other objects: the same structure
        decoder=first.decoder.copy(),
        directions=first.directions.copy(),
        rhs=first.rhs * 0.7,
        lam=first.lam,
    )
    problems = [first, second, other_lam, first.with_rhs(first.rhs * 1.2), copied]
    instance = backend()
    solutions = instance.solve_batch(problems)
    assert instance.setups == 3
    assert [s.info["setup"] for s in solutions] == [True, True, True, False, False]
    for solution, problem in zip(solutions, problems):
        assert_optimal(solution, problem)


def test_refused_update_sets_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ClarabelSolver, "_update", lambda self, model, rhs: False)
    base = random_problem(np.random.default_rng(15), "socp", k=2)
    problems = [base.with_rhs(base.rhs * f) for f in (1.0, 0.8, 1.1)]
    instance = ClarabelSolver()
    solutions = instance.solve_batch(problems)
    assert instance.setups == 3
    assert all(s.info["setup"] for s in solutions)
    for solution, problem in zip(solutions, problems):
        assert_optimal(solution, problem)


def test_clarabel_batch_really_updates_b() -> None:
    """A reused set-up must solve the new right-hand side, not the first one again."""
    base = random_problem(np.random.default_rng(16), "qp", k=1)
    low, high = base.with_rhs(base.rhs * 0.5), base.with_rhs(base.rhs * 1.5)
    solutions = ClarabelSolver().solve_batch([low, high])
    assert solutions[1].info["setup"] is False
    assert_optimal(solutions[0], low)
    assert_optimal(solutions[1], high)
    assert solutions[1].objective > solutions[0].objective * 1.5


# -- OSQP: refinement and warm starts ---------------------------------------------------------


def test_osqp_refines_an_uncertified_answer() -> None:
    # at tol 1e-3 the first polished point of this problem violates the margins; ADMM continues
    problem = random_problem(np.random.default_rng([1, 3]), "qp", k=3, lam=1.0)
    refined = OSQPSolver().solve(problem, tol=1e-3)
    assert refined.info["passes"] >= 2 and refined.info["tol"] < 1e-3
    assert_optimal(refined, problem)
    assert refined.gap <= 1e-7 and refined.dual_infeasibility <= 1e-7
    unrefined = OSQPSolver().solve(problem, tol=1e-3, refine=False)
    assert unrefined.info["passes"] == 1
    assert unrefined.status is not Status.OPTIMAL or unrefined.dual_infeasibility > 1e-7


def test_osqp_warm_start_from_the_previous_optimum() -> None:
    base = random_problem(np.random.default_rng(17), "qp", k=2)
    problems = [base.with_rhs(base.rhs * f) for f in (1.0, 1.01, 0.99)]
    warm = OSQPSolver().solve_batch(problems, warm=True)
    cold = OSQPSolver().solve_batch(problems)
    assert [s.info["warm"] for s in warm] == [False, True, True]
    assert not any(s.info["warm"] for s in cold)
    for w, c, problem in zip(warm, cold, problems):
        assert_optimal(w, problem)
        assert math.isclose(w.objective, c.objective, rel_tol=1e-8)
    # a nearby right-hand side: the previous optimum is a good start
    assert sum(s.iterations for s in warm[1:]) < sum(s.iterations for s in cold[1:])
