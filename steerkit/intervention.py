"""Stage 7: the intervention — what a source adds to each text inside its batched forward pass.

There is one way to steer a model: hand the source's `logits`, `continuation_logprobs` or
`generate` a `vector` argument. Whatever its form — one `SteeringVector` for every text, None,
or one vector (or None) per text — it becomes an `Intervention` in exactly one place,
`Intervention.of`, which checks it; the source then adds row b's vector to text b in the same
batched pass. A method's result gives the per-input form directly (`MethodResult.per_input`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import attrs
import numpy as np

from steerkit.errors import ValidationError
from steerkit.vector import Positions, SteeringVector

__all__ = ["Intervention", "RowVectors"]

#: What callers may pass as `vector`: one vector for every text, None for none, or one vector
#: (or None) per text.
RowVectors: TypeAlias = SteeringVector | Sequence[SteeringVector | None] | None

_OWNER = "Intervention"


def _rows(value: Any) -> tuple[SteeringVector | None, ...]:
    return tuple(value)


def _check_rows(rows: Sequence[Any], field: str) -> None:
    """Each row a SteeringVector or None; the steered ones of one hook point, positions mode and
    width (one hook adds them all in one pass)."""
    first: SteeringVector | None = None
    for i, row in enumerate(rows):
        if row is None:
            continue
        if not isinstance(row, SteeringVector):
            raise ValidationError(
                _OWNER, f"{field}[{i}]", "a SteeringVector or None", type(row).__name__
            )
        if first is None:
            first = row
        elif (row.hook_point, row.positions, row.d_model) != (
            first.hook_point,
            first.positions,
            first.d_model,
        ):
            raise ValidationError(
                _OWNER,
                f"{field}[{i}]",
                f"the hook point, positions and width of the first steered row "
                f"({first.hook_point}, {first.positions.value}, {first.d_model}): the rows are "
                "added in one pass; steer different hook points in separate calls",
                f"{row.hook_point}, {row.positions.value}, {row.d_model}",
            )
        elif row.function is not first.function and (
            row.function is None
            or first.function is None
            or not row.function.same_as(first.function)
        ):
            raise ValidationError(
                _OWNER,
                f"{field}[{i}]",
                "the steering function of the first steered row (one hook evaluates one "
                "table at every token; steer different probes or SAEs in separate calls)",
                "another steering function",
            )


@attrs.frozen(eq=False)
class Intervention:
    """rows: one entry per text — the SteeringVector added to that text (scale · vector at its
    hook point and positions), or None for a text left unsteered.

    The steered rows share one hook point, one positions mode and one width: one hook adds them
    all in one pass (steer different hook points in separate calls).
    """

    rows: tuple[SteeringVector | None, ...] = attrs.field(converter=_rows)

    def __attrs_post_init__(self) -> None:
        _check_rows(self.rows, "rows")

    @classmethod
    def of(cls, vector: RowVectors, n: int, *, field: str = "vector") -> Intervention:
        """`vector` for n texts: a single vector (or None) repeated n times, or a sequence of n
        entries, each a SteeringVector or None. Anything else is rejected, naming the problem."""
        if isinstance(vector, Intervention):
            if len(vector) != n:
                raise ValidationError(
                    _OWNER, field, f"{n} rows, one per text", f"{len(vector)} rows"
                )
            return vector
        if vector is None or isinstance(vector, SteeringVector):
            return cls((vector,) * n)
        if isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence):
            raise ValidationError(
                _OWNER,
                field,
                "a SteeringVector, None, or a sequence with one SteeringVector (or None) per text",
                type(vector).__name__,
            )
        if len(vector) != n:
            raise ValidationError(_OWNER, field, f"{n} vectors, one per text", f"{len(vector)}")
        _check_rows(vector, field)
        return cls(vector)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[SteeringVector | None]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> SteeringVector | None:
        return self.rows[i]

    @property
    def first(self) -> SteeringVector | None:
        """The first steered row (None when no row is steered): its hook point, positions and
        width are every steered row's."""
        return next((row for row in self.rows if row is not None), None)

    @property
    def steered(self) -> bool:
        """True when at least one row has a vector."""
        return self.first is not None

    @property
    def hook_point(self) -> str | None:
        first = self.first
        return None if first is None else first.hook_point

    @property
    def positions(self) -> Positions | None:
        first = self.first
        return None if first is None else first.positions

    def take(self, indices: Sequence[int]) -> Intervention:
        """The rows of the texts `indices` (e.g. one batch), in that order."""
        return Intervention(tuple(self.rows[i] for i in indices))

    def added(self, dtype: Any = np.float64) -> np.ndarray[Any, Any]:
        """(n, d_model) rows scale · vector (zeros for unsteered rows); needs a steered row."""
        first = self.first
        if first is None:
            raise ValidationError(_OWNER, "rows", "at least one steered row", "none")
        out = np.zeros((len(self.rows), first.d_model), dtype=dtype)
        for i, row in enumerate(self.rows):
            if row is not None:
                out[i] = row.scale * np.asarray(row.vector, dtype=np.float64)
        return out

    def groups(self) -> list[tuple[SteeringVector | None, list[int]]]:
        """The rows grouped by identical steering (hook, positions, scale, values), each group
        with its row indices in order: for a source that can add only one vector per pass."""
        groups: dict[Any, tuple[SteeringVector | None, list[int]]] = {}
        for i, row in enumerate(self.rows):
            key = (
                None
                if row is None
                else (
                    row.hook_point,
                    row.positions,
                    float(row.scale),
                    row.vector.tobytes(),
                    id(row.function),
                )
            )
            groups.setdefault(key, (row, []))[1].append(i)
        return list(groups.values())
