"""Entry point of the steerkit-baselines distribution: registers the eight heuristic baselines.

Importing this module imports only numpy and steerkit: the baselines reach the model through the
context's activation source.
"""

from __future__ import annotations

import steerkit
from steerkit import Register
from steerkit_baselines.caa import CAAContrastive, CAAMeanDiff, CAARepE
from steerkit_baselines.features import SingleFeature, TopKFeatures
from steerkit_baselines.probe import ProbeDirection
from steerkit_baselines.simple import NoSteering, RandomDirection

#: Every baseline, in the order they are registered and listed.
BASELINES = (
    NoSteering,
    RandomDirection,
    CAAMeanDiff,
    CAAContrastive,
    CAARepE,
    SingleFeature,
    TopKFeatures,
    ProbeDirection,
)


@steerkit.hookimpl
def register_steering_methods(register: Register) -> None:
    for baseline in BASELINES:
        register(baseline)
