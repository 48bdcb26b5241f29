"""steerkit.solve and solver selection, over an isolated host with the toy solvers."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

import steerkit
from steerkit import (
    SolverCapabilityError,
    SolverNotInstalledError,
    Status,
    SteeringProblem,
    UnknownPluginError,
)
from steerkit.testing.oracle import reference_solve

from .toy_plugins import BrokenCheckPlugin, SolverPlugin


@pytest.fixture
def toys(steerkit_host_factory: Any) -> Any:
    return steerkit_host_factory(("toys", SolverPlugin()), ("broken", BrokenCheckPlugin()))


def test_automatic_selection_prefers_priority_and_falls_through_on_capability(
    toys: Any, steerkit_problem: Any, caplog: pytest.LogCaptureFixture
) -> None:
    one = steerkit_problem("qp", k=1)
    three = steerkit_problem("qp", k=3)
    with caplog.at_level(logging.INFO, logger="steerkit.solve"):
        assert steerkit.select_solver(one).name == "toy-one-constraint"
        assert steerkit.select_solver(three).name == "toy-reference"
    assert "solver toy-reference chosen" in caplog.text
    assert "toy-missing: module 'steerkit_module_that_does_not_exist' is not importable" in (
        caplog.text
    )
    assert "toy-one-constraint: handles at most 1 linear constraint(s), the problem has 3" in (
        caplog.text
    )


def test_solve_agrees_with_the_reference(toys: Any, steerkit_problem: Any) -> None:
    for problem in (steerkit_problem("qp", k=2, lam=0.3), steerkit_problem("socp")):
        solution = steerkit.solve(problem)
        reference = reference_solve(problem)
        assert solution.status is Status.OPTIMAL
        assert solution.objective == pytest.approx(reference.objective, rel=1e-9)
        assert solution.gap < 1e-7 and solution.dual_infeasibility < 1e-6


def test_named_solver(toys: Any, steerkit_problem: Any) -> None:
    problem = steerkit_problem("socp")
    assert steerkit.solve(problem, "toy-reference").solver == "toy-reference"
    with pytest.raises(UnknownPluginError, match="unknown solver 'clarabel'; available: toy-"):
        steerkit.solve(problem, "clarabel")
    with pytest.raises(SolverNotInstalledError, match="pip install steerkit-not-a-package"):
        steerkit.solve(problem, "toy-missing")
    with pytest.raises(SolverCapabilityError, match="solves QP only, not SOCP"):
        steerkit.solve(problem, "toy-qp-only")


def test_options_reach_the_backend(toys: Any, steerkit_problem: Any) -> None:
    with pytest.raises(TypeError, match="unknown options: tolerance"):
        steerkit.solve(steerkit_problem("qp"), "toy-reference", tolerance=1e-3)


def test_nothing_installed_says_what_to_install(steerkit_host: Any, steerkit_problem: Any) -> None:
    with pytest.raises(SolverNotInstalledError, match="pip install ./plugins/steerkit-cvxpy"):
        steerkit.solve(steerkit_problem("qp"))


def test_no_capable_solver_lists_every_reason(steerkit_host_factory: Any) -> None:
    class QPOnly:
        @steerkit.hookimpl
        def register_solvers(self, register: Any) -> None:
            from .toy_plugins import QPOnlySolver

            register(QPOnlySolver)

    steerkit_host_factory(("qp-only", QPOnly()))
    problem = SteeringProblem.socp(decoder=np.eye(3), directions=np.ones(3), rhs=1.0, eps=2.0)
    with pytest.raises(SolverCapabilityError, match="toy-qp-only: solves QP only, not SOCP"):
        steerkit.solve(problem)


def test_solve_batch_uses_one_backend(toys: Any, steerkit_problem: Any) -> None:
    problem = steerkit_problem("qp")
    problems = [problem.with_rhs(problem.rhs * f) for f in (1.0, 0.5, -1.0)]
    solutions = steerkit.solve_batch(problems)
    assert [s.solver for s in solutions] == ["toy-one-constraint"] * 3
    assert solutions[2].objective == pytest.approx(0.0, abs=1e-9)
    assert steerkit.solve_batch([]) == []


def test_available_solvers_reports_installation(toys: Any) -> None:
    infos = {info.name: info for info in steerkit.available_solvers()}
    assert infos["toy-reference"].installed and infos["toy-reference"].reason is None
    missing = infos["toy-missing"]
    assert not missing.installed and "not importable" in (missing.reason or "")
    assert missing.install == "steerkit-not-a-package"
    assert infos["toy-one-constraint"].capabilities["max_constraints"] == 1
    assert infos["toy-qp-only"].capabilities["kinds"] == ["qp"]
    broken = infos["toy-broken-check"]
    assert not broken.installed
    assert broken.reason == (
        "its installation check raised RuntimeError: licence server unreachable"
    )


def test_a_raising_installation_check_is_passed_over(toys: Any, steerkit_problem: Any) -> None:
    assert steerkit.select_solver(steerkit_problem("qp", k=1)).name == "toy-one-constraint"
    with pytest.raises(SolverNotInstalledError, match="licence server unreachable"):
        steerkit.select_solver(steerkit_problem("qp", k=1), "toy-broken-check")
