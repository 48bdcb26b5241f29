"""The SAE trainer on a Hugging Face source (no TransformerLens model): a tiny random Llama's
activations come from the source's own hooks, and the saved SAE and its figures are checked
against a plain forward pass (`output_hidden_states`) and numpy."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sae_lens")
pytestmark = pytest.mark.needs_torch

import torch  # noqa: E402
from sae_lens import SAE  # noqa: E402
from steerkit_huggingface import HuggingFaceSource, offline  # noqa: E402
from steerkit_transformerlens import corpus, sae_training  # noqa: E402
from steerkit_transformerlens.sae_training import (  # noqa: E402
    STATS_FILE,
    offline_sae_folder,
    offline_sae_for_source,
    token_sequences,
    train_sae_from_source,
)
from steerkit_transformerlens.testing import TINY_WORDS  # noqa: E402

from steerkit.errors import ValidationError  # noqa: E402

from .conftest import TEXTS, tiny_hf  # noqa: E402

CONTEXT = 16
#: 2,700 training tokens × 40 epochs / 256 = 421 steps: seconds on a CPU.
TINY = {
    "d_sae": 64,
    "k": 4,
    "n_tokens": 3000,
    "epochs": 40,
    "context_size": CONTEXT,
    "batch_size_tokens": 256,
}
FAST = {**TINY, "epochs": 4}
HOOK = "blocks.1.hook_resid_post"


def tiny_texts(n: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TINY_WORDS) for _ in range(rng.randint(6, 14))) for _ in range(n)]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def llama() -> tuple[Any, Any]:
    return tiny_hf("llama")


def source_of(llama: tuple[Any, Any], hook_point: str = HOOK) -> HuggingFaceSource:
    model, tokenizer = llama
    return HuggingFaceSource(
        model=model, tokenizer=tokenizer, hook_point=hook_point, cache=False, progress=False
    )


def plain_hidden(model: Any, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    """resid_post of `layer` by a plain forward pass: hidden_states[layer + 1]."""
    with torch.inference_mode():
        return model(tokens, output_hidden_states=True).hidden_states[layer + 1].float()


def test_token_activations_are_every_position_of_a_plain_forward_pass(
    llama: tuple[Any, Any],
) -> None:
    model, tokenizer = llama
    tokens = torch.tensor([tokenizer(t)["input_ids"][:4] for t in TEXTS if len(t.split()) >= 4])
    for layer, hook_point in ((1, HOOK), (0, "blocks.1.hook_resid_pre")):
        got = source_of(llama, hook_point).token_activations(tokens)
        assert got.shape == (*tokens.shape, 16) and got.dtype == torch.float32
        torch.testing.assert_close(got, plain_hidden(model, tokens, layer), rtol=0, atol=1e-5)
    with pytest.raises(ValidationError, match="rows, length"):
        source_of(llama).token_activations(tokens[0])


def test_a_tiny_sae_trains_on_the_huggingface_source(
    llama: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tokenizer = llama
    source = source_of(llama)
    report = train_sae_from_source(
        source, texts=tiny_texts(), out_dir=tmp_path / HOOK, model_name="tiny-llama", **TINY
    )
    assert report.hook_name == HOOK and report.d_in == 16 and report.d_sae == 64

    # the held-out rows' activations again, by a plain forward pass; the figures by numpy
    tokens = token_sequences(tokenizer, tiny_texts(), context_size=CONTEXT, n_tokens=3000)
    n_heldout = round(0.1 * tokens.shape[0])
    x = plain_hidden(model, tokens[-n_heldout:], 1)[:, 1:].reshape(-1, 16).double().numpy()
    sae = SAE.load_from_disk(report.path)
    w_enc, b_enc = sae.W_enc.double().detach().numpy(), sae.b_enc.double().detach().numpy()
    w_dec, b_dec = sae.W_dec.double().detach().numpy(), sae.b_dec.double().detach().numpy()
    pre = (x - b_dec) @ w_enc + b_enc
    f = np.where(pre > sae.threshold.double().detach().numpy(), pre, 0.0)
    x_hat = f @ w_dec + b_dec
    ev = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
    assert report.heldout_tokens == x.shape[0] == n_heldout * (CONTEXT - 1)
    assert report.explained_variance == pytest.approx(ev, abs=1e-4)
    assert report.mean_l0 == pytest.approx((f != 0).sum(axis=1).mean(), abs=0.02)
    # it learned: a random 64-feature dictionary explains nothing of a 16-d stream
    assert report.explained_variance > 0.6 and 1 <= report.mean_l0 <= 12

    stats = json.loads((report.path / STATS_FILE).read_text())
    assert stats["model"] == "tiny-llama" and stats["source"] == "huggingface"
    assert (stats["layer"], stats["hook"]) == (1, "resid_post")
    assert sae.cfg.metadata.hook_name == HOOK

    # the source reads features with it: encode = the JumpReLU by hand on its own activations
    with_sae = HuggingFaceSource(
        model=model, tokenizer=tokenizer, hook_point=HOOK, sae=str(report.path), cache=False
    )
    acts = with_sae.activations(TEXTS)
    h = acts.hidden.astype(np.float64)
    by_hand = (h - b_dec) @ w_enc + b_enc
    by_hand = np.where(by_hand > sae.threshold.double().detach().numpy(), by_hand, 0.0)
    assert acts.features is not None
    np.testing.assert_allclose(acts.features, by_hand, atol=1e-4)


def test_a_source_without_token_activations_is_refused() -> None:
    class LastTokenOnly:
        hook_point = HOOK
        tokenizer = None

    with pytest.raises(ValidationError, match="token_activations"):
        train_sae_from_source(LastTokenOnly(), texts=["a b"], out_dir="x", model_name="m")


def test_the_offline_sae_of_a_source_trains_once_then_loads_from_the_cache(
    llama: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = sae_training.train_sae_from_source

    def counting(source: Any, **kwargs: Any) -> Any:
        calls.append(source.hook_point)
        return real(source, **kwargs)

    fake = corpus.Corpus(texts=tuple(tiny_texts()), sources=(), digest="tiny")
    monkeypatch.setattr(sae_training, "train_sae_from_source", counting)
    monkeypatch.setattr(corpus, "offline_corpus", lambda: fake)
    source = source_of(llama)

    sae, report = offline_sae_for_source(source, model_id="tiny-llama", **FAST)
    assert report.trained and calls == [HOOK]
    assert report.path == offline_sae_folder(1, "resid_post", model_id="tiny-llama")
    assert report.path.parts[-3:] == ("saes", "tiny-llama", HOOK)
    assert report.stats["corpus"]["digest"] == "tiny" and "files" in report.stats

    cached, again = offline_sae_for_source(source, model_id="tiny-llama", **FAST)
    assert not again.trained and calls == [HOOK]
    torch.testing.assert_close(cached.W_dec, sae.W_dec, rtol=0, atol=0)

    # a damaged file is caught by the recorded checksums, and the error says how to retrain
    weights = next(report.path.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(sae_training.OfflineSAEError, match="force=True"):
        offline_sae_for_source(source, model_id="tiny-llama", retrain="`force=True`", **FAST)
    _, forced = offline_sae_for_source(source, model_id="tiny-llama", force=True, **FAST)
    assert forced.trained and calls == [HOOK, HOOK]


def test_sae_offline_needs_an_offline_model(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    with pytest.raises(ValidationError, match="offline model"):
        HuggingFaceSource(model=model, tokenizer=tokenizer, hook_point=HOOK, sae="offline")
    with pytest.raises(ValidationError, match="offline model"):
        HuggingFaceSource("some/hub-model", layer=1, sae="offline")
    assert set(offline.SAE_SETTINGS) == set(offline.OFFLINE_MODELS)


def test_sae_offline_is_trained_for_the_loaded_offline_model(
    llama: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sae="offline"` with an offline name: the model is loaded on first use and its SAE
    trained through the generic path (the loader replaced by the tiny model)."""
    model, tokenizer = llama
    fake = corpus.Corpus(texts=tuple(tiny_texts()), sources=(), digest="tiny")
    monkeypatch.setattr(corpus, "offline_corpus", lambda: fake)
    monkeypatch.setitem(offline.SAE_SETTINGS, "smollm2-135m-instruct-offline", FAST)

    import transformers

    monkeypatch.setattr(
        "steerkit_huggingface.source.resolve_offline", lambda name: ("/nowhere", None)
    )
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    source = HuggingFaceSource(
        "smollm2-135m-instruct-offline",
        layer=1,
        sae="offline",
        chat_template=False,
        cache=False,
        progress=False,
    )
    decoder = source.decoder()
    assert decoder.shape == (64, 16)
    folder = offline_sae_folder(1, "resid_post", model_id="smollm2-135m-instruct-offline")
    stats = json.loads((folder / STATS_FILE).read_text())
    assert stats["report"]["d_sae"] == 64 and stats["source"] == "huggingface"
    assert source.describe().params == {
        "pretrained": "smollm2-135m-instruct-offline",
        "layer": 1,
        "hook": "resid_post",
        "sae": "offline",
    }
