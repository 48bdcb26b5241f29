"""The hooks a steerkit plugin implements: one `register_<things>(register)` per interface.

Each hook is called once per plugin with a `register` callable; call it once per thing::

    @steerkit.hookimpl
    def register_solvers(register):
        register(MySolver)
"""

from __future__ import annotations

import pluggy

from steerkit.registry import Register

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("steerkit")
hookimpl = pluggy.HookimplMarker("steerkit")


@hookspec
def register_datasets(register: Register) -> None:
    """Register Dataset subclasses: ``register(MyDataset)``; the name is ``MyDataset.name``."""


@hookspec
def register_activation_sources(register: Register) -> None:
    """Register ActivationSource subclasses (models, hook points and SAEs)."""


@hookspec
def register_probes(register: Register) -> None:
    """Register Probe subclasses, which turn labelled activations into a Concept."""


@hookspec
def register_steering_methods(register: Register) -> None:
    """Register SteeringMethod subclasses: convex methods and heuristic baselines."""


@hookspec
def register_solvers(register: Register) -> None:
    """Register Solver subclasses (backends for SteeringProblems)."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register Metric subclasses for evaluation."""


@hookspec
def register_commands(register: Register) -> None:
    """Register Command subclasses: `steerkit` CLI subcommands (e.g. `train-sae`)."""


@hookspec
def register_executors(register: Register) -> None:
    """Register Executor subclasses: where a run's units execute (in process, on a cluster)."""
