"""The copy-free unembedding gives the logits TransformerLens's own Unembed gives."""

from __future__ import annotations

import copy

import pytest
import torch
from steerkit_transformerlens.source import unembed_without_copy
from steerkit_transformerlens.testing import tiny_model

pytestmark = pytest.mark.needs_torch


@pytest.mark.parametrize("positional", ["standard", "rotary"])
def test_copy_free_unembedding_matches_transformerlens(positional: str) -> None:
    model = tiny_model(seed=3, positional=positional)
    with torch.no_grad():
        model.unembed.b_U.copy_(torch.randn(model.unembed.b_U.shape))  # b_U must matter
    patched = copy.deepcopy(model)
    unembed_without_copy(patched)
    tokens = model.to_tokens(["the cat sat on the mat", "a dog ran"], padding_side="right")
    seen: list[torch.Tensor] = []
    with torch.no_grad():
        expected = model(tokens)
        actual = patched.run_with_hooks(
            tokens, fwd_hooks=[("unembed.hook_out", lambda x, hook: seen.append(x))]
        )
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(actual, torch.zeros_like(actual))
    assert len(seen) == 1  # the unembedding's hooks still run
    assert type(model.unembed).forward is not patched.unembed.forward  # the original is untouched
