"""Steering vectors on disk: `NAME.safetensors` (the numbers) and `NAME.json` (what they are).

The tensor is stored in the dtype the vector has (SteeringVector holds float64; a float32 stack
stays float32), so a reload is bit-identical. Both files are written atomically (a temporary file,
fsync, rename, then the folder fsynced), the tensor first; the sidecar records the tensor's
SHA-256, so a pair cut in two by a crash — a tensor without its sidecar, or a sidecar with another
tensor — is detected when read (`check_saved`) and never taken for a vector. A file holds one
vector (key "vector", shape (d_model,)) or a stack of per-input vectors (key "vectors", shape
(n, d_model), with the input ids in the sidecar). The sidecar records the model, preset, hook
point, layer, SAE release and id, method, solver, λ / ε, the scale α, positions, the δ support
with its feature ids and values, the steerkit version and the config hash, and the full
provenance of each vector. A vector at positions `adaptive` also carries its steering function
(one table per file, shared by a stack): tensors "function.<name>" and the sidecar's "function"
(kind, λ or ε, threshold, breakpoints, SHA-256), so that `steerkit steer` replays it per token.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import steerkit
from steerkit import SteeringFunction, SteeringVector
from steerkit.errors import SteerkitError
from steerkit_runner.results import to_json

__all__ = [
    "FORMAT",
    "VectorFileError",
    "check_saved",
    "load_vector",
    "load_vectors",
    "read_sidecar",
    "save_vector",
    "save_vectors",
    "vector_paths",
]

FORMAT = "steerkit-steering-vector"
FORMAT_VERSION = 1


class VectorFileError(SteerkitError):
    """A saved vector that cannot be read: a missing sidecar, a shape or checksum mismatch."""


def vector_paths(path: str | Path) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) for NAME, NAME.safetensors or NAME.json."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _digest(array: np.ndarray[Any, Any]) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _describe(vector: SteeringVector) -> dict[str, Any]:
    provenance = dict(vector.provenance)
    out: dict[str, Any] = {
        "hook_point": vector.hook_point,
        "layer": vector.layer,
        "scale": float(vector.scale),
        "positions": vector.positions.value,
        "method": provenance.get("method"),
        "solver": provenance.get("solver"),
        "lam": provenance.get("lam"),
        "eps": provenance.get("eps"),
        "support": provenance.get("support"),
        "support_values": provenance.get("support_values"),
        "provenance": provenance,
    }
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    """`data` to `path` through a temporary file in the same folder: fsync, then rename. A crash
    leaves the old file or the new one, never a torn one (and perhaps a stray *.tmp)."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - not POSIX
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(
    tensors: dict[str, np.ndarray[Any, Any]],
    sidecar: dict[str, Any],
    path: str | Path,
    overwrite: bool,
) -> tuple[Path, Path]:
    from safetensors.numpy import save

    tensor_path, json_path = vector_paths(path)
    if not overwrite and (tensor_path.exists() or json_path.exists()):
        raise FileExistsError(
            f"{tensor_path} already exists: saved vectors are never overwritten "
            "(pass overwrite=True, or choose another name)"
        )
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json(sidecar), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    _atomic_write(tensor_path, save(tensors, metadata={"format": FORMAT}))
    _atomic_write(json_path, text.encode("utf-8"))
    _fsync_folder(tensor_path.parent)
    return tensor_path, json_path


def _base_sidecar(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "steerkit_version": steerkit.__version__,
        **dict(metadata or {}),
    }


