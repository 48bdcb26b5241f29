"""Re-laid weights: same parameters (shapes, values), bitwise the same forward pass, and the
transposes TransformerLens reads are contiguous (no copy per pass)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from steerkit_transformerlens.layout import contiguous_forward_weights
from steerkit_transformerlens.testing import tiny_model

pytestmark = pytest.mark.needs_torch


def gemma_like(seed: int = 0) -> Any:
    """A tiny model with Gemma's parts (gated MLP, grouped-query attention, rotary, RMS) and
    every weight and bias random, so that none could hide a bug."""
    model = tiny_model(seed=seed, positional="rotary", gated_mlp=True, n_key_value_heads=2)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for param in model.parameters():
            param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("build", [gemma_like, lambda: tiny_model(seed=3, positional="rotary")])
def test_relaid_weights_give_bitwise_the_same_forward_pass(build: Any) -> None:
    model = build()
    relaid = copy.deepcopy(model)
    moved = contiguous_forward_weights(relaid)
    assert moved > 0
    assert contiguous_forward_weights(relaid) == 0  # a second call finds nothing to move
    for (name, before), (_, after) in zip(model.named_parameters(), relaid.named_parameters()):
        assert after.shape == before.shape and torch.equal(after, before), name
    tokens = model.to_tokens(["the cat sat on the mat", "a dog ran"], padding_side="left")
    mask = (tokens != model.tokenizer.pad_token_id).long()
    with torch.inference_mode():
        expected = model(tokens, attention_mask=mask)
        actual = relaid(tokens, attention_mask=mask)
    assert torch.equal(actual, expected)
    assert relaid.unembed.W_U.T.is_contiguous() and not model.unembed.W_U.T.is_contiguous()


def test_the_forward_pass_reads_relaid_weights_without_copying() -> None:
    model = gemma_like()
    contiguous_forward_weights(model)
    mlp, attn = model.blocks[0].mlp, model.blocks[0].attn
    for weight in (mlp.W_gate, mlp.W_in, mlp.W_out, model.unembed.W_U):
        assert weight.T.is_contiguous()
    for weight in (attn.W_Q, attn._W_K, attn._W_V):  # read as (head·d_head, d_model)
        assert weight.permute(0, 2, 1).is_contiguous()
    assert attn.W_O.permute(2, 0, 1).is_contiguous()  # read as (d_model, head·d_head)
