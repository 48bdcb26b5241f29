"""The runner on the Hugging Face source (a tiny random Llama, the tiny SAE): every unit runs, and
a saved vector, exported for lm-eval (.pt), steers the plain transformers model through a
hand-written hook exactly as the source's own steered pass does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner.export import export_vector
from steerkit_runner.results import ResultsTable
from steerkit_runner.runner import run

import steerkit

from .conftest import HOOK

pytestmark = pytest.mark.needs_torch


def _tiny_llama() -> tuple[Any, Any]:
    import torch
    from steerkit_transformerlens.testing import tiny_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def test_the_runner_runs_on_the_huggingface_source_and_its_vectors_export(
    toy_host: steerkit.PluginHost, write_config: Callable[..., Path]
) -> None:
    import torch
    from steerkit_huggingface import HuggingFaceSource
    from steerkit_transformerlens.testing import tiny_sae

    model, tokenizer = _tiny_llama()
    source = HuggingFaceSource(
        model=model,
        tokenizer=tokenizer,
        hook_point=HOOK,  # blocks.1.hook_resid_pre: the input of layer 1 = output of layer 0
        sae=tiny_sae(d_in=16, d_sae=64, seed=1),
        cache=False,
        progress=False,
    )
    result = run(write_config(), source=source, report=False, progress=False)
    assert result.failed_units == ()
    rows = ResultsTable(result.run_dir / "results.jsonl").rows
    assert {r["method"] for r in rows} == {"toy_direction", "toy_shared", "qp"}
    assert {r["status"] for r in rows if r["method"] == "qp"} <= {"optimal"}

    saved = sorted((result.run_dir / "vectors").glob("qp*.safetensors"))
    saved = [p for p in saved if not p.stem.endswith("_inputs")]
    assert saved, "the qp unit saved no vector"
    out = export_vector(saved[-1], "lm-eval-pt", result.run_dir / "qp.pt")
    entry = torch.load(out, weights_only=True)["layers.0"]
    texts = ["the cat sat on the mat", "a dog ran"]

    def hook(module: Any, args: Any, output: Any) -> Any:  # lm-eval's "add"
        return output + entry["steering_coefficient"] * entry["steering_vector"]

    handle = model.model.layers[0].register_forward_hook(hook)
    try:
        with torch.inference_mode():
            expected = [
                model(torch.tensor([tokenizer(t)["input_ids"]])).logits[0, -1] for t in texts
            ]
    finally:
        handle.remove()
    from steerkit_runner.vectors import load_vector

    got = source.logits(texts, load_vector(saved[-1]))
    np.testing.assert_allclose(got, np.stack([e.numpy() for e in expected]), atol=1e-4)
