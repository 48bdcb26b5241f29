"""Stage 7's one primitive: whatever form `vector` takes, `Intervention.of` turns it into one row
per text once, checking it; a source's steered passes get that per-row form in one call; bad
arguments are rejected naming the problem."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from steerkit import (
    Activations,
    ActivationSource,
    Intervention,
    MethodResult,
    SteeringVector,
    ValidationError,
)

HOOK = "blocks.0.hook_resid_pre"


class Additive(ActivationSource):
    """Logits of text t: [len(t), 0] plus its row's scale·first entry, so each row says exactly
    which vector steered it; records the Intervention of every call."""

    name = "additive"

    def __init__(self) -> None:
        self.calls: list[Intervention] = []

    @property
    def hook_point(self) -> str:
        return HOOK

    def activations(self, texts: Sequence[str]) -> Activations:
        raise NotImplementedError

    def decoder(self) -> Any:
        raise NotImplementedError

    def _shift(self, steering: Intervention) -> list[float]:
        self.calls.append(steering)
        return [0.0 if v is None else v.scale * float(v.vector[0]) for v in steering]

    def _logits(self, texts: list[str], steering: Intervention) -> Any:
        return np.array([[len(t) + s, 0.0] for t, s in zip(texts, self._shift(steering))])

    def _continuation_logprobs(
        self, prompts: list[str], continuations: Sequence[str], steering: Intervention
    ) -> list[Any]:
        shift = self._shift(steering)
        return [np.array([s, float(len(c))]) for c, s in zip(continuations, shift)]

    def _generate(
        self, prompts: list[str], steering: Intervention, *, max_new_tokens: int, seed: int
    ) -> list[str]:
        return [f"{p}+{s:g}" for p, s in zip(prompts, self._shift(steering))]


def vec(value: float, scale: float = 1.0, hook: str = HOOK, positions: str = "all") -> Any:
    return SteeringVector(vector=[value, 0.0], hook_point=hook, scale=scale, positions=positions)


TEXTS = ["a", "bb", "ccc", "dddd", "eeeee"]
A, B = vec(10.0), vec(100.0)
ROWS = [A, None, B, A, vec(10.0)]  # the last equals A
EXPECTED_SHIFT = [10.0, 0.0, 100.0, 10.0, 10.0]


def test_each_row_is_steered_by_its_own_vector_in_one_call() -> None:
    source = Additive()
    out = source.logits(TEXTS, ROWS)
    np.testing.assert_array_equal(out[:, 0], [len(t) + s for t, s in zip(TEXTS, EXPECTED_SHIFT)])
    scored = source.continuation_logprobs(TEXTS, ["x", "yy", "", "z", "w"], ROWS)
    assert [s[0] for s in scored] == EXPECTED_SHIFT
    assert [s[1] for s in scored] == [1.0, 2.0, 0.0, 1.0, 1.0]
    texts = source.generate(TEXTS, vector=ROWS, max_new_tokens=4)
    assert texts == [f"{t}+{s:g}" for t, s in zip(TEXTS, EXPECTED_SHIFT)]
    assert len(source.calls) == 3 and all(list(c.rows) == ROWS for c in source.calls)


def test_one_vector_or_none_becomes_one_row_per_text() -> None:
    source = Additive()
    source.logits(TEXTS, A)
    source.logits(TEXTS, None)
    assert list(source.calls[0].rows) == [A] * 5 and list(source.calls[1].rows) == [None] * 5
    assert source.calls[0].steered and not source.calls[1].steered
    assert source.calls[0].hook_point == HOOK and source.calls[1].hook_point is None
    again = Intervention.of(source.calls[0], 5)
    assert again is source.calls[0]  # already per-row: passed through


def test_bad_row_vectors_are_rejected() -> None:
    source = Additive()
    with pytest.raises(ValidationError, match="5 vectors, one per text"):
        source.logits(TEXTS, [A, B])
    with pytest.raises(ValidationError, match=r"vector\[1\].*a SteeringVector or None"):
        source.logits(TEXTS, [A, "B", A, A, A])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="one SteeringVector \\(or None\\) per text"):
        source.logits(TEXTS, "A")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="a list, not one string"):
        source.logits("abc", A)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="the hook point, positions and width"):
        source.logits(TEXTS[:2], [A, vec(1.0, hook="blocks.1.hook_resid_pre")])
    with pytest.raises(ValidationError, match="the hook point, positions and width"):
        source.logits(TEXTS[:2], [A, vec(1.0, positions="prompt")])
    assert source.calls == []


def test_groups_take_and_added() -> None:
    steering = Intervention.of(ROWS, 5)
    groups = steering.groups()
    assert [(v, rows) for v, rows in groups] == [(A, [0, 3, 4]), (None, [1]), (B, [2])]
    assert list(steering.take([2, 0]).rows) == [B, A]
    added = steering.added()
    np.testing.assert_array_equal(added[:, 0], EXPECTED_SHIFT)
    with pytest.raises(ValidationError, match="at least one steered row"):
        Intervention.of(None, 2).added()


def test_a_method_result_gives_one_vector_per_input() -> None:
    shared = MethodResult(vectors=(A,), shared=True)
    assert shared.per_input(3) == (A, A, A)
    per_input = MethodResult(vectors=(A, None, B))
    assert per_input.per_input(3) == (A, None, B)
    assert per_input.take([2, 0]).vectors == (B, A)
    assert per_input.scaled(2.0).per_input(3)[0].scale == 2.0  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="2 vectors, one per input.*received 3"):
        per_input.per_input(2)
    with pytest.raises(ValidationError, match="one vector for a shared result"):
        MethodResult(vectors=(A, B), shared=True).per_input(2)
