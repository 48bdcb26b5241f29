"""`probe_shift`: the probe's P(target) before and after adding α·v to each input's activation.

The probe reads the activation at the hook point where the vector is added, so this is computed
from the activations alone (h and h + α·v): the model is not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from steerkit import Column, EvalContext, Metric, Probe, ValidationError
from steerkit_metrics._context import added_vectors, nan_column

__all__ = ["ProbeShift", "probe_shift_columns", "target_column"]


def target_column(probe: Probe, target_class: int, n_columns: int) -> int:
    """The column of `probe.predict_proba` holding P(target_class): its index in the probe's
    `classes` when the probe has them (steerkit-probes' do, in column order), else the class
    itself (classes 0 … C−1)."""
    classes = getattr(probe, "classes", None)
    if classes is not None:
        listed = [int(c) for c in classes]
        if target_class not in listed:
            raise ValidationError(
                "EvalContext",
                "target_class",
                f"one of the probe's classes {listed}",
                repr(target_class),
            )
        return listed.index(target_class)
    if isinstance(target_class, bool) or not 0 <= target_class < n_columns:
        raise ValidationError(
            "EvalContext",
            "target_class",
            f"a class in 0 … {n_columns - 1} (the probe's predict_proba has {n_columns} columns)",
            repr(target_class),
        )
    return int(target_class)


class ProbeShift(Metric):
    """Columns: `p_before`, `p_after` (the probe's P(target) of h and of h + α·v), `probe_shift`
    (p_after − p_before) and `flipped` (1.0 when the probe's predicted class, its most probable,
    was not the target before and is after; 0.0 when it was not and still is not; NaN for inputs
    already classed as the target before). Every column is NaN for an input without a vector."""

    name = "probe_shift"

    def columns(self) -> tuple[Column, ...]:
        return (
            Column(
                "probe_shift",
                "Δ probe",
                better="higher",
                description="the steering probe's P(target) after − before (the optimised "
                "quantity, not independent evidence)",
                role="effect",
            ),
            Column("p_after", "P after", better="higher", description="P(target) after"),
            Column(
                "flipped",
                "flipped",
                better="higher",
                description="share of inputs not in the target class before that are after",
            ),
            Column("p_before", "P before", description="P(target) before", table=False),
        )

    def compute(self, context: EvalContext) -> Mapping[str, Any]:
        probe = context.probe
        if probe is None:
            raise ValidationError(
                "EvalContext",
                "probe",
                "the trained probe (EvalContext(probe=...)): the 'probe_shift' metric scores "
                "activations with it",
                "None",
            )
        added, valid = added_vectors(context)
        n = len(valid)
        columns = {c: nan_column(n) for c in ("p_before", "p_after", "probe_shift", "flipped")}
        if not valid.any():
            return columns
        hidden = np.asarray(context.inputs.hidden, dtype=np.float64)[valid]
        shifted = probe_shift_columns(probe, context.target_class, hidden, hidden + added[valid])
        for name, values in zip(("p_before", "p_after", "probe_shift", "flipped"), shifted):
            columns[name][valid] = values
        return columns


def probe_shift_columns(
    probe: Probe, target_class: int, before: Any, after: Any
) -> tuple[Any, Any, Any, Any]:
    """The probe's P(target) of the activations `before` and `after` steering (m, d_model), their
    difference, and the flips: 1.0 when the predicted class was not the target and is, 0.0 when
    it still is not, NaN when it already was; four (m,) arrays."""
    p_before = _probabilities(probe, before, "h")
    p_after = _probabilities(probe, after, "h + α·v")
    column = target_column(probe, target_class, p_before.shape[1])
    was_target = np.argmax(p_before, axis=1) == column
    is_target = np.argmax(p_after, axis=1) == column
    flipped = np.where(was_target, np.nan, is_target.astype(np.float64))
    return (
        p_before[:, column],
        p_after[:, column],
        p_after[:, column] - p_before[:, column],
        flipped,
    )


def _probabilities(probe: Probe, hidden: np.ndarray[Any, Any], what: str) -> Any:
    probabilities = np.asarray(probe.predict_proba(hidden), dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != hidden.shape[0]:
        raise ValidationError(
            type(probe).__name__,
            "predict_proba",
            f"an ({hidden.shape[0]}, n_classes) array of probabilities of {what}",
            f"shape {probabilities.shape}",
        )
    return probabilities
