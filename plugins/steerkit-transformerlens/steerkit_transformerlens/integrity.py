"""Checking what the plugin left in its cache: a converted model, a trained SAE.

When a folder is written, `manifest` records each file's size and SHA-256; before the folder is
read, `damage` compares the files with that record: a missing file, a size that differs (a
truncated copy), and for files up to `HASH_LIMIT` (the tokenizer, an SAE) a checksum that
differs. Larger files (the model's 1 GB of weights: hashing them would add about 1.5 s to every
load) are checked by size and by their safetensors framing instead. A folder written before
records were kept gets structural checks only: every safetensors file as long as its header
says, every JSON file parses.

The answer is a short text naming the file and what is wrong with it, or None: the caller
decides whether to rebuild or to tell the user the command that does.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["HASH_LIMIT", "damage", "file_record", "manifest", "safetensors_damage"]

#: Files up to this size are hashed at every check; larger ones are compared by size.
HASH_LIMIT = 64 * 1024 * 1024
#: JSON files up to this size are parsed by the structural check of a folder with no record.
_PARSE_LIMIT = 64 * 1024 * 1024
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """{"size": bytes, "sha256": hex digest} of one file."""
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def manifest(folder: Path, *, exclude: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """The record of every file in `folder` (not in subfolders), by name; `exclude` names
    files written afterwards (the record's own file)."""
    skip = set(exclude)
    return {
        path.name: file_record(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name not in skip
    }


def safetensors_damage(path: Path) -> str | None:
    """What is wrong with a safetensors file's framing (None: nothing): an 8-byte header
    length, a JSON header of that length, and tensor data up to the largest end offset."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{size} bytes, shorter than a safetensors header"
            (length,) = struct.unpack("<Q", head)
            if 8 + length > size:
                return f"{size} bytes, but its header alone needs {8 + length} (truncated)"
            header = json.loads(f.read(length))
    except (OSError, ValueError) as e:
        return f"unreadable safetensors header ({type(e).__name__}: {e})"
    if not isinstance(header, dict):
        return "its safetensors header is not a JSON object"
    ends = [
        int(t["data_offsets"][1])
        for name, t in header.items()
        if name != "__metadata__" and isinstance(t, dict) and "data_offsets" in t
    ]
    needed = 8 + length + max(ends, default=0)
    if size < needed:
        return f"{size} bytes, but its header describes {needed} (truncated)"
    return None


def _structure(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        return safetensors_damage(path)
    if path.suffix == ".json" and path.stat().st_size <= _PARSE_LIMIT:
        try:
            json.loads(path.read_bytes())
        except ValueError as e:
            return f"not valid JSON ({e})"
    return None


def damage(folder: Path, record: Mapping[str, Any] | None) -> str | None:
    """The first problem with `folder`'s files ("model.safetensors: 512 bytes, 1,024
    recorded"), or None. `record` is what `manifest` returned when the folder was written (None
    for a folder written before records were kept: structural checks only)."""
    if record is None:
        for path in sorted(folder.iterdir()):
            problem = _structure(path) if path.is_file() else None
            if problem is not None:
                return f"{path.name}: {problem}"
        return None
    for name, expected in sorted(record.items()):
        path = folder / name
        if not path.is_file():
            return f"{name}: missing"
        size = path.stat().st_size
        if size != expected.get("size"):
            return f"{name}: {size:,} bytes where {expected.get('size'):,} were written"
        if size <= HASH_LIMIT:
            if _sha256(path) != expected.get("sha256"):
                return f"{name}: its contents changed since it was written (SHA-256 differs)"
        elif (problem := _structure(path)) is not None:  # too large to hash at every load
            return f"{name}: {problem}"
    return None
