"""Discovery through the entry point (light: no `datasets`, no scikit-learn at import) and the
prompts every task gives the heuristic baselines."""

from __future__ import annotations

import subprocess
import sys

import pytest
from steerkit_datasets import SST2, CivilComments, SentimentOffline, TaskDataset, TruthfulQA

import steerkit

TASKS: list[type[TaskDataset]] = [SentimentOffline, SST2, CivilComments, TruthfulQA]


def test_the_entry_point_registers_every_task_with_its_distribution() -> None:
    host = steerkit.PluginHost(allow=["steerkit-datasets"], block=())
    rows = {r.name: r for r in host.rows() if r.kind == "dataset"}
    assert set(rows) == {"sentiment-offline", "sst2", "civil_comments", "truthfulqa"}
    for row in rows.values():
        assert (row.distribution, row.status, row.plugin) == (
            "steerkit-datasets",
            "loaded",
            "datasets",
        )
    assert host.registry("dataset").get("sentiment-offline") is SentimentOffline


def test_discovery_imports_neither_datasets_nor_sklearn() -> None:
    """And sentiment-offline never needs `datasets` (nor the network) at all."""
    code = (
        "import sys, steerkit_datasets.plugin\n"
        "heavy = [m for m in ('datasets', 'sklearn', 'torch', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from steerkit_datasets import SentimentOffline\n"
        "assert len(SentimentOffline().load(seed=0).train) == 352\n"
        "assert 'datasets' not in sys.modules and 'huggingface_hub' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_task_has_its_prompts(task: type[TaskDataset]) -> None:
    dataset = task()
    pairs = dataset.contrastive_pairs()
    assert len(pairs) >= 16
    assert len(set(pairs)) == len(pairs)
    for negative, positive in pairs:
        assert negative.strip() and positive.strip() and negative != positive
    negative, positive = dataset.persona_prefixes()
    assert negative.strip() and positive.strip() and negative != positive
    queries = dataset.neutral_queries()
    assert len(queries) >= 16 and len(set(queries)) == len(queries)
    assert all(q.strip() for q in queries)


def test_truthfulqa_prompts_are_question_and_answer_texts() -> None:
    for negative, positive in TruthfulQA().contrastive_pairs():
        assert negative.startswith("Q: ") and " A: " in negative
        # the same question, a different answer
        assert negative.split(" A: ")[0] == positive.split(" A: ")[0]
    assert all(q.startswith("Q: ") and q.endswith("A:") for q in TruthfulQA().neutral_queries())
