"""What an SAE feature means, read off the model: logit-lens tokens, output score, top contexts.

Three readings of feature i (decoder row d_i, the SAE's W_dec[i]) for the feature cards of the
report and `steerkit features`:

- `logit_lens`: the tokens d_i promotes directly. d_i goes through the final norm as a one-token
  residual and then W_U: lens(d_i) = (ln_final(d_i) − b_ln) W_U, i.e. the norm's centring (for a
  LayerNorm) and gain, with its bias b_ln and the unembedding bias b_U left out (both are the
  same for every feature). The norm's division by the scale changes no ranking.
- `output_scores`: the output score of Arad, Mueller & Belinkov (2025), "SAEs are good for
  steering — if you select the right features" (EMNLP 2025): how much amplifying the feature
  makes the model actually predict its own top logit-lens tokens. Our implementation of their
  definition: on a neutral prompt (default "From my experience,"), add amplification × a_max ×
  d_i to the hook's activation at the prompt's last token, where a_max is the largest SAE
  feature activation at that token (their "amplify the feature by 10 × the top activation"),
  and read the next-token distribution p there. With T_i the top-k (k = 20) logit-lens tokens,
  score_i = max_{t ∈ T_i} p(t) × (1 − min_{t ∈ T_i} rank(t) / |V|), ranks 0-based (0 = the most
  likely token). In [0, 1]; near 1 only when a top lens token becomes the likely next token.
- `top_contexts`: per-token SAE activations over texts (every real token but BOS), the largest
  of each feature with a window of context; a feature never active there is flagged dead.

`feature_cards` puts the three together as JSON-ready dicts (the source's `feature_cards`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from steerkit.checks import FloatArray
from steerkit.errors import SteerkitError, ValidationError

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from steerkit_transformerlens.source import TransformerLensSource

__all__ = [
    "NEUTRAL_PROMPT",
    "feature_cards",
    "logit_lens",
    "output_scores",
    "top_contexts",
    "top_k",
]

#: The neutral prompt of Arad et al. (2025) for the output score.
NEUTRAL_PROMPT = "From my experience,"
_OWNER = "features"


def _directions(model: HookedTransformer, rows: Any) -> Any:
    import torch

    array = np.asarray(rows, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != int(model.cfg.d_model):
        raise ValidationError(
            _OWNER,
            "decoder_rows",
            f"an (n, {model.cfg.d_model}) array of decoder rows",
            f"shape {array.shape}",
        )
    return torch.tensor(array, device=model.cfg.device or "cpu", dtype=model.cfg.dtype)


def lens_logits(model: HookedTransformer, decoder_rows: Any) -> FloatArray:
    """(n, d_vocab) float32: each decoder row through the final norm (without its bias) and W_U
    (without b_U), as the module docstring defines the logit lens."""
    import torch

    d = _directions(model, decoder_rows)
    with torch.inference_mode():
        normed = model.ln_final(d[:, None, :])[:, 0]
        bias = getattr(model.ln_final, "b", None)
        if bias is not None:
            normed = normed - bias
        logits = normed @ model.W_U
    return logits.float().cpu().numpy()


def logit_lens(
    model: HookedTransformer, decoder_rows: Any, *, k: int = 20
) -> tuple[np.ndarray[Any, Any], FloatArray]:
    """The top-k logit-lens tokens of each decoder row: (ids (n, k) int64, logits (n, k)),
    highest first (ties: the lower id)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(_OWNER, "k", "a positive integer", repr(k))
    logits = lens_logits(model, decoder_rows)
    k = min(k, logits.shape[1])
    ids = top_k(logits, k)
    return ids, np.take_along_axis(logits, ids, axis=1)


