"""Judges that use a probe at another layer than the steering one (the last layer by default),
trained on the task's training texts as read by the unsteered model there — a probe the
optimisation never saw:

- `readback`: the unsteered model reads prompt + generated text; the held-out probe's
  P(target) at the last token is the concept score of the generation (behaviour);
- `heldout_probe`: the input text's steered forward pass (each input's vector added at the
  steering hook) read at the held-out layer by the same probe: P(target) before and after,
  the shift and the flips (the probe-level effect, measured where the vectors were not
  optimised).

The probe comes from the probe registry (steerkit-probes' `logistic` by default) and is fitted
once per process for the same source, layer, probe, training texts and seed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

import steerkit
from steerkit import (
    ActivationSource,
    Column,
    EvalContext,
    LabelledTexts,
    Metric,
    Needs,
    Probe,
    SteerkitError,
    ValidationError,
)
from steerkit.checks import optional_integer, string
from steerkit_metrics._context import (
    generations_to_score,
    nan_column,
    per_input_vectors,
    require_source,
    require_texts,
    training_split,
)
from steerkit_metrics.probe_shift import probe_shift_columns, target_column

__all__ = ["HeldOutProbe", "Readback", "held_out_hook"]

_MEMO_SIZE = 4
# (id(source), hook, probe, params, texts digest, seed) → (source, reader, probe)
_FITTED: OrderedDict[tuple[Any, ...], tuple[ActivationSource, ActivationSource, Probe]] = (
    OrderedDict()
)


def held_out_hook(source: ActivationSource, hook_point: str | None, layer: int | None) -> str:
    """`hook_point` when given, else `blocks.{layer}.hook_resid_post` (a negative layer counts
    from the end: −1 is the last block, which needs the source's `describe().n_layers`)."""
    if hook_point is not None:
        return hook_point
    layer = -1 if layer is None else layer
    if layer < 0:
        n_layers = source.describe().n_layers
        if n_layers is None:
            raise ValidationError(
                "held-out probe",
                "layer",
                "a block index ≥ 0, or a hook_point: the source does not say its number of "
                "layers, so a layer counted from the end is unknown",
                repr(layer),
            )
        layer += n_layers
        if layer < 0:
            raise ValidationError(
                "held-out probe", "layer", f"a layer within the model's {n_layers}", repr(layer)
            )
    return f"blocks.{layer}.hook_resid_post"


def _digest(train: LabelledTexts) -> str:
    h = hashlib.sha256()
    for text in train.texts:
        h.update(text.encode("utf-8") + b"\x00")
    h.update(np.asarray(train.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


class _HeldOut(Metric):
    """What `readback` and `heldout_probe` share: the held-out layer and its fitted probe.

    hook_point: where the held-out probe reads (default from `layer`); layer: its block
    (default −1, the last; the hook is `blocks.{layer}.hook_resid_post`); probe: a name in the
    probe registry; probe_params: its constructor's parameters.
    """

    def __init__(
        self,
        hook_point: str | None = None,
        layer: int | None = None,
        probe: str = "logistic",
        probe_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.hook_point = (
            None if hook_point is None else string(self.name, "hook_point", hook_point)
        )
        self.layer = optional_integer(self.name, "layer", layer)
        if self.hook_point is not None and self.layer is not None:
            raise ValidationError(
                self.name, "layer", "layer or hook_point, not both", f"layer = {layer!r}"
            )
        self.probe = string(self.name, "probe", probe)
        if probe_params is not None and not isinstance(probe_params, Mapping):
            raise ValidationError(
                self.name, "probe_params", "a table of the probe's parameters", repr(probe_params)
            )
        self.probe_params = dict(probe_params or {})

    def __repr__(self) -> str:
        where = f"hook_point={self.hook_point!r}" if self.hook_point else f"layer={self.layer!r}"
        return f"{type(self).__name__}({where}, probe={self.probe!r})"

    def fitted(self, context: EvalContext) -> tuple[ActivationSource, Probe, int]:
        """The source read at the held-out hook, the probe fitted there on the training texts,
        and the column of its predict_proba that holds P(target)."""
        source = require_source(context, self.name, "activations at another hook (at_hook)")
        hook = held_out_hook(source, self.hook_point, self.layer)
        if hook == context.inputs.hook_point:
            raise ValidationError(
                self.name,
                "layer",
                f"a layer other than the steering hook {hook!r}: a probe where the vectors were "
                "optimised is not independent evidence",
                repr(hook),
            )
        train = training_split(context, self.name, "held-out probe")
        key = (
            id(source),
            hook,
            self.probe,
            repr(sorted(self.probe_params.items())),
            _digest(train),
            int(context.seed),
        )
        entry = _FITTED.get(key)
        if entry is None or entry[0] is not source:
            try:
                reader = source.at_hook(hook)
            except NotImplementedError as e:
                raise SteerkitError(
                    f"the {self.name!r} metric needs a source that reads another hook: {e}"
                ) from e
            cls = steerkit.get_host().registry("probe").get(self.probe)
            hidden = reader.activations(list(train.texts)).hidden
            probe = cls(**self.probe_params).fit(hidden, train.labels, seed=context.seed)
            entry = (source, reader, probe)
            _FITTED[key] = entry
            while len(_FITTED) > _MEMO_SIZE:
                _FITTED.popitem(last=False)
        _FITTED.move_to_end(key)
        _, reader, probe = entry
        n_classes = len(np.unique(train.labels))
        return reader, probe, target_column(probe, context.target_class, n_classes)


class Readback(_HeldOut):
    """Columns: `readback`, the held-out probe's P(target) of prompt i + its steered generation
    read by the unsteered model (at the last token); `readback_base`, of prompt i + the unsteered
    generation. NaN for rows without a generation, inputs without a vector and blank
    generations. With `with_prompt = False` the generation is read alone."""

    name = "readback"

    def __init__(
        self,
        hook_point: str | None = None,
        layer: int | None = None,
        probe: str = "logistic",
        probe_params: Mapping[str, Any] | None = None,
        with_prompt: bool = True,
    ) -> None:
        super().__init__(hook_point, layer, probe, probe_params)
        if not isinstance(with_prompt, bool):
            raise ValidationError(self.name, "with_prompt", "true or false", repr(with_prompt))
        self.with_prompt = with_prompt

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "readback",
                "readback",
                better="higher",
                format=".3f",
                description="P(target) of the steered generation, read back by the unsteered "
                "model and a probe at another layer",
                role="effect",
            ),
            Column(
                "readback_base",
                "readback base",
                format=".3f",
                description="the same of the unsteered generation",
                table=False,
            ),
        )

    def requires(self) -> Needs:
        return Needs(model=True, generations=True, text_classifier=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        n = len(context.inputs)
        out = {"readback": nan_column(n), "readback_base": nan_column(n)}
        scored = generations_to_score(context, self.name)
        if not scored:
            return out
        reader, probe, column = self.fitted(context)
        texts = [(context.prompts[i] if self.with_prompt else "") + text for _, i, text in scored]
        hidden = reader.activations(texts).hidden
        p = np.asarray(probe.predict_proba(hidden), dtype=np.float64)[:, column]
        for (which, i, _), value in zip(scored, p):
            out["readback" if which == "steered" else "readback_base"][i] = float(value)
        return out


class HeldOutProbe(_HeldOut):
    """Columns: `heldout_p_before` and `heldout_p_after`, the held-out probe's P(target) of each
    input text at the held-out layer without and with its vector added at the steering hook (one
    steered forward pass, `source.steered_hidden`); `heldout_shift`, their difference;
    `heldout_flipped`, 1.0 when the held-out probe's class was not the target and is, 0.0 when
    it still is not, NaN when it already was. NaN for inputs without a vector."""

    name = "heldout_probe"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "heldout_shift",
                "Δ held-out probe",
                better="higher",
                description="P(target) after − before of a probe at another layer, which the "
                "vectors were not optimised against",
                role="effect",
            ),
            Column(
                "heldout_flipped",
                "held-out flipped",
                better="higher",
                description="share of inputs the held-out probe moves into the target class",
            ),
            Column(
                "heldout_p_after",
                "held-out P after",
                better="higher",
                description="the held-out probe's P(target) after steering",
                table=False,
            ),
            Column(
                "heldout_p_before",
                "held-out P before",
                description="the held-out probe's P(target) before steering",
                table=False,
            ),
        )

    def requires(self) -> Needs:
        return Needs(model=True, text_classifier=True)

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        texts = require_texts(context, self.name)
        vectors = per_input_vectors(context)
        n = len(vectors)
        out = {c.name: nan_column(n) for c in self.columns()}
        valid = [i for i, v in enumerate(vectors) if v is not None]
        if not valid:
            return out
        reader, probe, _ = self.fitted(context)
        source = require_source(context, self.name, "steered activations (steered_hidden)")
        chosen = [texts[i] for i in valid]
        before = np.asarray(reader.activations(chosen).hidden, dtype=np.float64)
        after = before.copy()
        moved = [k for k, i in enumerate(valid) if _adds_something(vectors[i])]
        if moved:
            try:
                steered = source.steered_hidden(
                    [chosen[k] for k in moved],
                    [vectors[valid[k]] for k in moved],
                    hook_point=reader.hook_point,
                )
            except NotImplementedError as e:
                raise SteerkitError(
                    f"the {self.name!r} metric needs a source that gives steered activations: {e}"
                ) from e
            after[moved] = np.asarray(steered, dtype=np.float64)
        p_before, p_after, shift, flipped = probe_shift_columns(
            probe, context.target_class, before, after
        )
        out["heldout_p_before"][valid] = p_before
        out["heldout_p_after"][valid] = p_after
        out["heldout_shift"][valid] = shift
        out["heldout_flipped"][valid] = flipped
        return out


def _adds_something(vector: Any) -> bool:
    return float(vector.scale) != 0.0 and bool(np.any(np.asarray(vector.vector)))
