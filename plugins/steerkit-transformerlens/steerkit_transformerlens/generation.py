"""Token batching and a generation loop that knows which positions are prompt and which are new.

TransformerLens's own `generate` cannot tell a hook which positions it is running, so steering
"generated tokens only" needs a loop of our own. It follows `HookedTransformer.generate`'s
semantics (left padding, an explicit attention mask, greedy argmax, EOS padding of finished rows)
and a test checks that it produces the same tokens when nothing is steered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs

from steerkit.errors import ValidationError

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

    from steerkit_transformerlens.steering import PositionWindow

__all__ = ["Batch", "SamplingOptions", "final_positions", "generate_tokens", "pad_batch"]

#: The last hook before the unembedding: the final norm's output, one vector per position.
_FINAL_HOOK = "ln_final.hook_normalized"

PaddingSide = Literal["left", "right"]


@attrs.frozen(eq=False)
class Batch:
    """tokens, mask: (b, T) padded ids and 1 for real tokens; last: (b,) index of each row's
    last real token."""

    tokens: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor


def pad_batch(
    rows: Sequence[Sequence[int]], *, pad_id: int, side: PaddingSide, device: str | torch.device
) -> Batch:
    """Pad token-id rows to a common length on `side`; the mask marks real tokens exactly (a pad
    id that also occurs in the text, e.g. GPT-2's shared BOS/EOS/pad, is never confused)."""
    import torch

    if side not in ("left", "right"):
        raise ValidationError("pad_batch", "side", "'left' or 'right'", repr(side))
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    last = torch.empty(len(rows), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row)
        start = width - n if side == "left" else 0
        tokens[i, start : start + n] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, start : start + n] = 1
        last[i] = start + n - 1
    return Batch(tokens.to(device), mask.to(device), last.to(device))


@contextmanager
def final_positions(model: HookedTransformer, positions: torch.Tensor | None) -> Iterator[bool]:
    """Inside the block, the model unembeds the chosen positions only: `positions[b]` of row b
    ((batch,): logits (batch, 1, d_vocab)), the k positions `positions[b, :]` of row b
    ((batch, k): logits (batch, k, d_vocab), in that order), or the last position of every row
    when None (logits (batch, 1, d_vocab)).

    The final norm acts on each position alone, so selecting its output changes no value; it
    saves the unembedding of every other position (for a 262,144-token vocabulary, most of a
    forward pass). Yields False, and changes nothing, for a model without a final norm hook."""
    if _FINAL_HOOK not in model.hook_dict:
        yield False
        return

    def pick(normalized: torch.Tensor, hook: Any) -> torch.Tensor:
        import torch

        if positions is None:
            return normalized[:, -1:, :]
        rows = torch.arange(normalized.shape[0], device=normalized.device)
        at = positions.to(normalized.device)
        if at.ndim == 2:
            return normalized[rows[:, None], at]
        return normalized[rows, at][:, None, :]

    with model.hooks(fwd_hooks=[(_FINAL_HOOK, pick)]):
        yield True


@attrs.frozen
class SamplingOptions:
    """Greedy unless `do_sample`; sampling draws from softmax(logits / temperature) restricted to
    the `top_k` most likely tokens, with a torch.Generator seeded by `seed`."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValidationError(
                "SamplingOptions", "temperature", "a positive number", repr(self.temperature)
            )
        if self.top_k is not None and self.top_k < 1:
            raise ValidationError("SamplingOptions", "top_k", "None or ≥ 1", repr(self.top_k))


def _next_tokens(
    logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None
) -> torch.Tensor:
    import torch

    if not options.do_sample:
        return logits.argmax(-1)
    scaled = logits.float() / options.temperature
    if options.top_k is not None and options.top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, options.top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def generate_tokens(
    model: HookedTransformer,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    window: PositionWindow,
    options: SamplingOptions = SamplingOptions(),
    stop_at_eos: bool = True,
    use_kv_cache: bool = True,
) -> list[list[int]]:
    """The new token ids of each prompt (token-id rows, BOS included), generated as one
    left-padded batch. `window` is updated before every forward pass, so that a steering hook
    installed on `model` knows which positions hold prompt and which hold generated tokens.
    A row stops at its first EOS (the EOS is not returned) when `stop_at_eos`."""
    import torch

    if max_new_tokens < 0:
        raise ValidationError("generate", "max_new_tokens", "≥ 0", repr(max_new_tokens))
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValidationError("generate", "model", "a HookedTransformer with a tokenizer", "none")
    device = model.cfg.device or "cpu"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos_id = tokenizer.eos_token_id
    if stop_at_eos and eos_id is None:
        raise ValidationError("generate", "stop_at_eos", "a tokenizer with an EOS token", "none")
    batch = pad_batch(prompts, pad_id=pad_id, side="left", device=device)
    n, prompt_length = batch.tokens.shape
    if prompt_length + max_new_tokens > model.cfg.n_ctx:
        raise ValidationError(
            "generate",
            "max_new_tokens",
            f"at most {model.cfg.n_ctx - prompt_length} (the model's context is {model.cfg.n_ctx} "
            f"tokens and the longest prompt has {prompt_length})",
            str(max_new_tokens),
        )
    generator = None
    if options.do_sample:
        generator = torch.Generator().manual_seed(options.seed)

    cache = None
    if use_kv_cache:
        cache = _new_kv_cache(model, n)
    tokens, mask = batch.tokens, batch.mask
    finished = torch.zeros(n, dtype=torch.bool, device=tokens.device)
    new: list[torch.Tensor] = []
    window.prompt_length = prompt_length
    try:
        with torch.inference_mode(), final_positions(model, None):
            for step in range(max_new_tokens):
                if cache is not None and step > 0:
                    window.offset = prompt_length + step - 1
                    # the cache holds the earlier mask; this step adds one real position
                    logits = model(tokens[:, -1:], attention_mask=mask[:, -1:], past_kv_cache=cache)
                else:
                    window.offset = 0
                    logits = model(tokens, attention_mask=mask, past_kv_cache=cache)
                chosen = _next_tokens(logits[:, -1, :], options, generator)
                if stop_at_eos:
                    chosen = torch.where(finished, torch.full_like(chosen, eos_id), chosen)
                    finished |= chosen == eos_id
                new.append(chosen)
                tokens = torch.cat([tokens, chosen[:, None]], dim=1)
                mask = torch.cat([mask, torch.ones_like(chosen)[:, None]], dim=1)
                if stop_at_eos and bool(finished.all()):
                    break
    finally:
        window.prompt_length, window.offset = None, 0
    if not new:
        return [[] for _ in range(n)]
    generated = torch.stack(new, dim=1).tolist()
    if stop_at_eos:
        generated = [row[: row.index(eos_id)] if eos_id in row else row for row in generated]
    return generated


def _new_kv_cache(model: HookedTransformer, batch_size: int) -> object:
    try:
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
    except ImportError:  # transformer-lens < 3
        from transformer_lens.past_key_value_caching import (  # type: ignore[no-redef]
            HookedTransformerKeyValueCache as TransformerLensKeyValueCache,
        )
    return TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, batch_size)
