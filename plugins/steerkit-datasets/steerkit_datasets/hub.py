"""Tasks read from the Hugging Face hub with `datasets.load_dataset`: sst2, civil_comments and
truthfulqa. `datasets` is imported inside `load`, so discovering the plugin stays light.

When the hub cannot be reached the error says so and names `sentiment-offline`, the bundled
task that needs no network.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import attrs
import numpy as np

from steerkit import Splits, SteerkitError, ValidationError
from steerkit.checks import fraction
from steerkit_datasets._split import (
    balanced_texts,
    check_n_per_class,
    normalise,
    stratified_splits,
)
from steerkit_datasets.base import TaskDataset
from steerkit_datasets.prompts import CIVIL, MOVIE, TRUTHFUL

__all__ = [
    "SST2",
    "CivilComments",
    "HubDataset",
    "HubUnavailableError",
    "MultipleChoice",
    "TruthfulQA",
    "hub_unreachable",
]

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _offline_mode() -> str | None:
    """The name of the offline variable that is set to a true value, if any."""
    for variable in _OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}:
            return variable
    return None


class HubUnavailableError(SteerkitError, ConnectionError):
    """The Hugging Face hub could not be reached (no network, or offline mode) to load a task."""

    def __init__(self, dataset: str, hub_id: str, cause: BaseException) -> None:
        self.dataset = dataset
        self.hub_id = hub_id
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
        offline = _offline_mode()
        note = f"; {offline} is set, so only the local datasets cache is read" if offline else ""
        super().__init__(
            f"dataset {dataset!r}: the Hugging Face hub could not be reached to load "
            f"{hub_id!r} ({reason}){note}. Use the bundled dataset `sentiment-offline` "
            f"instead (no network needed), or load {dataset!r} once where the hub is reachable "
            f"so that the datasets cache holds it"
        )


def _unreachable_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the hub is out of reach", from whichever clients exist."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

        types += [LocalEntryNotFoundError, OfflineModeIsEnabled]
    except ImportError:  # pragma: no cover - huggingface_hub comes with datasets
        pass
    try:
        import httpx

        types.append(httpx.TransportError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import requests

        types += [requests.ConnectionError, requests.Timeout]
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def hub_unreachable(error: BaseException) -> bool:
    """Whether `error` (or anything in its chain of causes) says the hub cannot be reached.

    In offline mode a missing file (OSError) means the same: the cache does not hold the task.
    """
    types = _unreachable_types()
    offline = _offline_mode() is not None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, types) or (offline and isinstance(current, OSError)):
            return True
        current = current.__cause__ or current.__context__
    return False


class HubDataset(TaskDataset):
    """A task read with `datasets.load_dataset(hub_id, hub_config, split=hub_split)`."""

    hub_id: ClassVar[str]
    hub_config: ClassVar[str | None] = None
    hub_split: ClassVar[str] = "train"
    columns: ClassVar[tuple[str, ...]]

    def _load_hub(self, config: str | None = None, columns: tuple[str, ...] | None = None) -> Any:
        """The hub split as a `datasets.Dataset`, its expected columns checked (another config
        of the same hub dataset, with its own columns, when given)."""
        config = config or self.hub_config
        columns = self.columns if columns is None else columns
        try:
            import datasets
        except ImportError as e:
            raise SteerkitError(
                f"dataset {self.name!r} needs the `datasets` package: pip install datasets "
                f"(or use the bundled dataset `sentiment-offline`)"
            ) from e
        args = (self.hub_id,) if config is None else (self.hub_id, config)
        try:
            data = datasets.load_dataset(*args, split=self.hub_split)
        except Exception as e:
            if hub_unreachable(e):
                raise HubUnavailableError(self.name, self.hub_id, e) from e
            raise
        found = list(getattr(data, "column_names", []))
        missing = [c for c in columns if c not in found]
        if missing:
            raise SteerkitError(
                f"dataset {self.name!r}: {self.hub_id!r} split {self.hub_split!r} has no "
                f"column {missing[0]!r} (expected {list(columns)}, found {found})"
            )
        return data

    def _balanced(
        self, data: Any, labels: np.ndarray[Any, Any], text_column: str, seed: int, n: int | None
    ) -> Splits:
        def texts_at(indices: np.ndarray[Any, Any]) -> list[Any]:
            return list(data.select(indices.tolist())[text_column])

        texts, chosen = balanced_texts(self.name, labels, texts_at, n_per_class=n, seed=seed)
        return stratified_splits(self.name, texts, chosen, test_size=self.test_size, seed=seed)


class SST2(HubDataset):
    """Stanford Sentiment Treebank (binary) phrases from movie reviews: `sentence`, `label`
    (1 positive, 0 negative); the labelled `train` split, resplit here."""

    name = "sst2"
    hub_id = "stanfordnlp/sst2"
    columns = ("sentence", "label")
    prompts = MOVIE

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        """Balanced, stratified, seeded splits of the hub's train split."""
        seed = self._check_seed(seed)
        n = check_n_per_class(self.name, n_per_class)
        data = self._load_hub()
        labels = np.asarray(data["label"], dtype=np.int64)  # -1 (unlabelled) is never drawn
        return self._balanced(data, labels, "sentence", seed, n)


