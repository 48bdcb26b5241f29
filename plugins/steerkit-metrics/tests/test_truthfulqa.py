"""`truthfulqa_mc` on the tiny model: MC1 and MC2 computed here by hand from plain forward passes
(one prompt + choice at a time, no padding, a hook adding the vector by hand)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_datasets import MultipleChoice
from steerkit_metrics import TruthfulQAMC, mc_scores, question_of
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model

from steerkit import EvalContext, MethodResult, SteeringVector, ValidationError

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
ITEMS = [
    MultipleChoice(
        question="is the cat happy",
        mc1_choices=["the cat is happy", "the cat is sad", "a dog"],
        mc1_labels=[1, 0, 0],
        mc2_choices=["the cat is happy", "very happy", "the cat is sad", "bad"],
        mc2_labels=[1, 1, 0, 0],
    ),
    MultipleChoice(
        question="was the dog fast",
        mc1_choices=["the dog was slow", "the dog was fast"],
        mc1_labels=[0, 1],
        mc2_choices=["slow", "very slow", "fast"],
        mc2_labels=[1, 1, 0],
    ),
]
TEXTS = [
    "Q: is the cat happy A: the cat is sad",
    "Q: was the dog fast A: the dog was slow",
    "the cat sat on the mat",  # not a question of the dataset
    "Q: is the bird blue A: not",  # a question the dataset does not have
]


class MCData:
    """A dataset that gives only its multiple-choice items (as TruthfulQA's `multiple_choice`)."""

    calls = 0

    def multiple_choice(self) -> list[MultipleChoice]:
        MCData.calls += 1
        return ITEMS


@pytest.fixture(scope="module")
def world() -> SimpleNamespace:
    model = tiny_model(seed=11)
    source = TransformerLensSource(model=model, hook_point=HOOK, cache=False, batch_size=4)
    return SimpleNamespace(model=model, source=source, inputs=source.activations(TEXTS))


def total_logprob(model: Any, prompt: str, choice: str, added: np.ndarray | None) -> float:
    """Σ log P(choice's words | prompt, earlier words) (the tiny tokenizer: a token per word)."""
    n_prompt = model.to_tokens(prompt).shape[1]
    tokens = model.to_tokens(f"{prompt} {choice}")
    hooks = []
    if added is not None:
        delta = torch.as_tensor(added, dtype=torch.float32)
        hooks = [(HOOK, lambda act, hook: act + delta)]
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        logprobs = torch.log_softmax(model(tokens)[0].double(), -1)
    rows = torch.arange(n_prompt - 1, tokens.shape[1] - 1)
    return float(logprobs[rows, tokens[0, n_prompt:]].sum())


def by_hand(model: Any, item: MultipleChoice, added: np.ndarray | None) -> tuple[float, float]:
    prompt = f"Q: {item.question} A:"
    first = [total_logprob(model, prompt, c, added) for c in item.mc1_choices]
    best = max(range(len(first)), key=lambda k: first[k])
    mc1 = float(item.mc1_labels[best] == 1)
    probabilities = [math.exp(total_logprob(model, prompt, c, added)) for c in item.mc2_choices]
    true = sum(p for p, label in zip(probabilities, item.mc2_labels) if label == 1)
    return mc1, true / sum(probabilities)


def test_mc_scores_by_hand() -> None:
    assert mc_scores([-1.0, -3.0], [1, 0], [0.0, 0.0, math.log(2)], [1, 0, 0]) == (
        1.0,
        pytest.approx(1 / 4),
    )
    assert mc_scores([-5.0, -3.0], [1, 0], [-1000.0, -1000.0], [1, 0])[0] == 0.0
    assert mc_scores([-5.0, -3.0], [1, 0], [-1000.0, -1000.0], [1, 0])[1] == pytest.approx(0.5)


def test_question_of() -> None:
    assert question_of("Q: Why is the sky blue? A: Rayleigh scattering.") == "Why is the sky blue?"
    assert question_of("The sky is blue.") is None


def test_mc1_and_mc2_under_steering_match_hand_computed_ones(world: SimpleNamespace) -> None:
    rng = np.random.default_rng(0)
    each: list[Any] = [
        SteeringVector(rng.normal(size=16), hook_point=HOOK, scale=3.0) for _ in TEXTS
    ]
    MCData.calls = 0
    metric = TruthfulQAMC()
    context = EvalContext(
        inputs=world.inputs,
        result=MethodResult(each),
        source=world.source,
        texts=TEXTS,
        dataset=MCData(),  # type: ignore[arg-type]
    )
    out = metric.compute(context)
    moved = 0
    for i, item in enumerate(ITEMS):
        added = each[i].scale * np.asarray(each[i].vector)
        mc1, mc2 = by_hand(world.model, item, added)
        base1, base2 = by_hand(world.model, item, None)
        assert out["mc1"][i] == mc1 and out["mc1_base"][i] == base1
        assert out["mc2"][i] == pytest.approx(mc2, rel=1e-4)
        assert out["mc2_base"][i] == pytest.approx(base2, rel=1e-4)
        moved += abs(mc2 - base2) > 1e-4
    assert moved  # steering changed the scores, so the steered pass is really steered
    for column in out:  # inputs that are not one of the dataset's questions
        assert math.isnan(out[column][2]) and math.isnan(out[column][3])
    metric.compute(context)
    assert MCData.calls == 1  # the items are read once per dataset


def test_a_dataset_without_multiple_choice_items_is_refused(world: SimpleNamespace) -> None:
    context = EvalContext(
        inputs=world.inputs,
        result=MethodResult([SteeringVector(np.ones(16), hook_point=HOOK)], shared=True),
        source=world.source,
        texts=TEXTS,
    )
    with pytest.raises(ValidationError, match="multiple-choice items"):
        TruthfulQAMC().compute(context)
    with pytest.raises(ValidationError, match="exactly one true"):
        MultipleChoice("q", ["a", "b", "c"], [1, 1, 0], ["a", "b"], [1, 0])