def top_k(values: Any, k: int) -> np.ndarray[Any, Any]:
    """(n, k) int64: the ids of each row's k largest values, largest first, ties by the lower id
    — `np.argsort(-values, kind="stable")[:, :k]` without sorting whole rows (a 262,144-token
    vocabulary): a partial selection finds each row's k-th value, and only the ids at or above
    it are sorted."""
    import torch

    array = np.asarray(values)
    if np.isnan(array).any():  # NaN sorts last in argsort, first in topk: keep argsort's order
        return np.argsort(-array, axis=1, kind="stable")[:, :k]
    kth = torch.topk(torch.from_numpy(np.ascontiguousarray(array)), k, dim=1).values[:, -1]
    out = np.empty((array.shape[0], k), dtype=np.int64)
    for i, (row, bound) in enumerate(zip(array, kth.numpy())):
        candidates = np.flatnonzero(row >= bound)
        out[i] = candidates[np.lexsort((candidates, -row[candidates]))][:k]
    return out


def amplification_scale(source: TransformerLensSource, prompt: str, amplification: float) -> float:
    """amplification × the largest SAE feature activation at the prompt's last token."""
    features = source.encode(source.hidden_states([prompt]))
    top = float(np.max(features))
    if not top > 0.0:
        raise SteerkitError(
            f"no SAE feature is active at the last token of {prompt!r}: the output score "
            "amplifies by the top activation there; choose another prompt or pass scale="
        )
    return amplification * top


def output_scores(
    source: TransformerLensSource,
    feature_ids: Sequence[int],
    *,
    k: int = 20,
    prompt: str = NEUTRAL_PROMPT,
    amplification: float = 10.0,
    scale: float | None = None,
    batch_size: int = 32,
) -> FloatArray:
    """The output score (Arad et al. 2025; see the module docstring) of each feature, (n,)
    float64 in [0, 1]. `scale` replaces amplification × a_max as the multiple of d_i added."""
    import torch

    from steerkit_transformerlens.generation import final_positions

    model = source.model
    ids = _feature_ids(feature_ids, source.d_sae)
    decoder = source.decoder()
    lens_ids, _ = logit_lens(model, decoder[ids], k=k)
    step = amplification_scale(source, prompt, amplification) if scale is None else float(scale)
    tokens = model.to_tokens(prompt, truncate=False)
    out = np.empty(len(ids), dtype=np.float64)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        added = _directions(model, step * decoder[chunk])

        def amplify(activation: Any, hook: Any, added: Any = added) -> Any:
            activation[:, -1] += added.to(activation.dtype)
            return activation

        with (
            torch.inference_mode(),
            model.hooks(fwd_hooks=[(source.hook_point, amplify)]),
            final_positions(model, None),  # unembed the last position only
        ):
            logits = model(tokens.expand(len(chunk), -1))[:, -1]
        probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        for j, row in enumerate(probs):
            wanted = lens_ids[start + j]
            # rank of token t = how many tokens are strictly more likely
            ranks = (row[None, :] > row[wanted][:, None]).sum(axis=1)
            out[start + j] = row[wanted].max() * (1.0 - ranks.min() / row.shape[0])
    return out


def _feature_ids(feature_ids: Sequence[int], d_sae: int) -> list[int]:
    ids = []
    for i, f in enumerate(feature_ids):
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < d_sae:
            raise ValidationError(
                _OWNER, f"feature_ids[{i}]", f"a feature id in [0, {d_sae})", repr(f)
            )
        ids.append(int(f))
    return ids


