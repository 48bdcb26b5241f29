"""Every baseline on a tiny TransformerLens model with a tiny SAE and a logistic probe, checked
against hand computations: plain forward passes, plain `source.activations` calls, np.corrcoef."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pytest
from steerkit_baselines import (
    CAAContrastive,
    CAAMeanDiff,
    CAARepE,
    NoSteering,
    ProbeDirection,
    RandomDirection,
    SingleFeature,
    TopKFeatures,
)
from steerkit_baselines.plugin import BASELINES
from steerkit_probes import LogisticProbe
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

import steerkit
from steerkit import (
    Activations,
    Concept,
    InfeasibleError,
    LabelledTexts,
    MethodContext,
    Splits,
    SteeringMethod,
    SteerkitError,
    ValidationError,
)

pytestmark = [pytest.mark.needs_torch, pytest.mark.needs_plugins]

HOOK = "blocks.1.hook_resid_pre"
SUBJECTS = ("the cat", "the dog", "a bird", "the big dog", "the small cat", "a red bird")
VERBS = ("is", "was", "is very", "was very", "is not", "was not")
POSITIVE = [
    f"{s} {v} {'happy' if i % 2 else 'good'}" for i, (s, v) in enumerate(zip(SUBJECTS, VERBS))
]
NEGATIVE = [t.replace("happy", "sad").replace("good", "bad") for t in POSITIVE]
# Three inputs of class 0 to steer, and one already in class 1 (r ≤ 0: ignored by "margin", left
# untouched by "per_input").
INPUTS = [
    "the cat sat on the mat and was sad",
    "a dog ran under the tree and was bad",
    "the bird was sad",
    "the cat is very happy",
]
PAIRS = [
    ("the cat is sad", "the cat is happy"),
    ("a dog was bad", "a dog was good"),
    ("the bird is very sad", "the bird is very happy"),
]
PERSONAS = ("sad bad", "happy good")
QUERIES = ["the cat sat on the mat", "a dog ran", "the bird flew under the tree"]


class TinyTask(steerkit.Dataset):
    """Six texts per class, three contrastive pairs, personas and three neutral queries."""

    name = "tiny-task"

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        train = LabelledTexts([*POSITIVE, *NEGATIVE], [1] * 6 + [0] * 6)
        return Splits(train=train, test=LabelledTexts(INPUTS, [0, 0, 0, 1]))

    def contrastive_pairs(self) -> Sequence[tuple[str, str]]:
        return PAIRS

    def persona_prefixes(self) -> tuple[str, str]:
        return PERSONAS

    def neutral_queries(self) -> Sequence[str]:
        return QUERIES


class BareTask(TinyTask):
    """A task with none of the baselines' prompts (the Dataset defaults raise)."""

    name = "bare-task"
    contrastive_pairs = steerkit.Dataset.contrastive_pairs  # type: ignore[assignment]
    persona_prefixes = steerkit.Dataset.persona_prefixes  # type: ignore[assignment]
    neutral_queries = steerkit.Dataset.neutral_queries  # type: ignore[assignment]


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def source(model: Any) -> TransformerLensSource:
    """The tiny SAE with its decoder tied to its encoder (W_dec = W_encᵀ), so that a feature that
    fires on a class also writes towards it, as in a trained SAE. (With independent random
    decoder rows, whether the most class-correlated feature's row moves the probe the right way
    is a coin toss, and "margin" rightly refuses the ones that do not.)"""
    import torch

    sae = tiny_sae(hook_name=HOOK, seed=1)
    with torch.no_grad():
        sae.W_dec.copy_(sae.W_enc.T)
    return TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False)


@pytest.fixture(scope="module")
def task() -> TinyTask:
    return TinyTask()


@pytest.fixture(scope="module")
def splits(task: TinyTask) -> Splits:
    return task.load(seed=0)


@pytest.fixture(scope="module")
def train(source: TransformerLensSource, splits: Splits) -> Activations:
    return source.activations(splits.train.texts)


@pytest.fixture(scope="module")
def inputs(source: TransformerLensSource) -> Activations:
    return source.activations(INPUTS)


