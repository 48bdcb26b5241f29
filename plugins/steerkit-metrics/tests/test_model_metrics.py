"""`kl` and `perplexity` on the tiny TransformerLens model, against plain `model(tokens)` forward
passes (one text at a time, no padding) with a hook adding the vector by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_metrics import KL, Perplexity, kl_divergence
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import (
    EvalContext,
    MethodResult,
    Needs,
    SteeringVector,
    SteerkitError,
    ValidationError,
)

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "the big red dog ran very fast under the tree",
    "bird",
    "the cat is not happy",
    "a small blue bird flew",
]


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    model = tiny_model(seed=7)
    source = TransformerLensSource(
        model=model, hook_point=HOOK, cache=False, batch_size=4, padding_side="left"
    )
    inputs = source.activations(TEXTS)
    return SimpleNamespace(model=model, source=source, inputs=inputs)


def context(world: SimpleNamespace, result: MethodResult, **kwargs: Any) -> EvalContext:
    return EvalContext(
        inputs=world.inputs, result=result, source=world.source, texts=TEXTS, **kwargs
    )


def vectors(scale: float, seed: int = 0, n: int = len(TEXTS)) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [SteeringVector(rng.normal(size=16), hook_point=HOOK, scale=scale) for _ in range(n)]


def plain_logits(model: Any, text: str, added: np.ndarray | None = None) -> torch.Tensor:
    """(T, d_vocab) logits of one text, unpadded, with `added` put into the residual at HOOK."""
    tokens = model.to_tokens(text)
    with torch.inference_mode():
        if added is None:
            return model(tokens)[0]
        delta = torch.as_tensor(added, dtype=torch.float32)
        with model.hooks(fwd_hooks=[(HOOK, lambda act, hook: act + delta)]):
            return model(tokens)[0]


def oracle_kl(model: Any, text: str, added: np.ndarray) -> float:
    steered = torch.log_softmax(plain_logits(model, text, added)[-1].double(), -1)
    base = torch.log_softmax(plain_logits(model, text)[-1].double(), -1)
    return float((steered.exp() * (steered - base)).sum())


def oracle_perplexity(model: Any, prompt: str, continuation: str) -> float:
    """exp(mean NLL) of the continuation's words (the tiny tokenizer: one token per word)."""
    n_prompt = model.to_tokens(prompt).shape[1]
    tokens = model.to_tokens(prompt + " " + continuation)[0]
    logprobs = torch.log_softmax(plain_logits(model, prompt + " " + continuation).double(), -1)
    picked = logprobs[torch.arange(n_prompt - 1, len(tokens) - 1), tokens[n_prompt:]]
    assert len(picked) == len(continuation.split())
    return float(torch.exp(-picked.mean()))


def count_calls(monkeypatch: pytest.MonkeyPatch, source: Any, method: str) -> list[Any]:
    calls: list[Any] = []
    original = getattr(source, method)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(source, method, counted)
    return calls


# -- kl -----------------------------------------------------------------------------------------


def test_kl_is_exactly_zero_without_steering(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, world.source, "logits")
    zero = SteeringVector(np.zeros(16), hook_point=HOOK)
    out = KL().compute(context(world, MethodResult([zero], shared=True)))
    assert set(out) == {"kl"}
    np.testing.assert_array_equal(out["kl"], 0.0)
    at_alpha_zero = [v.scaled(0.0) for v in vectors(1.0)]
    np.testing.assert_array_equal(
        KL().compute(context(world, MethodResult(at_alpha_zero)))["kl"], 0
    )
    assert calls == []  # nothing to run
    # and the float64 formula itself gives exactly 0 for identical logits
    logits = world.source.logits(TEXTS)
    np.testing.assert_array_equal(kl_divergence(logits, logits), 0.0)


def test_kl_of_per_input_vectors_matches_a_hooked_forward_pass(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, world.source, "logits")
    each: list[Any] = vectors(1.5, seed=1)
    each[2] = None  # the method failed on input 2
    out = KL().compute(context(world, MethodResult(each)))
    assert math.isnan(out["kl"][2])
    # the unsteered texts once, then the steered ones in one call, each row with its own vector
    assert len(calls) == 2
    assert [len(args[0]) for args, _ in calls] == [len(TEXTS) - 1] * 2
    for i, vector in enumerate(each):
        if vector is None:
            continue
        expected = oracle_kl(world.model, TEXTS[i], 1.5 * np.asarray(vector.vector))
        assert expected > 1e-4
        assert out["kl"][i] == pytest.approx(expected, rel=1e-4, abs=1e-8)


def test_kl_of_a_shared_vector_is_one_batched_call(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, world.source, "logits")
    (vector,) = vectors(2.0, seed=2, n=1)
    out = KL().compute(context(world, MethodResult([vector], shared=True)))
    assert len(calls) == 2 and all(len(args[0]) == len(TEXTS) for args, _ in calls)
    expected = [oracle_kl(world.model, t, 2.0 * np.asarray(vector.vector)) for t in TEXTS]
    np.testing.assert_allclose(out["kl"], expected, rtol=1e-4, atol=1e-8)
    assert np.all(out["kl"] > 0)
    # the same vector object per input is grouped into one call as well
    calls.clear()
    same = KL().compute(context(world, MethodResult([vector] * len(TEXTS))))
    assert len(calls) == 2
    np.testing.assert_allclose(same["kl"], out["kl"], rtol=1e-6)


