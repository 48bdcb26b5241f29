"""The metric against counts made by hand, and found through the registry."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import steerkit_textstats
from steerkit_textstats import TextStats

import steerkit


def context(generations: list[str], n: int) -> steerkit.EvalContext:
    hook = "blocks.0.hook_resid_pre"
    vector = steerkit.SteeringVector(vector=np.ones(4), hook_point=hook)
    return steerkit.EvalContext(
        inputs=steerkit.Activations(hidden=np.zeros((n, 4)), hook_point=hook),
        result=steerkit.MethodResult(vectors=(vector,), shared=True),
        prompts=[f"prompt {i}" for i in range(len(generations))],
        generations=generations,
    )


def test_counts_words_and_distinct_words() -> None:
    out = TextStats().compute(context(["the cat the cat", "A dog ran", ""], n=4))
    np.testing.assert_array_equal(out["words"][:3], [4, 3, 0])
    np.testing.assert_allclose(out["distinct_words"][:2], [2 / 4, 3 / 3])
    assert math.isnan(out["distinct_words"][2])  # no words: does not apply
    assert math.isnan(out["words"][3])  # input 3 has no generation


def test_found_through_the_registry(
    steerkit_host_factory: Callable[..., steerkit.PluginHost],
) -> None:
    host = steerkit_host_factory(("textstats", steerkit_textstats))
    cls = host.registry("metric").get("textstats")
    assert [c.name for c in cls().columns()] == ["words", "distinct_words"]
    assert steerkit.Needs.of(cls().requires()) == steerkit.Needs(generations=True)
