"""Tiny random transformers models (Llama and Gemma-3 text), built in memory with the word-level
test tokenizer: no hub, no files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "the big red bird flew under the tree and is happy",
    "very bad",
    "the small blue cat ran",
]


def tiny_hf(arch: str, *, n_layers: int = 3, seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): a random `arch` ("llama" or "gemma3") causal LM, d_model 16, in eval
    mode, with weights large enough (initializer_range 0.5) that greedy choices are decisive."""
    import torch
    from steerkit_transformerlens.testing import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": n_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "initializer_range": 0.5,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "attn_implementation": "eager",
    }
    torch.manual_seed(seed)
    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        config = Gemma3TextConfig(**common, head_dim=4, sliding_window=4)
        model = Gemma3ForCausalLM(config)
    model.eval()
    return model, tokenizer


@pytest.fixture(params=["llama", "gemma3"], scope="module")
def tiny(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return tiny_hf(request.param)


@pytest.fixture
def make_source(tiny: tuple[Any, Any]) -> Callable[..., Any]:
    from steerkit_huggingface import HuggingFaceSource

    model, tokenizer = tiny

    def make(hook_point: str = "blocks.1.hook_resid_post", **kwargs: Any) -> Any:
        kwargs.setdefault("cache", False)
        kwargs.setdefault("progress", False)
        return HuggingFaceSource(model=model, tokenizer=tokenizer, hook_point=hook_point, **kwargs)

    return make