def test_kl_grows_with_alpha(world: SimpleNamespace) -> None:
    (vector,) = vectors(1.0, seed=3, n=1)
    values = [
        KL().compute(context(world, MethodResult([vector.scaled(a)], shared=True)))["kl"]
        for a in (0.1, 1.0, 10.0)
    ]
    assert np.all(values[0] < values[1]) and np.all(values[1] < values[2])


def test_kl_says_what_is_missing(world: SimpleNamespace) -> None:
    result = MethodResult(vectors(1.0, n=1), shared=True)
    assert KL().requires() == Needs(model=True)
    with pytest.raises(ValidationError, match=r"EvalContext\.source: expected an ActivationSource"):
        KL().compute(EvalContext(inputs=world.inputs, result=result, texts=TEXTS))
    with pytest.raises(ValidationError, match=r"EvalContext\.texts: expected 6 texts"):
        KL().compute(EvalContext(inputs=world.inputs, result=result, source=world.source))

    class NoLogits:
        def logits(self, texts: Any, vector: Any = None) -> Any:
            raise NotImplementedError("source 'none' gives no logits")

    with pytest.raises(SteerkitError, match="needs a source that gives logits"):
        KL().compute(
            EvalContext(inputs=world.inputs, result=result, source=NoLogits(), texts=TEXTS)  # type: ignore[arg-type]
        )


# -- perplexity ---------------------------------------------------------------------------------

PROMPTS = ["the cat", "a dog", "the bird", "a small"]
STEERED = ["sat on the mat", "ran very fast", "", "red bird flew"]
BASE = ["is happy", "was sad and bad", "flew under the tree", "cat"]


def test_perplexity_is_exp_mean_nll_of_a_plain_forward_pass(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, world.source, "continuation_logprobs")
    each: list[Any] = vectors(1.0)
    each[1] = None  # no vector: NaN in both columns
    ctx = context(
        world, MethodResult(each), prompts=PROMPTS, generations=STEERED, base_generations=BASE
    )
    out = Perplexity().compute(ctx)
    assert set(out) == {"perplexity", "base_perplexity"}
    assert len(calls) == 1 and calls[0][1] == {} and len(calls[0][0]) == 2  # unsteered, once
    for i in (0, 3):
        assert out["perplexity"][i] == pytest.approx(
            oracle_perplexity(world.model, PROMPTS[i], STEERED[i]), rel=1e-5
        )
    for i in (0, 2, 3):
        assert out["base_perplexity"][i] == pytest.approx(
            oracle_perplexity(world.model, PROMPTS[i], BASE[i]), rel=1e-5
        )
    assert math.isnan(out["perplexity"][2])  # an empty generation
    assert math.isnan(out["perplexity"][1]) and math.isnan(out["base_perplexity"][1])
    assert np.isnan(out["perplexity"][4:]).all() and np.isnan(out["base_perplexity"][4:]).all()
    # the tiny model is random: its perplexity is of the order of its vocabulary
    assert 3 < out["perplexity"][0] < 300


def test_perplexity_of_real_generations(world: SimpleNamespace) -> None:
    (vector,) = vectors(3.0, seed=5, n=1)
    prompts = TEXTS[:3]
    steered = world.source.generate(prompts, max_new_tokens=4, vector=vector, stop_at_eos=False)
    base = world.source.generate(prompts, max_new_tokens=4, stop_at_eos=False)
    assert all(g.split() for g in steered + base)  # four words each, not scored as empty
    ctx = context(
        world,
        MethodResult([vector], shared=True),
        prompts=prompts,
        generations=steered,
        base_generations=base,
    )
    out = Perplexity().compute(ctx)
    for i, prompt in enumerate(prompts):
        for column, generated in (("perplexity", steered[i]), ("base_perplexity", base[i])):
            if generated.split():
                expected = oracle_perplexity(world.model, prompt, generated)
                assert out[column][i] == pytest.approx(expected, rel=1e-5)
            else:
                assert math.isnan(out[column][i])
    # without base generations, base_perplexity is NaN
    no_base = Perplexity().compute(
        context(world, MethodResult([vector], shared=True), prompts=prompts, generations=steered)
    )
    assert np.isnan(no_base["base_perplexity"]).all()
    # another batch composition: equal up to float32 rounding
    np.testing.assert_allclose(no_base["perplexity"], out["perplexity"], rtol=1e-6)


def test_perplexity_says_what_is_missing(world: SimpleNamespace) -> None:
    result = MethodResult(vectors(1.0, n=1), shared=True)
    assert Perplexity().requires() == Needs(model=True, generations=True)
    with pytest.raises(ValidationError, match=r"EvalContext\.generations: expected prompts and"):
        Perplexity().compute(context(world, result))
    with pytest.raises(ValidationError, match=r"EvalContext\.source"):
        Perplexity().compute(
            EvalContext(inputs=world.inputs, result=result, prompts=PROMPTS, generations=STEERED)
        )
    with pytest.raises(ValidationError, match="expected 4 generations, one per prompt"):
        Perplexity().compute(context(world, result, prompts=PROMPTS, generations=STEERED[:2]))
    with pytest.raises(ValidationError, match="expected 4 unsteered generations"):
        Perplexity().compute(
            context(world, result, prompts=PROMPTS, generations=STEERED, base_generations=BASE[:1])
        )
    with pytest.raises(ValidationError, match="expected at most 6 prompts"):
        Perplexity().compute(context(world, result, prompts=["a"] * 7, generations=["b"] * 7))
