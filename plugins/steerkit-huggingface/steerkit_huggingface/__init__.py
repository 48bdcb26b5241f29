"""steerkit-huggingface: Hugging Face transformers causal LMs as steerkit activation sources,
read and steered through forward hooks on their decoder layers under TransformerLens hook names.

Importing the package is light: torch, transformers and sae_lens load on first use.
"""

from __future__ import annotations

from steerkit_huggingface.hooks import decoder_layers, parse_hook_point, residual_hook
from steerkit_huggingface.offline import offline_sae
from steerkit_huggingface.sae import PlainSAE
from steerkit_huggingface.source import HuggingFaceSource

__all__ = [
    "HuggingFaceSource",
    "PlainSAE",
    "decoder_layers",
    "offline_sae",
    "parse_hook_point",
    "residual_hook",
]
