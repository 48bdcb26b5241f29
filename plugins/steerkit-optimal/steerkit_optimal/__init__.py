"""Optimal sparse steering: the sparsest δ ≥ 0 over SAE features that moves a concept past its
margin, per input (`socp`, `qp`) or shared by a whole batch (`shared`), or per token
(`qp_adaptive`, `socp_adaptive`: the steering function v*(r), k = 1); and Pareto sweeps."""

from steerkit_optimal.adaptive import QPAdaptiveMethod, SOCPAdaptiveMethod, steering_function_for
from steerkit_optimal.methods import QPMethod, SharedMethod, SOCPMethod
from steerkit_optimal.pareto import ParetoPoint, pareto
from steerkit_optimal.prefilter import prefilter_pool

__all__ = [
    "ParetoPoint",
    "QPAdaptiveMethod",
    "QPMethod",
    "SOCPAdaptiveMethod",
    "SOCPMethod",
    "SharedMethod",
    "pareto",
    "prefilter_pool",
    "steering_function_for",
]
