"""Generating with a saved steering vector. The source is rebuilt from the vector's provenance —
the `SourceInfo` its source described itself with, recorded in the sidecar — through the source
registry (`registry.get(info.name)(**info.params)`), or handed in. Everything that can be checked
before a model loads is checked first: the sidecar, the device, the width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

import steerkit
from steerkit import ActivationSource, SourceInfo, SteeringVector, SteerkitError, ValidationError
from steerkit_runner.vectors import VectorFileError, load_vector, read_sidecar

__all__ = [
    "Continuation",
    "check_device",
    "source_from_sidecar",
    "source_info_of",
    "steer_prompts",
]


@attrs.frozen
class Continuation:
    """One prompt's continuation without and with the vector (at scale α)."""

    prompt: str
    unsteered: str
    steered: str
    alpha: float


def source_info_of(sidecar: Mapping[str, Any], where: str = "the sidecar") -> SourceInfo:
    """The SourceInfo a sidecar records (its "source" entry); an entry of older runs that holds
    only the plugin's name and parameters is read as such."""
    spec = sidecar.get("source")
    if not isinstance(spec, Mapping) or not spec.get("name"):
        raise VectorFileError(
            f"{where} records no source (the 'source' entry with the source plugin's name and "
            "parameters): it was not written by `steerkit run`; pass the source yourself"
        )
    if "hook_point" in spec:
        try:
            return SourceInfo.from_dict(spec)
        except ValidationError as e:
            raise VectorFileError(f"{where}: its 'source' entry is not readable: {e}") from e
    return SourceInfo(
        name=str(spec["name"]),
        hook_point=str(sidecar.get("hook_point") or "?"),
        params=dict(spec.get("params") or {}),
    )


def check_device(device: str | None) -> None:
    """A clear error, before any model loads, for a torch device this machine does not have."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as e:
        raise SteerkitError(f"--device {device!r} is not a torch device: {e}") from e
    if kind == "cuda" and not torch.cuda.is_available():
        raise SteerkitError(
            f"--device {device!r}: torch sees no CUDA device on this machine; "
            "use --device cpu (or leave --device out)"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SteerkitError(f"--device {device!r}: this machine has no MPS device; use cpu")


def source_from_sidecar(
    sidecar: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
    host: steerkit.PluginHost | None = None,
) -> ActivationSource:
    """The activation source a saved vector was made with, built through the source registry
    from its recorded SourceInfo; `params` replace recorded parameters (or supply them for a
    source that was built in code), `device` is passed as the source's `device` parameter."""
    info = source_info_of(sidecar)
    recorded = info.params
    if recorded is None and not params:
        raise SteerkitError(
            f"the vector's sidecar records no parameters to rebuild its {info.name!r} source "
            "from (it was made with a model built in code): pass --source-param KEY=VALUE for "
            "each parameter the source needs"
        )
    built = {**dict(recorded or {}), **dict(params or {})}
    if device is not None:
        built["device"] = device
    host = host if host is not None else steerkit.get_host()
    source: ActivationSource = host.registry("activation_source").get(info.name)(**built)
    return source


def _check_fits(vector: SteeringVector, source: ActivationSource) -> None:
    """The vector's hook point and width against what the source says, before a model loads."""
    info = source.describe()
    if info.hook_point != vector.hook_point:
        raise SteerkitError(
            f"the vector was made for {vector.hook_point}, but the source reads {info.hook_point}"
        )
    if info.d_model is not None and info.d_model != vector.d_model:
        raise SteerkitError(
            f"the vector has {vector.d_model} entries, but the source's model has d_model "
            f"{info.d_model}: it was made for another model"
        )


def steer_prompts(
    vector_file: str | Path,
    prompts: Sequence[str],
    *,
    alpha: float | None = None,
    max_new_tokens: int = 32,
    index: int | None = None,
    source: ActivationSource | None = None,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
    seed: int = 0,
    host: steerkit.PluginHost | None = None,
) -> list[Continuation]:
    """Greedy continuations of each prompt without and with the saved vector, at scale `alpha`
    (default: the vector's own scale), in one batched call each. For a per-input stack, `index`
    picks the input id (default: the first)."""
    sidecar = read_sidecar(vector_file)
    if sidecar.get("stacked") and index is None:
        index = int(sidecar["input_ids"][0])
    vector: SteeringVector = load_vector(vector_file, index=index)
    if alpha is not None:
        vector = vector.scaled(float(alpha))
    if source is None:
        check_device(device)
        source = source_from_sidecar(sidecar, params=params, device=device, host=host)
    _check_fits(vector, source)
    prompts = list(prompts)
    base = source.generate(prompts, max_new_tokens=max_new_tokens, seed=seed)
    steered = source.generate(prompts, max_new_tokens=max_new_tokens, vector=vector, seed=seed)
    return [
        Continuation(prompt=p, unsteered=b, steered=s, alpha=float(vector.scale))
        for p, b, s in zip(prompts, base, steered)
    ]
