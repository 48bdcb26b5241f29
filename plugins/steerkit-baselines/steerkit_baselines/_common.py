"""What every baseline shares: the `normalize` parameter, the context it needs, the scale of its
vector ("per_input", "margin", "unit" or "none"), and the vectors it returns: one shared
SteeringVector, or with "per_input" one per input. Parameters are checked with the public
`steerkit.checks`."""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from steerkit import (
    Activations,
    MethodContext,
    MethodResult,
    SteeringMethod,
    SteeringVector,
    SteerkitError,
)
from steerkit.checks import choice
from steerkit_baselines._margin import ORTHOGONAL, smallest_scales

__all__ = ["NORMALIZE", "Baseline", "Direction", "DirectionBaseline", "Scaling", "scale_direction"]

Vector = npt.NDArray[np.float64]

#: The ways a baseline's raw direction is scaled before the runner's α multiplies it.
NORMALIZE = ("margin", "unit", "none", "per_input")


def d_model(context: MethodContext) -> int:
    return int(context.inputs.hidden.shape[1])


def training_data(owner: str, context: MethodContext) -> tuple[Activations, np.ndarray[Any, Any]]:
    """The training activations and their labels: `context.train` (or, without it, the source's
    activations of `context.splits.train.texts`) and `context.splits.train.labels`."""
    if context.splits is None:
        raise SteerkitError(
            f"method {owner!r} needs the labelled training split, and the context has none: "
            "pass MethodContext(splits=dataset.load(...), train=source.activations("
            "splits.train.texts))"
        )
    labels = np.asarray(context.splits.train.labels)
    train = context.train
    if train is None:
        if context.source is None:
            raise SteerkitError(
                f"method {owner!r} needs the activations of the training split, and the context "
                "has neither `train` nor a `source` to compute them: pass MethodContext(train="
                "source.activations(splits.train.texts)) or MethodContext(source=...)"
            )
        train = context.source.activations(list(context.splits.train.texts))
    if len(train) != len(labels):
        raise SteerkitError(
            f"method {owner!r}: context.train has {len(train)} rows but splits.train has "
            f"{len(labels)} labels; train must be the activations of splits.train, in order"
        )
    if train.hidden.shape[1] != d_model(context):
        raise SteerkitError(
            f"method {owner!r}: the training activations have d_model {train.hidden.shape[1]} "
            f"but the inputs have {d_model(context)}; read both at the same hook point"
        )
    return train, labels


def target_indicator(owner: str, labels: np.ndarray[Any, Any], target_class: int) -> Vector:
    """(n,) 1.0 where the label is the target class, 0.0 elsewhere; both must occur."""
    indicator: Vector = (labels == target_class).astype(np.float64)
    if indicator.all() or not indicator.any():
        present = sorted({int(c) for c in labels})
        raise SteerkitError(
            f"method {owner!r} needs training examples both of the target class "
            f"{target_class} and of the other classes; the training labels hold {present}"
        )
    return indicator


def binary_sign(owner: str, target_class: int) -> float:
    """Datasets give (negative, positive) = (class 0, class 1) prompts: +1 steers towards class
    1, −1 towards class 0."""
    if target_class == 1:
        return 1.0
    if target_class == 0:
        return -1.0
    raise SteerkitError(
        f"method {owner!r} uses the dataset's (class 0, class 1) prompts and can steer towards "
        f"class 0 or 1 only; the context's target_class is {target_class!r}"
    )


# -- scale --------------------------------------------------------------------------------------


class Scaling:
    """How a raw direction v was scaled: the final vector is `factor · v`; `info` goes into the
    vector's provenance."""

    def __init__(self, factor: float, info: Mapping[str, Any]) -> None:
        self.factor = factor
        self.info = dict(info)


def raw_norm(owner: str, raw: Vector) -> float:
    """‖raw‖, which must be finite and non-zero: a baseline never hands back a silent zero."""
    norm = float(np.linalg.norm(raw))
    if not math.isfinite(norm) or norm == 0.0:
        raise SteerkitError(
            f"method {owner!r} produced a {'zero' if norm == 0.0 else 'non-finite'} direction "
            "(nothing separates what it compares); check its data — a zero vector is only "
            "returned by `no_steering`"
        )
    return norm


