"""One vector per text in one batched pass: `logits`, `continuation_logprobs` and `generate` with
a sequence of vectors give exactly what one call per text with its own vector gives (batches
mixed and reordered by length), None rows are unsteered, and only the final positions are
unembedded without changing a logit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.generation import final_positions
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import SteeringVector, ValidationError

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "the big red dog ran very fast",
    "cat",
    "a mat on the cat",
]


@pytest.fixture(scope="module", params=["standard", "rotary"])
def model(request: pytest.FixtureRequest) -> Iterator[Any]:
    model = tiny_model(seed=5, positional=request.param)
    yield model
    model.reset_hooks(including_permanent=True)


@pytest.fixture(params=["left", "right"])
def source(model: Any, request: pytest.FixtureRequest) -> TransformerLensSource:
    # batches of 2: every batch mixes texts with different vectors, sorted by length
    return TransformerLensSource(
        model=model, hook_point=HOOK, batch_size=2, cache=False, padding_side=request.param
    )


def vectors(
    rng: np.random.Generator, positions: str = "all", scale: float = 4.0
) -> list[SteeringVector | None]:
    out: list[SteeringVector | None] = [
        SteeringVector(
            vector=rng.normal(size=16), hook_point=HOOK, scale=scale, positions=positions
        )
        for _ in TEXTS
    ]
    out[3] = None  # this text is not steered
    return out


@pytest.mark.parametrize("positions", ["all", "prompt"])
def test_per_row_logits_equal_one_call_per_text(
    source: TransformerLensSource, steerkit_rng: np.random.Generator, positions: str
) -> None:
    vs = vectors(steerkit_rng, positions)
    together = source.logits(TEXTS, vs)
    alone = np.stack([source.logits([t], v)[0] for t, v in zip(TEXTS, vs)])
    np.testing.assert_allclose(together, alone, atol=2e-5, rtol=0)
    plain = source.logits(TEXTS)
    np.testing.assert_array_equal(together[3], plain[3])  # the None row is exactly unsteered
    assert np.abs(together[0] - plain[0]).max() > 1e-2  # the others moved


def test_per_row_continuation_logprobs_equal_one_call_per_pair(
    source: TransformerLensSource, steerkit_rng: np.random.Generator
) -> None:
    vs = vectors(steerkit_rng)
    continuations = [" ran", " sat on the mat", " dog", " the cat", " a"]
    together = source.continuation_logprobs(TEXTS, continuations, vs)
    for i, (text, cont, v) in enumerate(zip(TEXTS, continuations, vs)):
        alone = source.continuation_logprobs([text], [cont], v)[0]
        np.testing.assert_allclose(together[i], alone, atol=2e-5, rtol=0)


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_per_row_generation_equals_one_prompt_at_a_time(
    model: Any, steerkit_rng: np.random.Generator, positions: str
) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, batch_size=3, cache=False)
    vs = vectors(steerkit_rng, positions, scale=30.0)
    together = source.generate_tokens(TEXTS, max_new_tokens=6, vector=vs, stop_at_eos=False)
    alone = [
        source.generate_tokens([t], max_new_tokens=6, vector=v, stop_at_eos=False)[0]
        for t, v in zip(TEXTS, vs)
    ]
    assert together == alone
    plain = source.generate_tokens(TEXTS, max_new_tokens=6, stop_at_eos=False)
    assert together[3] == plain[3]
    assert together != plain


def test_bad_per_row_vectors_are_refused(
    source: TransformerLensSource, steerkit_rng: np.random.Generator
) -> None:
    vs = vectors(steerkit_rng)
    with pytest.raises(ValidationError, match="5 vectors, one per text"):
        source.logits(TEXTS, vs[:4])
    elsewhere = list(vs)
    elsewhere[1] = SteeringVector(vector=np.ones(16), hook_point="blocks.0.hook_resid_pre")
    with pytest.raises(ValidationError, match=r"vector\[1\].*separate calls"):
        source.logits(TEXTS, elsewhere)
    mixed = list(vs)
    mixed[2] = np.ones(16)  # type: ignore[call-overload]
    with pytest.raises(ValidationError, match=r"vector\[2\]"):
        source.logits(TEXTS, mixed)
    none = source.logits(TEXTS, [None] * len(TEXTS))
    np.testing.assert_array_equal(none, source.logits(TEXTS))
    assert sum(len(hp.fwd_hooks) for hp in source.model.hook_dict.values()) == 0


def test_per_row_vectors_take_one_batched_call(
    source: TransformerLensSource, steerkit_rng: np.random.Generator
) -> None:
    vs = vectors(steerkit_rng)
    calls: list[Any] = []
    real = source._logits

    def counting(texts: Any, steering: Any) -> Any:
        calls.append(steering)
        return real(texts, steering)

    source._logits = counting  # type: ignore[method-assign]
    out = source.logits(TEXTS, vs)
    assert len(calls) == 1 and list(calls[0].rows) == vs  # one pass, every row its own vector
    np.testing.assert_allclose(
        out, np.stack([source.logits([t], v)[0] for t, v in zip(TEXTS, vs)]), atol=2e-5
    )
    texts = source.generate(TEXTS, vector=vs, max_new_tokens=3)
    assert texts == [source.generate([t], max_new_tokens=3, vector=v)[0] for t, v in zip(TEXTS, vs)]


def test_final_positions_change_no_logit(model: Any) -> None:
    tokens = model.to_tokens(TEXTS[:2], padding_side="right")
    with torch.inference_mode():
        full = model(tokens)
        last = torch.tensor([5, 1])
        with final_positions(model, last) as picked:
            some = model(tokens)
        with final_positions(model, None):
            end = model(tokens)
        spans = torch.tensor([[1, 3, 4], [0, 1, 1]])  # k positions per row, in that order
        with final_positions(model, spans):
            several = model(tokens)
    assert several.shape == (2, 3, full.shape[-1])
    for b in range(2):
        torch.testing.assert_close(several[b], full[b, spans[b]], rtol=0, atol=1e-5)
    assert picked
    assert some.shape == (2, 1, full.shape[-1])
    torch.testing.assert_close(some[:, 0], full[torch.arange(2), last], rtol=0, atol=1e-5)
    torch.testing.assert_close(end[:, 0], full[:, -1], rtol=0, atol=1e-5)


def test_steered_logits_and_hidden_share_one_pass(
    source: TransformerLensSource, steerkit_rng: np.random.Generator, monkeypatch: Any
) -> None:
    vs = vectors(steerkit_rng)
    last = f"blocks.{source.model.cfg.n_layers - 1}.hook_resid_post"
    expected_logits, expected_hidden = plain_pass(source.model, vs, last)
    passes: list[int] = []
    real = source._last_positions
    monkeypatch.setattr(source, "_last_positions", lambda *a: passes.append(len(a[0])) or real(*a))
    logits = source.logits(TEXTS, vs)
    hidden = source.steered_hidden(TEXTS, vs, hook_point=last)  # KL, then the held-out probe
    assert passes == [len(TEXTS)]  # one forward pass answered both
    np.testing.assert_allclose(logits, expected_logits, atol=2e-5, rtol=0)
    np.testing.assert_allclose(hidden, expected_hidden, atol=2e-5, rtol=0)
    # another scale, another vector or other texts: a new pass, never the remembered one
    again = [None if v is None else v.scaled(2.0) for v in vs]
    moved = source.steered_hidden(TEXTS, again, hook_point=last)
    np.testing.assert_allclose(moved, plain_pass(source.model, again, last)[1], atol=2e-5, rtol=0)
    source.logits(TEXTS[:2], vs[:2])
    assert passes == [len(TEXTS), len(TEXTS), 2]


def plain_pass(model: Any, vs: list[SteeringVector | None], hook: str) -> tuple[Any, Any]:
    """The oracle: one unpadded TransformerLens pass per text, its vector added by a hook of
    this test's own; the logits and the activation at `hook` of the last token."""
    logits, hidden = [], []
    for text, v in zip(TEXTS, vs):
        hooks = []
        if v is not None:
            add = torch.as_tensor(v.scale * np.asarray(v.vector), dtype=torch.float32)
            hooks = [(HOOK, lambda act, hook, add=add: act + add)]
        with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
            out, cache = model.run_with_cache(model.to_tokens(text), names_filter=hook)
        logits.append(out[0, -1].numpy())
        hidden.append(cache[hook][0, -1].numpy())
    return np.stack(logits), np.stack(hidden)
