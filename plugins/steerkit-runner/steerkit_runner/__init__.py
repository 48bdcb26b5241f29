"""steerkit's runner: a TOML config → dataset → source → probe → methods × λ/ε/α → metrics →
an append-only results table, saved vectors, generations and a report; and the CLI commands
`steerkit run`, `sweep`, `report`, `steer`, `export` and `configs`.

Importing this package imports nothing heavy (no torch, no model): that happens in `run`.
"""

from __future__ import annotations

from steerkit_runner.config import (
    Config,
    ConfigError,
    load_config,
    parse_config,
    shipped_configs,
)
from steerkit_runner.export import export_vector
from steerkit_runner.results import ResultsTable
from steerkit_runner.runner import RunResult, run, sweep
from steerkit_runner.vectors import load_vector, read_sidecar, save_vector, save_vectors

__all__ = [
    "Config",
    "ConfigError",
    "ResultsTable",
    "RunResult",
    "export_vector",
    "load_config",
    "load_vector",
    "parse_config",
    "read_sidecar",
    "run",
    "save_vector",
    "save_vectors",
    "shipped_configs",
    "sweep",
]