def save_vector(
    vector: SteeringVector,
    path: str | Path,
    *,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Save one vector as PATH.safetensors + PATH.json; `metadata` (model, preset, sae, config
    hash, ...) goes into the sidecar. Returns both paths."""
    array = np.asarray(vector.vector)
    sidecar = {
        **_base_sidecar(metadata),
        "stacked": False,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "sha256": _digest(array),
        **_describe(vector),
    }
    tensors = {"vector": np.ascontiguousarray(array)}
    _add_function([vector], tensors, sidecar)
    return _write(tensors, sidecar, path, overwrite)


_FUNCTION = "function."


def _add_function(
    vectors: Sequence[SteeringVector], tensors: dict[str, Any], sidecar: dict[str, Any]
) -> None:
    """The steering function of adaptive vectors (one table, shared by all) into the files."""
    functions = [v.function for v in vectors if v.function is not None]
    if not functions:
        return
    first = functions[0]
    if len(functions) != len(vectors) or not all(f.same_as(first) for f in functions):
        raise ValueError("save_vectors: adaptive vectors must all share one steering function")
    arrays = {_FUNCTION + k: np.ascontiguousarray(a) for k, a in first.arrays().items()}
    tensors.update(arrays)
    sidecar["function"] = {
        **first.meta(),
        "breakpoints": first.n_breakpoints,
        "sha256": _digest(np.concatenate([a.ravel() for a in arrays.values()])),
    }


def _read_function(
    tensors: Mapping[str, Any], sidecar: Mapping[str, Any], where: Path
) -> SteeringFunction | None:
    meta = sidecar.get("function")
    if meta is None:
        return None
    arrays = {k[len(_FUNCTION) :]: a for k, a in tensors.items() if k.startswith(_FUNCTION)}
    names = ("direction", "margins", "vectors", "slope")
    if any(n not in arrays for n in names) or meta.get("sha256") != _digest(
        np.concatenate([arrays[n].ravel() for n in names])
    ):
        raise VectorFileError(
            f"{where}: its steering function (the table of an adaptive vector) is missing or "
            "does not match the checksum in its sidecar; write the vector again"
        )
    return SteeringFunction.from_parts(arrays, meta)


def save_vectors(
    vectors: Sequence[SteeringVector],
    path: str | Path,
    *,
    input_ids: Sequence[int] | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Save per-input vectors (same hook point) as one (n, d_model) stack; input_ids (default
    0..n-1) say which input each row steers."""
    if not vectors:
        raise ValueError("save_vectors: no vectors to save")
    hooks = {v.hook_point for v in vectors}
    if len(hooks) != 1:
        raise ValueError(f"save_vectors: vectors at several hook points {sorted(hooks)}")
    ids = list(range(len(vectors))) if input_ids is None else [int(i) for i in input_ids]
    if len(ids) != len(vectors):
        raise ValueError(f"save_vectors: {len(ids)} input ids for {len(vectors)} vectors")
    stack = np.stack([np.asarray(v.vector) for v in vectors])
    first = vectors[0]
    sidecar = {
        **_base_sidecar(metadata),
        "stacked": True,
        "shape": list(stack.shape),
        "dtype": str(stack.dtype),
        "sha256": _digest(stack),
        "input_ids": ids,
        **{k: v for k, v in _describe(first).items() if k not in ("provenance",)},
        "support": None,
        "support_values": None,
        "vectors": [
            {
                "input_id": i,
                "scale": float(v.scale),
                "positions": v.positions.value,
                "layer": v.layer,
                "support": v.provenance.get("support"),
                "support_values": v.provenance.get("support_values"),
                "provenance": dict(v.provenance),
            }
            for i, v in zip(ids, vectors)
        ],
    }
    tensors = {"vectors": stack}
    _add_function(vectors, tensors, sidecar)
    return _write(tensors, sidecar, path, overwrite)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a saved vector (NAME, NAME.safetensors or NAME.json)."""
    tensor_path, json_path = vector_paths(path)
    if not json_path.exists():
        raise VectorFileError(
            f"{json_path} is missing: a saved steering vector needs its JSON sidecar next to "
            f"{tensor_path.name} (it records the hook point and model the vector is for)"
        )
    try:
        sidecar = json.loads(json_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise VectorFileError(f"{json_path} is not valid JSON: {e}") from e
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise VectorFileError(f"{json_path} is not a steerkit steering-vector sidecar")
    for key, kind in (("hook_point", str), ("shape", list)):
        if not isinstance(sidecar.get(key), kind) or not sidecar[key]:
            raise VectorFileError(
                f"{json_path} has no valid {key!r} (a steerkit sidecar records the hook point the "
                "vector is added at and the tensor's shape): it was edited or damaged; write the "
                "vector again (`steerkit run` rewrites a damaged vector when it resumes)"
            )
    if sidecar.get("stacked") and not sidecar.get("input_ids"):
        raise VectorFileError(f"{json_path}: a stack of per-input vectors without 'input_ids'")
    return sidecar


def _load_array(path: str | Path) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    tensor_path, json_path = vector_paths(path)
    sidecar = read_sidecar(path)
    if not tensor_path.exists():
        raise VectorFileError(f"{tensor_path} is missing (its sidecar {json_path.name} is there)")
    key = "vectors" if sidecar.get("stacked") else "vector"
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VectorFileError(
            f"{tensor_path} is not a readable safetensors file ({e}): it was cut short or "
            f"damaged; delete it and {json_path.name} and run again to write them anew"
        ) from e
    if key not in tensors:
        raise VectorFileError(
            f"{tensor_path} holds {sorted(tensors)}, but its sidecar expects {key!r}"
        )
    array = tensors[key]
    expected = tuple(sidecar.get("shape", ()))
    if tuple(array.shape) != expected:
        raise VectorFileError(
            f"{tensor_path}: shape {tuple(array.shape)} does not match its sidecar's "
            f"{expected}; the two files do not belong together"
        )
    if sidecar.get("sha256") and _digest(array) != sidecar["sha256"]:
        raise VectorFileError(
            f"{tensor_path}: its contents do not match the checksum in {json_path.name}"
        )
    function = _read_function(tensors, sidecar, tensor_path)
    if function is not None:
        sidecar["function_table"] = function  # read by _vector, never written
    return array, sidecar


def check_saved(path: str | Path) -> str | None:
    """Why the saved vector at `path` (NAME, NAME.safetensors or NAME.json) cannot be used —
    a file missing, a sidecar that is not one, a tensor torn or of another shape or checksum —
    or None when it reads back whole."""
    try:
        _load_array(path)
    except VectorFileError as e:
        return str(e)
    return None


def _vector(
    array: np.ndarray[Any, Any], item: Mapping[str, Any], sidecar: Mapping[str, Any]
) -> SteeringVector:
    return SteeringVector(
        vector=array,
        hook_point=sidecar["hook_point"],
        scale=float(item.get("scale", 1.0)),
        positions=item.get("positions", "all"),
        layer=item.get("layer"),
        provenance=dict(item.get("provenance") or {}),
        function=sidecar.get("function_table"),
    )


def load_vector(path: str | Path, *, index: int | None = None) -> SteeringVector:
    """The saved vector; for a stack, `index` picks the row of input id `index` (required)."""
    array, sidecar = _load_array(path)
    if not sidecar.get("stacked"):
        if index is not None:
            raise VectorFileError(f"{vector_paths(path)[0]} holds one vector: pass no index")
        return _vector(array, sidecar, sidecar)
    ids = list(sidecar.get("input_ids", []))
    if index is None or index not in ids:
        raise VectorFileError(
            f"{vector_paths(path)[0]} holds {len(ids)} per-input vectors: pass index= one of "
            f"the input ids {ids[:10]}{' ...' if len(ids) > 10 else ''}"
        )
    row = ids.index(index)
    return _vector(array[row], sidecar["vectors"][row], sidecar)


def load_vectors(path: str | Path) -> list[SteeringVector]:
    """Every vector of a file (one, or the whole stack in input-id order)."""
    array, sidecar = _load_array(path)
    if not sidecar.get("stacked"):
        return [_vector(array, sidecar, sidecar)]
    return [_vector(row, item, sidecar) for row, item in zip(array, sidecar["vectors"])]