@pytest.fixture(scope="module")
def probe(train: Activations, splits: Splits) -> LogisticProbe:
    return LogisticProbe().fit(train.hidden, splits.train.labels, seed=0)


@pytest.fixture(scope="module")
def concept(probe: LogisticProbe) -> Concept:
    return probe.concept(target_class=1, margin=1.0)


@pytest.fixture(scope="module")
def context(
    inputs: Activations,
    concept: Concept,
    source: TransformerLensSource,
    splits: Splits,
    train: Activations,
    task: TinyTask,
) -> MethodContext:
    return MethodContext(
        inputs=inputs,
        concept=concept,
        decoder=source.decoder(),
        source=source,
        splits=splits,
        train=train,
        dataset=task,
        target_class=1,
        seed=7,
    )


def evolve(context: MethodContext, **changes: Any) -> MethodContext:
    return attrs.evolve(context, **changes)


def vector_of(method: SteeringMethod, context: MethodContext) -> np.ndarray:
    result = method.compute(context)
    assert result.shared and len(result.vectors) == 1 and result.solutions == ()
    (vector,) = result.vectors
    assert vector is not None
    return np.asarray(vector.vector)


def oracle_hidden(model: Any, texts: Sequence[str]) -> np.ndarray:
    """One text at a time through a plain TransformerLens forward pass: the last token's row."""
    rows = []
    for text in texts:
        _, cache = model.run_with_cache(model.to_tokens(text))
        rows.append(cache[HOOK][0, -1].detach().numpy().astype(np.float64))
    return np.stack(rows)


def oracle_correlation(features: np.ndarray, labels: np.ndarray, target: int) -> np.ndarray:
    y = (labels == target).astype(float)
    out = np.zeros(features.shape[1])
    for j in range(features.shape[1]):
        column = features[:, j].astype(float)
        if column.max() != column.min():
            out[j] = np.corrcoef(column, y)[0, 1]
    return out


# -- every baseline ------------------------------------------------------------------------------


def test_the_fixture_has_inputs_on_both_sides_of_the_threshold(
    context: MethodContext, probe: LogisticProbe
) -> None:
    assert probe.accuracy == 1.0
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    assert (rhs[:3] > 0).all() and rhs[3] <= 0


@pytest.mark.parametrize("cls", BASELINES, ids=lambda c: c.name)
def test_every_baseline_gives_one_shared_vector_with_provenance(
    cls: type, context: MethodContext
) -> None:
    method = cls(normalize="margin")  # the default of all but probe_direction (per_input)
    result = method.compute(context)
    assert result.shared is True and len(result.vectors) == 1
    (vector,) = result.vectors
    assert isinstance(vector, steerkit.SteeringVector)
    assert vector.hook_point == HOOK and vector.layer == 1 and vector.scale == 1.0
    assert vector.vector.shape == (16,) and np.isfinite(vector.vector).all()
    provenance = dict(vector.provenance)
    assert provenance["method"] == cls.name
    assert {k: provenance[k] for k in method.params()} == method.params()
    assert json.loads(json.dumps(provenance)) == provenance  # the JSON sidecar can hold it
    assert result.info["seconds"] >= 0
    if cls is NoSteering:
        assert provenance["zero"] is True and not vector.vector.any()
        return
    # "margin": the median input that needs steering lands exactly on the threshold
    w, t = context.concept.directions[0], context.concept.thresholds[0]
    hidden = context.inputs.hidden.astype(np.float64)
    steered = (hidden[:3] + vector.vector) @ w
    assert np.sort(steered - t)[1] == pytest.approx(0.0, abs=1e-9)
    if "support" in provenance:
        decoder = context.source.decoder()  # type: ignore[union-attr]
        rebuilt = decoder[provenance["support"]].T @ np.array(provenance["support_values"])
        np.testing.assert_allclose(vector.vector, rebuilt, rtol=1e-12, atol=1e-12)
        assert min(provenance["support_values"]) > 0


@pytest.mark.parametrize("cls", BASELINES[1:], ids=lambda c: c.name)
def test_margin_unit_and_none_are_one_direction_at_three_scales(
    cls: type, context: MethodContext
) -> None:
    raw = vector_of(cls(normalize="none"), context)
    unit = vector_of(cls(normalize="unit"), context)
    margin = vector_of(cls(normalize="margin"), context)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw), rtol=1e-12, atol=1e-14)
    w = context.concept.directions[0]
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    np.testing.assert_allclose(margin, raw * np.median(rhs[rhs > 0]) / (w @ raw), rtol=1e-12)


