"""steerkit-path: exact one-constraint steering QPs and SOCPs from one positive-Lasso homotopy
path per (decoder, direction), computed once and queried in closed form for every input, λ and ε.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steerkit_path.solver import OPTIONS, PathSolver

if TYPE_CHECKING:
    from steerkit_path.frontier import Pareto, pareto
    from steerkit_path.function import steering_function
    from steerkit_path.path import Path, PathPoints, Regime, cache_info, clear_cache, path_for

__all__ = [
    "OPTIONS",
    "Pareto",
    "Path",
    "PathPoints",
    "PathSolver",
    "Regime",
    "cache_info",
    "clear_cache",
    "pareto",
    "path_for",
    "steering_function",
]

_LAZY = {
    "Pareto": "steerkit_path.frontier",
    "pareto": "steerkit_path.frontier",
    "Path": "steerkit_path.path",
    "PathPoints": "steerkit_path.path",
    "Regime": "steerkit_path.path",
    "cache_info": "steerkit_path.path",
    "clear_cache": "steerkit_path.path",
    "path_for": "steerkit_path.path",
    "steering_function": "steerkit_path.function",
}


def __getattr__(name: str) -> Any:
    """The path machinery (and scipy with it) loads on first use, not on plugin discovery."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steerkit_path' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
