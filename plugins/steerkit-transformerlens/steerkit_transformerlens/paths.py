"""Where the plugin caches what it builds: converted models, trained SAEs, activations."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

#: Overrides the cache folder (tests point it at a temporary folder).
CACHE_ENV = "STEERKIT_CACHE_DIR"


def cache_root(*parts: str) -> Path:
    """The steerkit cache folder (``$STEERKIT_CACHE_DIR`` or the user's cache folder), created on
    demand, joined with `parts`."""
    base = os.environ.get(CACHE_ENV)
    if base:
        root = Path(base).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("steerkit", appauthor=False))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
