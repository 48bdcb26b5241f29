"""Steered generation speed: steerkit's TransformerLens source against Hugging Face transformers'
own `generate`, on the same weights and prompts, in one run (issue 13, item 7).

Both sides generate greedily with a KV cache, from one left-padded batch with an attention mask:
(a) `model.generate` of the transformers model; (b) `TransformerLensSource.generate(prompts,
vector=[one SteeringVector per prompt])`, the public API the runner calls; (c) the same source
unsteered (its tokens are compared with (a)'s). The sides run `--repeats` times, interleaved, so
that the machine's load falls on both alike; printed: the median seconds of each, the ratio
(b)/(a) (target ≤ 1.3), and the load average.

    python plugins/steerkit-transformerlens/benchmarks/bench_generate.py --model tiny
    python plugins/steerkit-transformerlens/benchmarks/bench_generate.py --model offline

`offline`: Gemma-3-270M from steerkit's cache (the converted model and the SAE the preset
trains; a first `steerkit run` builds both), the source built from the preset exactly as the
runner builds it, the transformers model read from the same converted folder. `tiny`: a random
4-layer Gemma-3 of the same architecture, built in memory (no cache, runs anywhere; its timings
say little about the real model's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from steerkit import SteeringVector

#: Sentence openings of different lengths (the batch is left-padded).
PROMPTS = (
    "The movie was",
    "I walked into the restaurant and",
    "Honestly, the service at this hotel",
    "My favourite book",
    "After three hours of waiting, the doctor finally",
    "The new phone arrived today and",
    "Yesterday's concert",
    "The food tasted",
    "Our trip to the mountains last summer",
    "This product",
    "The teacher told the class that",
    "When I opened the box, I saw",
    "The weather this weekend",
    "Working from home has",
    "The customer support team",
    "I think the ending of the film",
    "The city park is",
    "After the update, my laptop",
    "The coffee here",
    "Reading the reviews, I expected",
    "The train was late again, so",
    "Her first novel",
    "The museum's new exhibition",
    "Cooking dinner for my friends",
    "The game last night",
    "The hotel room was small but",
    "Learning a new language",
    "The price of the tickets",
    "The old bridge across the river",
    "My neighbour's dog",
    "The lecture on economics",
    "Shopping at the market on Saturday",
)

HF = "(a) transformers generate"
TINY_LAYERS = ("sliding_attention", "sliding_attention", "sliding_attention", "full_attention")


def tiny_models(seed: int) -> tuple[Any, Any, Any, list[str]]:
    """(transformers model, HookedTransformer with the same weights, tokenizer, prompts): a random
    4-layer Gemma-3 (d_model 64, grouped-query attention, sliding and global layers) over the
    test tokenizer's words."""
    from steerkit_transformerlens.testing import TINY_WORDS, tiny_tokenizer
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = tiny_tokenizer()
    d_head, window = 16, 8
    hf_config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=len(TINY_LAYERS),
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=d_head,
        query_pre_attn_scalar=d_head,
        sliding_window=window,
        layer_types=list(TINY_LAYERS),
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    hf_model = Gemma3ForCausalLM(hf_config).eval()
    # TransformerLens's own Gemma-3 architecture, at the tiny model's sizes
    cfg = get_pretrained_model_config("google/gemma-3-270m", device="cpu", dtype=torch.float32)
    fields = cfg.to_dict()
    fields.pop("n_params", None)
    fields.update(
        d_model=64,
        d_head=d_head,
        n_heads=4,
        n_key_value_heads=1,
        d_mlp=128,
        n_layers=len(TINY_LAYERS),
        d_vocab=len(tokenizer),
        d_vocab_out=len(tokenizer),
        n_ctx=256,
        rotary_dim=d_head,
        attn_scale=float(d_head) ** 0.5,
        window_size=window,
        attn_types=["local" if t == "sliding_attention" else "global" for t in TINY_LAYERS],
    )
    cfg = HookedTransformerConfig.from_dict(fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tl_model = HookedTransformer(cfg, tokenizer=tokenizer)
    tl_model.load_and_process_state_dict(
        convert_gemma_weights(hf_model, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    tl_model.eval()
    rng = np.random.default_rng(seed)
    words = list(TINY_WORDS)
    prompts = [" ".join(rng.choice(words, size=int(rng.integers(2, 12)))) for _ in PROMPTS]
    return hf_model, tl_model, tokenizer, prompts


def offline_models() -> tuple[Any, Any]:
    """(transformers model, tokenizer) of the cached offline Gemma-3-270M."""
    from steerkit_transformerlens.offline import converted_folder, is_converted
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = converted_folder()
    if not is_converted(folder):
        sys.exit(f"no converted offline model in {folder}: run `steerkit run` once to build it")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    hf_model = AutoModelForCausalLM.from_pretrained(
        str(folder), local_files_only=True, dtype=torch.float32
    ).eval()
    return hf_model, tokenizer


def hf_generate(model: Any, tokenizer: Any, prompts: list[str], new: int) -> Callable[[], Any]:
    from transformers import GenerationConfig

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    config = GenerationConfig(
        max_new_tokens=new,
        do_sample=False,
        use_cache=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )

    def run() -> list[list[int]]:
        with torch.inference_mode():
            out = model.generate(**batch, generation_config=config)
        rows = out[:, batch["input_ids"].shape[1] :].tolist()
        eos = tokenizer.eos_token_id
        return [row[: row.index(eos)] if eos in row else row for row in rows]

    return run


def steering_vectors(n: int, d_model: int, hook_point: str, norm: float, seed: int) -> list[Any]:
    """n random directions of length `norm`, one per prompt."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.standard_normal(d_model)
        out.append(SteeringVector(vector=norm * v / np.linalg.norm(v), hook_point=hook_point))
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["offline", "tiny"], default="offline")
    parser.add_argument("--batch", type=int, default=32, help="prompts (one batch)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layer", type=int, default=6, help="steered layer (resid_post)")
    parser.add_argument("--norm", type=float, default=None, help="steering vector length")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not 1 <= args.batch <= len(PROMPTS):
        sys.exit(f"--batch: 1 to {len(PROMPTS)}")

    from steerkit_transformerlens import TransformerLensSource

    hook_point = f"blocks.{args.layer}.hook_resid_post"
    if args.model == "tiny":
        hf_model, tl_model, tokenizer, prompts = tiny_models(args.seed)
        hook_point = f"blocks.{min(args.layer, len(TINY_LAYERS) - 1)}.hook_resid_post"
        source = TransformerLensSource(model=tl_model, hook_point=hook_point)
        norm = 4.0 if args.norm is None else args.norm
    else:
        hf_model, tokenizer = offline_models()
        prompts = list(PROMPTS)
        source = TransformerLensSource("gemma-3-270m-offline", layer=args.layer, hook="resid_post")
        norm = 40.0 if args.norm is None else args.norm
    source.batch_size, source.cache, source.progress = args.batch, False, False
    prompts = prompts[: args.batch]
    vectors = steering_vectors(len(prompts), source.d_model, hook_point, norm, args.seed)
    new = args.new_tokens

    hf = hf_generate(hf_model, tokenizer, prompts, new)
    steered, unsteered = "(b) steerkit, steered", "(c) steerkit, unsteered"
    sides: dict[str, Callable[[], Any]] = {
        HF: hf,
        steered: lambda: source.generate(prompts, max_new_tokens=new, vector=vectors),
        unsteered: lambda: source.generate(prompts, max_new_tokens=new),
    }
    hf_tokens = hf()  # warm-up, and the reference tokens
    ours = source.generate_tokens(prompts, max_new_tokens=new)
    source.generate(prompts[:2], max_new_tokens=2, vector=vectors[:2])  # warm-up
    same = sum(a == b for a, b in zip(hf_tokens, ours))

    seconds: dict[str, list[float]] = {name: [] for name in sides}
    ratios = []
    for _ in range(args.repeats):
        for name, fn in sides.items():
            seconds[name].append(timed(fn)[0])
        ratios.append(seconds[steered][-1] / seconds[HF][-1])

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"model: {args.model}; {len(prompts)} prompts × {new} new tokens, greedy, KV cache")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.repeats} repeats")
    print(f"load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, values in seconds.items():
        spread = f"min {min(values):.3f}, max {max(values):.3f}"
        print(f"{name:28s} median {statistics.median(values):8.3f} s  ({spread})")
    median_ratio = statistics.median(ratios)
    print(f"ratio (b)/(a): median of paired ratios {median_ratio:.2f} (target ≤ 1.3)")
    print(f"unsteered steerkit tokens equal transformers' on {same} of {len(prompts)} rows")


if __name__ == "__main__":
    main()
