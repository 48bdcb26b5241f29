"""Entry point of the steerkit-direct distribution: registers the `clarabel` and `osqp` backends.

Importing this module imports neither Clarabel, OSQP nor scipy: each backend names its modules in
`requires`, which steerkit checks with `find_spec`, and imports them inside `solve`.
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_direct.clarabel import ClarabelSolver
from steerkit_direct.osqp import OSQPSolver

#: Every backend this distribution registers, by descending priority.
BACKENDS = (ClarabelSolver, OSQPSolver)


@steerkit.hookimpl
def register_solvers(register: Register) -> None:
    for backend in BACKENDS:
        register(backend)
