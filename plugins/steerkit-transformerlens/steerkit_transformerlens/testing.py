"""Tiny, offline stand-ins for tests: a word-level tokenizer, a 2-layer HookedTransformer and a
random sae-lens SAE, all built in memory in well under a second (no hub, no files)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sae_lens import StandardSAE
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedTokenizerFast

__all__ = ["TINY_WORDS", "tiny_model", "tiny_sae", "tiny_tokenizer"]

#: The tiny tokenizer's words; anything else is <unk>.
TINY_WORDS: tuple[str, ...] = (
    *("the", "a", "cat", "dog", "bird", "sat", "ran", "flew", "on", "under", "mat", "tree"),
    *("fast", "slow", "big", "small", "red", "blue", "is", "was", "and", "happy", "sad"),
    *("good", "bad", "very", "not"),
)


def tiny_tokenizer(*, shared_special: bool = False) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over `TINY_WORDS` that prepends BOS.

    shared_special: one token serves as BOS, EOS and pad (as in GPT-2); otherwise <pad> = 0,
    <bos> = 1, <eos> = 2 are distinct.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if shared_special:
        specials = ["<|endoftext|>", "<unk>"]
        bos = eos = pad = "<|endoftext|>"
    else:
        specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
        pad, bos, eos = "<pad>", "<bos>", "<eos>"
    vocab = {token: i for i, token in enumerate([*specials, *TINY_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token="<unk>",
        add_bos_token=True,
        name_or_path="steerkit-tiny",
    )


def tiny_model(
    *,
    seed: int = 0,
    positional: Literal["standard", "rotary"] = "standard",
    shared_special: bool = False,
    n_layers: int = 2,
    d_model: int = 16,
    device: str = "cpu",
    gated_mlp: bool = False,
    n_key_value_heads: int | None = None,
) -> HookedTransformer:
    """A randomly initialised HookedTransformer (d_model 16, 4 heads, d_mlp 32, n_ctx 32) with
    `tiny_tokenizer`. "rotary" uses rotary embeddings and RMSNorm, like Gemma; `gated_mlp` and
    `n_key_value_heads` (grouped-query attention) add Gemma's other parts."""
    import warnings

    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tokenizer = tiny_tokenizer(shared_special=shared_special)
    extra: dict[str, Any] = {}
    if positional == "rotary":
        extra = {"positional_embedding_type": "rotary", "normalization_type": "RMS"}
    if gated_mlp:
        extra["gated_mlp"] = True
    if n_key_value_heads is not None:
        extra["n_key_value_heads"] = n_key_value_heads
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        d_head=4,
        n_heads=d_model // 4,
        d_mlp=2 * d_model,
        d_vocab=len(tokenizer),
        n_ctx=32,
        act_fn="gelu",
        seed=seed,
        device=device,
        **extra,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "use TransformerBridge" (TL 3.x)
        model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    return model


def tiny_sae(
    *,
    d_in: int = 16,
    d_sae: int = 64,
    hook_name: str | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> StandardSAE:
    """A StandardSAE with random encoder, decoder and biases (so that every term of
    relu((x − b_dec) W_enc + b_enc) and f W_dec + b_dec matters in a test)."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    metadata = SAEMetadata(hook_name=hook_name) if hook_name is not None else SAEMetadata()
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, device=device, metadata=metadata))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            param.copy_(0.3 * torch.randn(param.shape, generator=generator).to(param.device))
    sae.eval()
    return sae
