"""The convex methods against the reference solve: per input, batched, shared, pre-filtered."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from steerkit_optimal import QPMethod, SharedMethod, SOCPMethod, pareto

import steerkit
from steerkit import (
    Activations,
    Concept,
    InfeasibleError,
    MethodContext,
    SteeringProblem,
    ValidationError,
)
from steerkit.testing import ReferencePlugin, random_decoder
from steerkit.testing.oracle import min_feasible_norm, reference_solve

HOOK = "blocks.3.hook_resid_pre"


@pytest.fixture(autouse=True)
def reference_only(steerkit_host_factory: Any) -> Any:
    """Solve with the test kit's reference backend only, whatever else is installed."""
    return steerkit_host_factory(("reference", ReferencePlugin()))


def make_context(
    rng: np.random.Generator,
    *,
    n: int = 6,
    k: int = 1,
    d_sae: int = 80,
    d_model: int = 12,
    **kwargs: Any,
) -> MethodContext:
    decoder = random_decoder(rng, d_sae, d_model)
    directions = rng.normal(size=(k, d_model))
    hidden = rng.normal(size=(n, d_model))
    scores = hidden @ directions.T
    # the first input is already past the margin along every direction, the others are not
    thresholds = scores[0] - 0.5
    hidden[1:] -= np.maximum(scores[1:] - thresholds + 1.0, 0) @ np.linalg.pinv(directions).T
    features = np.maximum(hidden @ decoder.T, 0)
    return MethodContext(
        inputs=Activations(hidden=hidden, hook_point=HOOK, features=features),
        concept=Concept(directions=directions, thresholds=thresholds),
        decoder=decoder,
        **kwargs,
    )


def per_input_problem(context: MethodContext, i: int, **parameter: float) -> SteeringProblem:
    rhs = context.concept.rhs(context.inputs.hidden)[i]
    build = SteeringProblem.qp if "lam" in parameter else SteeringProblem.socp
    return build(
        decoder=context.decoder, directions=context.concept.directions, rhs=rhs, **parameter
    )


@pytest.mark.parametrize("k", [1, 3])
def test_qp_per_input_matches_the_reference(steerkit_rng: np.random.Generator, k: int) -> None:
    context = make_context(steerkit_rng, k=k)
    result = QPMethod(lam=0.7).compute(context)
    assert not result.shared and len(result.vectors) == 6
    first = result.solutions[0]
    assert "already_satisfied" in first.flags and first.objective == 0.0
    assert first.solver == "none" and first.gap == 0.0 and first.dual_infeasibility == 0.0
    for i in range(1, 6):
        problem = per_input_problem(context, i, lam=0.7)
        reference = reference_solve(problem)
        solution, vector = result.solutions[i], result.vectors[i]
        assert solution.objective == pytest.approx(reference.objective, rel=1e-7)
        assert vector is not None and vector.hook_point == HOOK
        np.testing.assert_allclose(vector.vector, problem.steering_vector(solution.delta))
        # the steered activation reaches every margin
        steered = context.inputs.hidden[i] + vector.vector
        assert np.all(context.concept.directions @ steered >= context.concept.thresholds - 1e-6)
        assert vector.provenance["support"] == solution.support().tolist()
        assert vector.provenance["method"] == "qp" and vector.provenance["input"] == i
    assert result.info["already_satisfied"] == 1 and result.info["solved"] == 5


def test_socp_infeasible_input_raises_with_the_input_and_the_reason(
    steerkit_rng: np.random.Generator,
) -> None:
    context = make_context(steerkit_rng)
    needed = [min_feasible_norm(per_input_problem(context, i, eps=1.0)) for i in range(1, 6)]
    eps = 0.5 * min(needed)
    with pytest.raises(InfeasibleError, match=r"method 'socp', input 1: .*5 of 6 inputs failed"):
        SOCPMethod(eps=eps).compute(context)
    kept = SOCPMethod(eps=eps, on_failure="keep").compute(context)
    assert kept.vectors[0] is not None  # already satisfied
    assert all(v is None for v in kept.vectors[1:])
    assert [s.status.value for s in kept.solutions[1:]] == ["infeasible"] * 5
    assert kept.info["failed"] == [1, 2, 3, 4, 5]


def test_socp_matches_the_reference(steerkit_rng: np.random.Generator) -> None:
    context = make_context(steerkit_rng)
    eps = 1.3 * max(min_feasible_norm(per_input_problem(context, i, eps=1.0)) for i in range(1, 6))
    result = SOCPMethod(eps=eps).compute(context)
    for i in range(1, 6):
        reference = reference_solve(per_input_problem(context, i, eps=eps))
        assert result.solutions[i].objective == pytest.approx(reference.objective, rel=1e-7)
        assert result.vectors[i] is not None
        assert np.linalg.norm(result.vectors[i].vector) <= eps * (1 + 1e-7)


