"""Metrics that run the model: `kl` (how far steering moves the next-token distribution) and
`perplexity` (how fluent the steered generations are to the unsteered model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from steerkit import (
    Column,
    EvalContext,
    Metric,
    Needs,
    SteeringVector,
    SteerkitError,
    ValidationError,
)
from steerkit_metrics._context import (
    FloatVector,
    generation_rows,
    nan_column,
    per_input_vectors,
    require_source,
    require_texts,
)

__all__ = ["KL", "Perplexity", "kl_divergence", "log_softmax", "perplexities"]

_CHUNK = 64  # rows per float64 log-softmax (a 262k vocabulary: 130 MB per array)


def log_softmax(logits: Any) -> FloatVector:
    """Row-wise log-softmax in float64 of (n, d_vocab) logits."""
    x = np.asarray(logits, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    result: FloatVector = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def kl_divergence(steered_logits: Any, base_logits: Any) -> FloatVector:
    """(n,) KL(softmax(steered) ‖ softmax(base)) in nats, row by row, in float64 (exactly 0 for
    identical rows; rounding below 0 is clipped to 0)."""
    steered = np.asarray(steered_logits)
    base = np.asarray(base_logits)
    out = np.empty(steered.shape[0], dtype=np.float64)
    for start in range(0, steered.shape[0], _CHUNK):
        s = log_softmax(steered[start : start + _CHUNK])
        b = log_softmax(base[start : start + _CHUNK])
        out[start : start + _CHUNK] = np.sum(np.exp(s) * (s - b), axis=-1)
    result: FloatVector = np.maximum(out, 0.0)
    return result


def _is_zero(vector: SteeringVector) -> bool:
    return float(vector.scale) == 0.0 or not np.any(np.asarray(vector.vector))


class KL(Metric):
    """Column `kl`: KL(steered ‖ base) in nats between the model's next-token distributions at
    each input text's last token, with that input's vector (or the shared one) added and without.

    One `source.logits` call for the unsteered texts and one for the steered ones, each text with
    its own vector in the same batched pass. A zero vector (or α = 0) gives exactly 0 without
    running the model; an input without a vector gives NaN.
    """

    name = "kl"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "kl",
                "KL",
                better="lower",
                description="KL(steered ‖ unsteered) of the next token, nats",
                role="cost",
            ),
        )

    def requires(self) -> Needs:
        return Needs(model=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        source = require_source(context, self.name, "logits (source.logits)")
        texts = require_texts(context, self.name)
        vectors = per_input_vectors(context)
        kl = nan_column(len(vectors))
        todo: list[int] = []
        for i, vector in enumerate(vectors):
            if vector is None:
                continue
            if _is_zero(vector):
                kl[i] = 0.0
                continue
            todo.append(i)
        if not todo:
            return {"kl": kl}
        chosen = [texts[i] for i in todo]
        try:
            base = _logits(source, chosen, None)
            steered = _logits(source, chosen, [vectors[i] for i in todo])
            kl[todo] = kl_divergence(steered, base)
        except NotImplementedError as e:
            raise SteerkitError(f"the 'kl' metric needs a source that gives logits: {e}") from e
        return {"kl": kl}


def _logits(source: Any, texts: Sequence[str], vector: Any) -> Any:
    logits = np.asarray(source.logits(list(texts), vector))
    if logits.ndim != 2 or logits.shape[0] != len(texts):
        raise ValidationError(
            type(source).__name__,
            "logits",
            f"an ({len(texts)}, d_vocab) array, one row per text",
            f"shape {logits.shape}",
        )
    return logits


class Perplexity(Metric):
    """Columns: `perplexity`, exp of the mean negative log-likelihood (natural log) of the steered
    generation of prompt i under the unsteered model given prompt i, and `base_perplexity`, the
    same for the unsteered generation. Row i < len(prompts) belongs to prompt i; other rows,
    inputs without a vector and generations of no tokens give NaN. One
    `source.continuation_logprobs` call for all of them."""

    name = "perplexity"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "perplexity",
                "ppl",
                better="lower",
                description="perplexity of the steered generation under the unsteered model",
            ),
            Column(
                "base_perplexity",
                "base ppl",
                description="perplexity of the unsteered generation",
            ),
        )

    def requires(self) -> Needs:
        return Needs(model=True, generations=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        source = require_source(
            context, self.name, "log-probabilities of continuations (continuation_logprobs)"
        )
        m = generation_rows(context, self.name)
        vectors = per_input_vectors(context)
        out = {"perplexity": nan_column(len(vectors)), "base_perplexity": nan_column(len(vectors))}
        asked: list[tuple[str, int]] = []
        prompts: list[str] = []
        continuations: list[str] = []
        sources = {"perplexity": context.generations, "base_perplexity": context.base_generations}
        for column, generations in sources.items():
            for i, text in enumerate(generations):
                if i < m and vectors[i] is not None and text:
                    asked.append((column, i))
                    prompts.append(context.prompts[i])
                    continuations.append(text)
        if not asked:
            return out
        values = perplexities(source, prompts, continuations, self.name)
        for (column, i), value in zip(asked, values):
            out[column][i] = value
        return out


def perplexities(
    source: Any, prompts: Sequence[str], continuations: Sequence[str], metric: str
) -> FloatVector:
    """(n,) exp(mean NLL) of each continuation given its prompt under the unsteered model (one
    `source.continuation_logprobs` call); NaN for a continuation of no tokens."""
    try:
        scored = source.continuation_logprobs(list(prompts), list(continuations))
    except NotImplementedError as e:
        raise SteerkitError(
            f"the {metric!r} metric needs a source that scores continuations: {e}"
        ) from e
    if len(scored) != len(prompts):
        raise ValidationError(
            type(source).__name__,
            "continuation_logprobs",
            f"{len(prompts)} arrays, one per continuation",
            f"{len(scored)}",
        )
    out = nan_column(len(prompts))
    for i, logprobs in enumerate(scored):
        values = np.asarray(logprobs, dtype=np.float64).reshape(-1)
        if values.size:
            out[i] = float(np.exp(-values.mean()))
    return out
