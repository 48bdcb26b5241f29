"""The source the runner hands to metrics: the run's source, with its unsteered answers kept.

Within one run the model does not change, but every unit's metrics ask it again for the same
unsteered next-token logits (KL's reference) and the same unsteered continuation scores
(perplexity and fluency of the base generations, and of a steered text both metrics score).
This wrapper answers those row by row from memory after the first time; everything steered,
and everything else, goes to the source itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from steerkit import Activations, ActivationSource, Intervention, SourceInfo

__all__ = ["UnsteeredMemo"]


class UnsteeredMemo(ActivationSource):
    """Delegates to `source`; keeps the last `size` unsteered answers of `logits` (a row per
    text) and `continuation_logprobs` (an array per prompt and continuation), so that a call
    asks the source only for the rows it has not answered before, in one call."""

    def __init__(self, source: ActivationSource, *, size: int = 16384) -> None:
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

    def _rows(self, keys: Sequence[tuple[Any, ...]], compute: Any) -> list[Any]:
        """The answer of every key: remembered ones from memory, the others from one
        `compute(indices)` call (their answers in the order asked)."""
        missing = [i for i, key in enumerate(keys) if key not in self._memo]
        fresh = dict(zip(missing, compute(missing))) if missing else {}
        out = []
        for i, key in enumerate(keys):
            if i in fresh:
                self._memo[key] = fresh[i]
            else:
                self.hits += 1
                self._memo.move_to_end(key)
            out.append(self._memo[key])
        while len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return out

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
        keys = [("logits", text) for text in texts]
        rows = self._rows(keys, lambda todo: list(self.source.logits([texts[i] for i in todo])))
        return np.stack(rows)

    def _continuation_logprobs(
        self, prompts: list[str], continuations: Sequence[str], steering: Intervention
    ) -> Any:
        if steering.steered:
            return self.source.continuation_logprobs(prompts, continuations, steering)
        keys = [("continuation", p, c) for p, c in zip(prompts, continuations)]
        return self._rows(
            keys,
            lambda todo: list(
                self.source.continuation_logprobs(
                    [prompts[i] for i in todo], [continuations[i] for i in todo]
                )
            ),
        )

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
