"""Stage 2: an activation source (a model, a hook point, an SAE) and the activations it gives."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import attrs

from steerkit._arrays import FloatArray, float_array
from steerkit.errors import ValidationError
from steerkit.vector import SteeringVector

__all__ = ["ActivationSource", "Activations"]


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

    def logits(self, texts: Sequence[str], vector: SteeringVector | None = None) -> FloatArray:
        """Next-token logits (n, d_vocab) at each text's last real token, steered by `vector`."""
        raise NotImplementedError(f"source {self.name!r} gives no logits")

    def continuation_logprobs(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        vector: SteeringVector | None = None,
    ) -> list[FloatArray]:
        """For each pair, the log-probability of every token of the continuation given the prompt
        and the continuation's earlier tokens (natural log), steered by `vector` if given."""
        raise NotImplementedError(f"source {self.name!r} cannot score continuations")

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 32,
        vector: SteeringVector | None = None,
        seed: int = 0,
    ) -> list[str]:
        """Continuations of each prompt, steered by `vector` if given."""
        raise NotImplementedError(f"source {self.name!r} cannot generate text")
