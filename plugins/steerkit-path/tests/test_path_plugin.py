"""Discovery through the entry point, light imports, capability flags, options, statuses and
messages of the `path` backend."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from steerkit_path import PathSolver

import steerkit
from steerkit import SolverCapabilityError, Status, SteeringProblem
from steerkit.testing import random_decoder, random_problem
from steerkit.testing.oracle import min_feasible_norm


def test_registered_through_the_entry_point() -> None:
    info = {s.name: s for s in steerkit.available_solvers()}["path"]
    assert info.installed and info.distribution == "steerkit-path"
    assert info.capabilities == {
        "kinds": ["qp", "socp"],
        "max_constraints": 1,
        "max_features": None,
        "warm_start": True,
        "batch": True,
        "priority": 100,
    }


def test_discovery_imports_neither_scipy_nor_the_homotopy() -> None:
    code = (
        "import sys, steerkit; steerkit.available_solvers(); import steerkit_path.plugin; "
        "print(sorted(m for m in ('scipy', 'steerkit_path.homotopy', 'steerkit_path.path') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_without_numba_the_solver_says_so_and_is_passed_over() -> None:
    """The walk's loops are compiled with numba: where it cannot be imported, `missing()` names
    it and automatic selection takes another backend (not an error Solution per problem)."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'numba' or name.startswith('numba.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'numba'\")\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, steerkit\n"
        "from steerkit_path import PathSolver\n"
        "rng = np.random.default_rng(0)\n"
        "p = steerkit.SteeringProblem.qp(decoder=rng.normal(size=(30, 6)), "
        "directions=rng.normal(size=6), rhs=1.0, lam=1.0)\n"
        "s = steerkit.solve(p)\n"
        "print(PathSolver.missing()); print(s.solver, s.ok)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    missing, chosen = out.stdout.strip().splitlines()
    assert "numba" in missing, out.stdout + out.stderr
    solver, ok = chosen.split()
    assert solver != "path" and ok == "True", out.stdout + out.stderr


def test_selected_first_for_one_constraint_and_passed_over_for_three() -> None:
    rng = np.random.default_rng(0)
    assert steerkit.select_solver(random_problem(rng, "qp")) is PathSolver
    assert steerkit.select_solver(random_problem(rng, "socp")) is PathSolver
    wide = random_problem(rng, "qp", k=3)
    assert steerkit.select_solver(wide) is not PathSolver
    with pytest.raises(SolverCapabilityError, match="at most 1"):
        steerkit.select_solver(wide, "path")
    solution = PathSolver().solve(wide)  # called directly: an error Solution, not a raise
    assert solution.status is Status.ERROR and solution.delta is None
    assert "at most 1" in solution.message


def test_options_are_checked() -> None:
    problem = random_problem(np.random.default_rng(1), "qp")
    with pytest.raises(TypeError, match="'pool'"):
        PathSolver().solve(problem, pool=3)
    with pytest.raises(ValueError, match="pool_size"):
        PathSolver().solve(problem, pool_size=0)
    assert set(PathSolver.options_doc()) == {"cache", "min_eps", "pool_size", "max_steps"}


def test_solution_reports_path_figures_and_a_tight_certificate() -> None:
    rng = np.random.default_rng(2)
    problem = random_problem(rng, "socp", d_sae=200, d_model=20)
    problem = SteeringProblem.socp(
        decoder=problem.decoder,
        directions=problem.directions,
        rhs=problem.rhs,
        eps=1.2 * min_feasible_norm(problem),
    )
    solution = PathSolver().solve(problem, cache=False, min_eps=True)
    assert solution.status is Status.OPTIMAL
    if solution.info["jump"]:  # found by pivoting: its rounds, on no walked segment
        assert solution.iterations == solution.info["jump"] and solution.info["segment"] is None
        assert solution.info["jump_rounds"] >= solution.info["jump"]
    else:
        assert solution.iterations == solution.info["segment"] + 1 <= solution.info["path_steps"]
    assert solution.info["kkt_max_violation"] <= 1e-9
    assert solution.info["min_eps"] == pytest.approx(min_feasible_norm(problem), rel=1e-6)
    assert solution.duals is not None and solution.duals.norm is not None
    assert solution.duals.norm > 0 and solution.duals.linear[0] > 0
    assert solution.gap <= 1e-12 and solution.dual_infeasibility <= 1e-12
    assert abs(np.linalg.norm(problem.steering_vector(solution.delta)) - problem.eps) < 1e-12


