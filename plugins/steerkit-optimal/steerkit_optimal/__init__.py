"""Optimal sparse steering: the sparsest δ ≥ 0 over SAE features that moves a concept past its
margin, per input (`socp`, `qp`) or shared by a whole batch (`shared`); and Pareto sweeps."""

from steerkit_optimal.methods import QPMethod, SharedMethod, SOCPMethod
from steerkit_optimal.pareto import ParetoPoint, pareto
from steerkit_optimal.prefilter import prefilter_pool

__all__ = ["ParetoPoint", "QPMethod", "SOCPMethod", "SharedMethod", "pareto", "prefilter_pool"]