def top_contexts(
    source: TransformerLensSource,
    feature_ids: Sequence[int],
    texts: Sequence[str],
    *,
    n: int = 5,
    window: int = 8,
) -> tuple[list[list[dict[str, Any]]], FloatArray]:
    """Per feature of `feature_ids`, its n largest activations over every real token of `texts`
    (BOS excluded), largest first, each {"text", "position", "left", "token", "right",
    "activation"} with `window` tokens of context on the left (and 2 on the right); and the
    (d_sae,) largest activation of every feature over those tokens (0: dead on these texts)."""
    import torch

    from steerkit_transformerlens.generation import pad_batch

    ids = _feature_ids(feature_ids, source.d_sae)
    model, sae = source.model, source._require_sae()
    rows = source._token_rows(texts, "texts")
    bos = getattr(model.tokenizer, "bos_token_id", None)
    best = np.zeros(source.d_sae, dtype=np.float32)
    found: list[list[tuple[float, int, int]]] = [[] for _ in ids]
    layer = source.layer
    stop = None if layer is None or layer + 1 >= model.cfg.n_layers else layer + 1
    captured: list[Any] = []
    for idx in source._batches(rows, "contexts"):
        batch = pad_batch(
            [rows[i] for i in idx],
            pad_id=source._pad_id,
            side="right",
            device=model.cfg.device or "cpu",
        )
        with (
            torch.inference_mode(),
            model.hooks(fwd_hooks=[(source.hook_point, lambda a, hook: captured.append(a))]),
        ):
            model(batch.tokens, attention_mask=batch.mask, stop_at_layer=stop)
        hidden = captured.pop()
        with torch.inference_mode():
            acts = sae.encode(hidden.to(device=sae.device, dtype=sae.dtype)).float().cpu()
        mask = batch.mask.cpu().bool().clone()
        if bos is not None:
            mask[:, 0] &= batch.tokens[:, 0].cpu() != bos
        acts = acts * mask[:, :, None]
        best = np.maximum(best, acts.amax(dim=(0, 1)).numpy())
        chosen = acts[:, :, ids].numpy()  # (b, T, n_ids)
        for j in range(len(ids)):
            b, t = np.nonzero(chosen[:, :, j] > 0)
            found[j].extend((float(chosen[bb, tt, j]), idx[bb], int(tt)) for bb, tt in zip(b, t))
            found[j] = sorted(found[j], key=lambda x: (-x[0], x[1], x[2]))[:n]
    tokenizer = model.tokenizer

    def piece(row: Sequence[int]) -> str:
        return tokenizer.decode(list(row)) if row else ""

    contexts = [
        [
            {
                "text": i,
                "position": t,
                "left": piece(rows[i][max(1 if rows[i][0] == bos else 0, t - window) : t]),
                "token": piece(rows[i][t : t + 1]),
                "right": piece(rows[i][t + 1 : t + 3]),
                "activation": value,
            }
            for value, i, t in found[j]
        ]
        for j in range(len(ids))
    ]
    return contexts, best


def feature_cards(
    source: TransformerLensSource,
    feature_ids: Sequence[int],
    texts: Sequence[str],
    *,
    n_tokens: int = 10,
    n_contexts: int = 5,
    window: int = 8,
    k: int = 20,
    prompt: str = NEUTRAL_PROMPT,
    amplification: float = 10.0,
) -> dict[str, Any]:
    """{"cards": one dict per feature id, "d_sae", "n_texts", "n_dead", "method": how each
    field was computed}. A card: {"feature", "lens_tokens" [[token, logit], ...] (n_tokens of
    the top k), "output_score", "max_activation", "dead", "contexts"}."""
    ids = _feature_ids(feature_ids, source.d_sae)
    model = source.model
    tokenizer = model.tokenizer
    lens_ids, lens_values = logit_lens(model, source.decoder()[ids], k=max(k, n_tokens))
    scores = output_scores(source, ids, k=k, prompt=prompt, amplification=amplification)
    contexts, best = top_contexts(source, ids, texts, n=n_contexts, window=window)
    cards = [
        {
            "feature": f,
            "lens_tokens": [
                [tokenizer.decode([int(t)]), float(v)]
                for t, v in zip(lens_ids[j, :n_tokens], lens_values[j, :n_tokens])
            ],
            "output_score": float(scores[j]),
            "max_activation": float(best[f]),
            "dead": bool(best[f] <= 0.0),
            "contexts": contexts[j],
        }
        for j, f in enumerate(ids)
    ]
    return {
        "cards": cards,
        "d_sae": int(source.d_sae),
        "n_texts": len(texts),
        "n_dead": int(np.sum(best <= 0.0)),
        "method": {
            "logit_lens": "decoder row through ln_final (no bias) and W_U (no b_U)",
            "output_score": (
                f"Arad et al. 2025: prompt {prompt!r}, last token += {amplification:g} × top "
                f"SAE activation × decoder row; max p × (1 − best rank / |V|) over the top-{k} "
                "lens tokens"
            ),
            "contexts": "SAE encoder on every real token of the dataset's texts (BOS excluded)",
        },
    }
