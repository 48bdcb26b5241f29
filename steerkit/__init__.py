"""steerkit: optimal sparse steering of language models through SAE features.

The core holds the interfaces, the values passed between stages and the plugin machinery; it
needs numpy, attrs and pluggy only. Models, probes, solvers and methods are plugins.
"""

from __future__ import annotations

from steerkit import answer, checks
from steerkit.answer import Answer, Outcome
from steerkit.command import Command
from steerkit.dataset import Dataset, LabelledTexts, Splits
from steerkit.decoder import Decoder
from steerkit.errors import (
    DuplicatePluginError,
    ExecutorNotInstalledError,
    InfeasibleError,
    PluginError,
    SolverCapabilityError,
    SolverError,
    SolverNotInstalledError,
    SteerkitError,
    UnknownPluginError,
    ValidationError,
)
from steerkit.executor import Executor, Resources
from steerkit.hookspecs import hookimpl
from steerkit.intervention import Intervention, RowVectors
from steerkit.method import MethodContext, MethodResult, SteeringMethod
from steerkit.metric import Column, EvalContext, Metric, Needs
from steerkit.plugins import PluginHost, PluginRow, get_host, use_host
from steerkit.probe import Concept, Probe
from steerkit.problem import ProblemKind, SteeringProblem
from steerkit.registry import Register
from steerkit.solution import Certificate, Duals, Solution, Status
from steerkit.solve import (
    SolverInfo,
    available_solvers,
    list_plugins,
    select_solver,
    solve,
    solve_batch,
)
from steerkit.solver import Solver
from steerkit.source import Activations, ActivationSource, SourceInfo, layer_of
from steerkit.steering_function import SteeringFunction
from steerkit.vector import Positions, SteeringVector

__version__ = "0.1.0"

__all__ = [
    "ActivationSource",
    "Activations",
    "Answer",
    "Certificate",
    "Column",
    "Command",
    "Concept",
    "Dataset",
    "Decoder",
    "Duals",
    "DuplicatePluginError",
    "EvalContext",
    "Executor",
    "ExecutorNotInstalledError",
    "InfeasibleError",
    "Intervention",
    "LabelledTexts",
    "MethodContext",
    "MethodResult",
    "Metric",
    "Needs",
    "Outcome",
    "PluginError",
    "PluginHost",
    "PluginRow",
    "Positions",
    "Probe",
    "ProblemKind",
    "Register",
    "Resources",
    "RowVectors",
    "Solution",
    "Solver",
    "SolverCapabilityError",
    "SolverError",
    "SolverInfo",
    "SolverNotInstalledError",
    "SourceInfo",
    "Splits",
    "Status",
    "SteeringFunction",
    "SteeringMethod",
    "SteeringProblem",
    "SteeringVector",
    "SteerkitError",
    "UnknownPluginError",
    "ValidationError",
    "__version__",
    "answer",
    "available_solvers",
    "checks",
    "get_host",
    "hookimpl",
    "layer_of",
    "list_plugins",
    "select_solver",
    "solve",
    "solve_batch",
    "use_host",
]
