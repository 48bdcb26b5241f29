"""A steering vector: the direction added to the residual stream, where, and how it was made."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import attrs

from steerkit._arrays import FloatArray, float_array
from steerkit.errors import ValidationError
from steerkit.steering_function import SteeringFunction

__all__ = ["Positions", "SteeringVector"]

_OWNER = "SteeringVector"


class Positions(str, enum.Enum):
    """Which token positions the vector is added at."""

    ALL = "all"
    PROMPT = "prompt"
    GENERATED = "generated"
    #: every position, each with its own optimal vector v*(r_t) from the vector's steering
    #: function (k = 1), added only where the position's margin r_t is positive
    ADAPTIVE = "adaptive"

    def __str__(self) -> str:
        return self.value


def _vector(value: Any) -> FloatArray:
    return float_array(_OWNER, "vector", value, ndim=1)


def _positions(value: Any) -> Positions:
    try:
        return Positions(value)
    except ValueError as e:
        allowed = ", ".join(p.value for p in Positions)
        raise ValidationError(_OWNER, "positions", f"one of {allowed}", repr(value)) from e


@attrs.frozen(eq=False)
class SteeringVector:
    """vector: (d_model,) added as `scale` × vector at `hook_point`.

    provenance records how it was made (method, solver, λ or ε, the δ support and its feature ids)
    so that a saved vector says what it is. function: the steering function v*(r) that
    positions "adaptive" evaluates at every token (then `vector` is the answer at the prompt's
    last token, kept for reporting); None for a fixed vector.
    """

    vector: FloatArray = attrs.field(converter=_vector)
    hook_point: str
    scale: float = 1.0
    positions: Positions = attrs.field(default=Positions.ALL, converter=_positions)
    layer: int | None = None
    provenance: Mapping[str, Any] = attrs.field(factory=dict)
    function: SteeringFunction | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.hook_point, str) or not self.hook_point:
            raise ValidationError(
                _OWNER,
                "hook_point",
                "a hook name such as 'blocks.6.hook_resid_pre'",
                repr(self.hook_point),
            )
        if not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise ValidationError(_OWNER, "scale", "a finite number", repr(self.scale))
        self._check_function()

    def _check_function(self) -> None:
        function = self.function
        if function is not None and not isinstance(function, SteeringFunction):
            raise ValidationError(
                _OWNER, "function", "a steerkit.SteeringFunction or None", type(function).__name__
            )
        if self.positions is Positions.ADAPTIVE and function is None:
            raise ValidationError(
                _OWNER,
                "function",
                "a SteeringFunction for positions 'adaptive' (the per-token optimal vector needs "
                "one constraint, k = 1: use method qp_adaptive or socp_adaptive)",
                "None",
            )
        if function is not None and function.d_model != self.d_model:
            raise ValidationError(
                _OWNER, "function", f"a table of width {self.d_model}", str(function.d_model)
            )

    @property
    def d_model(self) -> int:
        return int(self.vector.shape[0])

    @property
    def norm(self) -> float:
        """‖vector‖₂ (before scale)."""
        return float((self.vector @ self.vector) ** 0.5)

    def scaled(self, scale: float) -> SteeringVector:
        """The same vector with another scale α."""
        return attrs.evolve(self, scale=scale)
