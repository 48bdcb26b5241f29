"""Entry point of the steerkit-cvxpy distribution: registers one solver backend per CVXPY solver.

Importing this module imports no solver and not cvxpy: each backend says what it needs in
`requires`, which steerkit checks with `find_spec`, and imports cvxpy inside `solve`.
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_cvxpy.clarabel import ClarabelSolver
from steerkit_cvxpy.ecos import ECOSSolver
from steerkit_cvxpy.gurobi import GurobiSolver
from steerkit_cvxpy.osqp import OSQPSolver
from steerkit_cvxpy.scs import SCSSolver

#: Every backend this distribution registers, by descending priority.
BACKENDS = (ClarabelSolver, ECOSSolver, SCSSolver, OSQPSolver, GurobiSolver)


@steerkit.hookimpl
def register_solvers(register: Register) -> None:
    for backend in BACKENDS:
        register(backend)
