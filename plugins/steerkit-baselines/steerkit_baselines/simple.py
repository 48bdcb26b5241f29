"""`no_steering` (the zero vector, on purpose) and `random_direction` (a seeded direction)."""

from __future__ import annotations

from typing import Any

import numpy as np

from steerkit import MethodContext
from steerkit.checks import optional_integer
from steerkit_baselines._common import Baseline, Direction, DirectionBaseline, Vector, d_model

__all__ = ["NoSteering", "RandomDirection"]


class NoSteering(Baseline):
    """The zero vector: the unsteered reference every other method is compared with.

    `normalize` is accepted like every baseline's and has no effect (zero stays zero); the
    provenance flags the vector with `"method": "no_steering"` and `"zero": True`.
    """

    name = "no_steering"
    family = "control"

    def vector(self, context: MethodContext) -> tuple[Vector, dict[str, Any]]:
        return np.zeros(d_model(context)), {"zero": True}


class RandomDirection(DirectionBaseline):
    """A uniformly random direction: a normal draw from `numpy.random.default_rng(seed)`, made
    unit-norm, its sign flipped if it points away from the target (w·v < 0, recorded as
    `flipped_sign`), then scaled by `normalize`.

    seed: the draw's seed; None takes the context's seed.
    """

    name = "random_direction"

    def __init__(self, *, seed: int | None = None, normalize: str = "margin") -> None:
        super().__init__(normalize=normalize)
        self.seed: int | None = optional_integer(self.name, "seed", seed, minimum=0)

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed, **super().params()}

    def direction(self, context: MethodContext) -> Direction:
        seed = self.seed if self.seed is not None else int(context.seed)
        draw = np.random.default_rng(seed).standard_normal(d_model(context))
        draw /= np.linalg.norm(draw)
        flipped = bool(float(context.concept.directions[0] @ draw) < 0)
        if flipped:
            draw = -draw
        return Direction(draw, {"seed_used": seed, "flipped_sign": flipped})
