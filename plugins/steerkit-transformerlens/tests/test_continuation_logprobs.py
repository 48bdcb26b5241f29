"""`continuation_logprobs` of the `transformerlens` source against plain TransformerLens forward
passes on the tiny model: one text at a time, no padding, log-softmax of the full logits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import SteeringVector, ValidationError

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
# the tiny tokenizer splits on whitespace, so a continuation that starts with a space joins the
# prompt cleanly; "sat on the mat" (no space) takes the tokenise-alone path
PAIRS = [
    ("the cat", " sat on the mat"),
    ("a dog", " ran"),
    ("the big red dog ran very fast under the", " tree and the cat sat"),
    ("bird", " is very happy"),
    ("the cat is not", " sad"),
    ("a small blue bird flew", " under the big tree"),
]


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(seed=3)


def oracle(model: Any, prompt: str, continuation: str, hook: Any = None) -> np.ndarray:
    """log p of each continuation token from one unpadded forward pass of prompt+continuation."""
    n_prompt = model.to_tokens(prompt).shape[1]
    tokens = model.to_tokens(prompt + continuation)
    with torch.inference_mode():
        if hook is None:
            logits = model(tokens)
        else:
            with model.hooks(fwd_hooks=[(HOOK, hook)]):
                logits = model(tokens)
    logprobs = torch.log_softmax(logits[0].double(), dim=-1)
    targets = tokens[0, n_prompt:]
    positions = torch.arange(n_prompt - 1, tokens.shape[1] - 1)
    return logprobs[positions, targets].numpy()


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_matches_a_plain_forward_pass(model: Any, side: Any, batch_size: int) -> None:
    source = TransformerLensSource(
        model=model, hook_point=HOOK, batch_size=batch_size, padding_side=side, cache=False
    )
    prompts, continuations = zip(*PAIRS)
    result = source.continuation_logprobs(list(prompts), list(continuations))
    assert len(result) == len(PAIRS)
    for (prompt, continuation), values in zip(PAIRS, result):
        expected = oracle(model, prompt, continuation)
        assert values.dtype == np.float64 and values.shape == expected.shape
        assert len(values) == len(continuation.split())  # one per word of the continuation
        np.testing.assert_allclose(values, expected, atol=1e-5, rtol=0)
        assert np.all(values < 0)


def test_the_scored_logits_stay_under_their_memory_cap(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import steerkit_transformerlens.source as source_module

    d_vocab = int(model.cfg.d_vocab_out)
    longest = max(len(c.split()) for _, c in PAIRS)
    monkeypatch.setattr(source_module, "_SCORE_BYTES", 4 * d_vocab * longest * 2)  # 2 rows
    source = TransformerLensSource(model=model, hook_point=HOOK, batch_size=16, cache=False)
    passes: list[int] = []
    real = source._score_batch
    monkeypatch.setattr(source, "_score_batch", lambda r, n: passes.append(len(r)) or real(r, n))
    prompts, continuations = zip(*PAIRS)
    result = source.continuation_logprobs(list(prompts), list(continuations))
    assert sum(passes) == len(PAIRS) and max(passes) <= 2 and len(passes) >= 3
    for (prompt, continuation), values in zip(PAIRS, result):
        np.testing.assert_allclose(values, oracle(model, prompt, continuation), atol=1e-5, rtol=0)


def test_batching_does_not_change_results(model: Any) -> None:
    prompts, continuations = (list(x) for x in zip(*PAIRS))
    one = TransformerLensSource(model=model, hook_point=HOOK, batch_size=1, cache=False)
    many = TransformerLensSource(
        model=model, hook_point=HOOK, batch_size=8, padding_side="left", cache=False
    )
    for a, b in zip(
        one.continuation_logprobs(prompts, continuations),
        many.continuation_logprobs(prompts, continuations),
    ):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    # an input alone and inside a batch
    alone = one.continuation_logprobs(prompts[2:3], continuations[2:3])[0]
    np.testing.assert_allclose(
        alone, many.continuation_logprobs(prompts, continuations)[2], atol=1e-5, rtol=0
    )


def test_bos_belongs_to_the_prompt_only(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    # the joined text re-tokenises after the prompt: no BOS between prompt and continuation
    values = source.continuation_logprobs(["the cat"], [" sat"])[0]
    bos = model.tokenizer.bos_token_id
    tokens = model.to_tokens("the cat sat")[0].tolist()
    assert tokens.count(bos) == 1 and len(values) == 1
    np.testing.assert_allclose(values, oracle(model, "the cat", " sat"), atol=1e-5, rtol=0)


def test_a_continuation_that_does_not_join_is_tokenised_alone(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    # "the cat" + "sat on" = "the catsat on": the joined tokens do not start with the prompt's
    values = source.continuation_logprobs(["the cat"], ["sat on"])[0]
    np.testing.assert_allclose(values, oracle(model, "the cat", " sat on"), atol=1e-5, rtol=0)


def test_empty_continuations_give_empty_arrays(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    result = source.continuation_logprobs(["the cat", "a dog", "bird"], ["", " ran", "   "])
    assert result[0].shape == (0,) and result[2].shape == (0,)
    np.testing.assert_allclose(result[1], oracle(model, "a dog", " ran"), atol=1e-5, rtol=0)
    assert [len(r) for r in source.continuation_logprobs(["a"], [""])] == [0]


def test_steered_matches_a_hooked_forward_pass(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False, batch_size=4)
    direction = np.random.default_rng(0).normal(size=16)
    vector = SteeringVector(direction, hook_point=HOOK, scale=2.5)
    added = torch.as_tensor(2.5 * direction, dtype=torch.float32)

    def hook(activation: torch.Tensor, hook: Any) -> torch.Tensor:
        return activation + added

    prompts, continuations = (list(x) for x in zip(*PAIRS))
    steered = source.continuation_logprobs(prompts, continuations, vector)
    plain = source.continuation_logprobs(prompts, continuations)
    for (prompt, continuation), s, p in zip(PAIRS, steered, plain):
        np.testing.assert_allclose(s, oracle(model, prompt, continuation, hook), atol=1e-5)
        assert np.max(np.abs(s - p)) > 1e-3  # the vector changed something


def test_bad_input_is_named(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    with pytest.raises(ValidationError, match="continuations: expected 2 continuations"):
        source.continuation_logprobs(["a", "b"], ["c"])
    with pytest.raises(ValidationError, match="a list, not one string"):
        source.continuation_logprobs(["a"], "the cat")
    with pytest.raises(ValidationError, match=r"continuations\[0\]: expected a string"):
        source.continuation_logprobs(["a"], [3])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=r"continuations\[0\].*at most 32 tokens"):
        source.continuation_logprobs(["the cat"], [" the" * 40])
