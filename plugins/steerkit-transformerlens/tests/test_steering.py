"""Steering and generation of the `transformerlens` source on tiny models: the hook adds exactly
α·v at the chosen positions (checked against forward passes with a hand-written hook), it is
always removed, and unsteered generation equals TransformerLens's own `generate`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.generation import pad_batch
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import Positions, SteeringVector, ValidationError

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
PROMPTS = ["the cat sat on the mat", "a dog", "the big red dog ran very fast"]
NEW = 6


@pytest.fixture(scope="module", params=["standard", "rotary"])
def model(request: pytest.FixtureRequest) -> Iterator[Any]:
    model = tiny_model(seed=3, positional=request.param)
    yield model
    model.reset_hooks(including_permanent=True)


@pytest.fixture
def source(model: Any) -> TransformerLensSource:
    return TransformerLensSource(model=model, hook_point=HOOK, batch_size=4, cache=False)


def vector_for(
    rng: np.random.Generator, positions: str = "all", scale: float = 3.0, hook: str = HOOK
) -> SteeringVector:
    return SteeringVector(
        vector=rng.normal(size=16), hook_point=hook, scale=scale, positions=positions
    )


def added(vector: SteeringVector, selected: Any = None) -> Any:
    """A hand-written hook adding scale·v where `selected(n_pos)` (a bool mask) says."""
    delta = torch.tensor(vector.vector * vector.scale, dtype=torch.float32)

    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        if selected is None:
            return act + delta
        mask = selected(act.shape[1]).to(act.dtype)[None, :, None]
        return act + mask * delta

    return hook


def last_logits(model: Any, texts: list[str], fwd_hooks: list[Any] | None = None) -> np.ndarray:
    with torch.inference_mode():
        out = [
            model.run_with_hooks(model.to_tokens(t), fwd_hooks=fwd_hooks or [])[0, -1].numpy()
            for t in texts
        ]
    return np.stack(out)


def n_hooks(model: Any) -> int:
    return sum(len(hp.fwd_hooks) for hp in model.hook_dict.values())


def test_steering_adds_exactly_scale_times_vector(
    source: TransformerLensSource, model: Any, steerkit_rng: np.random.Generator
) -> None:
    vector = vector_for(steerkit_rng)
    steered = source.logits(PROMPTS, vector)
    expected = last_logits(model, PROMPTS, [(HOOK, added(vector))])
    np.testing.assert_allclose(steered, expected, atol=1e-5, rtol=0)
    assert np.abs(steered - last_logits(model, PROMPTS)).max() > 1e-2  # it did something
    with source.steer(vector):  # the context manager, around a plain forward pass
        np.testing.assert_allclose(last_logits(model, PROMPTS), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(source.logits(PROMPTS), last_logits(model, PROMPTS), atol=1e-5)
    # scale 0 is the identity; scale is linear at the hook
    np.testing.assert_allclose(
        source.logits(PROMPTS, vector.scaled(0.0)), last_logits(model, PROMPTS), atol=1e-5
    )


def test_hooks_are_removed_on_exit_and_on_error(
    source: TransformerLensSource, model: Any, steerkit_rng: np.random.Generator
) -> None:
    before = last_logits(model, PROMPTS)
    user_hook_calls: list[int] = []
    model.add_hook(HOOK, lambda act, hook: user_hook_calls.append(1))
    try:
        assert n_hooks(model) == 1
        last_logits(model, PROMPTS[:1])
        assert user_hook_calls == [1]
        with pytest.raises(RuntimeError, match="boom"), source.steer(vector_for(steerkit_rng)):
            assert n_hooks(model) == 2
            raise RuntimeError("boom")
        assert n_hooks(model) == 1  # ours gone, the user's kept
        with source.steer(vector_for(steerkit_rng)), source.steer(vector_for(steerkit_rng)):
            assert n_hooks(model) == 3
        assert n_hooks(model) == 1
    finally:
        model.reset_hooks()
    assert n_hooks(model) == 0 and user_hook_calls
    np.testing.assert_array_equal(last_logits(model, PROMPTS), before)

    # an error inside the hook itself (a vector of the wrong width at a non-residual hook)
    wrong = SteeringVector(vector=np.ones(3), hook_point="blocks.0.attn.hook_z")
    with pytest.raises(ValidationError, match="a vector of the width of blocks.0.attn.hook_z"):
        source.logits(PROMPTS, wrong)
    assert n_hooks(model) == 0


def test_bad_vectors_are_refused(source: TransformerLensSource) -> None:
    elsewhere = SteeringVector(vector=np.ones(16), hook_point="blocks.9.hook_resid_pre")
    with pytest.raises(ValidationError, match="a hook of this model"), source.steer(elsewhere):
        pass
    short = SteeringVector(vector=np.ones(5), hook_point=HOOK)
    with pytest.raises(ValidationError, match="length 16"), source.steer(short):
        pass
    with pytest.raises(ValidationError, match="a steerkit.SteeringVector"):
        source.steer(np.ones(16))  # type: ignore[arg-type]


def test_a_plain_forward_pass_is_all_prompt(
    source: TransformerLensSource, model: Any, steerkit_rng: np.random.Generator
) -> None:
    vector = vector_for(steerkit_rng)
    everywhere = source.logits(PROMPTS, vector)
    np.testing.assert_allclose(
        source.logits(PROMPTS, attrs_evolve(vector, positions="prompt")), everywhere, atol=1e-6
    )
    np.testing.assert_allclose(
        source.logits(PROMPTS, attrs_evolve(vector, positions="generated")),
        source.logits(PROMPTS),
        atol=1e-6,
    )


def attrs_evolve(vector: SteeringVector, **changes: Any) -> SteeringVector:
    import attrs

    return attrs.evolve(vector, **changes)


@pytest.mark.parametrize("use_kv_cache", [True, False])
@pytest.mark.parametrize("stop_at_eos", [True, False])
def test_unsteered_generation_equals_transformer_lens_generate(
    source: TransformerLensSource, model: Any, use_kv_cache: bool, stop_at_eos: bool
) -> None:
    ours = source.generate_tokens(
        PROMPTS, max_new_tokens=NEW, use_kv_cache=use_kv_cache, stop_at_eos=stop_at_eos
    )
    theirs = model.generate(
        PROMPTS,
        max_new_tokens=NEW,
        do_sample=False,
        stop_at_eos=stop_at_eos,
        use_past_kv_cache=use_kv_cache,
        return_type="tokens",
        verbose=False,
    )
    eos = model.tokenizer.eos_token_id
    prompt_length = max(len(model.to_tokens(p)[0]) for p in PROMPTS)  # TL pads on the left
    for row, full in zip(ours, theirs.tolist()):
        new = full[prompt_length:]
        if stop_at_eos and eos in new:
            new = new[: new.index(eos)]
        assert row == new
    texts = source.generate(PROMPTS, max_new_tokens=NEW, use_kv_cache=use_kv_cache)
    assert texts == [model.tokenizer.decode(r, skip_special_tokens=True) for r in ours]
    assert all(isinstance(t, str) for t in texts)


def test_generation_of_one_prompt_alone_matches_the_batch(source: TransformerLensSource) -> None:
    batched = source.generate_tokens(PROMPTS, max_new_tokens=NEW, stop_at_eos=False)
    alone = [source.generate_tokens([p], max_new_tokens=NEW, stop_at_eos=False)[0] for p in PROMPTS]
    assert batched == alone


def _selected(positions: Positions, prompt_length: int) -> Any:
    def mask(n_pos: int) -> torch.Tensor:
        idx = torch.arange(n_pos)
        if positions is Positions.ALL:
            return torch.ones(n_pos, dtype=torch.bool)
        if positions is Positions.PROMPT:
            return idx < prompt_length
        return idx >= prompt_length

    return mask


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
@pytest.mark.parametrize("use_kv_cache", [True, False])
def test_generation_steers_exactly_the_chosen_positions(
    source: TransformerLensSource,
    model: Any,
    steerkit_rng: np.random.Generator,
    positions: str,
    use_kv_cache: bool,
) -> None:
    vector = vector_for(steerkit_rng, positions, scale=4.0)
    rows = [model.to_tokens(p)[0].tolist() for p in PROMPTS]
    prompt_length = max(len(r) for r in rows)

    # what the hook point holds after steering, position by position, during generation
    seen: list[torch.Tensor] = []
    capture = [(HOOK, lambda act, hook: seen.append(act.clone()))]
    with source.steer(vector), model.hooks(fwd_hooks=capture):  # steering runs first
        new = source.generate_tokens(
            PROMPTS, max_new_tokens=NEW, stop_at_eos=False, use_kv_cache=use_kv_cache
        )
    steered_acts = torch.cat(seen, dim=1) if use_kv_cache else seen[-1]
    assert new == source.generate_tokens(
        PROMPTS, max_new_tokens=NEW, stop_at_eos=False, vector=vector, use_kv_cache=use_kv_cache
    )

    # the oracle: one unsteered forward pass over the final sequences (left-padded, as generated)
    full = pad_batch([r + n for r, n in zip(rows, new)], pad_id=0, side="left", device="cpu")
    # every prompt was left-padded to prompt_length, so the sequences are already aligned
    assert full.tokens.shape[1] == prompt_length + NEW
    plain: list[torch.Tensor] = []
    with torch.inference_mode():
        model.run_with_hooks(
            full.tokens,
            attention_mask=full.mask,
            fwd_hooks=[(HOOK, lambda act, hook: plain.append(act.clone()))],
        )
    select = _selected(vector.positions, prompt_length)(prompt_length + NEW)
    delta = torch.tensor(vector.vector * vector.scale, dtype=torch.float32)
    expected = plain[0] + select[None, :, None] * delta
    real = full.mask.bool()
    n_seen = steered_acts.shape[1]  # the last generated token is never run
    assert n_seen == prompt_length + NEW - 1
    torch.testing.assert_close(
        steered_acts[real[:, :n_seen]], expected[:, :n_seen][real[:, :n_seen]], atol=1e-5, rtol=0
    )

    # and the tokens are the greedy choices of a hand-steered forward pass over that sequence
    with torch.inference_mode():
        logits = model.run_with_hooks(
            full.tokens,
            attention_mask=full.mask,
            fwd_hooks=[(HOOK, added(vector, _selected(vector.positions, prompt_length)))],
        )
    greedy = logits[:, prompt_length - 1 : -1].argmax(-1).tolist()
    assert greedy == new


def test_steering_changes_generation_and_unsteered_comes_back(
    source: TransformerLensSource, steerkit_rng: np.random.Generator
) -> None:
    plain = source.generate(PROMPTS, max_new_tokens=NEW, stop_at_eos=False)
    strong = vector_for(steerkit_rng, scale=50.0)
    steered = source.generate(PROMPTS, max_new_tokens=NEW, stop_at_eos=False, vector=strong)
    assert steered != plain
    assert source.generate(PROMPTS, max_new_tokens=NEW, stop_at_eos=False) == plain


def test_sampling_is_seeded(source: TransformerLensSource) -> None:
    def sample(seed: int) -> list[list[int]]:
        return source.generate_tokens(
            PROMPTS * 3, max_new_tokens=NEW, do_sample=True, seed=seed, stop_at_eos=False
        )

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    greedy = source.generate_tokens(PROMPTS, max_new_tokens=NEW, stop_at_eos=False)
    top1 = source.generate_tokens(
        PROMPTS, max_new_tokens=NEW, do_sample=True, top_k=1, seed=3, stop_at_eos=False
    )
    assert top1 == greedy
    with pytest.raises(ValidationError, match="temperature"):
        source.generate(PROMPTS, do_sample=True, temperature=0.0)


def test_generation_respects_the_context(source: TransformerLensSource) -> None:
    with pytest.raises(ValidationError, match="the model's context is 32 tokens"):
        source.generate(PROMPTS, max_new_tokens=30)
    assert source.generate_tokens(PROMPTS, max_new_tokens=0) == [[], [], []]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_everything_matches_the_cpu(steerkit_rng: np.random.Generator) -> None:
    from steerkit_transformerlens.testing import tiny_sae

    runs = {}
    vector = vector_for(steerkit_rng, "generated", scale=4.0)
    for device in ("cpu", "cuda"):
        source = TransformerLensSource(
            model=tiny_model(seed=3, device=device),
            sae=tiny_sae(hook_name=HOOK, device=device),
            hook_point=HOOK,
            cache=False,
        )
        acts = source.activations(PROMPTS)
        runs[device] = (
            acts.hidden,
            acts.features,
            source.logits(PROMPTS, attrs_evolve(vector, positions="all")),
            source.generate_tokens(PROMPTS, max_new_tokens=NEW, vector=vector),
            source.generate_tokens(PROMPTS, max_new_tokens=NEW),
        )
    for cpu, cuda in zip(runs["cpu"][:3], runs["cuda"][:3]):
        np.testing.assert_allclose(cpu, cuda, atol=1e-4, rtol=0)
    assert runs["cpu"][3:] == runs["cuda"][3:]
