"""Entry point of the steerkit-optimal distribution: registers the convex steering methods."""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_optimal.adaptive import QPAdaptiveMethod, SOCPAdaptiveMethod
from steerkit_optimal.methods import QPMethod, SharedMethod, SOCPMethod


@steerkit.hookimpl
def register_steering_methods(register: Register) -> None:
    register(SOCPMethod)
    register(QPMethod)
    register(SharedMethod)
    register(QPAdaptiveMethod)
    register(SOCPAdaptiveMethod)
