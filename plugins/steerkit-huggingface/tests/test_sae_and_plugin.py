"""SAEs (sae-lens objects and folders, plain safetensors), the registry entry, the disk cache,
describe(), and that TransformerLens is never imported."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import steerkit
from steerkit.errors import SteerkitError

from .conftest import TEXTS


def test_a_sae_lens_sae_gives_its_features_and_decoder(make_source: Callable[..., Any]) -> None:
    import torch
    from steerkit_transformerlens.testing import tiny_sae

    sae = tiny_sae(d_in=16, d_sae=40, seed=3)
    source = make_source(sae=sae)
    acts = source.activations(TEXTS)
    with torch.inference_mode():
        expected = sae.encode(torch.tensor(acts.hidden)).numpy()
    np.testing.assert_allclose(acts.features, expected, atol=1e-6)
    np.testing.assert_array_equal(source.decoder(), sae.W_dec.detach().numpy())
    assert source.describe().d_sae == 40


def test_a_plain_safetensors_sae_encodes_by_hand(
    make_source: Callable[..., Any], tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    from safetensors.numpy import save_file

    d, m = 16, 12
    tensors = {
        "W_dec": steerkit_rng.normal(size=(m, d)).astype(np.float32),
        "W_enc": steerkit_rng.normal(size=(d, m)).astype(np.float32),
        "b_enc": steerkit_rng.normal(size=m).astype(np.float32),
        "b_dec": steerkit_rng.normal(size=d).astype(np.float32),
        "threshold": np.full(m, 0.5, dtype=np.float32),
    }
    save_file(tensors, str(tmp_path / "sae.safetensors"))
    source = make_source(sae=str(tmp_path / "sae.safetensors"))
    acts = source.activations(TEXTS[:2])
    for row, hidden in zip(acts.features, acts.hidden):
        for j in range(m):  # JumpReLU, one feature at a time
            pre = sum(
                (float(hidden[k]) - float(tensors["b_dec"][k])) * float(tensors["W_enc"][k, j])
                for k in range(d)
            ) + float(tensors["b_enc"][j])
            assert row[j] == pytest.approx(pre if pre > 0.5 else 0.0, abs=1e-4)
    np.testing.assert_array_equal(source.decoder(), tensors["W_dec"])


def test_a_decoder_only_file_serves_the_decoder_and_says_what_encode_needs(
    make_source: Callable[..., Any], tmp_path: Path
) -> None:
    from safetensors.numpy import save_file

    save_file({"W_dec": np.eye(16, dtype=np.float32)[:5]}, str(tmp_path / "d.safetensors"))
    source = make_source(sae=str(tmp_path / "d.safetensors"))
    assert source.decoder().shape == (5, 16)
    with pytest.raises(SteerkitError, match="W_enc"):
        source.activations(TEXTS)


def test_the_disk_cache_returns_what_was_computed(
    make_source: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(tmp_path))
    first = make_source(cache=True).activations(TEXTS).hidden
    assert list(tmp_path.rglob("*.safetensors")), "nothing was cached"
    again = make_source(cache=True).activations(TEXTS).hidden
    np.testing.assert_array_equal(again, first)
    other = make_source("blocks.0.hook_resid_post", cache=True).activations(TEXTS).hidden
    assert not np.allclose(other, first)


def test_the_registry_finds_the_source_and_describe_rebuilds_it(
    tmp_path: Path, steerkit_host_factory: Callable[..., steerkit.PluginHost]
) -> None:
    import steerkit_huggingface.plugin

    from .conftest import tiny_hf

    model, tokenizer = tiny_hf("llama", n_layers=2)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    host = steerkit_host_factory(("huggingface", steerkit_huggingface.plugin))
    cls = host.registry("activation_source").get("huggingface")
    source = cls(str(tmp_path / "m"), layer=1, device="cpu", cache=False, progress=False)
    info = source.describe()
    assert (info.name, info.hook_point, info.n_layers, info.d_model) == (
        "huggingface",
        "blocks.1.hook_resid_post",
        2,
        16,
    )
    assert info.params == {"pretrained": str(tmp_path / "m"), "layer": 1, "hook": "resid_post"}
    rebuilt = cls(**info.params, cache=False, progress=False)
    np.testing.assert_array_equal(
        rebuilt.activations(TEXTS).hidden, source.activations(TEXTS).hidden
    )


def test_transformer_lens_is_never_imported(tmp_path: Path) -> None:
    code = """
import sys
from steerkit_huggingface import HuggingFaceSource
from transformers import LlamaConfig, LlamaForCausalLM
from steerkit_transformerlens.testing import tiny_tokenizer
tok = tiny_tokenizer()
model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
source = HuggingFaceSource(model=model, tokenizer=tok, layer=1, cache=True, progress=False)
source.activations(["the cat"]); source.generate(["a dog"], max_new_tokens=2)
assert "transformer_lens" not in sys.modules, "transformer_lens was imported"
"""
    env = {**os.environ, "STEERKIT_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
