"""Test kit for steerkit and its plugin authors: fixtures, problem generators, the independent
reference solve, and the conformance suites every backend runs against itself.

Installed as a pytest plugin (entry point ``pytest11``), so the fixtures are there in any test
session where steerkit is installed. Needs ``pip install 'steerkit[testing]'``.
"""

from steerkit.testing.conformance import SolverConformance
from steerkit.testing.examples import run_example, runnable_examples
from steerkit.testing.problems import random_decoder, random_problem
from steerkit.testing.reference_solver import ReferencePlugin, ReferenceSolver

__all__ = [
    "ReferencePlugin",
    "ReferenceSolver",
    "SolverConformance",
    "random_decoder",
    "random_problem",
    "run_example",
    "runnable_examples",
]
