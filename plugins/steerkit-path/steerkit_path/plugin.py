"""Entry point of the steerkit-path distribution: registers the `path` backend.

Importing this module imports neither scipy nor the homotopy code (they load on the first solve).
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_path.solver import PathSolver


@steerkit.hookimpl
def register_solvers(register: Register) -> None:
    register(PathSolver)
