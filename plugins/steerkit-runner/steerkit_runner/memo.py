"""The source the runner hands to metrics: the run's source, with its unsteered answers kept.

Within one run the model does not change, but every unit's metrics ask it again for the same
unsteered next-token logits (KL's reference) and the same unsteered continuation scores
(perplexity of the base generations). This wrapper answers those from memory after the first
time; everything steered, and everything else, goes to the source itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from steerkit import Activations, ActivationSource, RowVectors, SteeringVector
from steerkit._arrays import FloatArray

__all__ = ["UnsteeredMemo"]


class UnsteeredMemo(ActivationSource):
    """Delegates to `source`; keeps the last `size` unsteered `logits` and
    `continuation_logprobs` answers, keyed by their texts."""

    def __init__(self, source: ActivationSource, *, size: int = 16) -> None:
        self.source = source
        self.name = source.name  # type: ignore[misc]
        self.per_row_vectors = source.per_row_vectors  # type: ignore[misc]
        self.size = size
        self._memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.hits = 0

    def __getattr__(self, name: str) -> Any:  # preset, model, describe(), ...
        if name == "source":  # not set yet (e.g. while copying)
            raise AttributeError(name)
        return getattr(self.source, name)

    def __repr__(self) -> str:
        return f"UnsteeredMemo({self.source!r})"

    def _remember(self, key: tuple[Any, ...], compute: Any) -> Any:
        if key in self._memo:
            self._memo.move_to_end(key)
            self.hits += 1
            return self._memo[key]
        value = compute()
        self._memo[key] = value
        while len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return value

    @property
    def hook_point(self) -> str:
        return self.source.hook_point

    def activations(self, texts: Sequence[str]) -> Activations:
        return self.source.activations(texts)

    def decoder(self) -> FloatArray:
        return self.source.decoder()

    def steer(self, vector: SteeringVector) -> AbstractContextManager[None]:
        return self.source.steer(vector)

    def encode(self, hidden: Any) -> FloatArray:
        return self.source.encode(hidden)

    def logits(self, texts: Sequence[str], vector: RowVectors = None) -> FloatArray:
        if vector is not None:
            return self.source.logits(texts, vector)
        key = ("logits", tuple(texts))
        result: FloatArray = self._remember(key, lambda: self.source.logits(texts))
        return result

    def continuation_logprobs(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        vector: RowVectors = None,
    ) -> list[FloatArray]:
        if vector is not None:
            return self.source.continuation_logprobs(prompts, continuations, vector)
        key = ("continuations", tuple(prompts), tuple(continuations))
        result: list[FloatArray] = self._remember(
            key, lambda: list(self.source.continuation_logprobs(prompts, continuations))
        )
        return list(result)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 32,
        vector: RowVectors = None,
        seed: int = 0,
    ) -> list[str]:
        return self.source.generate(
            prompts, max_new_tokens=max_new_tokens, vector=vector, seed=seed
        )
