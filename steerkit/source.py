"""Stage 2: an activation source (a model, a hook point, an SAE), the activations it gives and
what it says about itself — and the steered passes through which stage 7 (`Intervention`) runs.

Callers steer through `logits`, `continuation_logprobs`, `generate` and `steered_hidden`, passing
`vector` in any form `Intervention.of` takes; a source implements the per-row form only
(`_logits`, `_continuation_logprobs`, `_generate`, `_steered_hidden`), receiving an
`Intervention` checked once, here.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from steerkit._arrays import FloatArray, float_array
from steerkit.errors import ValidationError
from steerkit.intervention import Intervention, RowVectors

__all__ = ["ActivationSource", "Activations", "SourceInfo", "layer_of"]


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

    def take(self, indices: Sequence[int]) -> Activations:
        """The rows `indices`, in that order."""
        index = list(indices)
        features = self.features
        return Activations(
            hidden=self.hidden[index],
            hook_point=self.hook_point,
            features=None if features is None else features[index],
        )


def layer_of(hook_point: str) -> int | None:
    """The block index of a hook point named `blocks.{L}.…` (None for any other name)."""
    match = re.match(r"^blocks\.(\d+)\.", hook_point)
    return int(match.group(1)) if match else None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _params(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(
            "SourceInfo", "params", "a mapping of constructor parameters, or None", repr(value)
        )
    return dict(value)


@attrs.frozen
class SourceInfo:
    """What a source is: for provenance (run.json, saved vectors, the report) and to rebuild it.

    name: the source plugin's registered name; hook_point and layer (its block index, None
    outside the blocks); n_layers: the model's number of blocks; d_model: the residual width
    (both when known without loading the model);
    model: the model's name; preset: the preset it was built from, if any;
    weights: what weights actually ran, where they differ from the named model's published ones
    (e.g. de-quantised from a 4-bit GGUF) — so that nobody compares numbers as if they were the
    same model; sae_release, sae_id, d_sae: the SAE; params: the constructor parameters that
    rebuild this source through the registry (`registry.get(name)(**params)`), or None for a
    source built from objects in code, which cannot be rebuilt.
    """

    name: str
    hook_point: str
    layer: int | None = None
    n_layers: int | None = None
    d_model: int | None = None
    model: str | None = attrs.field(default=None, converter=_optional_str)
    preset: str | None = attrs.field(default=None, converter=_optional_str)
    weights: str | None = attrs.field(default=None, converter=_optional_str)
    sae_release: str | None = attrs.field(default=None, converter=_optional_str)
    sae_id: str | None = attrs.field(default=None, converter=_optional_str)
    d_sae: int | None = None
    params: Mapping[str, Any] | None = attrs.field(default=None, converter=_params)

    def __attrs_post_init__(self) -> None:
        for field in ("name", "hook_point"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValidationError("SourceInfo", field, "a non-empty string", repr(value))
        for field in ("layer", "n_layers", "d_model", "d_sae"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValidationError("SourceInfo", field, "an integer or None", repr(value))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (`from_dict` reads them back)."""
        out = attrs.asdict(self)
        out["params"] = None if self.params is None else dict(self.params)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceInfo:
        """A SourceInfo from `to_dict()`'s output; unknown keys are rejected, naming them."""
        if not isinstance(data, Mapping):
            raise ValidationError("SourceInfo", "data", "a mapping", type(data).__name__)
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                "SourceInfo", "data", f"keys among {sorted(known)}", f"unknown keys {unknown}"
            )
        missing = [k for k in ("name", "hook_point") if not data.get(k)]
        if missing:
            raise ValidationError("SourceInfo", missing[0], "a non-empty string", "missing")
        return cls(**dict(data))