def test_no_steering_is_zero_whatever_the_normalisation(context: MethodContext) -> None:
    for normalize in ("margin", "unit", "none"):
        assert not vector_of(NoSteering(normalize=normalize), context).any()


# -- the CAA family ------------------------------------------------------------------------------


def test_caa_mean_diff_is_the_class_mean_difference_of_plain_forward_passes(
    context: MethodContext, model: Any
) -> None:
    positive, negative = oracle_hidden(model, POSITIVE), oracle_hidden(model, NEGATIVE)
    expected = positive.mean(axis=0) - negative.mean(axis=0)
    np.testing.assert_allclose(
        vector_of(CAAMeanDiff(normalize="none"), context), expected, atol=1e-5
    )
    towards_zero = vector_of(CAAMeanDiff(normalize="none"), evolve(context, target_class=0))
    np.testing.assert_allclose(towards_zero, -expected, atol=1e-5)


def test_caa_mean_diff_computes_train_activations_from_the_source(context: MethodContext) -> None:
    without = evolve(context, train=None)
    np.testing.assert_allclose(
        vector_of(CAAMeanDiff(), without), vector_of(CAAMeanDiff(), context), rtol=1e-12
    )


def test_caa_contrastive_is_the_mean_of_pair_differences(
    context: MethodContext, source: TransformerLensSource
) -> None:
    differences = [
        source.activations([positive]).hidden[0].astype(np.float64)
        - source.activations([negative]).hidden[0].astype(np.float64)
        for negative, positive in PAIRS
    ]
    expected = np.mean(differences, axis=0)
    method = CAAContrastive(normalize="none")
    np.testing.assert_allclose(vector_of(method, context), expected, atol=1e-6)
    np.testing.assert_allclose(
        vector_of(method, evolve(context, target_class=0)), -expected, atol=1e-6
    )
    provenance = method.compute(context).vectors[0].provenance  # type: ignore[union-attr]
    assert provenance["n_pairs"] == 3 and provenance["target_class"] == 1


@pytest.mark.parametrize("separator", [" ", " . "])
def test_caa_repe_is_the_mean_persona_difference_over_neutral_queries(
    context: MethodContext, source: TransformerLensSource, separator: str
) -> None:
    negative, positive = PERSONAS
    differences = [
        source.activations([positive + separator + q]).hidden[0].astype(np.float64)
        - source.activations([negative + separator + q]).hidden[0].astype(np.float64)
        for q in QUERIES
    ]
    expected = np.mean(differences, axis=0)
    method = CAARepE(separator=separator, normalize="none")
    np.testing.assert_allclose(vector_of(method, context), expected, atol=1e-6)
    np.testing.assert_allclose(
        vector_of(method, evolve(context, target_class=0)), -expected, atol=1e-6
    )


def test_persona_and_pair_directions_differ_from_the_class_means(context: MethodContext) -> None:
    methods = (CAAMeanDiff, CAAContrastive, CAARepE)
    vectors = [vector_of(cls(normalize="unit"), context) for cls in methods]
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(vectors[i] @ vectors[j]) < 1 - 1e-3


# -- SAE features --------------------------------------------------------------------------------


def test_single_feature_defaults_to_the_most_correlated_feature(
    context: MethodContext, source: TransformerLensSource, train: Activations, splits: Splits
) -> None:
    assert train.features is not None
    correlation = oracle_correlation(train.features, splits.train.labels, 1)
    best = int(np.argmax(correlation))
    result = SingleFeature(normalize="none").compute(context)
    vector = result.vectors[0]
    assert vector is not None
    assert vector.provenance["selected_feature"] == best
    assert vector.provenance["support"] == [best] and vector.provenance["support_values"] == [1.0]
    assert vector.provenance["correlation"] == pytest.approx(correlation[best], abs=1e-9)
    np.testing.assert_allclose(vector.vector, source.decoder()[best], rtol=0, atol=0)
    # towards class 0: the feature most correlated with class 0
    towards_zero = SingleFeature(normalize="none").compute(evolve(context, target_class=0))
    towards_zero = towards_zero.vectors[0]
    assert towards_zero is not None
    assert towards_zero.provenance["selected_feature"] == int(np.argmax(-correlation))


