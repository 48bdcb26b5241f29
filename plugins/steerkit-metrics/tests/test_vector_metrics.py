"""`probe_shift`, `sparsity`, `norm` and `solve_time` on activations of the tiny TransformerLens
model, a logistic probe and the `qp` / `shared` methods over a tiny SAE, against hand computations
(sigmoid(w·(h + α·v) + b), the solutions' δ, ‖α·v‖₂)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from steerkit_metrics import Norm, ProbeShift, SolveTime, Sparsity
from steerkit_optimal.methods import QPMethod, SharedMethod
from steerkit_probes import LogisticProbe
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

from steerkit import (
    EvalContext,
    MethodContext,
    MethodResult,
    Probe,
    SteeringVector,
    ValidationError,
)

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
POSITIVE = [
    "the cat is happy",
    "a good dog",
    "the bird is very good",
    "the happy cat sat on the mat",
    "a very happy big dog",
    "good bird",
    "the dog was good and happy",
    "a happy small cat",
    "the red bird is happy",
    "a good cat sat",
]
NEGATIVE = [
    "the cat is sad",
    "a bad dog",
    "the bird is very bad",
    "the sad cat sat on the mat",
    "a very sad big dog",
    "bad bird",
    "the dog was bad and sad",
    "a sad small cat",
    "the red bird is not happy",
    "a bad cat ran",
]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    model = tiny_model(seed=5)
    source = TransformerLensSource(
        model=model, sae=tiny_sae(hook_name=HOOK, seed=2), hook_point=HOOK, cache=False
    )
    texts = POSITIVE + NEGATIVE
    labels = np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    inputs = source.activations(texts)
    probe = LogisticProbe(C=10.0).fit(inputs.hidden, labels)
    h = np.asarray(inputs.hidden, dtype=np.float64)
    return SimpleNamespace(source=source, inputs=inputs, probe=probe, h=h, texts=texts)


def context(world: SimpleNamespace, result: MethodResult, **kwargs: Any) -> EvalContext:
    return EvalContext(inputs=world.inputs, result=result, probe=world.probe, **kwargs)


def random_vectors(world: SimpleNamespace, scale: float, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [
        SteeringVector(rng.normal(size=16), hook_point=HOOK, scale=scale)
        for _ in range(len(world.texts))
    ]


# -- probe_shift --------------------------------------------------------------------------------


def test_probe_shift_is_the_sigmoid_of_the_shifted_logit(world: SimpleNamespace) -> None:
    vectors: list[Any] = random_vectors(world, scale=1.7)
    vectors[3] = None  # the method failed on input 3
    out = ProbeShift().compute(context(world, MethodResult(vectors)))
    assert set(out) == {"p_before", "p_after", "probe_shift", "flipped"}
    w, b = world.probe.w, world.probe.b
    for i, vector in enumerate(vectors):
        if vector is None:
            assert all(math.isnan(out[c][i]) for c in out)
            continue
        before = sigmoid(world.h[i] @ w + b)
        after = sigmoid((world.h[i] + 1.7 * vector.vector) @ w + b)
        assert out["p_before"][i] == pytest.approx(before, abs=1e-12)
        assert out["p_after"][i] == pytest.approx(after, abs=1e-12)
        assert out["probe_shift"][i] == pytest.approx(after - before, abs=1e-12)
        expected_flip = math.nan if before > 0.5 else float(after > 0.5)
        assert out["flipped"][i] == pytest.approx(expected_flip, nan_ok=True)


def test_target_class_zero_reads_the_other_column(world: SimpleNamespace) -> None:
    vectors = random_vectors(world, scale=0.9, seed=1)
    out = ProbeShift().compute(context(world, MethodResult(vectors), target_class=0))
    w, b = world.probe.w, world.probe.b
    after = np.array([1 - sigmoid((h + 0.9 * v.vector) @ w + b) for h, v in zip(world.h, vectors)])
    np.testing.assert_allclose(out["p_after"], after, atol=1e-12)
    np.testing.assert_allclose(out["p_before"], 1 - sigmoid(world.h @ w + b), atol=1e-12)


def test_flipped_towards_and_away_from_the_target(world: SimpleNamespace) -> None:
    w, b = world.probe.w, world.probe.b
    before = sigmoid(world.h @ w + b) > 0.5
    assert before.any() and not before.all()  # both kinds of inputs
    direction = w / np.linalg.norm(w)
    margin = np.abs(world.h @ w + b).max() / np.linalg.norm(w) + 1.0
    push = SteeringVector(direction, hook_point=HOOK, scale=margin)
    out = ProbeShift().compute(context(world, MethodResult([push], shared=True)))
    np.testing.assert_array_equal(np.isnan(out["flipped"]), before)  # already target: NaN
    np.testing.assert_array_equal(out["flipped"][~before], 1.0)
    assert np.all(out["probe_shift"] > 0)

    pull = push.scaled(-margin)
    out = ProbeShift().compute(context(world, MethodResult([pull], shared=True)))
    np.testing.assert_array_equal(np.isnan(out["flipped"]), before)
    np.testing.assert_array_equal(out["flipped"][~before], 0.0)
    assert np.all(out["probe_shift"] < 0)


def test_shared_equals_the_same_vector_per_input(world: SimpleNamespace) -> None:
    vector = random_vectors(world, scale=2.0, seed=3)[0]
    shared = ProbeShift().compute(context(world, MethodResult([vector], shared=True)))
    each = ProbeShift().compute(context(world, MethodResult([vector] * len(world.texts))))
    for column in shared:
        np.testing.assert_array_equal(shared[column], each[column])


def test_a_probe_without_classes_uses_the_column_of_the_class(world: SimpleNamespace) -> None:
    class Columns(Probe):
        name = "columns"

        def fit(self, hidden: Any, labels: Any, *, seed: int = 0) -> Probe:
            return self

        def concept(self, *, target_class: int, margin: float) -> Any:
            raise NotImplementedError

        def predict_proba(self, hidden: Any) -> Any:
            z = np.asarray(hidden)[:, 0]
            p = sigmoid(z)
            return np.column_stack([0.5 * p, 0.5 * (1 - p), 0.5 * np.ones_like(p)])

    vectors = random_vectors(world, scale=1.0, seed=4)
    result = MethodResult(vectors)
    out = ProbeShift().compute(
        EvalContext(inputs=world.inputs, result=result, probe=Columns(), target_class=1)
    )
    np.testing.assert_allclose(out["p_before"], 0.5 * (1 - sigmoid(world.h[:, 0])), atol=1e-12)
    with pytest.raises(ValidationError, match="target_class: expected a class in 0 … 2"):
        ProbeShift().compute(
            EvalContext(inputs=world.inputs, result=result, probe=Columns(), target_class=3)
        )


def test_probe_shift_says_what_is_missing_or_wrong(world: SimpleNamespace) -> None:
    vectors = random_vectors(world, scale=1.0)
    with pytest.raises(ValidationError, match=r"EvalContext\.probe: expected the trained probe"):
        ProbeShift().compute(EvalContext(inputs=world.inputs, result=MethodResult(vectors)))
    with pytest.raises(ValidationError, match="target_class: expected one of the probe's classes"):
        ProbeShift().compute(context(world, MethodResult(vectors), target_class=2))
    with pytest.raises(ValidationError, match="expected 20 vectors, one per input"):
        ProbeShift().compute(context(world, MethodResult(vectors[:3])))
    with pytest.raises(ValidationError, match="one vector for a shared result"):
        ProbeShift().compute(context(world, MethodResult(vectors[:2], shared=True)))
    other = SteeringVector(np.ones(16), hook_point="blocks.0.hook_resid_post")
    with pytest.raises(ValidationError, match="where the activations were read"):
        ProbeShift().compute(context(world, MethodResult([other], shared=True)))
    wide = SteeringVector(np.ones(8), hook_point=HOOK)
    with pytest.raises(ValidationError, match="length 16"):
        ProbeShift().compute(context(world, MethodResult([wide], shared=True)))


def test_every_input_failed_gives_nan_everywhere(world: SimpleNamespace) -> None:
    out = ProbeShift().compute(context(world, MethodResult([None] * len(world.texts))))
    assert all(np.isnan(values).all() for values in out.values())


# -- sparsity, norm, solve_time on the optimal methods -----------------------------------------


@pytest.fixture(scope="module")
def qp(world: SimpleNamespace) -> tuple[MethodResult, MethodContext]:
    method_context = MethodContext(
        inputs=world.inputs,
        concept=world.probe.concept(target_class=1, margin=1.0),
        decoder=world.source.decoder(),
    )
    return QPMethod(lam=1.0).compute(method_context), method_context


def test_sparsity_and_norm_of_the_qp_code(qp: tuple[MethodResult, MethodContext]) -> None:
    result, method_context = qp
    decoder = np.asarray(method_context.decoder, dtype=np.float64)
    alpha = 2.5
    scaled = MethodResult([v.scaled(alpha) for v in result.vectors], result.solutions)
    ctx = EvalContext(inputs=method_context.inputs, result=scaled)
    sparsity, norm = Sparsity().compute(ctx), Norm().compute(ctx)
    assert set(sparsity) == {"l0", "l1"} and set(norm) == {"norm"}
    moved = 0
    for i, solution in enumerate(result.solutions):
        delta = np.asarray(solution.delta)
        assert sparsity["l0"][i] == np.count_nonzero(delta)
        assert sparsity["l1"][i] == pytest.approx(alpha * delta.sum(), rel=1e-12, abs=1e-15)
        assert norm["norm"][i] == pytest.approx(
            np.linalg.norm(alpha * delta @ decoder), rel=1e-6, abs=1e-12
        )
        moved += delta.any()
    assert moved >= 5  # most inputs needed a non-zero δ

    at_zero = MethodResult([v.scaled(0.0) for v in result.vectors])
    zero = Sparsity().compute(EvalContext(inputs=method_context.inputs, result=at_zero))
    np.testing.assert_array_equal(zero["l0"], 0.0)
    np.testing.assert_array_equal(zero["l1"], 0.0)


def test_vectors_without_an_sae_code_have_no_sparsity(world: SimpleNamespace) -> None:
    vectors: list[Any] = random_vectors(world, scale=-3.0)
    vectors[0] = None
    ctx = context(world, MethodResult(vectors))
    sparsity, norm = Sparsity().compute(ctx), Norm().compute(ctx)
    assert np.isnan(sparsity["l0"]).all() and np.isnan(sparsity["l1"]).all()
    assert math.isnan(norm["norm"][0])
    for i in range(1, len(vectors)):
        assert norm["norm"][i] == pytest.approx(3.0 * np.linalg.norm(vectors[i].vector), rel=1e-12)

    no_values = SteeringVector(np.ones(16), hook_point=HOOK, provenance={"support": [1, 4, 9]})
    out = Sparsity().compute(context(world, MethodResult([no_values], shared=True)))
    np.testing.assert_array_equal(out["l0"], 3.0)
    assert np.isnan(out["l1"]).all()
    bad = SteeringVector(
        np.ones(16), hook_point=HOOK, provenance={"support": [1, 4], "support_values": [1.0]}
    )
    with pytest.raises(ValidationError, match="support_values of the same length"):
        Sparsity().compute(context(world, MethodResult([bad], shared=True)))


def test_solve_time_is_the_solutions_seconds(
    world: SimpleNamespace, qp: tuple[MethodResult, MethodContext]
) -> None:
    result, method_context = qp
    out = SolveTime().compute(EvalContext(inputs=world.inputs, result=result))
    np.testing.assert_array_equal(out["solve_seconds"], [s.seconds for s in result.solutions])

    shared = SharedMethod(lam=1.0).compute(method_context)
    assert shared.shared and len(shared.solutions) == 1
    out = SolveTime().compute(EvalContext(inputs=world.inputs, result=shared))
    assert out["solve_seconds"] == shared.solutions[0].seconds

    baseline = MethodResult(random_vectors(world, scale=1.0))  # no solutions
    assert math.isnan(SolveTime().compute(context(world, baseline))["solve_seconds"])
    with pytest.raises(ValidationError, match="20 solutions, one per input"):
        SolveTime().compute(
            context(world, MethodResult(result.vectors, solutions=result.solutions[:2]))
        )


def test_shared_sae_vector_sparsity(qp: tuple[MethodResult, MethodContext]) -> None:
    _, method_context = qp
    shared = SharedMethod(lam=1.0).compute(method_context)
    (vector,) = shared.vectors
    assert vector is not None
    out = Sparsity().compute(EvalContext(inputs=method_context.inputs, result=shared))
    delta = np.asarray(shared.solutions[0].delta)
    np.testing.assert_array_equal(out["l0"], np.count_nonzero(delta))
    np.testing.assert_allclose(out["l1"], delta.sum(), rtol=1e-12)
