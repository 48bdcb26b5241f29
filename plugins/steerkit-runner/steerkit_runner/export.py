"""Saved steering vectors out to the engines people serve and evaluate with.

`export_vector(VECTOR, FORMAT, OUT)` reads a saved vector (NAME.safetensors + NAME.json) and
writes it in one of `FORMATS`. Every format carries what steerkit adds, `scale · vector`, so the
engine's own strength or coefficient of 1 reproduces steerkit's steering:

- `gguf-control`: a llama.cpp control vector — GGUF, architecture `controlvector`, keys
  `controlvector.model_hint` and `controlvector.layer_count`, one 1-D F32 tensor `direction.N`.
  llama.cpp adds `direction.N` to the output of block N (0-based) at every position and rejects
  N = 0, so steerkit's `blocks.N.hook_resid_post` (= `blocks.{N+1}.hook_resid_pre`) is
  `direction.N`; a vector at the output of block 0 cannot be written.
- `repeng`: the same GGUF as repeng's `ControlVector.export_gguf` writes (model_hint = the
  Hugging Face `model_type`); repeng adds `direction.N` to the output of `model.layers[N]`, so
  N = 0 is allowed there.
- `lm-eval-csv`: lm-evaluation-harness's `steered` model, CSV of SAE features (loader, action,
  sparse_model, hookpoint, feature_index, steering_coefficient, sae_id). Its loader keeps one
  row per hookpoint (a later row replaces an earlier one), so only a vector on one SAE feature
  can be written this way; any other goes to `lm-eval-pt`.
- `lm-eval-pt`: the same model's `.pt` form, {hookpoint: {action, steering_vector,
  steering_coefficient, bias}} (torch.load(weights_only=True) reads it), for any dense vector.
- `safetensors` / `numpy`: the plain array `scale · vector` ((d_model,), or (n, d_model) for a
  per-input stack, rows in input-id order).

Hook points are Hugging Face module names under `model.base_model` for lm-eval (`layers.N`).
What a format cannot carry — a per-input stack (except plain arrays), positions other than
`all`, a hook point that is not the residual stream — raises `ExportUnsupportedError`
(`steerkit export` prints it and exits 2) instead of writing something that steers otherwise.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from steerkit import SteeringVector
from steerkit.errors import SteerkitError
from steerkit.vector import Positions
from steerkit_runner.vectors import load_vector, load_vectors, read_sidecar

__all__ = [
    "FORMATS",
    "ExportUnsupportedError",
    "block_output",
    "export_vector",
    "hf_module",
]

#: format name → file suffix.
FORMATS: dict[str, str] = {
    "gguf-control": ".gguf",
    "repeng": ".gguf",
    "lm-eval-csv": ".csv",
    "lm-eval-pt": ".pt",
    "safetensors": ".safetensors",
    "numpy": ".npy",
}

#: The lm-eval CSV columns, in the order its docstring gives them.
CSV_COLUMNS = (
    "loader",
    "action",
    "sparse_model",
    "hookpoint",
    "feature_index",
    "steering_coefficient",
    "sae_id",
)

_RESID = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")


class ExportUnsupportedError(SteerkitError):
    """The vector has something the chosen format cannot carry (the CLI exits 2)."""


def block_output(hook_point: str) -> int:
    """The 0-based decoder block whose output `hook_point` is: `blocks.L.hook_resid_post` → L,
    `blocks.L.hook_resid_pre` → L − 1 (the input of block L is the output of block L − 1).
    −1 is the embedding output (`blocks.0.hook_resid_pre`)."""
    match = _RESID.match(hook_point)
    if match is None:
        raise ExportUnsupportedError(
            f"hook point {hook_point!r} is not the residual stream between blocks "
            "(blocks.L.hook_resid_pre|post): the export formats add a vector to a decoder "
            "block's output only"
        )
    layer = int(match.group(1))
    return layer if match.group(2) == "post" else layer - 1


def hf_module(hook_point: str) -> str:
    """The Hugging Face module (a name under `model.base_model`) whose output is `hook_point`:
    `layers.N` for the output of block N."""
    block = block_output(hook_point)
    if block < 0:
        raise ExportUnsupportedError(
            f"{hook_point} is the embedding output, before any decoder block: lm-eval hooks a "
            "module's output, and the embedding module's output is not it for every "
            "architecture (Gemma scales it afterwards); steer blocks.1.hook_resid_pre or later"
        )
    return f"layers.{block}"


def _fixed(vector: SteeringVector, path: Path, fmt: str) -> SteeringVector:
    """The vector, unless it is per-token steering, which no format carries."""
    if vector.positions is Positions.ADAPTIVE:
        raise ExportUnsupportedError(
            f"{path} is per-token optimal steering: a table v*(r) evaluated at every token's "
            f"own margin, not one fixed vector, and {fmt} carries one fixed vector; replay it "
            "with `steerkit steer`, or export a fixed vector (qp or socp, not *_adaptive)"
        )
    return vector


def _single(path: Path, sidecar: Mapping[str, Any], index: int | None, fmt: str) -> SteeringVector:
    if sidecar.get("stacked") and index is None:
        raise ExportUnsupportedError(
            f"{path} holds {len(sidecar.get('input_ids', []))} per-input vectors, and the "
            f"{fmt} format carries one vector for every input: pass --index ID (Python: "
            "index=ID) to export one input's vector, or use --format safetensors|numpy for "
            "the whole stack"
        )
    vector = _fixed(load_vector(path, index=index if sidecar.get("stacked") else None), path, fmt)
    if vector.positions is not Positions.ALL:
        raise ExportUnsupportedError(
            f"the vector steers {vector.positions.value} positions only, and {fmt} adds it at "
            "every position: export a vector made with positions = 'all'"
        )
    return vector


def _added(vector: SteeringVector) -> np.ndarray[Any, Any]:
    return np.asarray(vector.scale * np.asarray(vector.vector, dtype=np.float64))


def _write_gguf(out: Path, vector: SteeringVector, hint: str, allow_zero: bool) -> None:
    try:
        import gguf
    except ImportError as e:
        raise SteerkitError(
            "the GGUF formats need the gguf package: pip install gguf (or steerkit-runner[export])"
        ) from e

    block = block_output(vector.hook_point)
    if block < 0 or (block == 0 and not allow_zero):
        raise ExportUnsupportedError(
            f"{vector.hook_point} is the output of block {block}: llama.cpp never adds a "
            "control vector there (it rejects direction.0 and has no direction before block "
            "0); steer a later hook point (blocks.1.hook_resid_post or later)"
        )
    writer = gguf.GGUFWriter(str(out), "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", block)
    writer.add_tensor(f"direction.{block}", _added(vector).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _sae(sidecar: Mapping[str, Any]) -> tuple[str | None, str | None]:
    sae = sidecar.get("sae") or {}
    return sae.get("release"), sae.get("id")


def _write_csv(
    out: Path,
    vector: SteeringVector,
    sidecar: Mapping[str, Any],
    sae_release: str | None,
    sae_id: str | None,
) -> None:
    support = vector.provenance.get("support")
    values = vector.provenance.get("support_values")
    if support is None or values is None:
        raise ExportUnsupportedError(
            "the vector is not a combination of SAE features (its provenance has no "
            "support): lm-eval's CSV names SAE features; use --format lm-eval-pt"
        )
    if len(support) != 1:
        raise ExportUnsupportedError(
            f"the vector combines {len(support)} SAE features, and lm-eval's CSV loader keeps "
            "one row per hookpoint (each later row replaces the earlier one), so it cannot add "
            "them together: use --format lm-eval-pt, which carries the exact dense vector"
        )
    release, sae = _sae(sidecar)
    release = sae_release or release
    sae = sae_id or sae
    if not release:
        raise ExportUnsupportedError(
            "the sidecar records no SAE release, and lm-eval loads the feature's decoder row "
            "from it: pass --sae-release (and --sae-id)"
        )
    row = {
        "loader": "sae_lens",
        "action": "add",
        "sparse_model": release,
        "hookpoint": hf_module(vector.hook_point),
        "feature_index": int(support[0]),
        "steering_coefficient": repr(float(vector.scale * float(values[0]))),
        "sae_id": sae or "",
    }
    with out.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerow(row)


def _write_pt(out: Path, vector: SteeringVector) -> None:
    try:
        import torch
    except ImportError as e:
        raise SteerkitError("lm-eval-pt needs torch: pip install torch") from e

    config = {
        hf_module(vector.hook_point): {
            "action": "add",
            "steering_vector": torch.tensor(np.asarray(vector.vector, dtype=np.float32)),
            "steering_coefficient": float(vector.scale),
            "bias": None,
        }
    }
    torch.save(config, out)


def _write_plain(out: Path, fmt: str, path: Path, index: int | None) -> None:
    vectors = load_vectors(path) if index is None else [load_vector(path, index=index)]
    vectors = [_fixed(v, path, fmt) for v in vectors]
    stacked = read_sidecar(path).get("stacked") and index is None
    array = np.stack([_added(v) for v in vectors]) if stacked else _added(vectors[0])
    if fmt == "numpy":
        with out.open("wb") as file:
            np.save(file, array)
        return
    from safetensors.numpy import save_file

    first = vectors[0]
    save_file(
        {"vectors" if stacked else "vector": np.ascontiguousarray(array)},
        str(out),
        metadata={
            "hook_point": first.hook_point,
            "positions": first.positions.value,
            "added": "scale * vector",
        },
    )


def export_vector(
    path: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    index: int | None = None,
    model_hint: str | None = None,
    sae_release: str | None = None,
    sae_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the saved vector at `path` (NAME, NAME.safetensors or NAME.json) in format `fmt`
    (one of FORMATS) to `out` (default: NAME plus the format's suffix) and return that path.

    index picks one input of a per-input stack; model_hint goes into a GGUF's
    `controlvector.model_hint` (default: the sidecar's model); sae_release / sae_id replace the
    sidecar's for lm-eval's CSV. Raises ExportUnsupportedError for what the format cannot carry.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    path = Path(path)
    sidecar = read_sidecar(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    target = Path(out) if out is not None else stem.with_name(stem.name + FORMATS[fmt])
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass --force / overwrite=True)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("safetensors", "numpy"):
        _write_plain(target, fmt, path, index)
        return target
    vector = _single(path, sidecar, index, fmt)
    hint = model_hint or str(sidecar.get("model") or "unknown")
    if fmt in ("gguf-control", "repeng"):
        _write_gguf(target, vector, hint, allow_zero=fmt == "repeng")
    elif fmt == "lm-eval-csv":
        _write_csv(target, vector, sidecar, sae_release, sae_id)
    else:
        _write_pt(target, vector)
    return target