def test_infeasible_socp_below_r_over_norm_w_is_answered_at_once() -> None:
    """Below r/‖w‖ no steering vector reaches the margin (wᵀv ≤ ‖w‖‖v‖): infeasible without
    walking to the path's end, the message naming that bound; with min_eps=True the walk gives
    the exact smallest ε too (the reference's), as it did for every infeasible ε before."""
    rng = np.random.default_rng(3)
    problem = random_problem(rng, "socp")
    smallest = min_feasible_norm(problem)
    bound = float(problem.rhs[0]) / float(np.linalg.norm(problem.directions[0]))
    assert smallest >= bound * (1 - 1e-7)
    low = SteeringProblem.socp(
        decoder=problem.decoder, directions=problem.directions, rhs=problem.rhs, eps=0.5 * bound
    )
    fast = PathSolver().solve(low, cache=False)
    assert fast.status is Status.INFEASIBLE and fast.delta is None
    assert fast.info["min_eps"] is None
    assert fast.message == (
        f"ε = {low.eps:.6g} is below r/‖w‖ = {bound:.6g}, the shortest steering vector that "
        f"could move the probe by r (wᵀv ≤ ‖w‖‖v‖): the smallest feasible ε for this input is "
        f"at least that (the solver option min_eps=True gives it exactly)"
    )
    exact = PathSolver().solve(low, cache=False, min_eps=True)
    assert exact.status is Status.INFEASIBLE
    assert exact.info["min_eps"] == pytest.approx(smallest, rel=1e-6)
    assert exact.message == (
        f"ε = {low.eps:.6g} is below the smallest feasible ε = "
        f"{exact.info['min_eps']:.6g} for this input"
    )
    assert fast.info["path_steps"] < exact.info["path_steps"]  # no walk to the end
    with pytest.raises(steerkit.InfeasibleError, match="r/‖w‖"):
        fast.raise_for_status()


def test_infeasible_socp_above_r_over_norm_w_names_the_smallest_eps() -> None:
    """A decoder whose rows' cone misses w (fewer rows than dimensions): its smallest feasible
    ε lies above r/‖w‖, and an ε between the two is infeasible with the exact smallest named."""
    rng = np.random.default_rng(5)
    problem = random_problem(rng, "socp", d_sae=8, d_model=20)
    smallest = min_feasible_norm(problem)
    bound = float(problem.rhs[0]) / float(np.linalg.norm(problem.directions[0]))
    assert smallest > 1.05 * bound
    between = SteeringProblem.socp(
        decoder=problem.decoder,
        directions=problem.directions,
        rhs=problem.rhs,
        eps=(smallest + bound) / 2,
    )
    solution = PathSolver().solve(between, cache=False)
    assert solution.status is Status.INFEASIBLE and solution.delta is None
    assert solution.info["min_eps"] == pytest.approx(smallest, rel=1e-6)
    assert solution.message == (
        f"ε = {between.eps:.6g} is below the smallest feasible ε = "
        f"{solution.info['min_eps']:.6g} for this input"
    )
    with pytest.raises(steerkit.InfeasibleError, match="smallest feasible ε"):
        solution.raise_for_status()


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_no_row_along_the_direction_is_infeasible_with_a_reason(kind: str) -> None:
    rng = np.random.default_rng(4)
    decoder = random_decoder(rng, 30, 6)
    direction = -np.abs(rng.normal(size=6))
    decoder = np.abs(decoder)  # every row has a ≤ 0 along a direction with negative entries
    build = SteeringProblem.qp if kind == "qp" else SteeringProblem.socp
    parameter = {"lam": 1.0} if kind == "qp" else {"eps": 5.0}
    problem = build(decoder=decoder, directions=direction, rhs=0.5, **parameter)
    solution = PathSolver().solve(problem)
    assert solution.status is Status.INFEASIBLE and solution.delta is None
    assert "no decoder row has a positive component" in solution.message
    if kind == "socp":
        assert solution.info["min_eps"] == math.inf
    satisfied = PathSolver().solve(problem.with_rhs(-0.5))
    assert satisfied.status is Status.OPTIMAL and "already_satisfied" in satisfied.flags


def test_step_limit_is_an_iteration_limit_status() -> None:
    problem = random_problem(np.random.default_rng(5), "qp", d_sae=100, d_model=12, lam=100.0)
    solution = PathSolver().solve(problem, cache=False, max_steps=2)
    assert solution.status is Status.ITERATION_LIMIT and solution.delta is None
    assert "raise max_steps" in solution.message