def _text_list(owner: str, field: str, texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValidationError(
            owner, field, "a sequence of strings (a list, not one string)", type(texts).__name__
        )
    return list(texts)


class ActivationSource(abc.ABC):
    """Text in, activations out; and the steered forward passes.

    A source implements `hook_point`, `activations`, `decoder` (when it has an SAE), `describe`,
    and whichever of `_logits`, `_continuation_logprobs` and `_generate` it can run: each gets
    the texts and an `Intervention` with one row per text, and must add row b's vector to text b
    inside its batched pass (removing its hooks afterwards, also on error). Callers use the
    public `logits`, `continuation_logprobs` and `generate`.
    """

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

    def describe(self) -> SourceInfo:
        """What this source is (see SourceInfo). The default knows only the name and the hook;
        a source that can be rebuilt from parameters says so in `params`."""
        return SourceInfo(
            name=self.name, hook_point=self.hook_point, layer=layer_of(self.hook_point)
        )

    def encode(self, hidden: Any) -> FloatArray:
        """SAE feature activations (n, d_sae) of residual activations (n, d_model)."""
        raise NotImplementedError(f"source {self.name!r} has no SAE encoder")

    def feature_cards(
        self, feature_ids: Sequence[int], texts: Sequence[str], **options: Any
    ) -> dict[str, Any]:
        """What SAE features mean, for the report's feature cards and `steerkit features`:
        {"cards": [{"feature", "lens_tokens", "output_score", "max_activation", "dead",
        "contexts"}, ...], "d_sae", "n_texts", "n_dead", "method"} (JSON-ready), from the
        model's unembedding and the SAE on every token of `texts`."""
        raise NotImplementedError(f"source {self.name!r} cannot describe SAE features")

    def output_scores(self, feature_ids: Sequence[int], **options: Any) -> FloatArray:
        """The output score (Arad, Mueller & Belinkov 2025) of each SAE feature `feature_ids`,
        (n,) float64 in [0, 1]: how strongly amplifying the feature promotes its own logit-lens
        top tokens. For cost-weighted steering (`costs="output_score"`)."""
        raise NotImplementedError(f"source {self.name!r} cannot compute output scores")

    def at_hook(self, hook_point: str) -> ActivationSource:
        """The same model read at another hook point, without an SAE (e.g. a judge reading text
        back at the last layer); the model is shared, not loaded again."""
        raise NotImplementedError(f"source {self.name!r} cannot read another hook point")

    # -- the steered passes: what callers use ---------------------------------------------------

    def logits(self, texts: Sequence[str], vector: RowVectors = None) -> FloatArray:
        """Next-token logits (n, d_vocab) at each text's last real token, each text steered by
        its row of `vector` (one vector for all, None, or one vector or None per text)."""
        rows = _text_list(type(self).__name__, "texts", texts)
        return self._logits(rows, Intervention.of(vector, len(rows)))

    def continuation_logprobs(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        vector: RowVectors = None,
    ) -> list[FloatArray]:
        """For each pair, the log-probability of every token of the continuation given the prompt
        and the continuation's earlier tokens (natural log), each pair steered by its row of
        `vector`."""
        rows = _text_list(type(self).__name__, "prompts", prompts)
        return self._continuation_logprobs(rows, continuations, Intervention.of(vector, len(rows)))

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 32,
        vector: RowVectors = None,
        seed: int = 0,
        **options: Any,
    ) -> list[str]:
        """The continuation (new text only) of each prompt, each steered by its row of `vector`;
        `options` are the source's own (sampling, stopping)."""
        rows = _text_list(type(self).__name__, "prompts", prompts)
        return self._generate(
            rows,
            Intervention.of(vector, len(rows)),
            max_new_tokens=max_new_tokens,
            seed=seed,
            **options,
        )

    def steered_hidden(
        self, texts: Sequence[str], vector: RowVectors = None, *, hook_point: str | None = None
    ) -> FloatArray:
        """(n, d_model) activations at `hook_point` (default: this source's; any hook of the
        model) at each text's last real token, in a forward pass with each text steered by its row
        of `vector` at the vector's own hook point — where steering at one layer lands at another
        (e.g. a held-out probe's layer). Never read from or written to an activation cache."""
        rows = _text_list(type(self).__name__, "texts", texts)
        hook = self.hook_point if hook_point is None else hook_point
        if not isinstance(hook, str) or not hook:
            raise ValidationError(
                type(self).__name__, "hook_point", "a hook point name", repr(hook_point)
            )
        return self._steered_hidden(rows, Intervention.of(vector, len(rows)), hook)

    # -- the steered passes: what a source implements ------------------------------------------

    def _steered_hidden(
        self, texts: list[str], steering: Intervention, hook_point: str
    ) -> FloatArray:
        raise NotImplementedError(f"source {self.name!r} gives no steered activations")

    def _logits(self, texts: list[str], steering: Intervention) -> FloatArray:
        raise NotImplementedError(f"source {self.name!r} gives no logits")

    def _continuation_logprobs(
        self, prompts: list[str], continuations: Sequence[str], steering: Intervention
    ) -> list[FloatArray]:
        raise NotImplementedError(f"source {self.name!r} cannot score continuations")

    def _generate(
        self,
        prompts: list[str],
        steering: Intervention,
        *,
        max_new_tokens: int,
        seed: int,
        **options: Any,
    ) -> list[str]:
        raise NotImplementedError(f"source {self.name!r} cannot generate text")