def scale_direction(owner: str, raw: Vector, context: MethodContext, normalize: str) -> Scaling:
    """The factor that scales `raw` as `normalize` says.

    margin: w·(h + factor·v) = t for the median input that needs steering (r = t − w·h > 0),
    with w, t the concept's first direction and threshold: factor = median(r) / (w·v).
    unit: ‖factor·v‖ = 1. none: factor = 1. (per_input has a factor per input:
    `smallest_scales`.)
    """
    norm = raw_norm(owner, raw)
    w = np.asarray(context.concept.directions[0], dtype=np.float64)
    projection = float(w @ raw)
    info: dict[str, Any] = {"normalize": normalize, "raw_norm": norm}
    if normalize == "none":
        factor = 1.0
    elif normalize == "unit":
        factor = 1.0 / norm
    else:
        rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
        needing = rhs[rhs > 0]
        if needing.size == 0:
            raise SteerkitError(
                f"method {owner!r}, normalize='margin': every input already reaches the "
                "concept's threshold (t − w·h ≤ 0), so there is no margin to scale to; steer "
                "inputs outside the target class, or use normalize='unit' or 'none'"
            )
        if projection <= ORTHOGONAL * norm * float(np.linalg.norm(w)):
            raise SteerkitError(
                f"method {owner!r}: the direction does not move the probe towards the target "
                f"class (w·v = {projection:.6g} ≤ 0), so no positive scale reaches the "
                "threshold; the probe and this baseline disagree on the target direction — "
                "check target_class, or use normalize='unit' or 'none' to keep the raw direction"
            )
        median = float(np.median(needing))
        factor = median / projection
        info["median_rhs"] = median
        info["n_needing_steering"] = int(needing.size)
    info["factor"] = factor
    info["probe_projection"] = factor * projection
    return Scaling(factor, info)


# -- the method ---------------------------------------------------------------------------------


class Baseline(SteeringMethod):
    """A heuristic baseline: one shared vector for every input (`vector`), or one per input (a
    subclass's `compute`), at the inputs' hook point."""

    def __init__(self, *, normalize: str = "margin") -> None:
        self.normalize = choice(self.name, "normalize", normalize, NORMALIZE)

    def params(self) -> dict[str, Any]:
        """The method's parameters, as recorded in the vector's provenance."""
        return {"normalize": self.normalize}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    @abc.abstractmethod
    def vector(self, context: MethodContext) -> tuple[Vector, dict[str, Any]]:
        """The final shared (d_model,) vector and what the provenance should add about it."""

    def compute(self, context: MethodContext) -> MethodResult:
        start = time.perf_counter()
        vector, extra = self.vector(context)
        return self.result(context, [(vector, extra)], shared=True, start=start)

    def result(
        self,
        context: MethodContext,
        vectors: list[tuple[Vector, dict[str, Any]]],
        *,
        shared: bool,
        start: float,
        info: Mapping[str, Any] | None = None,
    ) -> MethodResult:
        """The MethodResult of (vector, provenance extra) pairs: one shared, or one per input."""
        layer = getattr(context.source, "layer", None) if context.source is not None else None
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            layer = None
        steering = [
            SteeringVector(
                vector=vector,
                hook_point=context.inputs.hook_point,
                layer=None if layer is None else int(layer),
                provenance={"method": self.name, **self.params(), **extra},
            )
            for vector, extra in vectors
        ]
        seconds = time.perf_counter() - start
        return MethodResult(
            vectors=steering, shared=shared, info={"seconds": seconds, **(info or {})}
        )


class Direction:
    """A baseline's raw (d_model,) direction and what the provenance says about it; `scaled`
    gives the vector at a factor (exactly zero at factor 0) and what the provenance adds."""

    def __init__(self, raw: Vector, info: Mapping[str, Any]) -> None:
        self.raw = np.asarray(raw, dtype=np.float64)
        self.info = dict(info)

    def scaled(self, factor: float) -> tuple[Vector, dict[str, Any]]:
        vector: Vector = factor * self.raw
        return vector, {}


class DirectionBaseline(Baseline):
    """A baseline that computes a raw direction, then scales it by `normalize`: one shared
    vector, or ("per_input") for each input the smallest scale that puts it on the margin."""

    @abc.abstractmethod
    def direction(self, context: MethodContext) -> Direction:
        """The raw direction, before any scaling."""

    def vector(self, context: MethodContext) -> tuple[Vector, dict[str, Any]]:
        direction = self.direction(context)
        scaling = scale_direction(self.name, direction.raw, context, self.normalize)
        vector, extra = direction.scaled(scaling.factor)
        return vector, {**direction.info, **extra, **scaling.info}

    def compute(self, context: MethodContext) -> MethodResult:
        if self.normalize != "per_input":
            return super().compute(context)
        start = time.perf_counter()
        direction = self.direction(context)
        norm = raw_norm(self.name, direction.raw)
        scales = smallest_scales(self.name, direction.raw, context.concept, context.inputs.hidden)
        vectors = []
        for i, factor in enumerate(scales.factors):
            vector, extra = direction.scaled(float(factor))
            binding = int(scales.binding[i])
            vectors.append(
                (
                    vector,
                    {
                        **direction.info,
                        **extra,
                        "normalize": "per_input",
                        "direction": self.name,
                        "input": i,
                        "raw_norm": norm,
                        "factor": float(factor),
                        "rhs": [float(r) for r in scales.rhs[i]],
                        "binding_direction": None if binding < 0 else binding,
                        "probe_projection": float(factor * scales.projections[0]),
                        "already_satisfied": bool(factor == 0.0),
                    },
                )
            )
        satisfied = int((scales.factors == 0).sum())
        return self.result(
            context, vectors, shared=False, start=start, info={"already_satisfied": satisfied}
        )
