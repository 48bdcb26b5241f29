"""Stage 8: evaluation metrics over a steered run. A metric describes itself — the columns it
writes (with a header, which direction is better and a number format) and what it needs (the
model, generations, a text classifier) — so a runner shows and feeds any metric without knowing
it by name."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from steerkit.dataset import Dataset, LabelledTexts
from steerkit.errors import ValidationError
from steerkit.method import MethodResult
from steerkit.probe import Probe
from steerkit.source import Activations, ActivationSource

__all__ = ["BETTER", "ROLES", "Column", "EvalContext", "Metric", "Needs"]

#: Which way a column is better: higher, lower, or neither (None: a description, not a score).
BETTER = ("higher", "lower", None)
#: What a column is to a report: what steering buys ("effect"), what it costs ("cost": an axis
#: of the frontier plots), time spent solving ("time"), or nothing special (None).
ROLES = ("effect", "cost", "time", None)


def _better(value: Any) -> str | None:
    if value not in BETTER:
        raise ValidationError("Column", "better", "'higher', 'lower' or None", repr(value))
    return value  # type: ignore[no-any-return]


def _role(value: Any) -> str | None:
    if value not in ROLES:
        raise ValidationError("Column", "role", "'effect', 'cost', 'time' or None", repr(value))
    return value  # type: ignore[no-any-return]


def _format(value: Any) -> str:
    try:
        format(1.5, str(value))
    except (ValueError, TypeError) as e:
        raise ValidationError(
            "Column", "format", "a float format spec such as '.4g'", repr(value)
        ) from e
    return str(value)


@attrs.frozen
class Column:
    """One results column a metric writes.

    name: the key in the results rows; header: how tables show it (default: the name); better:
    "higher", "lower" or None; format: the format spec of its mean in tables (e.g. ".4g",
    ".1%"); description: one line for the report; table: shown in the comparison table (False
    for columns kept in the rows only, e.g. a value before steering); role: what the column is to
    the report's plots (see ROLES): frontiers plot each "cost" column against the first "effect"
    column, and "time" columns get a box plot by solver.
    """

    name: str
    header: str = ""
    better: str | None = attrs.field(default=None, converter=_better)
    format: str = attrs.field(default=".4g", converter=_format)
    description: str = ""
    table: bool = True
    role: str | None = attrs.field(default=None, converter=_role)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("Column", "name", "a non-empty string", repr(self.name))
        if not self.header:
            object.__setattr__(self, "header", self.name)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        known = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in dict(data).items() if k in known})


@attrs.frozen
class Needs:
    """What a metric needs beyond the activations and the vectors.

    model: it runs the source (logits, continuation scores): EvalContext.source is set;
    generations: steered (and unsteered) continuations of the prompts in EvalContext.generations;
    text_classifier: it fits a text classifier on the task's texts: EvalContext.train and
    .dataset are set.
    """

    model: bool = False
    generations: bool = False
    text_classifier: bool = False

    @classmethod
    def of(cls, value: Needs | Mapping[str, Any] | None) -> Needs:
        """A Needs from a Needs, None, or a mapping such as {"generations": True} (the older
        form; "source" is read as "model")."""
        if value is None:
            return cls()
        if isinstance(value, Needs):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(
                "Metric", "requires()", "a steerkit.Needs (or a mapping)", type(value).__name__
            )
        data = dict(value)
        if "source" in data:
            data["model"] = bool(data.pop("source")) or bool(data.get("model"))
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                "Metric", "requires()", f"keys among {sorted(known)}", f"unknown keys {unknown}"
            )
        return cls(**{k: bool(v) for k, v in data.items()})

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            model=self.model or other.model,
            generations=self.generations or other.generations,
            text_classifier=self.text_classifier or other.text_classifier,
        )


@attrs.frozen(eq=False)
class EvalContext:
    """What a metric may look at.

    inputs: the unsteered activations of `texts` (n rows); result: the method's vectors (one per
    input, or one shared) at the scale being evaluated; probe: the trained probe; source: the
    model, for metrics that need it (Needs.model); target_class: the class steered towards;
    dataset and train: the task and its training split (Needs.text_classifier); prompts and
    generations: continuations of `prompts` generated under steering (prompt i steered by input
    i's vector, or by the shared one), filled when a metric needs generations;
    base_generations: the same prompts without steering.
    """

    inputs: Activations
    result: MethodResult
    probe: Probe | None = None
    source: ActivationSource | None = None
    target_class: int = 1
    texts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    dataset: Dataset | None = None
    train: LabelledTexts | None = None
    prompts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    generations: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    base_generations: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    seed: int = 0


class Metric(abc.ABC):
    """A named measurement; returns plain numbers so they land in the results table.

    compute returns {column name: values}: a sequence with one float per input (the results table
    has a row per input), or one float for the whole batch (repeated on every row). NaN marks a
    value that does not apply (e.g. L0 of a vector that has no SAE code); never 0 for "unknown".
    `columns()` describes the columns compute writes (a column it writes without describing is
    still kept, and shown under its name).
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def compute(self, context: EvalContext) -> Mapping[str, Sequence[float] | float]:
        """{column name: per-input values (n,) or one value}."""

    def columns(self) -> Sequence[Column]:
        """The columns `compute` writes, in the order tables show them."""
        return ()

    def requires(self) -> Needs | Mapping[str, Any]:
        """What the metric needs beyond activations and vectors (see Needs)."""
        return Needs()
