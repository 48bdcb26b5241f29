"""The source the runner hands to metrics: the run's source, with its unsteered answers kept.

Within one run the model does not change, but every unit's metrics ask it again for the same
unsteered next-token logits (KL's reference) and the same unsteered continuation scores
(perplexity and fluency of the base generations, and of a steered text both metrics score),
and the held-out judges read the same unsteered texts at another hook. This wrapper answers
those row by row from memory after the first time; everything steered, and everything else,
goes to the source itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from steerkit import Activations, ActivationSource, Intervention, SourceInfo

__all__ = ["UnsteeredMemo"]


class UnsteeredMemo(ActivationSource):
    """Delegates to `source`; keeps unsteered answers row by row — `logits` (a row per text),
    `continuation_logprobs` (an array per prompt and continuation) and `activations` (a row
    per text, also of the sources `at_hook` gives, each with a memo of its own) — so that a
    call asks the source only for the rows it has not answered before, in one call. The
    oldest rows are dropped past `max_bytes` (a logits row of a 262k vocabulary is 1 MB)."""

    def __init__(self, source: ActivationSource, *, max_bytes: int = 1 << 30) -> None:
        self.source = source
        self.name = source.name  # type: ignore[misc]
        self.max_bytes = max_bytes
        self._memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._bytes = 0
        self.hits = 0

    def __getattr__(self, name: str) -> Any:  # preset, model, ...
        if name == "source":  # not set yet (e.g. while copying)
            raise AttributeError(name)
        return getattr(self.source, name)

    def __repr__(self) -> str:
        return f"UnsteeredMemo({self.source!r})"

    def _rows(self, keys: Sequence[tuple[Any, ...]], compute: Any) -> list[Any]:
        """The answer of every key: remembered ones from memory, the others from one
        `compute(indices)` call (their answers in the order asked; a key asked twice is
        computed once)."""
        first: dict[tuple[Any, ...], int] = {}
        for i, key in enumerate(keys):
            if key not in self._memo:
                first.setdefault(key, i)
        fresh = dict(zip(first, compute(list(first.values())))) if first else {}
        out = [fresh[key] if key in fresh else self._memo[key] for key in keys]
        for key in keys:
            if key not in fresh:
                self.hits += 1
                self._memo.move_to_end(key)
        for key, value in fresh.items():
            self._memo[key] = value
            self._bytes += _nbytes(value)
        while self._bytes > self.max_bytes and self._memo:
            self._bytes -= _nbytes(self._memo.popitem(last=False)[1])
        return out

    @property
    def hook_point(self) -> str:
        return self.source.hook_point

    def describe(self) -> SourceInfo:
        return self.source.describe()

    def activations(self, texts: Sequence[str]) -> Activations:
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
            return self.source.activations(texts)  # the source names what is wrong

        def compute(todo: list[int]) -> list[tuple[Any, Any]]:
            read = self.source.activations([texts[i] for i in todo])
            features = read.features
            return [
                (read.hidden[j], None if features is None else features[j])
                for j in range(len(todo))
            ]

        rows = self._rows([("activations", text) for text in texts], compute)
        features = None if rows[0][1] is None else np.stack([f for _, f in rows])
        hidden = np.stack([h for h, _ in rows])
        return Activations(hidden=hidden, hook_point=self.hook_point, features=features)

    def decoder(self) -> Any:
        return self.source.decoder()

    def encode(self, hidden: Any) -> Any:
        return self.source.encode(hidden)

    def at_hook(self, hook_point: str) -> ActivationSource:
        return UnsteeredMemo(self.source.at_hook(hook_point), max_bytes=self.max_bytes)

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


def _nbytes(value: Any) -> int:
    """The bytes of a remembered answer: an array, or a tuple of arrays (None: nothing)."""
    parts = value if isinstance(value, tuple) else (value,)
    return sum(np.asarray(part).nbytes for part in parts if part is not None)
