"""steerkit-datasets: labelled tasks for steerkit — `sentiment-offline` (bundled, no network),
and `sst2`, `civil_comments`, `truthfulqa` from the Hugging Face hub — each with the contrastive
pairs, persona prefixes and neutral queries the heuristic baselines need."""

from __future__ import annotations

from steerkit_datasets.base import TaskDataset
from steerkit_datasets.hub import (
    SST2,
    CivilComments,
    HubDataset,
    HubUnavailableError,
    MultipleChoice,
    TruthfulQA,
    hub_unreachable,
)
from steerkit_datasets.offline import SentimentOffline, read_sentiment_offline
from steerkit_datasets.prompts import TaskPrompts

__all__ = [
    "SST2",
    "CivilComments",
    "HubDataset",
    "HubUnavailableError",
    "MultipleChoice",
    "SentimentOffline",
    "TaskDataset",
    "TaskPrompts",
    "TruthfulQA",
    "hub_unreachable",
    "read_sentiment_offline",
]
