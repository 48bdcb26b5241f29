"""Fixtures: a tiny TransformerLens source with a tiny SAE, an in-test dataset, toy methods and
metrics, and isolated plugin hosts; nothing here touches a hub or a real model."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import steerkit
from steerkit import (
    Dataset,
    EvalContext,
    InfeasibleError,
    LabelledTexts,
    MethodContext,
    MethodResult,
    Metric,
    Splits,
    SteeringMethod,
    SteeringVector,
)

HOOK = "blocks.1.hook_resid_pre"

_SUBJECTS = ("the cat", "a dog", "the bird", "the big dog", "a small cat", "the red bird")
_VERBS = ("sat on the mat", "ran under the tree", "flew fast", "was slow", "sat", "ran")
_POSITIVE = ("happy", "very happy", "good", "very good")
_NEGATIVE = ("sad", "very sad", "bad", "very bad")


def _texts(ends: Sequence[str], offset: int) -> list[str]:
    out = []
    for k in range(24):
        subject = _SUBJECTS[(k + offset) % len(_SUBJECTS)]
        verb = _VERBS[(k // 2 + offset) % len(_VERBS)]
        out.append(f"{subject} {verb} and is {ends[k % len(ends)]}")
    return out


class TinySentiment(Dataset):
    """24 texts per class over the tiny tokenizer's words; label 1 ends happy or good."""

    name = "tiny-sentiment"

    def __init__(self, *, n_test: int = 6) -> None:
        self.n_test = n_test

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        positive, negative = _texts(_POSITIVE, 0), _texts(_NEGATIVE, 3)
        n = n_per_class or len(positive)
        rng = np.random.default_rng(seed)
        pos = [positive[i] for i in rng.permutation(len(positive))[:n]]
        neg = [negative[i] for i in rng.permutation(len(negative))[:n]]
        k = self.n_test
        train = LabelledTexts(pos[k:] + neg[k:], [1] * (n - k) + [0] * (n - k))
        test = LabelledTexts(pos[:k] + neg[:k], [1] * k + [0] * k)
        return Splits(train=train, test=test)

    def contrastive_pairs(self) -> Sequence[tuple[str, str]]:
        return [("the cat is sad", "the cat is happy"), ("a dog was bad", "a dog was good")]

    def persona_prefixes(self) -> tuple[str, str]:
        return ("the sad", "the happy")

    def neutral_queries(self) -> Sequence[str]:
        return ["the cat sat on the mat", "a dog ran"]


class ToyDirection(SteeringMethod):
    """Per input: the probe direction w/‖w‖², scaled to reach the margin (r/‖w‖² along w)."""

    name = "toy_direction"

    def __init__(self, *, boost: float = 1.0) -> None:
        self.boost = boost

    def compute(self, context: MethodContext) -> MethodResult:
        w = context.concept.directions[0]
        rhs = np.maximum(context.concept.rhs(context.inputs.hidden)[:, 0], 0.0)
        vectors = [
            SteeringVector(
                vector=self.boost * r * w / float(w @ w),
                hook_point=context.inputs.hook_point,
                provenance={"method": self.name, "boost": self.boost},
            )
            for r in rhs
        ]
        return MethodResult(vectors=vectors)


class ToyShared(SteeringMethod):
    """One shared vector: the mean of the training activations' class difference."""

    name = "toy_shared"

    def compute(self, context: MethodContext) -> MethodResult:
        assert context.train is not None and context.splits is not None
        labels = context.splits.train.labels
        hidden = np.asarray(context.train.hidden, dtype=np.float64)
        v = hidden[labels == 1].mean(0) - hidden[labels == 0].mean(0)
        vector = SteeringVector(
            vector=v,
            hook_point=context.inputs.hook_point,
            provenance={"method": self.name, "support": [1, 2], "support_values": [0.5, 0.25]},
        )
        return MethodResult(vectors=(vector,), shared=True)


class ToyInfeasible(SteeringMethod):
    """Always infeasible (for on_failure)."""

    name = "toy_infeasible"

    def compute(self, context: MethodContext) -> MethodResult:
        raise InfeasibleError("toy_infeasible: ε too small (the smallest feasible ε is 3)")


class ToyProbeShift(Metric):
    """p_after − p_before of the probe, per input (the vector as α·v)."""

    name = "toy_probe_shift"
    calls = 0

    def compute(self, context: EvalContext) -> dict[str, Any]:
        type(self).calls += 1
        assert context.probe is not None
        h = np.asarray(context.inputs.hidden, dtype=np.float64)
        vectors = context.result.vectors
        added = np.stack(
            [
                (vectors[0] if context.result.shared else vectors[i]).vector
                * (vectors[0] if context.result.shared else vectors[i]).scale
                for i in range(len(h))
            ]
        )
        t = context.target_class
        before = context.probe.predict_proba(h)[:, t]
        after = context.probe.predict_proba(h + added)[:, t]
        return {"p_before": before, "p_after": after, "probe_shift": after - before}


