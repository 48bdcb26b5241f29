"""The on-disk cache of extracted activations: one safetensors file per (model, hook, texts).

The key hashes the model's identity (its name, shape and a fingerprint of its weights, so two
different models that share a name never share a cache entry), the hook point, the dtype and the
texts themselves. SAE features are not cached: they are recomputed from the hidden states, which
is cheap, so one entry serves every SAE at that hook.

Activations are checked before they are written (finite, the model's width) and each file
records its shape and the SHA-256 of its values; an entry that is unreadable, not written by
this cache, of another shape, not finite or whose values changed is reported (a warning naming
the file), deleted and rebuilt.
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

from steerkit.checks import check_finite
from steerkit.errors import SteerkitError, ValidationError
from steerkit_transformerlens.paths import cache_root

if TYPE_CHECKING:
    import torch

__all__ = ["ActivationDiskCache", "module_fingerprint", "texts_digest"]

logger = logging.getLogger(__name__)

#: Bumped when the way activations are extracted or stored changes, so that old entries are not
#: reused (2: entries record their shape and checksum).
FORMAT_VERSION = 2

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


def _digest(hidden: np.ndarray[Any, Any]) -> str:
    return hashlib.sha256(np.ascontiguousarray(hidden, dtype=np.float32).tobytes()).hexdigest()


class ActivationDiskCache:
    """Hidden states (n, d_model) float32 under `cache_root("activations")`, keyed by a dict."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._widths: dict[str, int] = {}  # key → d_model, when its parts say

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else cache_root("activations")

    def key(self, parts: Mapping[str, Any]) -> str:
        """The entry's name for `parts`; remembers the width (`d_model`) the parts give, which
        `load` and `save` then check."""
        payload = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
        key = hashlib.sha256(payload.encode()).hexdigest()[:40]
        if isinstance(parts.get("d_model"), int):
            self._widths[key] = int(parts["d_model"])
        return key

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def load(self, key: str, *, n: int) -> np.ndarray[Any, Any] | None:
        """The cached hidden states, or None when absent or damaged (a damaged entry is
        reported, deleted and then rebuilt by the caller)."""
        path = self.path(key)
        if not path.exists():
            return None
        hidden, problem = self._read(path, n=n, width=self._widths.get(key))
        if problem is not None:
            logger.warning(
                "activation cache entry %s is damaged (%s); it is deleted and rebuilt",
                path,
                problem,
            )
            path.unlink(missing_ok=True)
            return None
        logger.debug("activation cache hit: %s", path)
        return hidden

    @staticmethod
    def _read(
        path: Path, *, n: int, width: int | None
    ) -> tuple[np.ndarray[Any, Any] | None, str | None]:
        """(hidden, None), or (None, what is wrong with the file)."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                metadata = f.metadata() or {}
                if "hidden" not in f.keys():  # noqa: SIM118 (safe_open has no __contains__)
                    return None, "no `hidden` tensor"
                hidden = f.get_tensor("hidden")
        except Exception as e:  # a truncated or foreign file
            return None, f"unreadable: {type(e).__name__}: {e}"
        if "sha256" not in metadata or "shape" not in metadata:
            return None, "no shape and checksum recorded: not written by this cache"
        shape = "x".join(str(s) for s in hidden.shape)
        if hidden.dtype != np.float32 or shape != metadata["shape"]:
            return None, f"{hidden.dtype} {shape} where float32 {metadata['shape']} was written"
        if hidden.ndim != 2 or hidden.shape[0] != n:
            return None, f"shape {hidden.shape} for {n} texts"
        if width is not None and hidden.shape[1] != width:
            return None, f"width {hidden.shape[1]} where the model's d_model is {width}"
        if not np.isfinite(hidden).all():
            return None, f"{int((~np.isfinite(hidden)).sum())} NaN or infinite values"
        if _digest(hidden) != metadata["sha256"]:
            return None, "its values changed since they were written (SHA-256 differs)"
        return hidden, None

    def save(self, key: str, hidden: np.ndarray[Any, Any], meta: Mapping[str, Any]) -> Path:
        """Check the activations (2-d, the model's width, finite), then write them atomically
        (a temporary file, flushed to disk, renamed into place) with their shape and checksum.
        Raises, writing nothing, when the check fails."""
        from safetensors.numpy import save_file

        path = self.path(key)
        hidden = np.ascontiguousarray(hidden, dtype=np.float32)
        width = self._widths.get(key)
        where = meta.get("hook_point", "the hook point")
        if hidden.ndim != 2 or (width is not None and hidden.shape[1] != width):
            expected = f"(n, {width})" if width is not None else "(n, d_model)"
            raise SteerkitError(
                f"activations at {where} have shape {hidden.shape}, expected {expected}; "
                f"they are not written to the activation cache ({path})"
            )
        try:
            check_finite("activations", "hidden", hidden)
        except ValidationError as e:
            raise SteerkitError(
                f"the model's activations at {where} are not finite ({e.received}); they are "
                f"not written to the activation cache ({path}). A float16 or bfloat16 model can "
                "overflow: load it in float32"
            ) from e
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        metadata = {k: str(v) for k, v in meta.items()}
        metadata["shape"] = "x".join(str(s) for s in hidden.shape)
        metadata["sha256"] = _digest(hidden)
        try:
            save_file({"hidden": hidden}, str(tmp), metadata)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        logger.debug("activation cache written: %s", path)
        return path
