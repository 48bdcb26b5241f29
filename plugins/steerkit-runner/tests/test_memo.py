"""The metrics' source: unsteered logits and continuation scores are computed once per run, row
by row (a call asks the source only for the rows it has not answered)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from steerkit_runner.memo import UnsteeredMemo

from steerkit import SteeringVector

from .conftest import HOOK

pytestmark = pytest.mark.needs_torch


def test_unsteered_answers_are_kept_and_steered_ones_are_not(
    tiny_source: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, bool]] = []
    real_logits, real_scores = tiny_source.logits, tiny_source.continuation_logprobs

    asked: list[list[str]] = []

    def logits(texts: Any, vector: Any = None) -> Any:
        calls.append(("logits", vector is not None))
        if vector is None:
            asked.append(list(texts))
        return real_logits(texts, vector)

    def scores(prompts: Any, continuations: Any, vector: Any = None) -> Any:
        calls.append(("scores", vector is not None))
        if vector is None:
            asked.append(list(prompts))
        return real_scores(prompts, continuations, vector)

    monkeypatch.setattr(tiny_source, "logits", logits)
    monkeypatch.setattr(tiny_source, "continuation_logprobs", scores)
    memo = UnsteeredMemo(tiny_source)
    texts = ["the cat sat", "a dog ran"]
    vector = SteeringVector(vector=np.linspace(-1, 1, 16), hook_point=HOOK)

    first = memo.logits(texts)
    assert np.array_equal(memo.logits(list(texts)), first) and memo.hits == 2
    assert np.array_equal(first, real_logits(texts))
    steered = memo.logits(texts, vector)
    memo.logits(texts, vector)
    assert not np.allclose(steered, first)
    assert np.array_equal(memo.logits(["a dog ran"]), first[1:])  # a remembered row
    mixed = memo.logits(["a bird flew", "the cat sat"])  # one new row: only it is computed
    # (equal to a direct call up to the batch's float rounding: the rows were batched otherwise)
    np.testing.assert_allclose(mixed, real_logits(["a bird flew", "the cat sat"]), atol=1e-5)
    a = memo.continuation_logprobs(texts, [" on", " fast"])
    b = memo.continuation_logprobs(texts[::-1], [" fast", " on"])
    assert all(np.array_equal(x, y) for x, y in zip(a, b[::-1]))
    c = memo.continuation_logprobs([texts[0], "a bird flew"], [" on", " away"])
    d = real_scores([texts[0], "a bird flew"], [" on", " away"])
    for x, y in zip(c, d):
        np.testing.assert_allclose(x, y, atol=1e-6)
    assert calls == [
        ("logits", False),
        ("logits", True),
        ("logits", True),
        ("logits", False),  # "a bird flew" alone
        ("scores", False),
        ("scores", False),  # " away" alone
    ]
    assert asked == [texts, ["a bird flew"], texts, ["a bird flew"]]  # what the source was asked
    # everything else is the source's own
    assert memo.name == "transformerlens" and memo.hook_point == HOOK
    assert memo.model is tiny_source.model and memo.describe() == tiny_source.describe()
    assert memo.generate(texts, max_new_tokens=2) == tiny_source.generate(texts, max_new_tokens=2)
