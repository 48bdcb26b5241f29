"""The on-disk cache of extracted activations: one safetensors file per (model, hook, texts).

The key hashes the model's identity (its name, shape and a fingerprint of its weights, so two
different models that share a name never share a cache entry), the hook point, the dtype and the
texts themselves. SAE features are not cached: they are recomputed from the hidden states, which
is cheap, so one entry serves every SAE at that hook.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from steerkit_transformerlens.paths import cache_root

if TYPE_CHECKING:
    import torch

__all__ = ["ActivationDiskCache", "module_fingerprint", "texts_digest"]

logger = logging.getLogger(__name__)

#: Bumped when the way activations are extracted changes, so that old entries are not reused.
FORMAT_VERSION = 1

_SAMPLES_PER_TENSOR = 4096


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 over the texts, length-prefixed so that ("ab", "c") ≠ ("a", "bc")."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def module_fingerprint(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """A cheap fingerprint of a module's weights: names, shapes, dtypes and an evenly strided
    sample of each tensor's values (a few thousand per tensor, whatever its size)."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in named_tensors:
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
            sample = flat[::step].to(device="cpu", dtype=torch.float64).numpy()
            digest.update(sample.tobytes())
    return digest.hexdigest()


class ActivationDiskCache:
    """Hidden states (n, d_model) float32 under `cache_root("activations")`, keyed by a dict."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else cache_root("activations")

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        payload = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def load(self, key: str, *, n: int) -> np.ndarray[Any, Any] | None:
        """The cached hidden states, or None when absent or unreadable (then they are rebuilt)."""
        path = self.path(key)
        if not path.exists():
            return None
        from safetensors.numpy import load_file

        try:
            hidden = load_file(str(path))["hidden"]
        except Exception as e:  # a truncated or foreign file: rebuild rather than fail
            logger.warning("ignoring unreadable activation cache %s: %s", path, e)
            return None
        if hidden.ndim != 2 or hidden.shape[0] != n:
            logger.warning("ignoring activation cache %s: shape %s", path, hidden.shape)
            return None
        logger.debug("activation cache hit: %s", path)
        return hidden

    def save(self, key: str, hidden: np.ndarray[Any, Any], meta: Mapping[str, Any]) -> Path:
        """Write atomically (a temporary file renamed into place)."""
        from safetensors.numpy import save_file

        path = self.path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        metadata = {k: str(v) for k, v in meta.items()}
        save_file({"hidden": np.ascontiguousarray(hidden, dtype=np.float32)}, str(tmp), metadata)
        os.replace(tmp, path)
        logger.debug("activation cache written: %s", path)
        return path