class CivilComments(HubDataset):
    """Civil Comments: `text` with a `toxicity` score in [0, 1]; label 1 (toxic) when
    toxicity ≥ threshold (default 0.5), else 0. The `train` split, resplit here.

    The positive prompts (contrastive pairs, persona) are rude on purpose: they exist to find
    the direction to steer away from.
    """

    name = "civil_comments"
    hub_id = "google/civil_comments"
    columns = ("text", "toxicity")
    prompts = CIVIL

    def __init__(self, *, test_size: float = 0.2, threshold: float = 0.5) -> None:
        super().__init__(test_size=test_size)
        self.threshold = fraction("CivilComments", "threshold", threshold, include_one=True)

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        """Balanced (toxic / not toxic), stratified, seeded splits."""
        seed = self._check_seed(seed)
        n = check_n_per_class(self.name, n_per_class)
        data = self._load_hub()
        toxicity = np.asarray(data["toxicity"], dtype=np.float64)
        labels = np.where(np.isnan(toxicity), -1, (toxicity >= self.threshold).astype(np.int64))
        return self._balanced(data, labels, "text", seed, n)


class TruthfulQA(HubDataset):
    """TruthfulQA (generation config, its only split `validation`): for each question a true
    text "Q: question A: best_answer" (label 1) and a false one with one of its
    `incorrect_answers`, drawn with the seed (label 0).

    n_per_class counts questions. A question's two texts always land in the same split, so no
    question is seen in training and tested on; both splits are exactly balanced.
    """

    name = "truthfulqa"
    hub_id = "truthfulqa/truthful_qa"
    hub_config = "generation"
    hub_split = "validation"
    columns = ("question", "best_answer", "incorrect_answers")
    prompts = TRUTHFUL

    def load(self, *, seed: int = 0, n_per_class: int | None = None) -> Splits:
        """One true and one false answer per question; split by question."""
        seed = self._check_seed(seed)
        n = check_n_per_class(self.name, n_per_class)
        data = self._load_hub()
        questions = list(data["question"])
        best = list(data["best_answer"])
        incorrect = list(data["incorrect_answers"])
        rng = np.random.default_rng(seed)
        texts: list[str] = []
        seen: set[str] = set()
        for i in rng.permutation(len(questions)):
            question, answer = questions[i], best[i]
            wrong = [a for a in (incorrect[i] or []) if isinstance(a, str) and a.strip()]
            if not (isinstance(question, str) and question.strip()):
                continue
            if not (isinstance(answer, str) and answer.strip()) or not wrong:
                continue
            if normalise(question) in seen:
                continue
            seen.add(normalise(question))
            false = wrong[int(rng.integers(len(wrong)))]
            texts += [_qa(question, false), _qa(question, answer)]
            if n is not None and len(texts) == 2 * n:
                break
        available = len(texts) // 2
        if n is not None and available < n:
            raise ValidationError(
                self.name,
                "n_per_class",
                f"at most {available} (the questions with a true and a false answer)",
                repr(n),
            )
        labels = np.tile(np.array([0, 1], dtype=np.int64), available)
        groups = np.repeat(np.arange(available), 2)
        return stratified_splits(
            self.name, texts, labels, test_size=self.test_size, seed=seed, groups=groups
        )

    def multiple_choice(self) -> list[MultipleChoice]:
        """Every question of TruthfulQA's `multiple_choice` config (split `validation`) with its
        MC1 choices (exactly one true) and MC2 choices (one or more true): what the standard
        MC1 / MC2 scores are computed from (the `truthfulqa_mc` metric)."""
        data = self._load_hub("multiple_choice", ("question", "mc1_targets", "mc2_targets"))
        items = []
        for question, mc1, mc2 in zip(data["question"], data["mc1_targets"], data["mc2_targets"]):
            items.append(
                MultipleChoice(
                    question=question,
                    mc1_choices=mc1["choices"],
                    mc1_labels=mc1["labels"],
                    mc2_choices=mc2["choices"],
                    mc2_labels=mc2["labels"],
                )
            )
        return items


def _choices(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _labels(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class MultipleChoice:
    """One multiple-choice question: `mc1_choices` with `mc1_labels` (1 true, 0 false; exactly
    one true) and `mc2_choices` with `mc2_labels` (at least one true and one false)."""

    question: str
    mc1_choices: tuple[str, ...] = attrs.field(converter=_choices)
    mc1_labels: tuple[int, ...] = attrs.field(converter=_labels)
    mc2_choices: tuple[str, ...] = attrs.field(converter=_choices)
    mc2_labels: tuple[int, ...] = attrs.field(converter=_labels)

    def __attrs_post_init__(self) -> None:
        for name in ("mc1", "mc2"):
            choices, labels = getattr(self, f"{name}_choices"), getattr(self, f"{name}_labels")
            if len(choices) != len(labels) or not set(labels) <= {0, 1}:
                raise ValidationError(
                    "MultipleChoice",
                    f"{name}_labels",
                    f"one 0/1 label per choice ({len(choices)})",
                    repr(labels),
                )
            if 0 not in labels or 1 not in labels:
                raise ValidationError(
                    "MultipleChoice", f"{name}_labels", "a true and a false choice", repr(labels)
                )
        if sum(self.mc1_labels) != 1:
            raise ValidationError(
                "MultipleChoice", "mc1_labels", "exactly one true choice", repr(self.mc1_labels)
            )


def _qa(question: str, answer: str) -> str:
    return f"Q: {question.strip()} A: {answer.strip()}"
