"""Stage 2: an activation source (a model, a hook point, an SAE) and the activations it gives."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeAlias, TypeVar

import attrs
import numpy as np

from steerkit._arrays import FloatArray, float_array
from steerkit.errors import ValidationError
from steerkit.vector import SteeringVector

__all__ = [
    "ActivationSource",
    "Activations",
    "RowVectors",
    "row_vectors",
    "steered_continuation_logprobs",
    "steered_generate",
    "steered_logits",
    "vector_key",
]

#: What `logits`, `continuation_logprobs` and `generate` take as `vector`: one vector for every
#: text, None for none, or — from a source with `per_row_vectors` — one vector (or None) per text.
RowVectors: TypeAlias = SteeringVector | Sequence[SteeringVector | None] | None

_T = TypeVar("_T")


def _hidden(value: Any) -> FloatArray:
    return float_array("Activations", "hidden", value, ndim=2, keep_float32=True)


def _features(value: Any) -> FloatArray | None:
    if value is None:
        return None
    return float_array("Activations", "features", value, ndim=2, keep_float32=True)


@attrs.frozen(eq=False)
class Activations:
    """hidden: (n, d_model) residual activations at `hook_point`, one row per text (its last
    real token); features: (n, d_sae) SAE feature activations, when the source has an SAE."""

    hidden: FloatArray = attrs.field(converter=_hidden)
    hook_point: str
    features: FloatArray | None = attrs.field(default=None, converter=_features)

    def __attrs_post_init__(self) -> None:
        if self.features is not None and self.features.shape[0] != self.hidden.shape[0]:
            raise ValidationError(
                "Activations",
                "features",
                f"{self.hidden.shape[0]} rows, one per text",
                f"{self.features.shape[0]} rows",
            )

    def __len__(self) -> int:
        return int(self.hidden.shape[0])


class ActivationSource(abc.ABC):
    """Text in, activations out; and the hooks that add a steering vector back in."""

    name: ClassVar[str]
    #: True when `logits`, `continuation_logprobs` and `generate` also accept a sequence of
    #: vectors, one per text (None: that text unsteered), and steer every row of a batch with its
    #: own vector. Callers use `steered_logits` / `steered_generate` /
    #: `steered_continuation_logprobs`, which fall back to one call per distinct vector otherwise.
    per_row_vectors: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def hook_point(self) -> str:
        """The hook the activations are read from and the steering vector is added at."""

    @abc.abstractmethod
    def activations(self, texts: Sequence[str]) -> Activations:
        """Activations at the last real token of each text; batching must not change them."""

    @abc.abstractmethod
    def decoder(self) -> FloatArray:
        """The SAE decoder D, shape (d_sae, d_model)."""

    @abc.abstractmethod
    def steer(self, vector: SteeringVector) -> AbstractContextManager[None]:
        """A context manager inside which the model runs with the vector added; hooks are
        always removed on exit, also on error."""

    def encode(self, hidden: Any) -> FloatArray:
        """SAE feature activations (n, d_sae) of residual activations (n, d_model)."""
        raise NotImplementedError(f"source {self.name!r} has no SAE encoder")

    def logits(self, texts: Sequence[str], vector: RowVectors = None) -> FloatArray:
        """Next-token logits (n, d_vocab) at each text's last real token, steered by `vector`."""
        raise NotImplementedError(f"source {self.name!r} gives no logits")

    def continuation_logprobs(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        vector: RowVectors = None,
    ) -> list[FloatArray]:
        """For each pair, the log-probability of every token of the continuation given the prompt
        and the continuation's earlier tokens (natural log), steered by `vector` if given."""
        raise NotImplementedError(f"source {self.name!r} cannot score continuations")

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 32,
        vector: RowVectors = None,
        seed: int = 0,
    ) -> list[str]:
        """Continuations of each prompt, steered by `vector` if given."""
        raise NotImplementedError(f"source {self.name!r} cannot generate text")


