"""The SAE a Hugging Face source reads features with: a sae-lens SAE, a sae-lens folder, or plain
matrices in one safetensors file.

A plain file holds `W_dec` (d_sae, d_model) and, to encode as well, `W_enc` (d_model, d_sae),
`b_enc` (d_sae,), `b_dec` (d_model,) and optionally `threshold` (d_sae,) for a JumpReLU:
features = relu((x − b_dec) W_enc + b_enc), zeroed where the pre-activation is ≤ threshold.
Without `W_enc` the decoder alone serves (`decoder()`), and `encode` says what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steerkit.checks import FloatArray, readonly
from steerkit.errors import SteerkitError, ValidationError

__all__ = ["PlainSAE", "load_sae"]

_OWNER = "HuggingFaceSource"


class PlainSAE:
    """Decoder (and optionally encoder) matrices as numpy float32 arrays."""

    def __init__(self, tensors: dict[str, np.ndarray[Any, Any]], origin: str) -> None:
        if "W_dec" not in tensors or np.ndim(tensors["W_dec"]) != 2:
            raise ValidationError(
                _OWNER,
                "sae",
                "a safetensors file with a 2-D 'W_dec' (d_sae, d_model)",
                f"{origin} with keys {sorted(tensors)}",
            )
        self.origin = origin
        self.W_dec = np.asarray(tensors["W_dec"], dtype=np.float32)
        self.d_sae, self.d_in = (int(s) for s in self.W_dec.shape)
        self.W_enc = tensors.get("W_enc")
        self.b_enc = tensors.get("b_enc")
        self.b_dec = tensors.get("b_dec")
        self.threshold = tensors.get("threshold")
        if self.W_enc is not None and tuple(np.shape(self.W_enc)) != (self.d_in, self.d_sae):
            raise ValidationError(
                _OWNER,
                "sae",
                f"W_enc of shape ({self.d_in}, {self.d_sae})",
                f"{np.shape(self.W_enc)} in {origin}",
            )

    def encode(self, hidden: np.ndarray[Any, Any]) -> FloatArray:
        if self.W_enc is None:
            raise SteerkitError(
                f"{self.origin} holds a decoder only: add W_enc (d_model, d_sae), b_enc and "
                "b_dec to encode activations into features"
            )
        x = np.asarray(hidden, dtype=np.float64)
        if self.b_dec is not None:
            x = x - np.asarray(self.b_dec, dtype=np.float64)
        pre = x @ np.asarray(self.W_enc, dtype=np.float64)
        if self.b_enc is not None:
            pre = pre + np.asarray(self.b_enc, dtype=np.float64)
        out = np.maximum(pre, 0.0)
        if self.threshold is not None:
            out = np.where(pre > np.asarray(self.threshold, dtype=np.float64), out, 0.0)
        return readonly(out.astype(np.float32))


def load_sae(sae: Any) -> Any:
    """A sae_lens SAE or a PlainSAE from what the caller gave: one of those objects, a sae-lens
    folder (`SAE.load_from_disk`) or a plain `.safetensors` file."""
    if sae is None or isinstance(sae, PlainSAE):
        return sae
    if isinstance(sae, (str, Path)):
        path = Path(sae).expanduser()
        if path.is_dir():
            from sae_lens import SAE

            return SAE.load_from_disk(str(path))
        if path.is_file() and path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return PlainSAE(dict(load_file(str(path))), str(path))
        raise ValidationError(
            _OWNER, "sae", "a sae-lens folder or a .safetensors file with W_dec", str(path)
        )
    from sae_lens import SAE

    if not isinstance(sae, SAE):
        raise ValidationError(_OWNER, "sae", "a sae_lens.SAE, a path, or None", type(sae).__name__)
    return sae
