"""Discovery through the entry point, light imports, options, status mapping, infeasibility
messages, batches and the KKT certificate of the CVXPY backends."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from steerkit_cvxpy import (
    ClarabelSolver,
    CvxpySolver,
    ECOSSolver,
    GurobiSolver,
    OSQPSolver,
    SCSSolver,
)
from steerkit_cvxpy.base import _Model

import steerkit
from steerkit import PluginHost, ProblemKind, Status, SteeringProblem
from steerkit.testing import random_decoder, random_problem
from steerkit.testing.oracle import min_feasible_norm, reference_solve

PRIORITIES = {
    "cvxpy-clarabel": 40,
    "cvxpy-ecos": 20,
    "cvxpy-scs": 10,
    "cvxpy-osqp": 5,
    "cvxpy-gurobi": 0,
}
BACKENDS: list[type[CvxpySolver]] = [
    ClarabelSolver,
    ECOSSolver,
    SCSSolver,
    OSQPSolver,
    GurobiSolver,
]


def socp_at(problem: SteeringProblem, factor: float) -> SteeringProblem:
    """The same data as an SOCP whose ε is `factor` × the smallest feasible ε."""
    return SteeringProblem.socp(
        decoder=problem.decoder,
        directions=problem.directions,
        rhs=problem.rhs,
        eps=factor * min_feasible_norm(problem),
    )


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# -- discovery --------------------------------------------------------------------------------


def test_entry_point_registers_every_backend_with_its_distribution() -> None:
    rows = {r.name: r for r in steerkit.list_plugins() if r.kind == "solver"}
    for name in PRIORITIES:
        assert name in rows, f"{name} not registered; rows: {sorted(rows)}"
        row = rows[name]
        assert (row.distribution, row.plugin, row.status) == ("steerkit-cvxpy", "cvxpy", "loaded")
    failed = [r for r in steerkit.list_plugins() if r.status == "failed" and r.plugin == "cvxpy"]
    assert not failed, failed


def test_available_solvers_reports_them_installed_with_their_capabilities() -> None:
    infos = {i.name: i for i in steerkit.available_solvers()}
    for name, priority in PRIORITIES.items():
        info = infos[name]
        assert info.installed, f"{name}: {info.reason}"
        assert info.distribution == "steerkit-cvxpy"
        assert info.capabilities["priority"] == priority
        assert info.capabilities["batch"] and info.capabilities["warm_start"]
        assert info.capabilities["max_constraints"] is None
    assert infos["cvxpy-osqp"].capabilities["kinds"] == ["qp"]
    for name in ("cvxpy-clarabel", "cvxpy-scs", "cvxpy-ecos", "cvxpy-gurobi"):
        assert infos[name].capabilities["kinds"] == ["qp", "socp"]
    assert infos["cvxpy-ecos"].install == "steerkit-cvxpy[ecos]"
    assert infos["cvxpy-gurobi"].install == "steerkit-cvxpy[gurobi]"


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_automatic_selection_among_these_backends_picks_clarabel(kind: str) -> None:
    host = PluginHost(allow=["steerkit-cvxpy"])
    problem = random_problem(np.random.default_rng(1), kind)
    assert steerkit.select_solver(problem, host=host) is ClarabelSolver


def test_importing_the_plugin_and_listing_solvers_imports_no_solver() -> None:
    code = (
        "import sys, steerkit, steerkit_cvxpy.plugin\n"
        "infos = steerkit.available_solvers()\n"
        "assert any(i.name == 'cvxpy-clarabel' and i.installed for i in infos), infos\n"
        "steerkit.list_plugins()\n"
        "heavy = [m for m in ('cvxpy', 'clarabel', 'scs', 'osqp', 'ecos', 'gurobipy', 'scipy')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_module_makes_the_backend_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ECOSSolver, "requires", ("cvxpy", "no_such_ecos_module"))
    assert ECOSSolver.missing() == "module 'no_such_ecos_module' is not importable"
    problem = random_problem(np.random.default_rng(0), "qp")
    with pytest.raises(steerkit.SolverNotInstalledError, match=r"steerkit-cvxpy\[ecos\]"):
        steerkit.select_solver(problem, "cvxpy-ecos")


# -- options ----------------------------------------------------------------------------------


def test_unknown_option_names_it_and_the_accepted_ones() -> None:
    problem = random_problem(np.random.default_rng(0), "qp")
    with pytest.raises(TypeError, match="'max_iter'.*accepted: verbose, max_iters, tol"):
        ClarabelSolver().solve(problem, max_iter=3)
    with pytest.raises(TypeError, match="solver_options must be a dict"):
        ClarabelSolver().solve(problem, solver_options=[("max_iter", 3)])


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_max_iters_reaches_the_backend(backend: type[CvxpySolver]) -> None:
    problem = random_problem(np.random.default_rng(2), "qp", d_sae=100, d_model=10, k=2)
    solution = backend().solve(problem, max_iters=2)
    assert solution.status is Status.ITERATION_LIMIT, (solution.status, solution.message)
    assert solution.delta is None
    assert "before converging" in solution.message


def test_solver_options_pass_through_and_a_bad_one_is_an_error_not_a_raise() -> None:
    problem = random_problem(np.random.default_rng(3), "qp")
    limited = ClarabelSolver().solve(problem, solver_options={"max_iter": 1})
    assert limited.status is Status.ITERATION_LIMIT
    bad = ClarabelSolver().solve(problem, solver_options={"no_such_clarabel_setting": 1})
    assert bad.status is Status.ERROR and bad.delta is None
    assert "no_such_clarabel_setting" in bad.message


def test_a_looser_tol_reaches_the_backend() -> None:
    problem = random_problem(np.random.default_rng(4), "socp", d_sae=80, d_model=12, k=2)
    reference = reference_solve(problem).objective
    tight = SCSSolver().solve(problem)
    loose = SCSSolver().solve(problem, tol=1e-2)
    assert relative(tight.objective, reference) <= 1e-6
    assert loose.iterations is not None and tight.iterations is not None
    assert loose.iterations < tight.iterations


# -- status mapping ---------------------------------------------------------------------------


def fake_model(problem: SteeringProblem, status: str, delta: Any, mu: Any = None) -> _Model:
    """A `_Model` whose CVXPY problem "ended" with `status` at δ (no scaling)."""
    cvxpy_problem = SimpleNamespace(
        status=status,
        solver_stats=SimpleNamespace(num_iters=7, solve_time=0.01),
        compilation_time=0.0,
    )
    return _Model(
        problem=cvxpy_problem,
        y=SimpleNamespace(value=delta),
        rhs=None,
        linear=SimpleNamespace(dual_value=mu),
        norm=None if problem.kind is ProblemKind.QP else SimpleNamespace(dual_value=None),
        s=1.0,
        rows=np.ones(problem.n_constraints),
        c=1.0,
        gamma=1.0,
        setup_seconds=0.0,
        solves=1,
    )


def test_status_mapping() -> None:
    problem = random_problem(np.random.default_rng(5), "qp", k=2)
    reference = reference_solve(problem)
    backend = ClarabelSolver()

    def result(status: str, delta: Any = None, mu: Any = None) -> steerkit.Solution:
        return backend._result(problem, fake_model(problem, status, delta, mu), 0.0)

    optimal = result("optimal", reference.delta, reference.duals.linear)
    assert optimal.status is Status.OPTIMAL and not optimal.flags
    assert optimal.iterations == 7 and optimal.gap < 1e-7

    inaccurate = result("optimal_inaccurate", reference.delta)
    assert inaccurate.status is Status.OPTIMAL and "inaccurate" in inaccurate.flags
    assert "inaccurate" in inaccurate.message
    # no multipliers from the backend: the core computes its own, and they certify the point
    assert "duals_recomputed" in inaccurate.flags and inaccurate.gap <= 1e-5

    short = reference.delta * 0.5  # misses the margin by half
    stopped = result("optimal_inaccurate", short)
    assert stopped.status is Status.ITERATION_LIMIT and stopped.delta is None
    assert "violates the constraints" in stopped.message
    wrong = result("optimal", short)
    assert wrong.status is Status.ERROR and wrong.delta is None

    for status in ("infeasible", "infeasible_inaccurate", "infeasible_or_unbounded"):
        infeasible = result(status)
        assert infeasible.status is Status.INFEASIBLE and infeasible.delta is None
        assert infeasible.message
    assert "inaccurate" in result("infeasible_inaccurate").flags

    limit = result("user_limit")
    assert limit.status is Status.ITERATION_LIMIT and limit.delta is None
    for status in ("unbounded", "solver_error"):
        error = result(status)
        assert error.status is Status.ERROR and error.delta is None
        assert status in error.message
    assert result("optimal", None).status is Status.ERROR


# -- infeasibility and trivial inputs ---------------------------------------------------------


@pytest.mark.parametrize("backend", [ClarabelSolver, ECOSSolver, SCSSolver, GurobiSolver])
def test_socp_below_the_smallest_eps_says_increase_eps(backend: type[CvxpySolver]) -> None:
    problem = socp_at(random_problem(np.random.default_rng(6), "qp", k=2), 0.5)
    solution = backend().solve(problem)
    assert solution.status is Status.INFEASIBLE and solution.delta is None
    assert f"‖Dᵀδ‖ ≤ ε = {problem.eps:.6g}; increase ε" in solution.message


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_unreachable_direction_names_it(kind: str) -> None:
    rng = np.random.default_rng(7)
    decoder = random_decoder(rng, 30, 6)
    decoder[:, 0] = np.abs(decoder[:, 0])  # every row has a positive component along e0
    directions = np.zeros((2, 6))
    directions[0, 0], directions[1, 0] = 1.0, -1.0  # the second is met by no δ ≥ 0
    build = SteeringProblem.qp if kind == "qp" else SteeringProblem.socp
    parameter = {"lam": 1.0} if kind == "qp" else {"eps": 100.0}
    problem = build(decoder=decoder, directions=directions, rhs=[0.5, 0.5], **parameter)
    solution = ClarabelSolver().solve(problem)
    assert solution.status is Status.INFEASIBLE and solution.delta is None
    assert "direction(s) [1]" in solution.message
    assert "any ε" in solution.message if kind == "socp" else "any λ" in solution.message


def test_already_satisfied_is_exactly_zero_with_a_certificate() -> None:
    problem = random_problem(np.random.default_rng(8), "socp", k=3)
    problem = problem.with_rhs(-np.abs(problem.rhs))
    solution = SCSSolver().solve(problem)
    assert solution.status is Status.OPTIMAL and "already_satisfied" in solution.flags
    assert solution.delta is not None and not solution.delta.any()
    assert solution.gap == 0.0 and solution.dual_infeasibility == 0.0
    assert solution.iterations == 0


# -- the certificate --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("kind", ["qp", "socp"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_clarabel_multipliers_certify_the_optimum(kind: str, k: int, scale: float) -> None:
    problem = random_problem(np.random.default_rng([k, 18]), "qp", k=k, lam=3.0, scale=scale)
    if kind == "socp":
        problem = socp_at(problem, 1.05)
    solution = ClarabelSolver().solve(problem)
    reference = reference_solve(problem)
    assert solution.status is Status.OPTIMAL
    assert solution.gap <= 1e-7, solution.gap
    # Reduced costs are 1 − (Aᵀμ)ⱼ + …: relative to a feature's unit cost. The SOCP's carry
    # ν D Dᵀδ/‖Dᵀδ‖, evaluated at δ rather than at the solver's cone multiplier, so they are
    # looser (the reference solve's own multipliers reach ~1e-5 there too).
    loose = kind == "socp"
    assert solution.dual_infeasibility <= (1e-4 if loose else 1e-6), solution.dual_infeasibility
    assert solution.duals is not None and reference.duals is not None, reference.raw_status
    rtol = 1e-3 if loose else 1e-5
    mu = reference.duals.linear
    np.testing.assert_allclose(solution.duals.linear, mu, rtol=rtol, atol=rtol * mu.max())
    if kind == "socp":
        assert solution.duals.norm is not None and reference.duals.norm is not None
        assert reference.duals.norm * problem.eps > 0.1 * reference.objective  # ε binds
        # compared by their share of the dual objective νε (ν ≈ 0 when ‖Dᵀδ‖ ≤ ε is slack)
        difference = abs(solution.duals.norm - reference.duals.norm) * problem.eps
        assert difference <= rtol * max(1.0, reference.objective), difference


# -- batches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_batch_reuses_one_model_and_every_answer_is_the_optimum(
    backend: type[CvxpySolver], kind: str
) -> None:
    if ProblemKind(kind) not in backend.kinds:
        return  # OSQP: QP only (its refusal of an SOCP is checked by the conformance suite)
    base = random_problem(np.random.default_rng(10), "qp", k=2, d_sae=80, d_model=12)
    base = socp_at(base, 2.0) if kind == "socp" else base
    problems = [base.with_rhs(base.rhs * f) for f in (1.0, 0.6, -1.0, 1.3, 0.9)]
    other = SteeringProblem.qp(
        decoder=base.decoder, directions=base.directions, rhs=base.rhs, lam=7.0
    )
    if kind == "qp":
        problems.append(other)  # another λ: a second model
    solutions = backend().solve_batch(problems)
    assert len(solutions) == len(problems)
    for i, (solution, problem) in enumerate(zip(solutions, problems)):
        reference = reference_solve(problem)
        assert solution.status is Status.OPTIMAL, (i, solution.message)
        if problem.already_satisfied:
            assert "already_satisfied" in solution.flags
            continue
        assert relative(solution.objective, reference.objective) <= 1e-6, (i, problem)
        assert solution.violation <= 1e-6 * max(1.0, float(np.abs(problem.rhs).max()))
    warm = [s.info["warm"] for s, p in zip(solutions, problems) if not p.already_satisfied]
    assert warm[0] is False and all(warm[1:4]), warm
    if kind == "qp":
        assert warm[4] is False  # the λ = 7 problem was solved on a model of its own
    if backend is OSQPSolver:  # CVXPY turns polishing off on warm re-solves unless asked
        polish = [s.info["polish"] for s, p in zip(solutions, problems) if not p.already_satisfied]
        assert all(status != 0 for status in polish), polish
