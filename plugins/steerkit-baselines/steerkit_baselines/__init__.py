"""steerkit-baselines: the heuristic steering methods the optimal ones are compared with —
`no_steering`, `random_direction`, `caa_mean_diff`, `caa_contrastive`, `caa_repe`,
`single_feature`, `topk_features` and `probe_direction`. Each returns one shared SteeringVector,
or with normalize="per_input" one per input (the smallest that reaches the margin), with
provenance."""

from __future__ import annotations

from steerkit_baselines._common import NORMALIZE, Baseline, Direction, DirectionBaseline
from steerkit_baselines.caa import CAAContrastive, CAAMeanDiff, CAARepE
from steerkit_baselines.features import SingleFeature, TopKFeatures, class_correlation
from steerkit_baselines.probe import ProbeDirection
from steerkit_baselines.simple import NoSteering, RandomDirection

__all__ = [
    "NORMALIZE",
    "Baseline",
    "CAAContrastive",
    "CAAMeanDiff",
    "CAARepE",
    "Direction",
    "DirectionBaseline",
    "NoSteering",
    "ProbeDirection",
    "RandomDirection",
    "SingleFeature",
    "TopKFeatures",
    "class_correlation",
]
