"""The source the runner hands to metrics: the run's source, with its unsteered answers kept.

Within one run the model does not change, but every unit's metrics ask it again for the same
unsteered next-token logits (KL's reference) and the same unsteered continuation scores
(perplexity of the base generations). This wrapper answers those from memory after the first
time; everything steered, and everything else, goes to the source itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from steerkit import Activations, ActivationSource, Intervention, SourceInfo

__all__ = ["UnsteeredMemo"]


class UnsteeredMemo(ActivationSource):
    """Delegates to `source`; keeps the last `size` unsteered `logits` and
    `continuation_logprobs` answers, keyed by their texts."""

    def __init__(self, source: ActivationSource, *, size: int = 16) -> None:
        self.source = source
        self.name = source.name  # type: ignore[misc]
        self.size = size
        self._memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.hits = 0

    def __getattr__(self, name: str) -> Any:  # preset, model, ...
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

    def describe(self) -> SourceInfo:
        return self.source.describe()

    def activations(self, texts: Sequence[str]) -> Activations:
        return self.source.activations(texts)

    def decoder(self) -> Any:
        return self.source.decoder()

    def encode(self, hidden: Any) -> Any:
        return self.source.encode(hidden)

    def at_hook(self, hook_point: str) -> ActivationSource:
        return self.source.at_hook(hook_point)

    def _steered_hidden(self, texts: list[str], steering: Intervention, hook_point: str) -> Any:
        return self.source.steered_hidden(texts, steering, hook_point=hook_point)

    def _logits(self, texts: list[str], steering: Intervention) -> Any:
        if steering.steered:
            return self.source.logits(texts, steering)
        return self._remember(("logits", tuple(texts)), lambda: self.source.logits(texts))

    def _continuation_logprobs(
        self, prompts: list[str], continuations: Sequence[str], steering: Intervention
    ) -> Any:
        if steering.steered:
            return self.source.continuation_logprobs(prompts, continuations, steering)
        key = ("continuations", tuple(prompts), tuple(continuations))
        result = self._remember(
            key, lambda: list(self.source.continuation_logprobs(prompts, continuations))
        )
        return list(result)

    def _generate(
        self,
        prompts: list[str],
        steering: Intervention,
        *,
        max_new_tokens: int,
        seed: int,
        **options: Any,
    ) -> list[str]:
        return self.source.generate(
            prompts, max_new_tokens=max_new_tokens, vector=steering, seed=seed, **options
        )
