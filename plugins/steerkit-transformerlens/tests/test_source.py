"""Activations, the SAE and the disk cache of the `transformerlens` source, on tiny in-memory
models, checked against plain TransformerLens forward passes and hand-computed matrix products."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

from steerkit import Activations, SteerkitError, ValidationError

pytestmark = pytest.mark.needs_torch

TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "bird",
    "the big red dog ran very fast under the tree",
    "a small blue bird flew",
    "the cat is not happy",
]
HOOK = "blocks.1.hook_resid_pre"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def sae() -> Any:
    return tiny_sae(hook_name=HOOK, seed=1)


def oracle_hidden(model: Any, texts: list[str], hook: str) -> np.ndarray:
    """One text at a time, no padding, the full forward pass: the activation at the last token."""
    rows = []
    for text in texts:
        _, cache = model.run_with_cache(model.to_tokens(text))
        rows.append(cache[hook][0, -1].numpy())
    return np.stack(rows)


def hand_encode(sae: Any, hidden: np.ndarray) -> np.ndarray:
    w_enc, b_enc = sae.W_enc.detach().numpy(), sae.b_enc.detach().numpy()
    b_dec = sae.b_dec.detach().numpy()
    return np.maximum((hidden - b_dec) @ w_enc + b_enc, 0.0)


@pytest.mark.parametrize("positional", ["standard", "rotary"])
@pytest.mark.parametrize("shared_special", [False, True])
@pytest.mark.parametrize("side", ["left", "right"])
def test_hidden_is_the_last_real_token_of_a_plain_forward_pass(
    positional: Any, shared_special: bool, side: Any
) -> None:
    model = tiny_model(seed=2, positional=positional, shared_special=shared_special)
    source = TransformerLensSource(
        model=model, hook_point=HOOK, padding_side=side, batch_size=4, cache=False
    )
    hidden = source.hidden_states(TEXTS)
    assert hidden.shape == (len(TEXTS), 16) and hidden.dtype == np.float32
    np.testing.assert_allclose(hidden, oracle_hidden(model, TEXTS, HOOK), atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("hook", [HOOK, "blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"])
def test_batching_does_not_change_an_input(model: Any, side: Any, hook: str) -> None:
    batched = TransformerLensSource(
        model=model, hook_point=hook, padding_side=side, batch_size=4, cache=False
    ).hidden_states(TEXTS)
    alone = np.stack(
        [
            TransformerLensSource(
                model=model, hook_point=hook, batch_size=1, cache=False
            ).hidden_states([text])[0]
            for text in TEXTS
        ]
    )
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched, oracle_hidden(model, TEXTS, hook), atol=1e-5, rtol=0)


def test_the_forward_pass_stops_after_the_hook_block(model: Any) -> None:
    later: list[str] = []
    model.add_hook("blocks.1.hook_resid_post", lambda act, hook: later.append(hook.name))
    try:
        source = TransformerLensSource(
            model=model, hook_point="blocks.0.hook_resid_post", cache=False
        )
        source.hidden_states(TEXTS[:2])
        assert later == []  # block 1 never ran
        source.logits(TEXTS[:2])  # a full forward pass does run it
        assert later == ["blocks.1.hook_resid_post"]
    finally:
        model.reset_hooks()


def test_activations_carry_features_from_the_sae(model: Any, sae: Any) -> None:
    source = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False)
    acts = source.activations(TEXTS)
    assert isinstance(acts, Activations) and acts.hook_point == HOOK and len(acts) == len(TEXTS)
    assert acts.features is not None and acts.features.shape == (len(TEXTS), 64)
    expected = hand_encode(sae, oracle_hidden(model, TEXTS, HOOK))
    np.testing.assert_allclose(acts.features, expected, atol=1e-5, rtol=0)
    assert (acts.features > 0).any() and (acts.features == 0).any()  # a real ReLU at work


def test_encode_decode_and_decoder_are_the_sae_matrices(
    model: Any, sae: Any, steerkit_rng: np.random.Generator
) -> None:
    source = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False)
    hidden = steerkit_rng.normal(size=(300, 16)).astype(np.float32)  # more than one chunk
    features = source.encode(hidden)
    np.testing.assert_allclose(features, hand_encode(sae, hidden), atol=1e-5, rtol=0)
    decoder = source.decoder()
    assert decoder.shape == (64, 16) and decoder.dtype == np.float32
    np.testing.assert_array_equal(decoder, sae.W_dec.detach().numpy())
    assert not decoder.flags.writeable
    recon = source.decode(features)
    np.testing.assert_allclose(
        recon, features @ decoder + sae.b_dec.detach().numpy(), atol=1e-5, rtol=0
    )
    assert source.d_sae == 64 and source.d_model == 16 and source.layer == 1
    with pytest.raises(ValidationError, match=r"hidden: expected an \(n, 16\) array"):
        source.encode(hidden[:, :5])
    with pytest.raises(ValidationError, match=r"features: expected an \(n, 64\) array"):
        source.decode(hidden)


def test_without_an_sae_there_are_no_features_and_no_decoder(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    assert source.activations(TEXTS[:2]).features is None
    with pytest.raises(SteerkitError, match="has no SAE: pass sae="):
        source.decoder()
    with pytest.raises(SteerkitError, match="has no SAE"):
        source.encode(np.zeros((1, 16)))


@pytest.mark.parametrize("side", ["left", "right"])
def test_logits_are_the_next_token_logits_of_the_last_real_token(model: Any, side: Any) -> None:
    source = TransformerLensSource(
        model=model, hook_point=HOOK, padding_side=side, batch_size=4, cache=False
    )
    logits = source.logits(TEXTS)
    with torch.inference_mode():
        expected = np.stack([model(model.to_tokens(t))[0, -1].numpy() for t in TEXTS])
    assert logits.shape == (len(TEXTS), model.cfg.d_vocab)
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)


def test_a_second_call_reads_the_disk_cache(
    model: Any, sae: Any, _cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, batch_size=4)
    acts = first.activations(TEXTS)
    files = list((_cache_dir / "activations").glob("*.safetensors"))
    assert len(files) == 1

    calls: list[int] = []
    real_forward = model.forward

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    again = TransformerLensSource(model=model, sae=sae, hook_point=HOOK).activations(TEXTS)
    assert calls == []  # read from disk
    np.testing.assert_array_equal(again.hidden, acts.hidden)
    assert again.features is not None and acts.features is not None
    np.testing.assert_array_equal(again.features, acts.features)

    # other texts, another hook, another model: misses, never a wrong hit
    TransformerLensSource(model=model, hook_point=HOOK).hidden_states(TEXTS[:3])
    assert len(calls) == 1
    TransformerLensSource(model=model, hook_point="blocks.0.hook_resid_post").hidden_states(TEXTS)
    assert len(calls) == 2
    other = tiny_model(seed=5)  # same name ("custom"), same shapes, other weights
    hidden = TransformerLensSource(model=other, hook_point=HOOK).hidden_states(TEXTS)
    np.testing.assert_allclose(hidden, oracle_hidden(other, TEXTS, HOOK), atol=1e-5, rtol=0)
    assert len(list((_cache_dir / "activations").glob("*.safetensors"))) == 4


def test_an_unreadable_cache_file_is_rebuilt(model: Any, _cache_dir: Path) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK)
    hidden = source.hidden_states(TEXTS)
    (path,) = (_cache_dir / "activations").glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    np.testing.assert_array_equal(source.hidden_states(TEXTS), hidden)


def test_construction_errors_name_the_problem(model: Any, sae: Any) -> None:
    with pytest.raises(ValidationError, match="a hook of this 2-layer model"):
        TransformerLensSource(model=model, hook_point="blocks.7.hook_resid_pre")
    with pytest.raises(ValidationError, match=r"an SAE trained at blocks\.1\.hook_resid_pre"):
        TransformerLensSource(model=model, sae=tiny_sae(hook_name="blocks.0.hook_resid_pre"),
                              hook_point=HOOK)  # fmt: skip
    with pytest.raises(ValidationError, match="d_in = 16"):
        TransformerLensSource(model=model, sae=tiny_sae(d_in=8), hook_point=HOOK)
    with pytest.raises(ValidationError, match="not both"):
        TransformerLensSource("gpt2-small", model=model)
    with pytest.raises(ValidationError, match="a preset name"):
        TransformerLensSource(hook_point=HOOK)
    with pytest.raises(ValidationError, match="only with a preset"):
        TransformerLensSource(model=model, hook_point=HOOK, device="cpu")
    with pytest.raises(ValidationError, match="hook_point='blocks.L.hook_…', or layer= and hook="):
        TransformerLensSource(model=model)
    with pytest.raises(ValidationError, match="batch_size"):
        TransformerLensSource(model=model, hook_point=HOOK, batch_size=0)
    source = TransformerLensSource(model=model, layer=1, hook="resid_pre", cache=False)
    assert source.hook_point == HOOK


def test_bad_texts_are_refused(model: Any) -> None:
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    with pytest.raises(ValidationError, match="a list, not one string"):
        source.activations("the cat")
    with pytest.raises(ValidationError, match="at least one text"):
        source.activations([])
    with pytest.raises(ValidationError, match=r"texts\[1\]: expected a string"):
        source.activations(["the cat", 3])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="at most 32 tokens"):
        source.activations(["the cat " * 20])


def test_at_hook_reads_the_same_model_elsewhere(model: Any, sae: Any) -> None:
    source = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False)
    other = source.at_hook("blocks.1.hook_resid_post")
    assert other.model is source.model and other.sae is None  # shared, not loaded again
    assert other.hook_point == "blocks.1.hook_resid_post" and other.describe().layer == 1
    np.testing.assert_allclose(
        other.activations(TEXTS).hidden,
        oracle_hidden(model, TEXTS, "blocks.1.hook_resid_post"),
        atol=1e-5,
        rtol=0,
    )
    with pytest.raises(ValidationError, match="a hook of this"):
        source.at_hook("blocks.9.hook_resid_post")