class ToyGenerationLength(Metric):
    """Words in each steered generation (NaN without one), and one number for the batch."""

    name = "toy_generation"

    def requires(self) -> dict[str, Any]:
        return {"generations": True}

    def compute(self, context: EvalContext) -> dict[str, Any]:
        n = len(context.inputs)
        words = np.full(n, np.nan)
        for i, text in enumerate(context.generations):
            words[i] = len(text.split())
        return {"generated_words": words, "n_prompts": float(len(context.prompts))}


class ToyScores(Metric):
    """Scores that trade off as the added vector grows (s = ‖α·v‖): a concept score
    1 − exp(−s/3) that rises and a fluency score exp(−s/10) that falls, both in [0, 1]."""

    name = "toy_scores"

    def columns(self) -> tuple[steerkit.Column, ...]:
        return (
            steerkit.Column("toy_concept", better="higher"),
            steerkit.Column("toy_fluency", better="higher"),
        )

    def compute(self, context: EvalContext) -> dict[str, Any]:
        vectors = context.result.per_input(len(context.inputs))
        size = np.array([abs(v.scale) * float(np.linalg.norm(v.vector)) for v in vectors])
        return {"toy_concept": 1.0 - np.exp(-size / 3.0), "toy_fluency": np.exp(-size / 10.0)}


class ToyPlugin:
    @steerkit.hookimpl
    def register_datasets(self, register: Any) -> None:
        register(TinySentiment)

    @steerkit.hookimpl
    def register_steering_methods(self, register: Any) -> None:
        register(ToyDirection)
        register(ToyShared)
        register(ToyInfeasible)

    @steerkit.hookimpl
    def register_metrics(self, register: Any) -> None:
        register(ToyProbeShift)
        register(ToyGenerationLength)
        register(ToyScores)


def toy_plugins() -> list[tuple[str, object]]:
    """The toy plugin, the runner's commands, and the first-party plugins the tests use (the
    tiny source, the logistic probe, the optimal methods and the exact path solver)."""
    import steerkit_optimal.plugin
    import steerkit_path.plugin
    import steerkit_probes.plugin
    import steerkit_runner.plugin
    import steerkit_transformerlens.plugin

    return [
        ("toy", ToyPlugin()),
        ("runner", steerkit_runner.plugin),
        ("transformerlens", steerkit_transformerlens.plugin),
        ("probes", steerkit_probes.plugin),
        ("optimal", steerkit_optimal.plugin),
        ("path", steerkit_path.plugin),
    ]


@pytest.fixture
def toy_host(steerkit_host_factory: Callable[..., steerkit.PluginHost]) -> steerkit.PluginHost:
    """An isolated host with the toy plugin and the first-party plugins above only."""
    host = steerkit_host_factory(*toy_plugins())
    assert not host.failures, host.failures
    return host


@pytest.fixture(autouse=True)
def _cache_dir(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private activation cache, except for `slow` tests, which use the real model's cache."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("STEERKIT_CACHE_DIR", str(tmp_path / "cache"))


def tiny_model_and_sae() -> tuple[Any, Any]:
    """The tiny model and SAE every test uses (the same weights in every process)."""
    from steerkit_transformerlens.testing import tiny_model, tiny_sae

    return tiny_model(seed=0), tiny_sae(hook_name=HOOK, seed=1)


@pytest.fixture(scope="session")
def tiny() -> tuple[Any, Any]:
    return tiny_model_and_sae()


@pytest.fixture
def tiny_source(tiny: tuple[Any, Any]) -> Any:
    from steerkit_transformerlens.source import TransformerLensSource

    model, sae = tiny
    return TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False, progress=False)


TINY_CONFIG = textwrap.dedent(
    """\
    [run]
    name = "tiny"
    seed = 0

    [dataset]
    name = "tiny-sentiment"
    n_per_class = 16
    n_test = 6

    [source]
    name = "transformerlens"   # replaced by the tiny source in tests

    [probe]
    name = "logistic"
    target_class = 1
    margin = 1.0

    [steering]
    alphas = [0.5, 1.0]
    n_generate = 2
    max_new_tokens = 3

    [[methods]]
    name = "toy_direction"
    boost = [1.0, 2.0]

    [[methods]]
    name = "toy_shared"

    [[methods]]
    name = "qp"
    solver = "path"
    lam = [1.0]

    [evaluation]
    metrics = ["toy_probe_shift", "toy_generation"]

    [sweep]
    lam = [0.5, 2.0]
    eps = [50.0]
    metrics = ["toy_probe_shift"]
    """
)


@pytest.fixture
def write_config(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    def write(text: str = TINY_CONFIG, name: str = "tiny.toml", output: str = "runs") -> Path:
        path = tmp_path / name
        text = text.replace("seed = 0\n", f'seed = 0\noutput_dir = "{tmp_path / output}"\n', 1)
        path.write_text(text, encoding="utf-8")
        return path

    yield write
