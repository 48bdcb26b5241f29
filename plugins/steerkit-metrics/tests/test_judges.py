"""The judges of generated text: `vader` and `textblob` against the lexicons' own APIs on the same
texts, `fluency` against hand computations, and the row bookkeeping they share."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import steerkit_metrics
from steerkit_metrics import (
    Fluency,
    TextBlobSentiment,
    Vader,
    concept_score,
    perplexity_score,
    repetition,
)
from textblob import TextBlob
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from steerkit import (
    Activations,
    EvalContext,
    MethodResult,
    Needs,
    SteeringVector,
    SteerkitError,
    ValidationError,
)

HOOK = "blocks.0.hook_resid_pre"
PROMPTS = ["I thought the film was", "The hotel room", "Our waiter", "The new phone"]
STEERED = [
    " wonderful, moving and beautifully acted. I loved it!",
    " was spotless and the staff were lovely.",
    "   ",
    " is terrible and broke within a week.",
]
BASE = [
    " dull and far too long.",
    " smelled of smoke and the sheets were dirty.",
    " ignored us for an hour.",
    " is fine, I guess.",
]


def context(
    n: int = 5, *, target_class: int = 1, failed: tuple[int, ...] = (), **kwargs: Any
) -> EvalContext:
    """n inputs (a row more than the prompts: that row has no generation), one vector each."""
    vectors: list[Any] = [SteeringVector(np.ones(4), hook_point=HOOK) for _ in range(n)]
    for i in failed:
        vectors[i] = None
    fields: dict[str, Any] = {
        "prompts": PROMPTS,
        "generations": STEERED,
        "base_generations": BASE,
        **kwargs,
    }
    return EvalContext(
        inputs=Activations(np.zeros((n, 4)), hook_point=HOOK),
        result=MethodResult(vectors),
        target_class=target_class,
        **fields,
    )


def test_concept_score_maps_polarity_toward_the_target() -> None:
    np.testing.assert_allclose(
        concept_score([-1.0, 0.0, 0.5, 1.0], towards_positive=True), [0.0, 0.5, 0.75, 1.0]
    )
    np.testing.assert_allclose(
        concept_score([-1.0, 0.0, 0.5, 1.0], towards_positive=False), [1.0, 0.5, 0.25, 0.0]
    )


@pytest.mark.parametrize("target", [1, 0])
def test_vader_is_vaders_compound_score_toward_the_target(target: int) -> None:
    analyzer = SentimentIntensityAnalyzer()
    out = Vader().compute(context(target_class=target, failed=(1,)))
    assert set(out) == {"vader", "vader_base"}

    def expected(text: str) -> float:
        compound = analyzer.polarity_scores(text)["compound"]
        return (1 + compound) / 2 if target == 1 else (1 - compound) / 2

    for i in (0, 3):
        assert out["vader"][i] == pytest.approx(expected(STEERED[i]), abs=1e-12)
        assert out["vader_base"][i] == pytest.approx(expected(BASE[i]), abs=1e-12)
    assert out["vader_base"][2] == pytest.approx(expected(BASE[2]), abs=1e-12)
    # the oracle itself tells the texts apart: a glowing review is far on the positive side
    assert analyzer.polarity_scores(STEERED[0])["compound"] > 0.8
    assert (out["vader"][0] > 0.9) == (target == 1)
    # failed input 1, blank generation 2, no generation for row 4: NaN, never 0.5 or 0
    assert math.isnan(out["vader"][1]) and math.isnan(out["vader_base"][1])
    assert math.isnan(out["vader"][2])
    assert math.isnan(out["vader"][4]) and math.isnan(out["vader_base"][4])


def test_textblob_is_textblobs_polarity_toward_the_target() -> None:
    out = TextBlobSentiment().compute(context())
    for i in (0, 1, 3):
        polarity = TextBlob(STEERED[i]).sentiment.polarity
        assert out["textblob"][i] == pytest.approx((1 + polarity) / 2, abs=1e-12)
        base = TextBlob(BASE[i]).sentiment.polarity
        assert out["textblob_base"][i] == pytest.approx((1 + base) / 2, abs=1e-12)
    assert out["textblob"][0] > 0.7 > 0.5 > out["textblob"][3]
    assert math.isnan(out["textblob"][2]) and math.isnan(out["textblob"][4])


def test_positive_class_says_which_label_is_positive_sentiment() -> None:
    # a dataset whose label 0 is positive: steering toward class 0 is toward positive sentiment
    flipped = Vader(positive_class=0).compute(context(target_class=0))
    plain = Vader().compute(context(target_class=1))
    np.testing.assert_array_equal(flipped["vader"], plain["vader"])
    with pytest.raises(ValidationError, match="positive_class"):
        Vader(positive_class="positive")  # type: ignore[arg-type]


def test_lexicon_judges_declare_columns_and_needs() -> None:
    for metric in (Vader(), TextBlobSentiment()):
        columns = {c.name: c for c in metric.columns()}
        assert set(columns) == {metric.name, f"{metric.name}_base"}
        assert columns[metric.name].better == "higher"
        assert columns[metric.name].role == "effect"
        assert not columns[f"{metric.name}_base"].table
        assert Needs.of(metric.requires()) == Needs(generations=True)
        with pytest.raises(ValidationError, match="generations"):
            metric.compute(context(prompts=(), generations=(), base_generations=()))


# -- fluency ------------------------------------------------------------------------------------


def test_repetition_by_hand() -> None:
    # bigrams of "a b a b a b": (a b) (b a) (a b) (b a) (a b): 2 distinct of 5
    assert repetition("a b a b a b", n=2) == pytest.approx(1 - 2 / 5)
    # 4-grams of "I love it. I love it.": words i love it . i love it . → 5 grams, 4 distinct
    assert repetition("I love it. I love it.") == pytest.approx(1 - 4 / 5)
    assert repetition("The cat sat on the mat.") == 0.0
    assert repetition("too short", n=4) == 0.0  # no 4-gram at all
    assert repetition("Go GO go go", n=1) == pytest.approx(0.75)  # lower-cased


def test_perplexity_score_is_linear_in_log_perplexity_between_the_bounds() -> None:
    scores = perplexity_score([5.0, 10.0, 100.0, 1000.0, 5000.0, math.nan], 10.0, 1000.0)
    np.testing.assert_allclose(scores[:5], [1.0, 1.0, 0.5, 0.0, 0.0])
    assert math.isnan(scores[5])


class ScriptedSource:
    """continuation_logprobs answers fixed per-token log-probabilities: exp(−mean) is known."""

    name = "scripted"

    def __init__(self, perplexity: dict[str, float]) -> None:
        self.perplexity = perplexity
        self.calls: list[tuple[list[str], list[str]]] = []

    def continuation_logprobs(self, prompts: list[str], continuations: list[str]) -> list[Any]:
        self.calls.append((prompts, continuations))
        return [np.full(3, -math.log(self.perplexity[c])) for c in continuations]


def test_fluency_is_the_perplexity_score_times_one_minus_repetition() -> None:
    steered = [" good good good good good", " a fine day out.", " word salad", " x"]
    base = [" fine.", " fine.", " fine.", " fine."]
    ppl = {steered[0]: 100.0, steered[1]: 10.0, steered[2]: 1000.0, steered[3]: 10.0, " fine.": 1.0}
    source = ScriptedSource(ppl)
    out = Fluency().compute(
        context(generations=steered, base_generations=base, source=source, failed=(3,))
    )
    # one call for every generation; the prompts go with their continuations
    assert len(source.calls) == 1
    prompts, continuations = source.calls[0]
    assert list(zip(prompts, continuations))[:3] == list(zip(PROMPTS, steered))[:3]
    # " good good good good good": two 4-grams, one distinct → repetition 0.5; ppl 100 → 0.5
    assert out["repetition"][0] == pytest.approx(0.5)
    assert out["fluency_score"][0] == pytest.approx(0.5 * 0.5)
    assert out["fluency_score"][1] == pytest.approx(1.0)  # ppl 10, no repetition
    assert out["fluency_score"][2] == pytest.approx(0.0)  # ppl 1000
    assert out["fluency_base"][0] == pytest.approx(1.0)
    assert out["repetition_base"][0] == 0.0
    for column in out:
        assert math.isnan(out[column][3]) and math.isnan(out[column][4])  # failed; no text


def test_fluency_settings_and_needs() -> None:
    metric = Fluency(ppl_low=2, ppl_high=50, n=3)
    assert Needs.of(metric.requires()) == Needs(model=True, generations=True)
    names = [c.name for c in metric.columns()]
    assert names[:2] == ["fluency_score", "repetition"]
    assert "fluency" not in names  # the runner's own score column: never shadowed
    with pytest.raises(ValidationError, match="ppl_high"):
        Fluency(ppl_low=100, ppl_high=10)
    with pytest.raises(ValidationError, match="n"):
        Fluency(n=0)
    with pytest.raises(ValidationError, match="source"):
        Fluency().compute(context())


def test_fluency_says_when_the_source_cannot_score() -> None:
    class NoScores:
        name = "none"

        def continuation_logprobs(self, *args: Any) -> Any:
            raise NotImplementedError("source 'none' cannot score continuations")

    with pytest.raises(SteerkitError, match="'fluency' metric needs a source that scores"):
        Fluency().compute(context(source=NoScores()))


def test_the_judges_are_public() -> None:
    for name in ("Vader", "TextBlobSentiment", "Fluency", "Readback", "HeldOutProbe", "LLMJudge"):
        assert name in steerkit_metrics.__all__