def test_single_feature_takes_a_chosen_feature(
    context: MethodContext, source: TransformerLensSource
) -> None:
    w = context.concept.directions[0]
    decoder = source.decoder().astype(np.float64)
    chosen = int(np.argsort(decoder @ w)[-3])  # one that moves the probe the right way
    vector = SingleFeature(feature=chosen).compute(context).vectors[0]
    assert vector is not None
    assert vector.provenance["feature"] == chosen and vector.provenance["selected_by"] == "config"
    (value,) = vector.provenance["support_values"]
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    assert value == pytest.approx(np.median(rhs[rhs > 0]) / (decoder[chosen] @ w), rel=1e-12)
    np.testing.assert_allclose(vector.vector, value * decoder[chosen], rtol=1e-12)
    # a feature whose row points away from the target cannot be scaled to the margin
    away = int(np.argmin(decoder @ w))
    with pytest.raises(SteerkitError, match="does not move the probe towards the target"):
        SingleFeature(feature=away).compute(context)
    assert SingleFeature(feature=away, normalize="unit").compute(context).vectors[0] is not None


def test_single_feature_rejects_a_feature_beyond_the_dictionary(context: MethodContext) -> None:
    with pytest.raises(ValidationError, match="below d_sae = 64") as caught:
        SingleFeature(feature=64).compute(context)
    assert caught.value.field == "feature"


@pytest.mark.parametrize("k", [1, 3, 10])
def test_topk_features_weights_the_k_most_correlated_decoder_rows(
    context: MethodContext,
    source: TransformerLensSource,
    train: Activations,
    splits: Splits,
    k: int,
) -> None:
    assert train.features is not None
    correlation = oracle_correlation(train.features, splits.train.labels, 1)
    expected = sorted(int(i) for i in np.argsort(-correlation)[:k])
    vector = TopKFeatures(k=k).compute(context).vectors[0]
    assert vector is not None
    provenance = vector.provenance
    assert provenance["support"] == expected and provenance["k"] == k
    values = np.array(provenance["support_values"])
    decoder = source.decoder()
    np.testing.assert_allclose(vector.vector, decoder[expected].T @ values, rtol=1e-12, atol=1e-13)
    # the weights are the correlations, times one factor (the margin's)
    np.testing.assert_allclose(values / correlation[expected], provenance["factor"], rtol=1e-9)
    np.testing.assert_allclose(provenance["correlations"], correlation[expected], atol=1e-9)


def test_topk_features_leaves_out_features_not_positively_correlated(
    context: MethodContext, train: Activations, splits: Splits
) -> None:
    assert train.features is not None
    correlation = oracle_correlation(train.features, splits.train.labels, 1)
    vector = TopKFeatures(k=64, normalize="unit").compute(context).vectors[0]
    assert vector is not None
    assert vector.provenance["support"] == [int(i) for i in np.flatnonzero(correlation > 1e-12)]
    assert vector.norm == pytest.approx(1.0, rel=1e-12)


def test_sae_features_are_encoded_by_the_source_when_train_has_none(
    context: MethodContext, train: Activations
) -> None:
    bare = Activations(hidden=train.hidden, hook_point=HOOK)  # no features
    for cls in (SingleFeature, TopKFeatures):
        with_features = vector_of(cls(), context)
        np.testing.assert_allclose(
            vector_of(cls(), evolve(context, train=bare)), with_features, rtol=1e-12
        )
    decoder_from_source = evolve(context, decoder=None)
    np.testing.assert_allclose(
        vector_of(TopKFeatures(), decoder_from_source), vector_of(TopKFeatures(), context)
    )


# -- random directions ---------------------------------------------------------------------------


