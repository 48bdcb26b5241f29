"""Generating with a saved steering vector: the source is rebuilt from the vector's sidecar (its
source plugin and parameters: preset, layer, hook), or handed in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

import steerkit
from steerkit import ActivationSource, SteeringVector
from steerkit.errors import SteerkitError
from steerkit_runner.vectors import load_vector, read_sidecar

__all__ = ["Continuation", "source_from_sidecar", "steer_prompts"]


@attrs.frozen
class Continuation:
    """One prompt's continuation without and with the vector (at scale α)."""

    prompt: str
    unsteered: str
    steered: str
    alpha: float


def source_from_sidecar(
    sidecar: dict[str, Any],
    *,
    preset: str | None = None,
    device: str | None = None,
    host: steerkit.PluginHost | None = None,
) -> ActivationSource:
    """The activation source a saved vector was made with: its plugin (by name) built with the
    recorded parameters; `preset` / `device` replace the recorded ones."""
    spec = sidecar.get("source") or {}
    name = spec.get("name") or "transformerlens"
    params = dict(spec.get("params") or {})
    if preset is not None:
        params["preset"] = preset
    if device is not None:
        params["device"] = device
    if "preset" not in params:
        if sidecar.get("preset"):
            params["preset"] = sidecar["preset"]
        else:
            raise SteerkitError(
                "the vector's sidecar records no preset to rebuild its model from "
                "(it was made with a model built in code): pass --source-preset"
            )
    hook_point = sidecar.get("hook_point", "")
    if "layer" not in params and sidecar.get("layer") is not None:
        params["layer"] = sidecar["layer"]
    if "hook" not in params and ".hook_" in hook_point:
        params["hook"] = hook_point.split(".hook_", 1)[1]
    host = host if host is not None else steerkit.get_host()
    source: ActivationSource = host.registry("activation_source").get(name)(**params)
    return source


def steer_prompts(
    vector_file: str | Path,
    prompts: Sequence[str],
    *,
    alpha: float | None = None,
    max_new_tokens: int = 32,
    index: int | None = None,
    source: ActivationSource | None = None,
    preset: str | None = None,
    device: str | None = None,
    seed: int = 0,
) -> list[Continuation]:
    """Greedy continuations of each prompt without and with the saved vector, at scale `alpha`
    (default: the vector's own scale). For a per-input stack, `index` picks the input id
    (default: the first)."""
    sidecar = read_sidecar(vector_file)
    if sidecar.get("stacked") and index is None:
        index = int(sidecar["input_ids"][0])
    vector: SteeringVector = load_vector(vector_file, index=index)
    if alpha is not None:
        vector = vector.scaled(float(alpha))
    if source is None:
        source = source_from_sidecar(sidecar, preset=preset, device=device)
    if source.hook_point != vector.hook_point:
        raise SteerkitError(
            f"the vector was made for {vector.hook_point}, but the source reads {source.hook_point}"
        )
    prompts = list(prompts)
    base = [source.generate([p], max_new_tokens=max_new_tokens, seed=seed)[0] for p in prompts]
    steered = [
        source.generate([p], max_new_tokens=max_new_tokens, vector=vector, seed=seed)[0]
        for p in prompts
    ]
    return [
        Continuation(prompt=p, unsteered=b, steered=s, alpha=float(vector.scale))
        for p, b, s in zip(prompts, base, steered)
    ]
