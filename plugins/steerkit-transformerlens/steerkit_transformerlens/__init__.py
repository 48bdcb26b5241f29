"""steerkit-transformerlens: TransformerLens models and sae-lens SAEs as steerkit activation
sources, with an offline Gemma-3-270M whose SAE steerkit trains itself.

Importing the package is light: torch, transformer_lens and sae_lens load on first use.
"""

from __future__ import annotations

from steerkit_transformerlens.presets import PRESETS, Preset, get_preset
from steerkit_transformerlens.source import TransformerLensSource

__all__ = ["PRESETS", "Preset", "TransformerLensSource", "get_preset"]
