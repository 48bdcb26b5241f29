"""The plugin's tests: steerkit's solver conformance suite run against the plugin itself, and the
test kit's fixtures (steerkit's pytest plugin provides them; there is nothing to import)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import steerkit_tinyqp
from steerkit_tinyqp import TinyQPSolver

import steerkit
from steerkit.testing import SolverConformance
from steerkit.testing.oracle import reference_solve


class TestTinyQP(SolverConformance):
    solver_class = TinyQPSolver


def test_selected_through_the_registry(
    steerkit_host_factory: Callable[..., steerkit.PluginHost],
    steerkit_problem: Callable[..., steerkit.SteeringProblem],
) -> None:
    steerkit_host_factory(("tinyqp", steerkit_tinyqp))  # an isolated host with this plugin only
    problem = steerkit_problem("qp", k=2, lam=0.5)
    solution = steerkit.solve(problem)  # automatic selection
    assert solution.solver == "tinyqp"
    assert solution.objective == pytest.approx(reference_solve(problem).objective, rel=1e-7)
    assert solution.gap < 1e-7 and solution.dual_infeasibility < 1e-7


def test_declines_an_socp(
    steerkit_host_factory: Callable[..., steerkit.PluginHost], steerkit_rng: np.random.Generator
) -> None:
    steerkit_host_factory(("tinyqp", steerkit_tinyqp))
    decoder = steerkit_rng.normal(size=(20, 5))
    problem = steerkit.SteeringProblem.socp(
        decoder=decoder, directions=decoder[0], rhs=1.0, eps=5.0
    )
    with pytest.raises(steerkit.SolverCapabilityError, match="tinyqp: solves QP only"):
        steerkit.solve(problem)


def test_an_empty_host_has_no_backend(
    steerkit_host: steerkit.PluginHost, steerkit_problem: Callable[..., steerkit.SteeringProblem]
) -> None:
    assert steerkit.available_solvers() == []
    with pytest.raises(steerkit.SolverNotInstalledError):
        steerkit.solve(steerkit_problem("qp"))