def test_random_direction_is_reproducible_and_differs_across_seeds(context: MethodContext) -> None:
    first = vector_of(RandomDirection(seed=3, normalize="unit"), context)
    again = vector_of(RandomDirection(seed=3, normalize="unit"), context)
    other = vector_of(RandomDirection(seed=4, normalize="unit"), context)
    np.testing.assert_array_equal(first, again)
    assert abs(first @ other) < 0.99
    draw = np.random.default_rng(3).standard_normal(16)
    np.testing.assert_allclose(np.abs(first), np.abs(draw / np.linalg.norm(draw)), rtol=1e-12)
    # no seed: the context's
    np.testing.assert_array_equal(
        vector_of(RandomDirection(normalize="unit"), context),
        vector_of(RandomDirection(seed=context.seed, normalize="unit"), context),
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_direction_points_towards_the_target_and_says_when_it_flipped(
    context: MethodContext, seed: int
) -> None:
    draw = np.random.default_rng(seed).standard_normal(16)
    draw /= np.linalg.norm(draw)
    w = context.concept.directions[0]
    vector = RandomDirection(seed=seed, normalize="none").compute(context).vectors[0]
    assert vector is not None
    flipped = bool(w @ draw < 0)
    assert vector.provenance["flipped_sign"] is flipped
    np.testing.assert_allclose(vector.vector, -draw if flipped else draw, rtol=1e-12)
    assert w @ vector.vector > 0


# -- what goes wrong -----------------------------------------------------------------------------


def test_margin_refuses_a_direction_that_moves_the_probe_away(context: MethodContext) -> None:
    w = context.concept.directions[0]
    # a concept that points towards class 0, every input far from it, while the method still
    # steers towards class 1
    away = evolve(context, concept=Concept(directions=-w, thresholds=np.array([100.0])))
    for cls in (CAAMeanDiff, CAAContrastive, TopKFeatures):
        with pytest.raises(SteerkitError, match="does not move the probe towards the target"):
            cls().compute(away)
        assert vector_of(cls(normalize="none"), away).any()  # raw: kept as it is


def test_margin_refuses_when_no_input_needs_steering(context: MethodContext) -> None:
    satisfied = evolve(
        context, inputs=Activations(hidden=context.inputs.hidden[3:], hook_point=HOOK)
    )
    with pytest.raises(SteerkitError, match="every input already reaches"):
        CAAMeanDiff().compute(satisfied)
    assert vector_of(CAAMeanDiff(normalize="unit"), satisfied).any()


@pytest.mark.parametrize(
    ("cls", "changes", "message"),
    [
        (CAAMeanDiff, {"splits": None}, "needs the labelled training split.*splits="),
        (CAAMeanDiff, {"train": None, "source": None}, "neither `train` nor a `source`"),
        (CAAContrastive, {"source": None}, r"needs the model: pass MethodContext\(source="),
        (CAAContrastive, {"dataset": None}, r"pass MethodContext\(dataset="),
        (CAAContrastive, {"dataset": BareTask()}, "needs contrastive pairs.*'bare-task'"),
        (CAAContrastive, {"target_class": 2}, "class 0 or 1 only"),
        (CAARepE, {"dataset": None}, r"pass MethodContext\(dataset="),
        (CAARepE, {"source": None}, "needs the model"),
        (CAARepE, {"dataset": BareTask()}, "needs persona prefixes.*'bare-task'"),
        (SingleFeature, {"decoder": None, "source": None}, r"needs the SAE decoder"),
        (TopKFeatures, {"decoder": None, "source": None}, r"needs the SAE decoder"),
        (TopKFeatures, {"splits": None}, "needs the labelled training split"),
        (SingleFeature, {"splits": None}, "needs the labelled training split"),
        (CAAMeanDiff, {"target_class": 2}, r"target class 2 .* hold \[0, 1\]"),
    ],
)
def test_missing_context_is_named(
    context: MethodContext, cls: type, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SteerkitError, match=message):
        cls().compute(evolve(context, **changes))


def test_sae_baselines_without_features_or_a_source_say_so(
    context: MethodContext, train: Activations
) -> None:
    bare = Activations(hidden=train.hidden, hook_point=HOOK)
    no_source = evolve(context, train=bare, source=None)
    for cls in (SingleFeature, TopKFeatures):
        with pytest.raises(SteerkitError, match="needs the training split's SAE features"):
            cls().compute(no_source)
    # a chosen feature needs no features at all
    assert vector_of(SingleFeature(feature=0, normalize="unit"), no_source).any()


def test_a_source_without_an_sae_cannot_encode(
    context: MethodContext, model: Any, train: Activations
) -> None:
    no_sae = TransformerLensSource(model=model, hook_point=HOOK, cache=False)
    bare = Activations(hidden=train.hidden, hook_point=HOOK)
    with pytest.raises(SteerkitError, match="needs SAE features"):
        TopKFeatures().compute(evolve(context, source=no_sae, train=bare))


def test_train_must_match_the_split(context: MethodContext, train: Activations) -> None:
    short = Activations(hidden=train.hidden[:5], hook_point=HOOK)
    with pytest.raises(SteerkitError, match="5 rows but splits.train has 12 labels"):
        CAAMeanDiff().compute(evolve(context, train=short))


def test_constructed_by_name_from_the_registry(context: MethodContext) -> None:
    registry = steerkit.get_host().registry("steering_method")
    method = registry.get("topk_features")(k=3, normalize="unit")
    vector = method.compute(context).vectors[0]
    assert vector is not None and len(vector.provenance["support"]) == 3


# -- per input: each input's smallest vector along the baseline's direction ---------------------

DIRECTION_BASELINES = BASELINES[1:]


def per_input(method: SteeringMethod, context: MethodContext) -> list[steerkit.SteeringVector]:
    result = method.compute(context)
    n = len(context.inputs)
    assert result.shared is False and result.solutions == () and len(result.vectors) == n
    assert result.per_input(n) == result.vectors  # what the runner checks
    vectors = [v for v in result.vectors if v is not None]
    assert len(vectors) == n
    return vectors


@pytest.mark.parametrize("cls", DIRECTION_BASELINES, ids=lambda c: c.name)
def test_per_input_puts_each_input_exactly_on_the_probes_margin(
    cls: type, context: MethodContext, probe: LogisticProbe
) -> None:
    hidden = context.inputs.hidden.astype(np.float64)
    vectors = per_input(cls(normalize="per_input"), context)
    # the hand computation: the probe's own logit w·(h + v) + b, at the concept's margin 1.0
    logits = [float(probe.w @ (h + v.vector) + probe.b) for h, v in zip(hidden, vectors)]
    assert logits[:3] == pytest.approx([1.0, 1.0, 1.0], abs=1e-9)
    assert probe.decision_function(hidden[3:])[0] > 1.0  # already past the margin ...
    assert not vectors[3].vector.any() and vectors[3].norm == 0.0  # ... so exactly untouched
    for i, vector in enumerate(vectors):
        provenance = dict(vector.provenance)
        assert json.loads(json.dumps(provenance)) == provenance
        assert provenance["method"] == provenance["direction"] == cls.name
        assert provenance["normalize"] == "per_input" and provenance["input"] == i
        assert provenance["already_satisfied"] is (i == 3)
        assert vector.hook_point == HOOK and vector.layer == 1 and vector.scale == 1.0


@pytest.mark.parametrize("cls", DIRECTION_BASELINES, ids=lambda c: c.name)
def test_per_input_scales_are_the_margin_over_the_projection(
    cls: type, context: MethodContext, probe: LogisticProbe
) -> None:
    """c_i = max(r_i, 0) / (w·d), with d the raw direction (normalize="none") and r_i computed
    from the probe's weights and intercept, not from the concept."""
    raw = vector_of(cls(normalize="none"), context)
    hidden = context.inputs.hidden.astype(np.float64)
    r = 1.0 - (hidden @ probe.w + probe.b)
    expected = np.maximum(r, 0.0) / (probe.w @ raw)
    vectors = per_input(cls(normalize="per_input"), context)
    factors = np.array([v.provenance["factor"] for v in vectors])
    np.testing.assert_allclose(factors, expected, rtol=1e-9, atol=0)
    for vector, factor in zip(vectors, factors):
        np.testing.assert_allclose(vector.vector, factor * raw, rtol=1e-12, atol=1e-15)
        assert vector.provenance["raw_norm"] == pytest.approx(np.linalg.norm(raw), rel=1e-12)
    # the shared "margin" vector is the per-input one of the median input that needs steering
    margin = vector_of(cls(normalize="margin"), context)
    middle = int(np.argsort(r[:3])[1])
    np.testing.assert_allclose(margin, vectors[middle].vector, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls", [SingleFeature, TopKFeatures], ids=lambda c: c.name)
def test_per_input_feature_vectors_are_their_sae_code(
    cls: type, context: MethodContext, source: TransformerLensSource
) -> None:
    decoder = source.decoder()
    for vector in per_input(cls(normalize="per_input"), context):
        support, values = vector.provenance["support"], vector.provenance["support_values"]
        rebuilt = decoder[support].T @ np.array(values) if support else np.zeros(16)
        np.testing.assert_allclose(vector.vector, rebuilt, rtol=1e-12, atol=1e-12)
        if vector.provenance["already_satisfied"]:
            assert support == [] and values == []  # no intervention, no feature
        else:
            assert support and min(values) > 0


def test_probe_direction_is_the_shortest_vector_reaching_the_margin(
    context: MethodContext, probe: LogisticProbe
) -> None:
    """‖v_i‖ = r_i/‖w‖ along w, and no other baseline reaches the same margin with less."""
    hidden = context.inputs.hidden.astype(np.float64)
    r = np.maximum(1.0 - (hidden @ probe.w + probe.b), 0.0)
    w_norm = float(np.linalg.norm(probe.w))
    shortest = per_input(ProbeDirection(), context)
    for vector, r_i in zip(shortest, r):
        assert vector.norm == pytest.approx(r_i / w_norm, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(vector.vector, r_i * probe.w / w_norm**2, rtol=1e-12)
        assert vector.provenance["factor"] == pytest.approx(r_i / w_norm**2, rel=1e-12)
    for cls in [c for c in DIRECTION_BASELINES if c is not ProbeDirection]:
        others = per_input(cls(normalize="per_input"), context)
        for mine, theirs in zip(shortest, others):
            assert mine.norm <= theirs.norm * (1 + 1e-12)
        assert any(m.norm < 0.99 * t.norm for m, t in zip(shortest, others))


def test_per_input_leaves_every_input_alone_when_none_needs_steering(
    context: MethodContext,
) -> None:
    satisfied = evolve(
        context, inputs=Activations(hidden=context.inputs.hidden[3:], hook_point=HOOK)
    )
    for cls in DIRECTION_BASELINES:
        result = cls(normalize="per_input").compute(satisfied)
        (vector,) = result.vectors
        assert vector is not None and not vector.vector.any()
        assert vector.provenance["already_satisfied"] is True
        assert result.info["already_satisfied"] == 1
    with pytest.raises(SteerkitError, match="every input already reaches"):  # unlike "margin"
        CAAMeanDiff(normalize="margin").compute(satisfied)


def test_per_input_refuses_a_direction_that_moves_the_probe_away(context: MethodContext) -> None:
    w = context.concept.directions[0]
    away = evolve(context, concept=Concept(directions=-w, thresholds=np.array([100.0])))
    for cls in (CAAMeanDiff, CAAContrastive, TopKFeatures):
        with pytest.raises(InfeasibleError, match="does not move the probe towards the target"):
            cls(normalize="per_input").compute(away)
    # nothing to reach, nothing refused: every input is past this concept's margin
    past = evolve(context, concept=Concept(directions=-w, thresholds=np.array([-100.0])))
    for vector in per_input(CAAMeanDiff(normalize="per_input"), past):
        assert not vector.vector.any() and vector.provenance["already_satisfied"] is True


def test_no_steering_ignores_per_input(context: MethodContext) -> None:
    assert not vector_of(NoSteering(normalize="per_input"), context).any()


def test_families_tell_the_control_from_the_baselines() -> None:
    """Reports measure changes against the control and compare methods with the baselines."""
    from steerkit_baselines.plugin import register_steering_methods

    registered: list[type] = []
    register_steering_methods(registered.append)
    families = {cls.name: cls.family for cls in registered}
    assert families.pop("no_steering") == "control"
    assert set(families.values()) == {"baseline"} and len(families) == 7
