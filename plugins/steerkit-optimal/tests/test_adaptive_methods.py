"""`qp_adaptive` and `socp_adaptive`: per-input vectors at positions `adaptive` carrying one
steering function, whose value at each input's margin is the reference solve's vector."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from steerkit_optimal import QPAdaptiveMethod, SOCPAdaptiveMethod

import steerkit
from steerkit import Activations, Concept, MethodContext, Positions, ValidationError
from steerkit.testing import ReferencePlugin, random_decoder

HOOK = "blocks.3.hook_resid_post"


@pytest.fixture(autouse=True)
def reference_only(steerkit_host_factory: Any) -> Any:
    """The fixed vectors come from the test kit's reference backend, the table from the path."""
    return steerkit_host_factory(("reference", ReferencePlugin()))


def context_for(rng: np.random.Generator, k: int = 1) -> MethodContext:
    decoder = random_decoder(rng, 80, 12)
    directions = rng.normal(size=(k, 12))
    hidden = rng.normal(size=(6, 12))
    thresholds = np.quantile(hidden @ directions.T, 0.8, axis=0)  # a few inputs already pass
    return MethodContext(
        inputs=Activations(hidden=hidden, hook_point=HOOK),
        concept=Concept(directions=directions, thresholds=thresholds),
        decoder=decoder,
    )


@pytest.mark.parametrize(
    "method", [QPAdaptiveMethod(lam=1.0), SOCPAdaptiveMethod(eps=3.0)], ids=["qp", "socp"]
)
def test_each_vector_is_the_table_at_its_margin(
    steerkit_rng: np.random.Generator, method: Any
) -> None:
    context = context_for(steerkit_rng)
    result = method.compute(context)
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    functions = {id(v.function) for v in result.vectors}
    assert len(functions) == 1  # one table for every input
    function = result.vectors[0].function
    assert function.kind == method.kind.value
    assert (rhs <= 0).any() and (rhs > 0).any()
    for vector, solution, r in zip(result.vectors, result.solutions, rhs):
        assert vector.positions is Positions.ADAPTIVE
        assert vector.provenance["method"] == method.name
        expected = function([r])[0]
        if solution.ok:  # the reference solve at the prompt's last token
            scale = max(np.linalg.norm(expected), 1e-12)
            assert np.linalg.norm(vector.vector - expected) / scale < 1e-5
        else:  # an SOCP past its smallest ε: the table's least-norm vector, never a zero
            assert np.allclose(vector.vector, expected)
    assert result.info["breakpoints"] == function.n_breakpoints


def test_socp_adaptive_keeps_going_past_the_smallest_eps(steerkit_rng: Any) -> None:
    context = context_for(steerkit_rng)
    result = SOCPAdaptiveMethod(eps=1e-3).compute(context)  # infeasible for every steered input
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    for vector, r in zip(result.vectors, rhs):
        assert vector is not None
        if r > 0:
            assert vector.vector @ context.concept.directions[0] == pytest.approx(r, rel=1e-9)


def test_more_than_one_direction_is_a_clear_error(steerkit_rng: np.random.Generator) -> None:
    context = context_for(steerkit_rng, k=2)
    with pytest.raises(ValidationError, match=r"k = 1.*qp or socp"):
        QPAdaptiveMethod(lam=1.0).compute(context)


def test_registered_through_the_entry_point() -> None:
    names = set(steerkit.PluginHost().registry("steering_method").names())
    assert {"qp_adaptive", "socp_adaptive"} <= names
