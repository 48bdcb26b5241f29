"""`readback` and `heldout_probe` on the tiny TransformerLens model, against plain forward passes
(`run_with_cache`, one text at a time, no padding; a hand-written hook adding the vector) and a
probe fitted here on those activations."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_metrics import HeldOutProbe, Readback, held_out_hook
from steerkit_probes import LogisticProbe
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import (
    EvalContext,
    LabelledTexts,
    MethodResult,
    Needs,
    SteeringVector,
    ValidationError,
)

pytestmark = pytest.mark.needs_torch

STEER = "blocks.0.hook_resid_post"
LAST = "blocks.1.hook_resid_post"  # the tiny model has 2 blocks
TRAIN = LabelledTexts(
    [
        "the cat is happy",
        "a good dog",
        "the bird is very happy",
        "good cat and happy dog",
        "the dog was good",
        "a happy bird sat",
        "the red cat is good",
        "a very good tree",
        "the cat is sad",
        "a bad dog",
        "the bird is very sad",
        "bad cat and sad dog",
        "the dog was bad",
        "a sad bird sat",
        "the red cat is bad",
        "a very bad tree",
    ],
    [1] * 8 + [0] * 8,
)
TEXTS = ["the cat sat on the mat", "a dog", "the big red dog ran fast", "bird", "the cat is not"]
GENERATIONS = [" and was very happy", " is bad", "  ", " good good"]
BASE = [" and the dog", " ran under the tree", " sat", " flew"]


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    model = tiny_model(seed=3)
    source = TransformerLensSource(
        model=model, hook_point=STEER, cache=False, batch_size=3, padding_side="left"
    )
    return SimpleNamespace(model=model, source=source, inputs=source.activations(TEXTS))


def plain_hidden(model: Any, text: str, hook: str, added: np.ndarray | None = None) -> np.ndarray:
    """The activation at `hook` at the text's last token, `added` put into the residual at STEER
    at every position."""
    tokens = model.to_tokens(text)
    hooks = []
    if added is not None:
        delta = torch.as_tensor(added, dtype=torch.float32)
        hooks = [(STEER, lambda act, hook: act + delta)]
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        _, cache = model.run_with_cache(tokens, names_filter=hook)
    return cache[hook][0, -1].double().numpy()


@pytest.fixture(scope="module")
def oracle_probe(world: SimpleNamespace) -> LogisticProbe:
    hidden = np.stack([plain_hidden(world.model, t, LAST) for t in TRAIN.texts])
    return LogisticProbe().fit(hidden, TRAIN.labels, seed=0)


def vectors(scale: float, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [SteeringVector(rng.normal(size=16), hook_point=STEER, scale=scale) for _ in TEXTS]


def context(world: SimpleNamespace, result: MethodResult, **kwargs: Any) -> EvalContext:
    return EvalContext(
        inputs=world.inputs,
        result=result,
        source=world.source,
        texts=TEXTS,
        train=TRAIN,
        target_class=1,
        **kwargs,
    )


def test_the_held_out_hook_is_the_last_layer_by_default(world: SimpleNamespace) -> None:
    assert held_out_hook(world.source, None, None) == LAST
    assert held_out_hook(world.source, None, -2) == "blocks.0.hook_resid_post"
    assert held_out_hook(world.source, "blocks.1.hook_resid_mid", None) == "blocks.1.hook_resid_mid"
    with pytest.raises(ValidationError, match="layer"):
        held_out_hook(world.source, None, -3)


def test_steered_hidden_adds_the_vector_where_it_is_read(world: SimpleNamespace) -> None:
    each = vectors(2.0)
    steered = world.source.steered_hidden(TEXTS, each, hook_point=STEER)
    added = np.stack([2.0 * np.asarray(v.vector) for v in each])
    np.testing.assert_allclose(steered, world.inputs.hidden + added, rtol=1e-5, atol=1e-5)
    at_last = world.source.steered_hidden(TEXTS, each, hook_point=LAST)
    for i, text in enumerate(TEXTS):
        expected = plain_hidden(world.model, text, LAST, added[i])
        np.testing.assert_allclose(at_last[i], expected, rtol=1e-4, atol=1e-4)
        assert not np.allclose(expected, plain_hidden(world.model, text, LAST), atol=1e-3)
    with pytest.raises(ValidationError, match="hook_point"):
        world.source.steered_hidden(TEXTS, each, hook_point="blocks.9.hook_resid_post")


def test_readback_is_the_held_out_probe_on_prompt_and_generation(
    world: SimpleNamespace, oracle_probe: LogisticProbe
) -> None:
    each: list[Any] = vectors(1.0)
    each[1] = None  # the method failed on input 1
    prompts = TEXTS[:4]
    out = Readback().compute(
        context(
            world,
            MethodResult(each),
            prompts=prompts,
            generations=GENERATIONS,
            base_generations=BASE,
        )
    )
    assert set(out) == {"readback", "readback_base"}
    for i in (0, 3):
        for column, texts in (("readback", GENERATIONS), ("readback_base", BASE)):
            hidden = plain_hidden(world.model, prompts[i] + texts[i], LAST)
            expected = oracle_probe.predict_proba(hidden[None, :])[0, 1]
            assert out[column][i] == pytest.approx(expected, abs=1e-4)
    assert math.isnan(out["readback"][1]) and math.isnan(out["readback_base"][1])  # failed
    assert math.isnan(out["readback"][2])  # a blank generation
    assert np.isfinite(out["readback_base"][2])
    assert math.isnan(out["readback"][4])  # no generation for input 4
    # the probe is not trivial: it tells its training texts apart better than chance, and
    # gives different texts different scores
    hidden = np.stack([plain_hidden(world.model, t, LAST) for t in TRAIN.texts])
    assert oracle_probe.score(hidden, TRAIN.labels) > 0.6
    assert np.ptp(out["readback"][[0, 3]]) > 1e-3


def test_readback_without_the_prompt_reads_the_generation_alone(
    world: SimpleNamespace, oracle_probe: LogisticProbe
) -> None:
    out = Readback(with_prompt=False).compute(
        context(world, MethodResult(vectors(1.0)), prompts=TEXTS[:4], generations=GENERATIONS)
    )
    hidden = plain_hidden(world.model, GENERATIONS[0], LAST)
    assert out["readback"][0] == pytest.approx(
        oracle_probe.predict_proba(hidden[None, :])[0, 1], abs=1e-4
    )


def test_heldout_probe_reads_the_steered_pass_at_the_other_layer(
    world: SimpleNamespace, oracle_probe: LogisticProbe
) -> None:
    each: list[Any] = vectors(3.0, seed=2)
    each[2] = None
    each[3] = each[3].scaled(0.0)  # α = 0: after == before, without a steered pass
    out = HeldOutProbe().compute(context(world, MethodResult(each)))
    for i, vector in enumerate(each):
        if vector is None:
            assert all(math.isnan(out[c][i]) for c in out)
            continue
        before = oracle_probe.predict_proba(plain_hidden(world.model, TEXTS[i], LAST)[None])[0, 1]
        added = vector.scale * np.asarray(vector.vector)
        after = oracle_probe.predict_proba(plain_hidden(world.model, TEXTS[i], LAST, added)[None])[
            0, 1
        ]
        assert out["heldout_p_before"][i] == pytest.approx(before, abs=1e-4)
        assert out["heldout_p_after"][i] == pytest.approx(after, abs=1e-4)
        assert out["heldout_shift"][i] == pytest.approx(after - before, abs=2e-4)
        if before >= 0.5:
            assert math.isnan(out["heldout_flipped"][i])
        else:
            assert out["heldout_flipped"][i] == float(after > 0.5)
    assert out["heldout_shift"][3] == 0.0
    assert np.nanmax(np.abs(out["heldout_shift"])) > 1e-3  # steering moved something


def test_a_held_out_probe_at_the_steering_hook_is_refused(world: SimpleNamespace) -> None:
    result = MethodResult(vectors(1.0))
    with pytest.raises(ValidationError, match="other than the steering hook"):
        HeldOutProbe(layer=0).compute(context(world, result))
    with pytest.raises(ValidationError, match="layer or hook_point"):
        Readback(layer=1, hook_point=LAST)
    with pytest.raises(ValidationError, match="train"):
        HeldOutProbe().compute(
            EvalContext(inputs=world.inputs, result=result, source=world.source, texts=TEXTS)
        )


def test_needs_and_columns() -> None:
    assert Needs.of(Readback().requires()) == Needs(
        model=True, generations=True, text_classifier=True
    )
    assert Needs.of(HeldOutProbe().requires()) == Needs(model=True, text_classifier=True)
    assert [c.name for c in Readback().columns() if c.table] == ["readback"]
    roles = {c.name: c.role for c in HeldOutProbe().columns()}
    assert roles["heldout_shift"] == "effect"
