"""The core's per-row vector helpers: a source that takes one vector per text gets one call; any
other source gets one call per distinct vector (rows back in their order); bad arguments are
rejected naming the problem."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pytest

from steerkit import (
    Activations,
    ActivationSource,
    SteeringVector,
    ValidationError,
    steered_continuation_logprobs,
    steered_generate,
    steered_logits,
)
from steerkit.source import row_vectors

HOOK = "blocks.0.hook_resid_pre"


class Additive(ActivationSource):
    """Logits of text t: [len(t), 0] plus the vector's scale·first entry, so each row says
    exactly which vector steered it; records every call's vector argument."""

    name = "additive"

    def __init__(self, per_row: bool) -> None:
        self.per_row_vectors = per_row  # type: ignore[misc]
        self.calls: list[Any] = []

    @property
    def hook_point(self) -> str:
        return HOOK

    def activations(self, texts: Sequence[str]) -> Activations:
        raise NotImplementedError

    def decoder(self) -> Any:
        raise NotImplementedError

    def steer(self, vector: SteeringVector) -> AbstractContextManager[None]:
        return nullcontext()

    def _shift(self, vector: Any, n: int) -> list[float]:
        return [0.0 if v is None else v.scale * float(v.vector[0]) for v in row_vectors(vector, n)]

    def logits(self, texts: Sequence[str], vector: Any = None) -> Any:
        self.calls.append(vector)
        shift = self._shift(vector, len(texts))
        return np.array([[len(t) + s, 0.0] for t, s in zip(texts, shift)])

    def continuation_logprobs(
        self, prompts: Sequence[str], continuations: Sequence[str], vector: Any = None
    ) -> list[Any]:
        self.calls.append(vector)
        shift = self._shift(vector, len(prompts))
        return [np.array([s, float(len(c))]) for c, s in zip(continuations, shift)]

    def generate(
        self, prompts: Sequence[str], *, max_new_tokens: int = 32, vector: Any = None, seed: int = 0
    ) -> list[str]:
        self.calls.append(vector)
        return [f"{p}+{s:g}" for p, s in zip(prompts, self._shift(vector, len(prompts)))]


def vec(value: float, scale: float = 1.0) -> SteeringVector:
    return SteeringVector(vector=[value, 0.0], hook_point=HOOK, scale=scale)


TEXTS = ["a", "bb", "ccc", "dddd", "eeeee"]
A, B = vec(10.0), vec(100.0)
ROWS = [A, None, B, A, vec(10.0)]  # the last equals A: the same group
EXPECTED_SHIFT = [10.0, 0.0, 100.0, 10.0, 10.0]


@pytest.mark.parametrize("per_row", [True, False])
def test_each_row_is_steered_by_its_own_vector(per_row: bool) -> None:
    source = Additive(per_row)
    out = steered_logits(source, TEXTS, ROWS)
    np.testing.assert_array_equal(out[:, 0], [len(t) + s for t, s in zip(TEXTS, EXPECTED_SHIFT)])
    # one call when the source takes rows; else one per distinct vector (A, None, B)
    assert len(source.calls) == (1 if per_row else 3)

    source.calls.clear()
    scored = steered_continuation_logprobs(source, TEXTS, ["x", "yy", "", "z", "w"], ROWS)
    assert [s[0] for s in scored] == EXPECTED_SHIFT
    assert [s[1] for s in scored] == [1.0, 2.0, 0.0, 1.0, 1.0]
    assert len(source.calls) == (1 if per_row else 3)

    source.calls.clear()
    texts = steered_generate(source, TEXTS, ROWS, max_new_tokens=4)
    assert texts == [f"{t}+{s:g}" for t, s in zip(TEXTS, EXPECTED_SHIFT)]
    assert len(source.calls) == (1 if per_row else 3)


def test_one_vector_or_none_is_passed_through_unchanged() -> None:
    source = Additive(False)
    steered_logits(source, TEXTS, A)
    steered_logits(source, TEXTS, None)
    steered_logits(source, TEXTS, [B] * len(TEXTS))  # all the same: one call with B itself
    assert source.calls == [A, None, B]


def test_bad_row_vectors_are_rejected() -> None:
    source = Additive(False)
    with pytest.raises(ValidationError, match="5 vectors, one per text"):
        steered_logits(source, TEXTS, [A, B])
    with pytest.raises(ValidationError, match=r"vector\[1\].*a SteeringVector or None"):
        steered_logits(source, TEXTS, [A, "B", A, A, A])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="one SteeringVector \\(or None\\) per text"):
        steered_logits(source, TEXTS, "A")  # type: ignore[arg-type]
    assert source.calls == []
