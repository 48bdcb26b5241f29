"""Stage 5's front door: pick a backend from the solver registry and solve."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs

from steerkit.answer import check
from steerkit.errors import SolverCapabilityError, SolverNotInstalledError
from steerkit.plugins import PluginHost, PluginRow, get_host
from steerkit.problem import SteeringProblem
from steerkit.solution import Solution
from steerkit.solver import Solver

__all__ = [
    "SolverInfo",
    "available_solvers",
    "list_plugins",
    "select_solver",
    "solve",
    "solve_batch",
]

logger = logging.getLogger(__name__)

#: Printed when no backend is installed at all.
INSTALL_HINT = "pip install ./plugins/steerkit-cvxpy (the CVXPY backends)"


@attrs.frozen
class SolverInfo:
    """What `steerkit solvers` shows about one backend."""

    name: str
    installed: bool
    reason: str | None
    install: str
    description: str
    distribution: str | None
    version: str | None
    capabilities: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _host(host: PluginHost | None) -> PluginHost:
    return host.load() if host is not None else get_host()


def _missing(cls: type[Solver]) -> str | None:
    """`cls.missing()`, with a third-party check that raises reported as the reason."""
    try:
        return cls.missing()
    except Exception as e:
        return f"its installation check raised {type(e).__name__}: {e}"


def available_solvers(*, host: PluginHost | None = None) -> list[SolverInfo]:
    """Every registered solver backend, installed or not, with what it can solve."""
    registry = _host(host).solvers
    infos = []
    for entry in registry.entries():
        cls = entry.obj
        missing = _missing(cls)
        infos.append(
            SolverInfo(
                name=entry.name,
                installed=missing is None,
                reason=missing,
                install=cls.install,
                description=cls.description,
                distribution=entry.origin.distribution,
                version=entry.origin.version,
                capabilities=cls.capabilities(),
            )
        )
    return infos


def list_plugins(*, host: PluginHost | None = None) -> list[PluginRow]:
    """Every registered plugin object, and every plugin that failed to load or was blocked."""
    return _host(host).rows()


def select_solver(
    problem: SteeringProblem, solver: str | None = None, *, host: PluginHost | None = None
) -> type[Solver]:
    """The backend class for `problem`: the one named, or the best installed one able to solve it.

    Automatic selection tries backends by descending priority and logs the choice.
    """
    registry = _host(host).solvers
    if solver is not None:
        cls = registry.get(solver)
        missing = _missing(cls)
        if missing is not None:
            raise SolverNotInstalledError(solver, missing, cls.install or "the backend's package")
        reason = cls.cannot_solve(problem)
        if reason is not None:
            raise SolverCapabilityError(
                f"solver {solver!r} cannot solve this problem ({problem.describe()}): {reason}"
            )
        return cls

    rejected: list[str] = []
    candidates = sorted(registry.entries(), key=lambda e: (-e.obj.priority, e.name))
    for entry in candidates:
        cls = entry.obj
        reason = _missing(cls) or cls.cannot_solve(problem)
        if reason is None:
            if rejected:
                logger.info(
                    "solver %s chosen for %s (passed over: %s)",
                    entry.name,
                    problem.describe(),
                    "; ".join(rejected),
                )
            else:
                logger.info("solver %s chosen for %s", entry.name, problem.describe())
            return cls
        rejected.append(f"{entry.name}: {reason}")
    if not candidates:
        raise SolverNotInstalledError("(any)", "no solver backend is registered", INSTALL_HINT)
    raise SolverCapabilityError(
        f"no installed solver can solve this problem ({problem.describe()}): " + "; ".join(rejected)
    )


def solve(
    problem: SteeringProblem,
    solver: str | None = None,
    *,
    host: PluginHost | None = None,
    **options: Any,
) -> Solution:
    """Solve one steering problem with the named backend, or the best installed one.

    Returns a Solution whatever the outcome; call `.raise_for_status()` to turn a failure into
    an exception.
    """
    cls = select_solver(problem, solver, host=host)
    # through solve_batch: a backend that implements `solve` itself is served costs there too
    return _checked(problem, cls().solve_batch([problem], **options)[0])


def solve_batch(
    problems: Sequence[SteeringProblem],
    solver: str | None = None,
    *,
    host: PluginHost | None = None,
    **options: Any,
) -> list[Solution]:
    """Solve problems that differ only in r with one backend instance, so it can reuse work."""
    if not problems:
        return []
    cls = select_solver(problems[0], solver, host=host)
    solutions = cls().solve_batch(problems, **options)
    return [_checked(p, s) for p, s in zip(problems, solutions)]


def _checked(problem: SteeringProblem, solution: Solution) -> Solution:
    """The core's check of an optimal claim that did not go through `steerkit.answer.accept`
    (a backend that implements `solve` itself): refused unless the core's figures vouch for it."""
    return check(problem, solution)
