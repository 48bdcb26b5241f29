"""Presets: every SAE id exists in the installed sae-lens registry, layers and hooks are checked
with clear errors, construction loads nothing, and loading calls the right loaders (the hub
loaders and the embedded model's are replaced by tiny stand-ins: no network here)."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_transformerlens import presets
from steerkit_transformerlens.presets import PRESETS, get_preset, hook_name, layer_of
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

from steerkit import SourceInfo, SteerkitError, UnknownPluginError, ValidationError

pytestmark = pytest.mark.needs_torch


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEERKIT_CACHE_DIR", str(tmp_path / "cache"))


def test_the_presets() -> None:
    assert sorted(PRESETS) == [
        "gemma-2-2b",
        "gemma-2-2b-it",
        "gemma-3-270m",
        "gemma-3-270m-offline",
        "gpt2-small",
    ]
    gpt2 = get_preset("gpt2-small")
    assert (gpt2.model, gpt2.sae_release, gpt2.hook) == ("gpt2", "gpt2-small-res-jb", "resid_pre")
    assert gpt2.sae_id_for(6) == "blocks.6.hook_resid_pre"
    assert get_preset("gemma-2-2b").sae_id_for(20) == "layer_20/width_16k/canonical"
    assert get_preset("gemma-2-2b-it").model == "google/gemma-2-2b-it"
    assert get_preset("gemma-3-270m").sae_id_for(12) == "layer_12_width_16k_l0_medium"


def sae_lens_release(name: str) -> tuple[str, set[str]]:
    """(model, SAE ids) of a release in the installed sae-lens's pretrained_saes.yaml, read
    line by line: parsing the whole 40k-line file takes seconds."""
    spec = importlib.util.find_spec("sae_lens")  # located, not imported (that takes seconds)
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    text = (folder / "pretrained_saes.yaml").read_text(encoding="utf-8")
    block = re.search(rf"^{re.escape(name)}:\n(.*?)(?=^\S)", text, flags=re.M | re.S)
    assert block is not None, f"{name} is not in sae-lens's registry"
    model = re.search(r"^  model: (\S+)$", block.group(1), flags=re.M)
    assert model is not None
    return model.group(1), set(re.findall(r"^  - id: (\S+)$", block.group(1), flags=re.M))


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if not p.offline])
def test_every_preset_sae_exists_in_the_sae_lens_registry(name: str) -> None:
    preset = PRESETS[name]
    assert preset.sae_release is not None and preset.sae_layers is not None
    model, sae_ids = sae_lens_release(preset.sae_release)
    for layer in preset.sae_layers:
        assert preset.sae_id_for(layer) in sae_ids, (name, layer)
    # the release's other layers at this width are listed too (no SAE left out)
    ids = {preset.sae_id_for(layer) for layer in range(preset.n_layers)}
    assert {i for i in ids if i in sae_ids} == {
        preset.sae_id_for(layer) for layer in preset.sae_layers
    }
    # the release reads the preset's model (the -it preset borrows the base model's SAEs)
    release_model = {
        "gpt2-small": "gpt2-small",
        "gemma-2-2b": "gemma-2-2b",
        "gemma-2-2b-it": "gemma-2-2b",
        "gemma-3-270m": "google/gemma-3-270m",
    }
    assert model == release_model[name]


def test_the_embedded_preset_defaults_to_the_layer_its_sae_is_trained_at() -> None:
    from steerkit_transformerlens import sae_training

    preset = get_preset("gemma-3-270m-offline")
    assert preset.default_layer == sae_training.DEFAULT_LAYER
    assert preset.hook == sae_training.DEFAULT_HOOK
    assert set(preset.hooks or ()) == set(sae_training.HOOKS)


def test_hook_names() -> None:
    assert hook_name(6, "resid_pre") == "blocks.6.hook_resid_pre"
    assert hook_name(3, "hook_mlp_out") == "blocks.3.hook_mlp_out"
    assert layer_of("blocks.12.hook_resid_post") == 12 and layer_of("hook_embed") is None
    with pytest.raises(ValidationError, match="one of resid_pre, resid_mid, resid_post"):
        hook_name(1, "resid")
    with pytest.raises(ValidationError, match="a non-negative integer"):
        hook_name(-1, "resid_pre")


def test_layer_and_hook_errors_list_what_exists() -> None:
    with pytest.raises(ValidationError, match=r"available: 5, 9, 12, 15"):
        TransformerLensSource("gemma-3-270m", layer=3)
    with pytest.raises(ValidationError, match=r"an integer in \[0, 11\]"):
        TransformerLensSource("gpt2-small", layer=12)
    with pytest.raises(ValidationError, match="'resid_pre'.*pass `model=` and `sae=`"):
        TransformerLensSource("gpt2-small", layer=3, hook="resid_post")
    with pytest.raises(UnknownPluginError, match="available: gemma-2-2b, gemma-2-2b-it"):
        TransformerLensSource("gpt3")
    with pytest.raises(ValidationError, match="dtype"):
        TransformerLensSource("gpt2-small", dtype="float8")
    # the embedded preset trains its SAE on demand: any layer and residual hook
    source = TransformerLensSource("gemma-3-270m-offline", layer=3, hook="mlp_out")
    assert source.hook_point == "blocks.3.hook_mlp_out"


def test_construction_loads_nothing() -> None:
    source = TransformerLensSource("gemma-2-2b", layer=20)
    assert source.hook_point == "blocks.20.hook_resid_post" and source.layer == 20
    assert source._model is None  # loaded on first use
    assert source.describe() == SourceInfo(
        name="transformerlens",
        hook_point="blocks.20.hook_resid_post",
        layer=20,
        n_layers=26,
        d_model=2304,
        model="google/gemma-2-2b",
        preset="gemma-2-2b",
        sae_release="gemma-scope-2b-pt-res-canonical",
        sae_id="layer_20/width_16k/canonical",
        params={"preset": "gemma-2-2b", "layer": 20, "hook": "resid_post"},
    )
    assert source._model is None  # describing it loaded nothing either
    assert TransformerLensSource("gpt2-small").hook_point == "blocks.6.hook_resid_pre"
    custom = TransformerLensSource("gemma-2-2b", layer=12, sae_id="layer_12/width_65k/canonical")
    assert custom.describe().sae_id == "layer_12/width_65k/canonical"
    # the parameters it records rebuild the same source
    again = TransformerLensSource(**custom.describe().params)  # type: ignore[arg-type]
    assert again.describe() == custom.describe()


def test_a_hub_preset_loads_the_sae_then_the_model_with_its_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sae_lens
    import transformer_lens

    calls: dict[str, Any] = {}
    hook = "blocks.2.hook_resid_pre"
    sae = tiny_sae(hook_name=hook)
    sae.cfg.metadata.model_from_pretrained_kwargs = {"center_writing_weights": True}

    def fake_sae(release: str, sae_id: str, **kwargs: Any) -> Any:
        calls["sae"] = (release, sae_id, kwargs)
        return sae

    def fake_model(name: str, **kwargs: Any) -> Any:
        calls["model"] = (name, kwargs)
        return tiny_model(n_layers=3)

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", staticmethod(fake_sae))
    monkeypatch.setattr(
        transformer_lens.HookedTransformer,
        "from_pretrained_no_processing",
        staticmethod(fake_model),
    )
    source = TransformerLensSource("gpt2-small", layer=2, device="cpu", cache=False)
    hidden = source.activations(["the cat sat"])
    assert calls["sae"] == (
        "gpt2-small-res-jb",
        "blocks.2.hook_resid_pre",
        {"device": "cpu", "dtype": "float32"},
    )
    import torch

    assert calls["model"] == (
        "gpt2",
        {"device": "cpu", "dtype": torch.float32, "center_writing_weights": True},
    )
    assert hidden.features is not None and hidden.features.shape == (1, 64)


def test_a_hub_failure_names_the_preset_that_needs_no_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sae_lens

    def no_hub(*args: Any, **kwargs: Any) -> Any:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", staticmethod(no_hub))
    source = TransformerLensSource("gemma-3-270m", layer=12, device="cpu")
    with pytest.raises(SteerkitError, match="use the preset 'gemma-3-270m-offline'") as info:
        source.decoder()
    assert isinstance(info.value.__cause__, OSError)


def test_the_embedded_preset_calls_the_agreed_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    model = tiny_model(n_layers=4)

    def load_offline_model(**kwargs: Any) -> Any:
        calls.append(("model", kwargs))
        return model

    def offline_sae(**kwargs: Any) -> Any:
        calls.append(("sae", kwargs))
        return tiny_sae(hook_name=f"blocks.{kwargs['layer']}.hook_{kwargs['hook']}")

    monkeypatch.setitem(
        sys.modules,
        "steerkit_transformerlens.offline",
        types.SimpleNamespace(load_offline_model=load_offline_model),
    )
    monkeypatch.setitem(
        sys.modules,
        "steerkit_transformerlens.sae_training",
        types.SimpleNamespace(offline_sae=offline_sae),
    )
    source = TransformerLensSource("gemma-3-270m-offline", layer=2, device="cpu", cache=False)
    assert calls == []
    acts = source.activations(["a dog ran"])
    assert calls == [
        ("model", {"device": "cpu", "dtype": "float32"}),
        ("sae", {"layer": 2, "hook": "resid_post", "device": "cpu"}),
    ]
    assert acts.hidden.shape == (1, 16) and source.decoder().shape == (64, 16)
    assert np.isfinite(acts.hidden).all()


def test_default_device() -> None:
    import torch
    from steerkit_transformerlens.source import default_device

    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert presets.HOOKS[0] == "resid_pre"
