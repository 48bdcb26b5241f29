"""Positions mode `adaptive` on a tiny model: at every position the hook reads h_t, computes
r_t = t − w·h_t and adds v*(r_t) only where r_t > 0. Checked against the activations of plain
forward passes (captured after the hook) and the float64 numpy table; batched generation with
padding equals one prompt at a time; a KV-cached generation equals the uncached one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_path import steering_function
from steerkit_transformerlens.adaptive import TorchSteeringFunction
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.steering import steering_hooks
from steerkit_transformerlens.testing import tiny_model, tiny_sae

from steerkit import Intervention, Positions, SteeringVector, ValidationError

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
PROMPTS = ["the cat sat on the mat", "a dog", "the big red dog ran very fast", "a bird flew"]


@pytest.fixture(scope="module", params=["standard", "rotary"])
def model(request: pytest.FixtureRequest) -> Iterator[Any]:
    model = tiny_model(seed=3, positional=request.param)
    yield model
    model.reset_hooks(including_permanent=True)


def unsteered(model: Any, texts: list[str]) -> list[np.ndarray]:
    """The activation at HOOK of every position of each text, one text at a time."""
    out = []
    for text in texts:
        _, cache = model.run_with_cache(model.to_tokens(text), names_filter=HOOK)
        out.append(cache[HOOK][0].double().numpy())
    return out


@pytest.fixture(scope="module")
def probe(model: Any) -> tuple[np.ndarray, float]:
    """A direction and a threshold that about half of the positions already pass."""
    w = np.random.default_rng(0).normal(size=16)
    scores = np.concatenate([h @ w for h in unsteered(model, PROMPTS)])
    return w, float(np.median(scores))


@pytest.fixture(scope="module", params=["qp", "socp"])
def vector(request: pytest.FixtureRequest, probe: Any) -> SteeringVector:
    w, t = probe
    decoder = tiny_sae(d_in=16, d_sae=64, seed=1).W_dec.detach().double().numpy()
    kw = {"lam": 0.5} if request.param == "qp" else {"eps": 2.0}
    function = steering_function(decoder, w, t, **kw)
    return SteeringVector(
        vector=function([1.0])[0], hook_point=HOOK, positions="adaptive", function=function
    )


def steered(model: Any, vector: Any, text: str) -> np.ndarray:
    """The activation at HOOK after the steering hook (a capture hook registered after it)."""
    seen: list[torch.Tensor] = []
    capture = [(HOOK, lambda act, hook: seen.append(act.detach()))]
    with steering_hooks(model, vector), model.hooks(fwd_hooks=capture):
        model(model.to_tokens(text))
    return seen[0][0].double().numpy()


def test_every_steered_position_reaches_the_threshold(model: Any, vector: Any) -> None:
    function = vector.function
    w, t = function.direction, function.threshold
    n_steered = n_untouched = 0
    for text, before in zip(PROMPTS, unsteered(model, PROMPTS)):
        after = steered(model, vector, text)
        r = t - before @ w
        past = r <= 0
        assert np.array_equal(after[past], before[past])  # untouched: exactly
        assert np.all(after[~past] @ w >= t - 1e-5)
        # what was added is the table's v*(r_t) (float32 model against the float64 table)
        expected = function(r)[~past]
        assert np.allclose(after[~past] - before[~past], expected, rtol=1e-4, atol=1e-4)
        n_steered += int((~past).sum())
        n_untouched += int(past.sum())
    assert n_steered >= 4 and n_untouched >= 4  # both cases really happen


def test_torch_table_equals_numpy_table(vector: Any) -> None:
    function = vector.function
    table = TorchSteeringFunction(function)
    w, t, last = function.direction, function.threshold, function.margins[-1]
    rng = np.random.default_rng(1)
    # margins everywhere: gated (≤ 0), inside the table, at a row, and past the last row
    wanted = np.concatenate([rng.uniform(-1.0, 1.5 * last, 28), [-2.0, 0.0, last, 3.0 * last]])
    noise = rng.normal(size=(32, 16))
    noise -= np.outer(noise @ w / (w @ w), w)  # orthogonal to w: the margin is `wanted`
    hidden = noise + np.outer((t - wanted) / (w @ w), w)
    tensor = torch.tensor(hidden.reshape(4, 8, 16))
    r = table.margins(tensor).numpy().reshape(-1)  # the gate reads the margin torch computes
    assert np.allclose(r, wanted) and np.allclose(r, function.margin(hidden))
    got = table(tensor).numpy().reshape(-1, 16)
    assert np.allclose(got, function(r), rtol=1e-10, atol=1e-10 * np.abs(function.vectors).max())
    assert np.all(got[r <= 0] == 0.0)


def test_batched_generation_with_padding_equals_one_at_a_time(model: Any, vector: Any) -> None:
    batched = TransformerLensSource(model=model, hook_point=HOOK, batch_size=4, cache=False)
    single = TransformerLensSource(model=model, hook_point=HOOK, batch_size=1, cache=False)
    together = batched.generate_tokens(PROMPTS, max_new_tokens=8, vector=vector, stop_at_eos=False)
    alone = single.generate_tokens(PROMPTS, max_new_tokens=8, vector=vector, stop_at_eos=False)
    assert together == alone
    plain = batched.generate_tokens(PROMPTS, max_new_tokens=8, stop_at_eos=False)
    assert together != plain  # the steering changes the text
    no_cache = batched.generate_tokens(
        PROMPTS, max_new_tokens=8, vector=vector, stop_at_eos=False, use_kv_cache=False
    )
    assert together == no_cache  # each new position read once, as the whole sequence would


def test_per_row_scales_and_unsteered_rows(model: Any, vector: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, batch_size=4, cache=False)
    rows = [vector, None, vector.scaled(0.0), vector]
    mixed = source.logits(PROMPTS, rows)
    plain = source.logits(PROMPTS)
    each = source.logits(PROMPTS, vector)
    assert np.allclose(mixed[[1, 2]], plain[[1, 2]], atol=1e-5)
    assert np.allclose(mixed[[0, 3]], each[[0, 3]], atol=1e-5)
    assert not np.allclose(each[0], plain[0], atol=1e-3)


def test_adaptive_needs_a_function_and_one_table(vector: Any) -> None:
    with pytest.raises(ValidationError, match="qp_adaptive or socp_adaptive"):
        SteeringVector(vector=np.ones(16), hook_point=HOOK, positions=Positions.ADAPTIVE)
    other = SteeringVector(
        vector=vector.vector,
        hook_point=HOOK,
        positions="adaptive",
        function=steering_function(
            np.eye(16), vector.function.direction, vector.function.threshold, lam=1.0
        ),
    )
    with pytest.raises(ValidationError, match="steering function of the first"):
        Intervention.of([vector, other], 2)