def row_vectors(
    vector: RowVectors, n: int, *, field: str = "vector"
) -> list[SteeringVector | None]:
    """`vector` as one entry per text: a single vector (or None) repeated n times, or a sequence
    of n entries, each a SteeringVector or None. Anything else is rejected, naming the problem."""
    if vector is None or isinstance(vector, SteeringVector):
        return [vector] * n
    if isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence):
        raise ValidationError(
            "ActivationSource",
            field,
            "a SteeringVector, None, or a sequence with one SteeringVector (or None) per text",
            type(vector).__name__,
        )
    if len(vector) != n:
        raise ValidationError(
            "ActivationSource", field, f"{n} vectors, one per text", f"{len(vector)}"
        )
    out: list[SteeringVector | None] = []
    for i, item in enumerate(vector):
        if item is not None and not isinstance(item, SteeringVector):
            raise ValidationError(
                "ActivationSource", f"{field}[{i}]", "a SteeringVector or None", type(item).__name__
            )
        out.append(item)
    return out


def vector_key(vector: SteeringVector | None) -> tuple[Any, ...] | None:
    """Equal for vectors that steer identically (hook, positions, scale, values)."""
    if vector is None:
        return None
    return (
        vector.hook_point,
        str(vector.positions),
        float(vector.scale),
        vector.vector.tobytes(),
    )


def _per_group(
    n: int,
    vectors: list[SteeringVector | None],
    call: Callable[[list[int], SteeringVector | None], Sequence[_T]],
) -> list[_T]:
    """Answers for rows 0..n−1 from one call per distinct vector (rows in their order)."""
    groups: dict[Any, tuple[SteeringVector | None, list[int]]] = {}
    for i, v in enumerate(vectors):
        groups.setdefault(vector_key(v), (v, []))[1].append(i)
    out: list[Any] = [None] * n
    for v, rows in groups.values():
        answers = call(rows, v)
        if len(answers) != len(rows):
            raise ValidationError(
                "ActivationSource", "answers", f"{len(rows)}, one per text", f"{len(answers)}"
            )
        for i, answer in zip(rows, answers):
            out[i] = answer
    return out


def _one_call(
    source: ActivationSource, vector: RowVectors, n: int
) -> tuple[bool, RowVectors, list[SteeringVector | None]]:
    """(True, argument, _) when one call of the source answers every row; (False, _, rows)
    when it needs one call per distinct vector."""
    if vector is None or isinstance(vector, SteeringVector):
        return True, vector, []
    vectors = row_vectors(vector, n)
    if source.per_row_vectors:
        return True, vectors, vectors
    if len({vector_key(v) for v in vectors}) == 1:
        return True, vectors[0], vectors
    return False, None, vectors


def steered_logits(source: ActivationSource, texts: Sequence[str], vector: RowVectors) -> Any:
    """`source.logits(texts, vector)` for any source and per-row vectors: one call when the
    source takes them (`per_row_vectors`) or they are all the same, else one call per distinct
    vector, rows back in order."""
    one, argument, vectors = _one_call(source, vector, len(texts))
    if one:
        return source.logits(texts, argument)
    rows = _per_group(
        len(texts), vectors, lambda idx, v: list(source.logits([texts[i] for i in idx], v))
    )
    return np.stack(rows)


def steered_continuation_logprobs(
    source: ActivationSource,
    prompts: Sequence[str],
    continuations: Sequence[str],
    vector: RowVectors,
) -> list[FloatArray]:
    """`source.continuation_logprobs` for any source and per-row vectors (see `steered_logits`)."""
    one, argument, vectors = _one_call(source, vector, len(prompts))
    if one:
        return source.continuation_logprobs(prompts, continuations, argument)
    return _per_group(
        len(prompts),
        vectors,
        lambda idx, v: source.continuation_logprobs(
            [prompts[i] for i in idx], [continuations[i] for i in idx], v
        ),
    )


def steered_generate(
    source: ActivationSource,
    prompts: Sequence[str],
    vector: RowVectors,
    *,
    max_new_tokens: int = 32,
    seed: int = 0,
) -> list[str]:
    """`source.generate` for any source and per-row vectors (see `steered_logits`)."""
    one, argument, vectors = _one_call(source, vector, len(prompts))
    if one:
        return source.generate(prompts, max_new_tokens=max_new_tokens, vector=argument, seed=seed)
    return _per_group(
        len(prompts),
        vectors,
        lambda idx, v: source.generate(
            [prompts[i] for i in idx], max_new_tokens=max_new_tokens, vector=v, seed=seed
        ),
    )
