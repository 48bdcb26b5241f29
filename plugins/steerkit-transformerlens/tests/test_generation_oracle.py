"""The generation fast path (one left-padded batch, KV cache, one steering vector per row) gives
the tokens of the plainest greedy loop: each prompt alone, no padding, no cache, the whole
sequence run again at every step with a hand-written hook adding the vector."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import SteeringVector

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
PROMPTS = ["the cat sat on the mat", "a dog", "the big red dog ran very fast", "bird"]
NEW = 8


def greedy_alone(model: Any, prompt: str, vector: SteeringVector | None) -> list[int]:
    """NEW greedy tokens of `prompt` alone, re-running the full sequence at every step; the
    hook adds scale·v at the positions `vector.positions` names (prompt: the prompt's own)."""
    tokens = model.to_tokens(prompt)
    n_prompt = tokens.shape[1]
    new: list[int] = []
    for _ in range(NEW):
        hooks = []
        if vector is not None:
            delta = torch.tensor(vector.vector * vector.scale, dtype=torch.float32)
            where = torch.zeros(tokens.shape[1], 1)
            if vector.positions.value in ("all", "prompt"):
                where[:n_prompt] = 1.0
            if vector.positions.value in ("all", "generated"):
                where[n_prompt:] = 1.0
            hooks = [(HOOK, lambda act, hook, d=delta * where: act + d)]
        with torch.inference_mode():
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        chosen = int(logits[0, -1].argmax())
        new.append(chosen)
        tokens = torch.cat([tokens, torch.tensor([[chosen]])], dim=1)
    return new


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
@pytest.mark.parametrize("architecture", ["gpt2", "gemma"])
def test_batched_cached_steered_generation_equals_the_plain_loop(
    positions: str, architecture: str
) -> None:
    if architecture == "gemma":
        model = tiny_model(seed=5, positional="rotary", gated_mlp=True, n_key_value_heads=2)
    else:
        model = tiny_model(seed=5)
    rng = np.random.default_rng(0)
    vectors: list[SteeringVector | None] = [
        SteeringVector(rng.normal(size=16), HOOK, scale=4.0, positions=positions) for _ in PROMPTS
    ]
    vectors[1] = None  # an unsteered row in the same batch
    source = TransformerLensSource(model=model, hook_point=HOOK, batch_size=4, cache=False)
    batched = source.generate_tokens(PROMPTS, max_new_tokens=NEW, vector=vectors, stop_at_eos=False)
    expected = [greedy_alone(model, p, v) for p, v in zip(PROMPTS, vectors)]
    assert batched == expected
    unsteered = [greedy_alone(model, p, None) for p in PROMPTS]
    assert expected != unsteered  # the vectors change what the model writes
