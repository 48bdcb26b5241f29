"""Entry point of the steerkit-runner distribution: registers the `run`, `sweep`, `report`,
`steer`, `features`, `export` and `configs` commands, and the "local" and "ray" executors.
Nothing heavy is imported here (Ray only when a run uses it)."""

from __future__ import annotations

from steerkit import Register, hookimpl
from steerkit_runner.commands import (
    ConfigsCommand,
    ExportCommand,
    FeaturesCommand,
    ReportCommand,
    RunCommand,
    SteerCommand,
    SweepCommand,
)
from steerkit_runner.executors import LocalExecutor, RayExecutor


@hookimpl
def register_commands(register: Register) -> None:
    register(RunCommand)
    register(SweepCommand)
    register(ReportCommand)
    register(SteerCommand)
    register(FeaturesCommand)
    register(ExportCommand)
    register(ConfigsCommand)


@hookimpl
def register_executors(register: Register) -> None:
    register(LocalExecutor)
    register(RayExecutor)
