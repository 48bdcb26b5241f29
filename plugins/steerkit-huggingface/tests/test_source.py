"""The Hugging Face source against plain transformers passes, one text at a time, unpadded:
activations = output_hidden_states, steered logits = a hand-written hook, batched = one by one,
left padding = right padding, generation = a greedy loop written here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from steerkit import SteeringVector, ValidationError

from .conftest import TEXTS

ATOL = 2e-5  # float32: padding changes the shapes of the reductions, not the maths


def _ids(tokenizer: Any, text: str) -> Any:
    import torch

    return torch.tensor([tokenizer(text)["input_ids"]])


def _hidden_states(model: Any, tokenizer: Any, text: str) -> Sequence[Any]:
    import torch

    with torch.inference_mode():
        return model(_ids(tokenizer, text), output_hidden_states=True).hidden_states


@contextmanager
def _added_after(
    model: Any, layer: int, values: Any, start: int = 0, stop: int | None = None
) -> Iterator[None]:
    """An independent steering hook: `values` added to the output of decoder layer `layer` at
    absolute positions start ≤ p < stop (counted over the passes it sees)."""
    import torch

    seen = [0]

    def hook(module: Any, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        n = hidden.shape[1]
        positions = torch.arange(seen[0], seen[0] + n)
        seen[0] += n
        chosen = (positions >= start) & (positions < (seen[0] if stop is None else stop))
        added = hidden + chosen[None, :, None] * torch.as_tensor(values).float()
        return (added, *output[1:]) if isinstance(output, tuple) else added

    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _vector(
    rng: np.random.Generator, hook: str, scale: float = 3.0, positions: str = "all"
) -> SteeringVector:
    return SteeringVector(rng.normal(size=16), hook_point=hook, scale=scale, positions=positions)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_activations_are_the_plain_passes_hidden_states(
    tiny: tuple[Any, Any], make_source: Callable[..., Any], padding_side: str
) -> None:
    import torch

    model, tokenizer = tiny
    for layer in (0, 1, 2):
        post = make_source(f"blocks.{layer}.hook_resid_post", padding_side=padding_side)
        pre = make_source(f"blocks.{layer}.hook_resid_pre", padding_side=padding_side)
        got_post, got_pre = post.activations(TEXTS).hidden, pre.activations(TEXTS).hidden
        for i, text in enumerate(TEXTS):
            states = _hidden_states(model, tokenizer, text)
            np.testing.assert_allclose(got_pre[i], states[layer][0, -1], atol=ATOL)
            if layer < 2:
                np.testing.assert_allclose(got_post[i], states[layer + 1][0, -1], atol=ATOL)
            else:  # transformers' last hidden state has the final norm applied; the hook's not
                with torch.inference_mode():
                    normed = model.model.norm(torch.tensor(got_post[i])).numpy()
                np.testing.assert_allclose(normed, states[-1][0, -1], atol=1e-4)
    assert got_post.dtype == np.float32 and got_post.shape == (len(TEXTS), 16)


def test_batch_size_and_padding_side_change_nothing(make_source: Callable[..., Any]) -> None:
    reference = make_source(batch_size=1).activations(TEXTS).hidden
    for side in ("left", "right"):
        got = make_source(batch_size=3, padding_side=side).activations(TEXTS).hidden
        np.testing.assert_allclose(got, reference, atol=ATOL)


def test_steered_logits_equal_a_hand_written_hook(
    tiny: tuple[Any, Any], make_source: Callable[..., Any], steerkit_rng: np.random.Generator
) -> None:
    import torch

    model, tokenizer = tiny
    vector = _vector(steerkit_rng, "blocks.1.hook_resid_post")
    for side in ("right", "left"):
        got = make_source(batch_size=2, padding_side=side).logits(TEXTS, vector)
        for i, text in enumerate(TEXTS):
            with _added_after(model, 1, 3.0 * vector.vector), torch.inference_mode():
                expected = model(_ids(tokenizer, text)).logits[0, -1].numpy()
            np.testing.assert_allclose(got[i], expected, atol=1e-4)
    plain = make_source().logits(TEXTS)
    assert np.abs(plain - got).max() > 0.1  # the vector does something


def test_resid_pre_of_a_layer_is_resid_post_of_the_one_before(
    make_source: Callable[..., Any], steerkit_rng: np.random.Generator
) -> None:
    raw = steerkit_rng.normal(size=16)
    pre = SteeringVector(raw, hook_point="blocks.2.hook_resid_pre", scale=2.0)
    post = SteeringVector(raw, hook_point="blocks.1.hook_resid_post", scale=2.0)
    np.testing.assert_allclose(
        make_source().logits(TEXTS, pre), make_source().logits(TEXTS, post), atol=1e-5
    )


def test_per_row_vectors_in_one_batch_equal_one_text_at_a_time(
    make_source: Callable[..., Any], steerkit_rng: np.random.Generator
) -> None:
    hook = "blocks.1.hook_resid_post"
    rows: list[SteeringVector | None] = [
        _vector(steerkit_rng, hook, scale=s) for s in (1.0, -2.0, 0.5, 4.0)
    ]
    rows.insert(2, None)
    batched = make_source(batch_size=5, padding_side="left").logits(TEXTS, rows)
    single = make_source(batch_size=1)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(batched[i], single.logits([text], rows[i])[0], atol=1e-4)


def test_continuation_logprobs_are_the_plain_log_softmax(
    tiny: tuple[Any, Any], make_source: Callable[..., Any], steerkit_rng: np.random.Generator
) -> None:
    import torch

    model, tokenizer = tiny
    prompts, continuations = TEXTS[:3], [" sat on the mat", " is very happy", ""]
    vector = _vector(steerkit_rng, "blocks.0.hook_resid_post", scale=1.5)
    got = make_source(padding_side="left").continuation_logprobs(prompts, continuations, vector)
    assert got[2].shape == (0,)
    for i in range(2):
        n_prompt = len(tokenizer(prompts[i])["input_ids"])
        ids = _ids(tokenizer, prompts[i] + continuations[i])
        with _added_after(model, 0, 1.5 * vector.vector), torch.inference_mode():
            logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
        targets = ids[0, n_prompt:]
        expected = logp[torch.arange(n_prompt - 1, ids.shape[1] - 1), targets].numpy()
        np.testing.assert_allclose(got[i], expected, atol=1e-4)


def _greedy(
    model: Any, tokenizer: Any, text: str, n: int, vector: SteeringVector | None
) -> list[int]:
    """A greedy loop without a cache (the whole sequence again at every step), the vector added
    by `_added_after` at the positions its mode names."""
    import torch

    ids = _ids(tokenizer, text)
    n_prompt = ids.shape[1]
    out: list[int] = []
    for _ in range(n):
        if vector is None:
            logits = model(ids).logits
        else:
            mode = vector.positions.value
            start = n_prompt if mode == "generated" else 0
            stop = n_prompt if mode == "prompt" else None
            with _added_after(model, 1, vector.scale * vector.vector, start=start, stop=stop):
                logits = model(ids).logits
        token = int(logits[0, -1].argmax())
        if token == tokenizer.eos_token_id:
            break
        out.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return out


@pytest.mark.parametrize("positions", [None, "all", "generated", "prompt"])
def test_generation_equals_a_greedy_loop_one_prompt_at_a_time(
    tiny: tuple[Any, Any],
    make_source: Callable[..., Any],
    steerkit_rng: np.random.Generator,
    positions: str | None,
) -> None:
    import torch

    model, tokenizer = tiny
    vector = None
    if positions is not None:
        vector = _vector(steerkit_rng, "blocks.1.hook_resid_post", 2.0, positions)
    got = make_source(batch_size=3).generate_tokens(TEXTS, max_new_tokens=6, vector=vector)
    with torch.inference_mode():
        expected = [_greedy(model, tokenizer, text, 6, vector) for text in TEXTS]
    assert got == expected


def test_generate_returns_text_and_steering_changes_it(
    make_source: Callable[..., Any], steerkit_rng: np.random.Generator
) -> None:
    source = make_source()
    plain = source.generate(TEXTS[:2], max_new_tokens=5)
    strong = _vector(steerkit_rng, "blocks.1.hook_resid_post", scale=50.0)
    steered = source.generate(TEXTS[:2], max_new_tokens=5, vector=strong)
    assert all(isinstance(t, str) for t in plain + steered)
    assert plain != steered


def test_hooks_are_removed_also_on_error(
    tiny: tuple[Any, Any], make_source: Callable[..., Any], steerkit_rng: np.random.Generator
) -> None:
    model, _ = tiny

    def hooks() -> list[int]:  # transformers registers hooks of its own on some layers
        return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]

    before = hooks()
    wrong = SteeringVector(np.ones(7), hook_point="blocks.1.hook_resid_post")
    with pytest.raises(ValidationError, match="d_model"):
        make_source().logits(TEXTS, wrong)
    source = make_source()
    source.activations(TEXTS)
    source.logits(TEXTS, _vector(steerkit_rng, "blocks.2.hook_resid_pre"))
    early = _vector(steerkit_rng, "blocks.0.hook_resid_post")
    source.generate(TEXTS[:2], max_new_tokens=2, vector=early)
    assert hooks() == before


def test_bad_hook_points_are_refused_naming_the_fix(make_source: Callable[..., Any]) -> None:
    with pytest.raises(ValidationError, match=r"0 ≤ L < 3"):
        make_source("blocks.3.hook_resid_post")
    with pytest.raises(ValidationError, match="hook_resid_pre or"):
        make_source("blocks.1.hook_mlp_out")


def test_a_chat_template_wraps_every_text_and_generated_counts_after_it(
    tiny: tuple[Any, Any], steerkit_rng: np.random.Generator
) -> None:
    import copy

    import torch
    from steerkit_huggingface import HuggingFaceSource

    model, plain_tokenizer = tiny
    tokenizer = copy.deepcopy(plain_tokenizer)
    # a user turn is its text; the generation prompt is the word "very" (all in the tiny vocab)
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}very {% endif %}"
    )
    source = HuggingFaceSource(
        model=model, tokenizer=tokenizer, layer=1, chat_template=True, cache=False, progress=False
    )
    templated = [f"{t} very" for t in TEXTS]
    np.testing.assert_allclose(
        source.activations(TEXTS).hidden,
        np.stack([_hidden_states(model, tokenizer, t)[2][0, -1] for t in templated]),
        atol=ATOL,
    )
    vector = _vector(steerkit_rng, "blocks.1.hook_resid_post", 2.0, "generated")
    got = source.generate_tokens(TEXTS, max_new_tokens=4, vector=vector)
    with torch.inference_mode():
        assert got == [_greedy(model, tokenizer, t, 4, vector) for t in templated]
