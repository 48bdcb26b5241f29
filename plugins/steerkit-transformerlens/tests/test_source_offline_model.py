"""The source on the real embedded Gemma-3-270M (slow: converts or loads the model, and the
preset test trains the SAE on first use). The same oracles as the tiny-model tests: plain
TransformerLens forward passes and TransformerLens's own `generate`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.source import TransformerLensSource

from steerkit import SteeringVector

pytestmark = [pytest.mark.slow, pytest.mark.needs_torch]

TEXTS = [
    "The movie was wonderful and I loved every minute of it.",
    "Terrible service.",
    "The weather in Paris is mild in spring, with occasional rain.",
    "I can't believe how bad this product is; it broke after one day!",
]
HOOK = "blocks.6.hook_resid_post"


@pytest.fixture(scope="module")
def model() -> Any:
    from steerkit_transformerlens.offline import load_offline_model

    return load_offline_model(device="cpu")


def test_activations_of_the_real_model_match_plain_forward_passes(model: Any) -> None:
    oracle = []
    for text in TEXTS:
        _, cache = model.run_with_cache(model.to_tokens(text), names_filter=HOOK)
        oracle.append(cache[HOOK][0, -1].float().numpy())
    expected = np.stack(oracle)
    scale = np.abs(expected).max()
    for side in ("left", "right"):
        source = TransformerLensSource(
            model=model, hook_point=HOOK, padding_side=side, batch_size=4, cache=False
        )
        hidden = source.hidden_states(TEXTS)
        assert hidden.shape == (len(TEXTS), 640)
        np.testing.assert_allclose(hidden, expected, atol=1e-5 * scale, rtol=0)


def test_steering_and_generation_on_the_real_model(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, batch_size=4, cache=False)
    rng = np.random.default_rng(0)
    vector = SteeringVector(vector=rng.normal(size=640), hook_point=HOOK, scale=8.0)
    delta = torch.tensor(vector.vector * vector.scale, dtype=torch.float32)
    steered = source.logits(TEXTS[:2], vector)
    with torch.inference_mode():
        expected = np.stack(
            [
                model.run_with_hooks(
                    model.to_tokens(t), fwd_hooks=[(HOOK, lambda act, hook: act + delta)]
                )[0, -1].numpy()
                for t in TEXTS[:2]
            ]
        )
    np.testing.assert_allclose(steered, expected, atol=1e-3, rtol=1e-4)

    prompts = ["The capital of France is", "Once upon a time"]
    ours = source.generate_tokens(prompts, max_new_tokens=8, stop_at_eos=False)
    theirs = model.generate(
        prompts, max_new_tokens=8, do_sample=False, stop_at_eos=False, verbose=False,
        return_type="tokens",
    )  # fmt: skip
    assert ours == theirs[:, -8:].tolist()
    text = source.generate(prompts[:1], max_new_tokens=8)[0]
    assert isinstance(text, str) and text.strip()


def test_the_offline_preset_end_to_end() -> None:
    source = TransformerLensSource("gemma-3-270m-offline", device="cpu", cache=False)
    acts = source.activations(TEXTS)
    assert acts.hidden.shape == (len(TEXTS), 640) and acts.hook_point == HOOK
    assert acts.features is not None and acts.features.shape == (len(TEXTS), source.d_sae)
    assert source.decoder().shape == (source.d_sae, 640)
    assert (acts.features > 0).sum(axis=1).min() > 0  # every text fires some feature
