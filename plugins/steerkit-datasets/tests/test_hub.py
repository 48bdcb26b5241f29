"""The hub tasks with `datasets.load_dataset` replaced by a local `datasets.Dataset` built here
(column mapping, balancing, splitting), or by a failure (the error names sentiment-offline).
Nothing here touches the network."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import datasets
import huggingface_hub.errors
import numpy as np
import pytest
import requests
from steerkit_datasets import SST2, CivilComments, HubUnavailableError, TruthfulQA
from steerkit_datasets.hub import HubDataset

from steerkit import Splits, SteerkitError, ValidationError

Calls = list[tuple[tuple[Any, ...], dict[str, Any]]]


def fake_hub(monkeypatch: pytest.MonkeyPatch, data: datasets.Dataset) -> Calls:
    """Make datasets.load_dataset return `data`; the calls are recorded."""
    calls: Calls = []

    def load_dataset(*args: Any, **kwargs: Any) -> datasets.Dataset:
        calls.append((args, kwargs))
        return data

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def failing_hub(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def load_dataset(*args: Any, **kwargs: Any) -> datasets.Dataset:
        raise error

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def pairs(splits: Splits) -> list[tuple[str, int]]:
    return [
        (text, int(label))
        for part in (splits.train, splits.test)
        for text, label in zip(part.texts, part.labels)
    ]


def assert_balanced(splits: Splits, train: int, test: int) -> None:
    assert np.bincount(splits.train.labels, minlength=2).tolist() == [train, train]
    assert np.bincount(splits.test.labels, minlength=2).tolist() == [test, test]
    assert not set(splits.train.texts) & set(splits.test.texts)


# -- sst2 -----------------------------------------------------------------------------------------


def sst2_data() -> tuple[datasets.Dataset, dict[str, int]]:
    """40 negative and 25 positive phrases, plus what must never be drawn: an unlabelled row
    (-1), an empty text and a duplicate of a positive phrase with the opposite label."""
    truth = {f"negative phrase number {i}": 0 for i in range(40)}
    truth |= {f"positive phrase number {i}": 1 for i in range(25)}
    sentences = [*truth, "an unlabelled phrase", "   ", "POSITIVE phrase number 3"]
    labels = [*truth.values(), -1, 1, 0]
    return datasets.Dataset.from_dict(
        {"idx": range(len(labels)), "sentence": sentences, "label": labels}
    ), truth


def test_sst2_reads_the_train_split_and_maps_its_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    data, truth = sst2_data()
    calls = fake_hub(monkeypatch, data)
    splits = SST2().load(seed=0)
    assert calls == [(("stanfordnlp/sst2",), {"split": "train"})]
    drawn = pairs(splits)
    assert all(truth[text] == label for text, label in drawn)  # every text keeps its label
    # balanced down to the smaller class; the phrase labelled both ways is ambiguous and left
    # out, so 24 positive phrases remain
    assert len(drawn) == 48 and "positive phrase number 3" not in dict(drawn)
    assert_balanced(splits, 19, 5)


def test_sst2_n_per_class_and_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    data, truth = sst2_data()
    fake_hub(monkeypatch, data)
    first = SST2().load(seed=7, n_per_class=10)
    assert_balanced(first, 8, 2)
    assert all(truth[text] == label for text, label in pairs(first))
    again = SST2().load(seed=7, n_per_class=10)
    assert first.train.texts == again.train.texts and first.test.texts == again.test.texts
    other = SST2().load(seed=8, n_per_class=10)
    assert set(other.train.texts) != set(first.train.texts)
    with pytest.raises(ValidationError, match=r"n_per_class: expected at most 25"):
        SST2().load(n_per_class=26)


# -- civil_comments --------------------------------------------------------------------------------


def civil_data() -> tuple[datasets.Dataset, dict[str, int]]:
    toxicity = {f"comment {i}": t for i, t in enumerate(np.linspace(0.0, 1.0, 41))}
    toxicity["exactly at the threshold"] = 0.5
    toxicity["just below the threshold"] = 0.4999
    texts = [*toxicity, "a comment with no score"]
    scores = [*toxicity.values(), float("nan")]
    data = datasets.Dataset.from_dict({"text": texts, "toxicity": scores, "insult": scores})
    return data, {text: int(score >= 0.5) for text, score in toxicity.items()}


def test_civil_comments_labels_toxicity_at_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    data, truth = civil_data()
    calls = fake_hub(monkeypatch, data)
    splits = CivilComments().load(seed=0)
    assert calls == [(("google/civil_comments",), {"split": "train"})]
    drawn = dict(pairs(splits))
    assert all(truth[text] == label for text, label in drawn.items())
    assert "a comment with no score" not in drawn
    assert len(drawn) == 2 * min(np.bincount(list(truth.values())))  # 21 below 0.5, 22 at or above
    assert_balanced(splits, 17, 4)  # 4 = 0.2 × 21, rounded
    splits = CivilComments().load(seed=0, n_per_class=21)
    assert dict(pairs(splits))["just below the threshold"] == 0  # every non-toxic text is drawn


def test_civil_comments_threshold_is_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = civil_data()
    fake_hub(monkeypatch, data)
    splits = CivilComments(threshold=0.9).load(seed=0, n_per_class=5)
    scores = dict(zip(data["text"], data["toxicity"]))
    assert all((scores[text] >= 0.9) == bool(label) for text, label in pairs(splits))
    with pytest.raises(ValidationError, match="threshold: expected a number in"):
        CivilComments(threshold=0.0)


# -- truthfulqa ----------------------------------------------------------------------------------


def truthful_data() -> datasets.Dataset:
    questions = [f"Question {i}?" for i in range(12)]
    return datasets.Dataset.from_dict(
        {
            "type": ["Adversarial"] * 13,
            "category": ["Misconceptions"] * 13,
            "question": [*questions, "A question with no wrong answer?"],
            "best_answer": [f"True answer {i}." for i in range(12)] + ["Yes."],
            "correct_answers": [[f"True answer {i}."] for i in range(12)] + [["Yes."]],
            "incorrect_answers": [[f"False answer {i}.{j}" for j in range(3)] for i in range(12)]
            + [[]],
            "source": ["written for the test"] * 13,
        }
    )


def test_truthfulqa_makes_question_answer_texts_split_by_question(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_hub(monkeypatch, truthful_data())
    splits = TruthfulQA().load(seed=0)
    assert calls == [(("truthfulqa/truthful_qa", "generation"), {"split": "validation"})]
    drawn = pairs(splits)
    assert len(drawn) == 24  # the question with no wrong answer is left out
    questions: dict[str, set[int]] = {}
    for text, label in drawn:
        question, answer = text.removeprefix("Q: ").split(" A: ")
        number = question.removeprefix("Question ").removesuffix("?")
        expected = f"True answer {number}." if label == 1 else f"False answer {number}."
        assert answer.startswith(expected)
        questions.setdefault(question, set()).add(label)
    assert all(labels == {0, 1} for labels in questions.values()) and len(questions) == 12
    train_questions = {t.split(" A: ")[0] for t in splits.train.texts}
    test_questions = {t.split(" A: ")[0] for t in splits.test.texts}
    assert not train_questions & test_questions and len(test_questions) == 2
    assert_balanced(splits, 10, 2)  # 2 = 0.2 × 12 questions, rounded


def test_truthfulqa_draws_the_false_answer_with_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(monkeypatch, truthful_data())
    falses = {
        seed: {t for t, label in pairs(TruthfulQA().load(seed=seed)) if label == 0}
        for seed in range(4)
    }
    assert falses[0] == {t for t, label in pairs(TruthfulQA().load(seed=0)) if label == 0}
    assert len({frozenset(f) for f in falses.values()}) > 1
    splits = TruthfulQA().load(seed=2, n_per_class=6)
    assert len(pairs(splits)) == 12
    with pytest.raises(ValidationError, match="n_per_class: expected at most 12"):
        TruthfulQA().load(n_per_class=13)


def test_truthfulqa_gives_its_multiple_choice_items(monkeypatch: pytest.MonkeyPatch) -> None:
    data = datasets.Dataset.from_dict(
        {
            "question": ["Question 0?", "Question 1?"],
            "mc1_targets": [
                {"choices": ["True 0.", "False 0.a", "False 0.b"], "labels": [1, 0, 0]},
                {"choices": ["True 1.", "False 1."], "labels": [1, 0]},
            ],
            "mc2_targets": [
                {"choices": ["True 0.", "Also true 0.", "False 0.a"], "labels": [1, 1, 0]},
                {"choices": ["True 1.", "False 1."], "labels": [1, 0]},
            ],
        }
    )
    calls = fake_hub(monkeypatch, data)
    items = TruthfulQA().multiple_choice()
    assert calls == [(("truthfulqa/truthful_qa", "multiple_choice"), {"split": "validation"})]
    assert [item.question for item in items] == ["Question 0?", "Question 1?"]
    assert items[0].mc1_choices == ("True 0.", "False 0.a", "False 0.b")
    assert items[0].mc1_labels == (1, 0, 0)
    assert items[0].mc2_labels == (1, 1, 0) and items[1].mc2_choices == ("True 1.", "False 1.")
    fake_hub(monkeypatch, datasets.Dataset.from_dict({"question": ["q"], "mc1_targets": [{}]}))
    with pytest.raises(SteerkitError, match="has no column 'mc2_targets'"):
        TruthfulQA().multiple_choice()


def test_a_missing_column_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(monkeypatch, datasets.Dataset.from_dict({"text": ["a b c"], "label": [1]}))
    with pytest.raises(SteerkitError, match="has no column 'sentence'"):
        SST2().load()


# -- the hub out of reach -------------------------------------------------------------------------

TASKS: list[type[HubDataset]] = [SST2, CivilComments, TruthfulQA]
UNREACHABLE: list[Callable[[], BaseException]] = [
    lambda: ConnectionError("Couldn't reach 'x' on the Hub (LocalEntryNotFoundError)"),
    lambda: huggingface_hub.errors.OfflineModeIsEnabled("offline mode is enabled"),
    lambda: requests.ConnectionError("Max retries exceeded"),
    lambda: TimeoutError("timed out"),
]


def chained(error: BaseException) -> BaseException:
    """`error` as the cause of an unrelated-looking wrapper, as libraries re-raise."""
    try:
        try:
            raise error
        except BaseException as inner:
            raise RuntimeError("loading failed") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
@pytest.mark.parametrize("make", UNREACHABLE, ids=["connection", "offline", "requests", "timeout"])
def test_an_unreachable_hub_names_sentiment_offline(
    monkeypatch: pytest.MonkeyPatch, task: type[HubDataset], make: Callable[[], BaseException]
) -> None:
    for error in (make(), chained(make())):
        failing_hub(monkeypatch, error)
        with pytest.raises(HubUnavailableError) as caught:
            task().load(seed=0, n_per_class=5)
        message = str(caught.value)
        assert "hub could not be reached" in message and task.hub_id in message
        assert "`sentiment-offline`" in message
        assert isinstance(caught.value, SteerkitError)
        assert caught.value.__cause__ is error


def test_offline_mode_turns_a_missing_file_into_the_hub_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    failing_hub(monkeypatch, FileNotFoundError("no cached copy of stanfordnlp/sst2"))
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE is set.*`sentiment-offline`"):
        SST2().load()


def test_other_errors_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for error in (FileNotFoundError("no such dataset"), ValueError("bad config")):
        failing_hub(monkeypatch, error)
        with pytest.raises(type(error)) as caught:
            SST2().load()
        assert caught.value is error


def test_the_real_load_dataset_in_offline_mode_gives_the_hub_error(tmp_path: Any) -> None:
    """datasets itself, offline (no network call) and with an empty cache."""
    code = (
        "from steerkit_datasets import SST2, HubUnavailableError\n"
        "try:\n"
        "    SST2().load(n_per_class=5)\n"
        "except HubUnavailableError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "`sentiment-offline`" in result.stdout and "HF_HUB_OFFLINE is set" in result.stdout


# -- balancing a large source ----------------------------------------------------------------------


def test_a_small_draw_reads_only_a_small_part_of_a_large_source() -> None:
    """civil_comments has 1.8 million rows: drawing 10 per class must not read them all."""
    from steerkit_datasets._split import balanced_texts

    rng = np.random.default_rng(0)
    labels = (rng.random(200_000) < 0.08).astype(np.int64)  # 8% positive, as toxic comments
    read: list[int] = []

    def texts_at(indices: np.ndarray[Any, Any]) -> list[str]:
        read.extend(indices.tolist())
        return [f"row {i} " + ("toxic" if labels[i] else "civil") for i in indices]

    texts, chosen = balanced_texts("test", labels, texts_at, n_per_class=10, seed=0)
    assert len(read) <= 2 * 64
    assert chosen.tolist() == [0] * 10 + [1] * 10
    assert all(t.endswith("toxic" if label else "civil") for t, label in zip(texts, chosen))
