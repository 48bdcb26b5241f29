"""qp, socp and shared with per-feature costs: a user array, a .npy file, an exclusion list, or
the source's output scores (c = 1 / (0.1 + s)). The weighted problems themselves are checked
against CVXPY + Clarabel in tests/test_costs.py; here, that each method builds the right one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_optimal import QPMethod, SharedMethod, SOCPMethod
from steerkit_optimal.costs import SCORE_FLOOR

import steerkit
from steerkit import Activations, Concept, MethodContext, SteeringProblem, ValidationError
from steerkit.testing import ReferencePlugin, random_decoder

HOOK = "blocks.3.hook_resid_pre"
D_SAE, D_MODEL = 60, 10


@pytest.fixture(autouse=True)
def reference_only(steerkit_host_factory: Any) -> Any:
    return steerkit_host_factory(("reference", ReferencePlugin()))


class ScoringSource:
    """A stand-in source whose output scores are known (counts its calls)."""

    name = "scoring"

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.calls = 0

    def output_scores(self, feature_ids: Any, **options: Any) -> np.ndarray:
        self.calls += 1
        return self.scores[list(feature_ids)]


def _context(seed: int = 0, **kwargs: Any) -> MethodContext:
    rng = np.random.default_rng(seed)
    decoder = random_decoder(rng, D_SAE, D_MODEL)
    direction = rng.normal(size=(1, D_MODEL))
    hidden = rng.normal(size=(4, D_MODEL))
    thresholds = np.array([float((hidden @ direction.T).max()) + 1.0])
    return MethodContext(
        inputs=Activations(hidden=hidden, hook_point=HOOK),
        concept=Concept(directions=direction, thresholds=thresholds),
        decoder=decoder,
        **kwargs,
    )


def _by_hand(context: MethodContext, i: int, costs: Any, **parameter: float) -> np.ndarray:
    rhs = context.concept.rhs(context.inputs.hidden)[i]
    build = SteeringProblem.qp if "lam" in parameter else SteeringProblem.socp
    problem = build(
        decoder=context.decoder,
        directions=context.concept.directions,
        rhs=rhs,
        costs=costs,
        **parameter,
    )
    solution = steerkit.solve(problem)
    assert solution.ok, solution.message
    return problem.steering_vector(solution.delta)


def test_qp_with_a_cost_array_solves_the_weighted_problem() -> None:
    context = _context()
    costs = np.random.default_rng(3).uniform(0.5, 4.0, D_SAE)
    result = QPMethod(lam=1.0, costs=costs.tolist()).compute(context)
    plain = QPMethod(lam=1.0).compute(context)
    for i, vector in enumerate(result.vectors):
        assert vector is not None and vector.provenance["cost_weighted"]
        np.testing.assert_allclose(vector.vector, _by_hand(context, i, costs, lam=1.0), atol=1e-7)
    assert not np.allclose(result.vectors[0].vector, plain.vectors[0].vector, atol=1e-4)


def test_costs_from_a_npy_file(tmp_path: Path) -> None:
    context = _context(1)
    costs = np.random.default_rng(4).uniform(0.5, 4.0, D_SAE)
    path = tmp_path / "costs.npy"
    np.save(path, costs)
    eps = 3.0 * float(np.abs(context.concept.rhs(context.inputs.hidden)).max())
    result = SOCPMethod(eps=eps, costs=str(path), on_failure="keep").compute(context)
    for i, vector in enumerate(result.vectors):
        if vector is not None:
            np.testing.assert_allclose(
                vector.vector, _by_hand(context, i, costs, eps=eps), atol=1e-6
            )
    assert any(v is not None for v in result.vectors)


def test_excluded_features_are_never_used_by_shared() -> None:
    context = _context(2)
    plain = SharedMethod(kind="qp", lam=1.0).compute(context)
    used = plain.solutions[0].support().tolist()
    result = SharedMethod(kind="qp", lam=1.0, exclude=used).compute(context)
    delta = result.solutions[0].delta
    assert delta is not None and result.solutions[0].ok
    assert np.all(delta[used] == 0.0)
    costs = np.ones(D_SAE)
    costs[used] = math.inf
    worst = int(np.argmax(context.concept.rhs(context.inputs.hidden)[:, 0]))
    np.testing.assert_allclose(
        result.vectors[0].vector, _by_hand(context, worst, costs, lam=1.0), atol=1e-7
    )


def test_output_score_costs_follow_the_documented_transform() -> None:
    scores = np.random.default_rng(5).uniform(0.0, 1.0, D_SAE)
    source = ScoringSource(scores)
    context = _context(3, source=source)
    method = QPMethod(lam=1.0, costs="output_score")
    result = method.compute(context)
    method.compute(context)
    assert source.calls == 1  # scored once per source
    costs = 1.0 / (SCORE_FLOOR + scores)
    for i, vector in enumerate(result.vectors):
        assert vector is not None
        np.testing.assert_allclose(vector.vector, _by_hand(context, i, costs, lam=1.0), atol=1e-7)


def test_output_score_needs_a_source_that_scores() -> None:
    with pytest.raises(ValidationError, match="output scores"):
        QPMethod(costs="output_score").compute(_context())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"costs": "weights.txt"}, "costs"),
        ({"costs": [[1.0, 2.0]]}, "costs"),
        ({"exclude": "3"}, "exclude"),
        ({"exclude": [1, -2]}, "exclude[1]"),
    ],
)
def test_bad_cost_options_are_refused(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        QPMethod(**options)
    assert info.value.field == field


def test_cost_array_of_the_wrong_size_names_d_sae() -> None:
    with pytest.raises(ValidationError, match=r"shape \(60,\)"):
        QPMethod(costs=[1.0, 2.0]).compute(_context())
    with pytest.raises(ValidationError, match=r"\[0, 60\)"):
        QPMethod(exclude=[60]).compute(_context())


def test_adaptive_function_with_costs_gives_the_weighted_qp_vector() -> None:
    """The table is built from the rescaled rows dᵢ / cᵢ: its v*(r) is the weighted QP's."""
    from steerkit_optimal import QPAdaptiveMethod

    context = _context(4)
    costs = np.random.default_rng(6).uniform(0.5, 4.0, D_SAE)
    costs[7] = math.inf
    result = QPAdaptiveMethod(lam=1.0, costs=costs).compute(context)
    function = result.vectors[0].function
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    for i, r in enumerate(rhs):
        expected = _by_hand(context, i, costs, lam=1.0)
        np.testing.assert_allclose(function(np.array([r]))[0], expected, atol=1e-6)
