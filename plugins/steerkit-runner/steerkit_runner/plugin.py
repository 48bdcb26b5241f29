"""Entry point of the steerkit-runner distribution: registers the `run`, `sweep`, `report`,
`steer`, `features`, `export` and `configs` commands. Nothing heavy is imported here."""

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


@hookimpl
def register_commands(register: Register) -> None:
    register(RunCommand)
    register(SweepCommand)
    register(ReportCommand)
    register(SteerCommand)
    register(FeaturesCommand)
    register(ExportCommand)
    register(ConfigsCommand)
