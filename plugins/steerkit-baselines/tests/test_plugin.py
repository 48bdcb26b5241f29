"""Discovery through the entry point, parameter validation, and the correlation the SAE baselines
rank features by — none of which needs a model."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

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
    class_correlation,
    plugin,
)
from steerkit_baselines.plugin import BASELINES

import steerkit
from steerkit import Activations, Concept, LabelledTexts, MethodContext, Splits, ValidationError

NAMES = [
    "caa_contrastive",
    "caa_mean_diff",
    "caa_repe",
    "no_steering",
    "probe_direction",
    "random_direction",
    "single_feature",
    "topk_features",
]


def test_registered_through_the_entry_point() -> None:
    host = steerkit.PluginHost()  # a fresh host reading the installed entry points
    registry = host.registry("steering_method")
    for name, cls in zip(NAMES, sorted(BASELINES, key=lambda c: c.name)):
        entry = registry.entry(name)
        assert entry.obj is cls and issubclass(cls, steerkit.SteeringMethod)
        assert entry.origin.distribution == "steerkit-baselines"
    assert not [r for r in host.failures if r.distribution == "steerkit-baselines"]


def test_listed_by_list_plugins() -> None:
    rows = [r for r in steerkit.list_plugins() if r.distribution == "steerkit-baselines"]
    assert sorted(r.name for r in rows) == NAMES
    assert {(r.kind, r.status, r.plugin) for r in rows} == {
        ("steering_method", "loaded", "baselines")
    }


def test_registered_by_the_plugin_module_alone() -> None:
    host = steerkit.PluginHost(entry_points=False, plugins=[("baselines", plugin)])
    assert host.registry("steering_method").names() == NAMES


def test_discovery_imports_nothing_heavy() -> None:
    code = (
        "import sys, steerkit; "
        "host = steerkit.PluginHost(allow=['steerkit-baselines']); "
        "assert len(host.registry('steering_method')) == 8; "
        "import steerkit_baselines; "
        "print(sorted(m for m in ('torch', 'transformer_lens', 'sae_lens', 'sklearn', "
        "'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    ("cls", "params", "field", "received"),
    [
        (NoSteering, {"normalize": "l2"}, "normalize", "'l2'"),
        (CAAMeanDiff, {"normalize": None}, "normalize", "None"),
        (CAAContrastive, {"normalize": "Margin"}, "normalize", "'Margin'"),
        (ProbeDirection, {"normalize": "per-input"}, "normalize", "'per-input'"),
        (RandomDirection, {"seed": -1}, "seed", "-1"),
        (RandomDirection, {"seed": 1.5}, "seed", "1.5"),
        (RandomDirection, {"seed": True}, "seed", "True"),
        (SingleFeature, {"feature": -2}, "feature", "-2"),
        (SingleFeature, {"feature": "7"}, "feature", "'7'"),
        (TopKFeatures, {"k": 0}, "k", "0"),
        (TopKFeatures, {"k": 2.0}, "k", "2.0"),
        (TopKFeatures, {"normalize": "unit", "k": None}, "k", "None"),
        (CAARepE, {"separator": 3}, "separator", "3"),
    ],
)
def test_bad_parameters_name_the_field(
    cls: type, params: dict[str, Any], field: str, received: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        cls(**params)
    error = caught.value
    assert (error.owner, error.field, error.received) == (cls.name, field, received)
    assert error.expected and str(error).startswith(f"{cls.name}.{field}: expected ")


def test_parameters_are_keyword_only_and_kept() -> None:
    with pytest.raises(TypeError):
        TopKFeatures(3)  # type: ignore[misc]
    assert TopKFeatures(k=3, normalize="unit").params() == {"k": 3, "normalize": "unit"}
    assert SingleFeature().params() == {"feature": None, "normalize": "margin"}
    assert RandomDirection(seed=np.int64(4)).params() == {"seed": 4, "normalize": "margin"}
    assert CAARepE().params() == {"separator": " ", "normalize": "margin"}
    assert repr(TopKFeatures(k=2)) == "TopKFeatures(k=2, normalize='margin')"
    # the one baseline that is per input by default: what it is for (r·w/‖w‖² per input)
    assert ProbeDirection().params() == {"normalize": "per_input"}


def test_class_correlation_is_pearson_per_feature(steerkit_rng: np.random.Generator) -> None:
    labels = np.array([0, 1, 2, 1, 0, 1, 2, 2, 1, 0])
    features = np.maximum(steerkit_rng.normal(size=(10, 6)), 0.0)
    features[:, 2] = 0.0  # a dead feature
    features[:, 4] = 0.37  # a constant one
    features[:, 5] = labels == 1  # the class itself
    correlation = class_correlation(features.astype(np.float32), labels, 1)
    y = (labels == 1).astype(float)
    for j in (0, 1, 3, 5):
        assert correlation[j] == pytest.approx(
            np.corrcoef(features[:, j].astype(np.float32).astype(float), y)[0, 1], abs=1e-12
        )
    assert correlation[2] == 0.0 and correlation[4] == 0.0 and correlation[5] == pytest.approx(1)
    with pytest.raises(ValidationError, match="both the target class and another"):
        class_correlation(features, labels, 7)


def numpy_context(rng: np.random.Generator, **changes: Any) -> MethodContext:
    """A context of plain arrays: no model, no source."""
    labels = np.repeat([0, 1], 20)
    u = np.eye(8)[0]
    train = rng.normal(size=(40, 8)) + np.outer(2 * labels - 1, u)
    inputs = rng.normal(size=(5, 8)) - u
    texts = [f"text {i}" for i in range(40)]
    fields: dict[str, Any] = {
        "inputs": Activations(hidden=inputs, hook_point="blocks.0.hook_resid_pre"),
        "concept": Concept(directions=u[None, :], thresholds=np.array([1.0])),
        "splits": Splits(train=LabelledTexts(texts, labels), test=LabelledTexts(texts, labels)),
        "train": Activations(hidden=train, hook_point="blocks.0.hook_resid_pre"),
    }
    return MethodContext(**{**fields, **changes})


def test_a_baseline_needs_no_model_when_given_the_arrays(steerkit_rng: np.random.Generator) -> None:
    context = numpy_context(steerkit_rng)
    (vector,) = CAAMeanDiff().compute(context).vectors
    assert vector is not None and vector.layer is None
    assert vector.hook_point == "blocks.0.hook_resid_pre"
    rhs = context.concept.rhs(context.inputs.hidden)[:, 0]
    assert vector.vector[0] == pytest.approx(np.median(rhs[rhs > 0]), rel=1e-12)


def test_an_even_number_of_inputs_takes_the_middle_of_the_two_medians(
    steerkit_rng: np.random.Generator,
) -> None:
    context = numpy_context(steerkit_rng)
    context = numpy_context(
        steerkit_rng, inputs=Activations(hidden=context.inputs.hidden[:4], hook_point="h")
    )
    (vector,) = RandomDirection(seed=0).compute(context).vectors
    assert vector is not None and vector.hook_point == "h"
    rhs = np.sort(context.concept.rhs(context.inputs.hidden)[:, 0])
    assert rhs[0] > 0
    assert vector.vector @ context.concept.directions[0] == pytest.approx(
        (rhs[1] + rhs[2]) / 2, rel=1e-12
    )
