"""pytest fixtures for steerkit and plugin authors (loaded through the ``pytest11`` entry point).

- ``steerkit_rng``: a numpy Generator seeded from the test's name, so every test is repeatable;
- ``steerkit_host``: an isolated PluginHost with no entry points, made the process-wide host for
  the test; register your plugin module with ``steerkit_host_factory(("name", module))``;
- ``steerkit_problem``: a factory of small random steering problems (see `random_problem`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from steerkit.plugins import PluginHost, use_host
from steerkit.problem import SteeringProblem
from steerkit.testing.problems import random_problem


@pytest.fixture
def steerkit_rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A Generator seeded from the test's node id: different per test, the same every run."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def steerkit_host_factory() -> Iterator[Callable[..., PluginHost]]:
    """Make isolated hosts: ``steerkit_host_factory(("name", module), entry_points=False)``.

    The last one made is the process-wide host until the test ends.
    """
    stack: list[Any] = []

    def make(*plugins: tuple[str, object], entry_points: bool = False, **kwargs: Any) -> PluginHost:
        host = PluginHost(entry_points=entry_points, plugins=plugins, **kwargs)
        context = use_host(host)
        context.__enter__()
        stack.append(context)
        return host

    yield make
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def steerkit_host(steerkit_host_factory: Callable[..., PluginHost]) -> PluginHost:
    """An empty, isolated plugin host (no entry points), process-wide for the test."""
    return steerkit_host_factory()


@pytest.fixture
def steerkit_problem(steerkit_rng: np.random.Generator) -> Callable[..., SteeringProblem]:
    """``steerkit_problem(kind="qp", d_sae=60, d_model=12, k=1, lam=1.0, eps=None, scale=1.0)``."""

    def make(kind: str = "qp", **kwargs: Any) -> SteeringProblem:
        return random_problem(steerkit_rng, kind, **kwargs)

    return make