def test_shared_with_one_direction_is_the_hardest_inputs_problem(
    steerkit_rng: np.random.Generator,
) -> None:
    context = make_context(steerkit_rng)
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    hardest = int(np.argmax(rhs))
    result = SharedMethod(lam=1.0).compute(context)
    assert result.shared and len(result.vectors) == 1
    reference = reference_solve(per_input_problem(context, hardest, lam=1.0))
    assert result.solutions[0].objective == pytest.approx(reference.objective, rel=1e-7)
    assert result.info["binding_inputs"] == [hardest]


def test_shared_with_k_directions_satisfies_every_input(steerkit_rng: np.random.Generator) -> None:
    context = make_context(steerkit_rng, k=3, n=8)
    result = SharedMethod(kind="socp", eps=50.0).compute(context)
    vector = result.vectors[0]
    assert vector is not None
    steered = context.inputs.hidden + vector.vector
    slack = steered @ context.concept.directions.T - context.concept.thresholds
    assert slack.min() >= -1e-6, "every input's every constraint must hold"
    # the binding inputs are exactly those that attain a binding direction's worst case
    binding = np.flatnonzero((np.abs(slack) <= 1e-5).any(axis=1)).tolist()
    assert result.info["binding_inputs"] == binding and binding
    # and the optimum equals the reference solve of the stacked robust problem (8 × 3 rows)
    stacked = SteeringProblem.socp(
        decoder=context.decoder,
        directions=np.tile(context.concept.directions, (8, 1)),
        rhs=context.concept.rhs(context.inputs.hidden).reshape(-1),
        eps=50.0,
    )
    assert result.solutions[0].objective == pytest.approx(
        reference_solve(stacked).objective, rel=1e-7
    )


def test_prefilter_reports_a_worse_optimum(steerkit_rng: np.random.Generator) -> None:
    context = make_context(steerkit_rng, d_sae=120)
    full = QPMethod(lam=1.0).compute(context)
    tiny = QPMethod(lam=1.0, prefilter=2, on_failure="keep").compute(context)
    worse = [
        i
        for i in range(1, 6)
        if tiny.solutions[i].ok
        and tiny.solutions[i].objective > full.solutions[i].objective * (1 + 1e-6)
    ]
    assert worse, "a pool of a handful of features should be worse for some input"
    for i in worse:
        assert "prefilter_suboptimal" in tiny.solutions[i].flags
        assert "set prefilter=None" in tiny.solutions[i].message
    generous = QPMethod(lam=1.0, prefilter=120).compute(context)
    for i in range(1, 6):
        assert "prefilter_suboptimal" not in generous.solutions[i].flags
        assert generous.solutions[i].objective == pytest.approx(
            full.solutions[i].objective, rel=1e-7
        )


def test_missing_decoder_and_bad_parameters_are_named(steerkit_rng: np.random.Generator) -> None:
    context = make_context(steerkit_rng)
    bare = MethodContext(inputs=context.inputs, concept=context.concept)
    with pytest.raises(ValueError, match="needs the SAE decoder"):
        QPMethod().compute(bare)
    with pytest.raises(ValidationError, match="qp.lam: expected a positive finite number"):
        QPMethod(lam=0)
    with pytest.raises(ValidationError, match="on_failure: expected one of 'raise', 'keep'"):
        SOCPMethod(eps=1.0, on_failure="ignore")
    with pytest.raises(ValidationError, match="prefilter: expected a number of features ≥ 1"):
        QPMethod(prefilter=0)


def test_pareto_sweep(steerkit_rng: np.random.Generator) -> None:
    context = make_context(steerkit_rng)
    rhs = context.concept.rhs(context.inputs.hidden)[1:3]
    lams = [0.1, 1.0, 10.0]
    points = pareto(context.decoder, context.concept.directions, rhs, lams=lams)
    assert [(p.input, p.parameter) for p in points] == [(i, lam) for lam in lams for i in (0, 1)]
    for i in (0, 1):
        norms = [p.norm for p in points if p.input == i]
        assert norms == sorted(norms, reverse=True), "a larger λ never lengthens Dᵀδ"
        assert all(abs(p.margin) < 1e-6 for p in points if p.input == i)  # the QP binds
    needed = min_feasible_norm(per_input_problem(context, 1, eps=1.0))
    sweep = pareto(
        context.decoder, context.concept.directions, rhs[0], eps=[0.5 * needed, 2 * needed]
    )
    assert [p.status for p in sweep] == ["infeasible", "optimal"]
    with pytest.raises(ValueError, match="exactly one grid"):
        pareto(context.decoder, context.concept.directions, rhs, lams=[1.0], eps=[1.0])


def test_methods_are_registered_through_the_entry_point() -> None:
    host = steerkit.PluginHost()
    names = host.registry("steering_method").names()
    assert {"qp", "socp", "shared"} <= set(names)
    entry = host.registry("steering_method").entry("qp")
    assert entry.origin.distribution == "steerkit-optimal"
