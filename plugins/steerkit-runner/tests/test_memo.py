"""The metrics' source: unsteered logits and continuation scores are computed once per run, row
by row (a call asks the source only for the rows it has not answered)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from steerkit_runner.memo import UnsteeredMemo

from steerkit import SteeringVector, ValidationError

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


def test_activations_at_any_hook_are_read_once(
    tiny_source: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held-out judges read every unit's unsteered texts again at another hook (readback:
    the base generations; heldout_probe: the inputs): each text is read once per run."""
    memo = UnsteeredMemo(tiny_source)
    other = "blocks.0.hook_resid_post"
    reader = memo.at_hook(other)
    assert isinstance(reader, UnsteeredMemo) and reader.hook_point == other
    direct = tiny_source.at_hook(other)
    read: list[list[str]] = []
    real = reader.source.activations
    monkeypatch.setattr(
        reader.source, "activations", lambda texts: read.append(list(texts)) or real(texts)
    )
    texts = ["the cat sat", "a dog ran", "the cat sat"]
    first = reader.activations(texts)
    again = reader.activations(["a bird flew", "a dog ran"])
    assert read == [["the cat sat", "a dog ran"], ["a bird flew"]]  # each text once
    np.testing.assert_array_equal(again.hidden[1], first.hidden[1])
    np.testing.assert_allclose(
        again.hidden, direct.activations(["a bird flew", "a dog ran"]).hidden, atol=1e-5
    )
    assert first.hook_point == other and first.features is None and len(first) == 3
    # with an SAE the features come along, row by row
    with_sae = memo.activations(["the cat sat", "a dog ran"])
    expected = tiny_source.activations(["the cat sat", "a dog ran"])
    assert with_sae.features is not None and with_sae.hook_point == HOOK
    np.testing.assert_allclose(with_sae.features, expected.features, atol=1e-5)
    # bad input is the source's to name
    with pytest.raises(ValidationError):
        memo.activations([])


def test_the_memo_keeps_at_most_max_bytes(tiny_source: Any) -> None:
    memo = UnsteeredMemo(tiny_source, max_bytes=1)  # nothing fits: every row is asked again
    first = memo.logits(["the cat sat"])
    assert memo._bytes <= 1 and not memo._memo
    np.testing.assert_array_equal(memo.logits(["the cat sat"]), first)
    assert memo.hits == 0
    roomy = UnsteeredMemo(tiny_source, max_bytes=first.nbytes)  # room for one row
    roomy.logits(["the cat sat"])
    roomy.logits(["a dog ran"])  # the oldest row goes
    assert list(roomy._memo) == [("logits", "a dog ran")] and roomy._bytes == first.nbytes
