"""SAE-feature baselines: one decoder row (`single_feature`), or the k decoder rows of the features
most correlated with the target class, weighted by that correlation (`topk_features`).

Both are Dᵀδ for a sparse δ ≥ 0: the provenance's `support` (feature ids) and `support_values`
(δ there, after scaling) reproduce the vector exactly, as the optimal methods' do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from steerkit import Activations, MethodContext, SteerkitError, ValidationError
from steerkit.checks import float_array, integer, optional_integer
from steerkit_baselines._common import (
    Direction,
    DirectionBaseline,
    Vector,
    d_model,
    target_indicator,
    training_data,
)

__all__ = ["SingleFeature", "TopKFeatures", "class_correlation"]


def class_correlation(features: Any, labels: Any, target_class: int) -> Vector:
    """(d_sae,) Pearson correlation of each feature's activation (n, d_sae) with the indicator of
    `labels == target_class` (n,); a feature constant over the n examples gets 0."""
    f = float_array("class_correlation", "features", features, ndim=2)
    y = (np.asarray(labels) == target_class).astype(np.float64)
    if f.shape[0] != y.shape[0]:
        raise ValidationError(
            "class_correlation", "features", f"an ({y.shape[0]}, d_sae) array", f"{f.shape}"
        )
    yc = y - y.mean()
    y_norm = float(np.linalg.norm(yc))
    if y_norm == 0.0:
        raise ValidationError(
            "class_correlation", "labels", "both the target class and another class", repr(labels)
        )
    fc = f - f.mean(axis=0)
    f_norm = np.linalg.norm(fc, axis=0)
    constant = np.ptp(f, axis=0) == 0
    denominator = np.where(constant, 1.0, f_norm * y_norm)
    correlation: Vector = np.where(constant, 0.0, (fc.T @ yc) / denominator)
    return correlation


def _decoder(owner: str, context: MethodContext) -> Vector:
    """D (d_sae, d_model): `context.decoder`, or the source's SAE decoder."""
    decoder = context.decoder
    if decoder is None and context.source is not None:
        try:
            decoder = context.source.decoder()
        except (NotImplementedError, SteerkitError):  # a source without an SAE
            decoder = None
    if decoder is None:
        raise SteerkitError(
            f"method {owner!r} steers along SAE decoder rows and needs the SAE decoder: pass "
            "MethodContext(decoder=source.decoder()), or a source with an SAE"
        )
    d = float_array(owner, "decoder", decoder, ndim=2)
    if d.shape[1] != d_model(context):
        raise ValidationError(
            owner, "decoder", f"a (d_sae, {d_model(context)}) array", f"shape {d.shape}"
        )
    return d


def _features(owner: str, context: MethodContext, train: Activations) -> Vector:
    """(n, d_sae) SAE features of the training split: `train.features`, or encoded by the source."""
    if train.features is not None:
        return float_array(owner, "train.features", train.features, ndim=2)
    if context.source is None:
        raise SteerkitError(
            f"method {owner!r} ranks SAE features by their correlation with the target class and "
            "needs the training split's SAE features: pass train activations with features "
            "(source.activations(...) of a source with an SAE) or MethodContext(source=...)"
        )
    try:
        return float_array(owner, "features", context.source.encode(train.hidden), ndim=2)
    except (NotImplementedError, SteerkitError) as e:
        raise SteerkitError(
            f"method {owner!r} needs SAE features of the training split, and the source cannot "
            f"encode them ({e}); use a source with an SAE"
        ) from e


def _correlation(owner: str, context: MethodContext, d_sae: int) -> Vector:
    train, labels = training_data(owner, context)
    target_indicator(owner, labels, context.target_class)
    features = _features(owner, context, train)
    if features.shape[1] != d_sae:
        raise SteerkitError(
            f"method {owner!r}: the training features have {features.shape[1]} columns but the "
            f"decoder has {d_sae} rows; use the features and decoder of one SAE"
        )
    return class_correlation(features, labels, context.target_class)


class FeatureDirection(Direction):
    """Dᵀδ for a δ ≥ 0 on a few features: at a factor c the vector is exactly Dᵀ(c·δ), and the
    provenance's `support` and `support_values` say so (both empty at c = 0: no feature)."""

    def __init__(
        self,
        decoder: Vector,
        support: np.ndarray[Any, Any],
        weights: Vector,
        info: Mapping[str, Any],
    ) -> None:
        self.rows = decoder[support]
        self.support = [int(i) for i in support]
        self.weights = np.asarray(weights, dtype=np.float64)
        super().__init__(self.rows.T @ self.weights, info)

    def scaled(self, factor: float) -> tuple[Vector, dict[str, Any]]:
        if factor == 0.0:
            zero: Vector = np.zeros(self.rows.shape[1])
            return zero, {"support": [], "support_values": []}
        values = factor * self.weights
        vector: Vector = self.rows.T @ values
        return vector, {"support": self.support, "support_values": [float(v) for v in values]}


class SingleFeature(DirectionBaseline):
    """One SAE decoder row: feature `feature`, or by default the feature whose activation on the
    training split is most correlated with the target class; scaled by `normalize`.

    feature: an SAE feature id, or None to choose by correlation.
    """

    name = "single_feature"

    def __init__(self, *, feature: int | None = None, normalize: str = "margin") -> None:
        super().__init__(normalize=normalize)
        self.feature: int | None = optional_integer(self.name, "feature", feature, minimum=0)

    def params(self) -> dict[str, Any]:
        return {"feature": self.feature, **super().params()}

    def direction(self, context: MethodContext) -> Direction:
        decoder = _decoder(self.name, context)
        extra: dict[str, Any] = {}
        if self.feature is None:
            correlation = _correlation(self.name, context, decoder.shape[0])
            feature = int(np.argmax(correlation))
            if correlation[feature] <= 0:
                raise SteerkitError(
                    f"method {self.name!r}: no SAE feature's activation is positively correlated "
                    f"with class {context.target_class} on the training split; choose one with "
                    "`feature=`"
                )
            extra = {"selected_by": "correlation", "correlation": float(correlation[feature])}
        else:
            feature = self.feature
            if feature >= decoder.shape[0]:
                raise ValidationError(
                    self.name,
                    "feature",
                    f"an SAE feature id below d_sae = {decoder.shape[0]}",
                    repr(feature),
                )
            extra = {"selected_by": "config"}
        info = {"selected_feature": feature, **extra}
        return FeatureDirection(decoder, np.array([feature]), np.ones(1), info)


class TopKFeatures(DirectionBaseline):
    """Σ_j c_j · D_j over the k SAE features j most correlated with the target class on the
    training split, c_j their (positive) correlation; features with correlation ≤ 0 are left
    out. Scaled by `normalize`.

    k: how many features.
    """

    name = "topk_features"

    def __init__(self, *, k: int = 10, normalize: str = "margin") -> None:
        super().__init__(normalize=normalize)
        self.k: int = integer(self.name, "k", k, minimum=1)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, **super().params()}

    def direction(self, context: MethodContext) -> Direction:
        decoder = _decoder(self.name, context)
        correlation = _correlation(self.name, context, decoder.shape[0])
        top = np.argsort(-correlation, kind="stable")[: self.k]
        top = np.sort(top[correlation[top] > 0])
        if top.size == 0:
            raise SteerkitError(
                f"method {self.name!r}: no SAE feature's activation is positively correlated "
                f"with class {context.target_class} on the training split"
            )
        info = {"correlations": [float(c) for c in correlation[top]]}
        return FeatureDirection(decoder, top, correlation[top], info)
