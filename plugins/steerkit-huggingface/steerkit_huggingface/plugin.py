"""Entry point: registers the `huggingface` activation source (nothing heavy is imported)."""

from __future__ import annotations

from steerkit import Register, hookimpl
from steerkit_huggingface.source import HuggingFaceSource


@hookimpl
def register_activation_sources(register: Register) -> None:
    register(HuggingFaceSource)
