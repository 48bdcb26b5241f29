"""Feature cards end to end on the tiny model: the runner's features.json, the report's cards and
`steerkit features`, checked against supports counted by hand and the source's own cards."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from steerkit_runner.commands import FeaturesCommand
from steerkit_runner.features import FEATURES_JSON, card_lines, chosen_features
from steerkit_runner.report import write_report
from steerkit_runner.results import ResultsTable
from steerkit_runner.runner import run

import steerkit
from steerkit.cli import main

from .conftest import TinySentiment

pytestmark = pytest.mark.needs_torch


def _qp_counts(run_dir: Path) -> tuple[Counter[int], int]:
    """How many inputs have each feature in their qp δ support (α = 1 rows), and the inputs."""
    rows = [
        r
        for r in ResultsTable(run_dir / "results.jsonl").rows
        if r["method"] == "qp" and r["alpha"] == 1.0 and r["support"] is not None
    ]
    return Counter(f for r in rows for f in r["support"]), len(rows)


def _dataset_texts() -> list[str]:
    splits = TinySentiment(n_test=6).load(seed=0, n_per_class=16)
    return list(dict.fromkeys([*splits.train.texts, *splits.test.texts]))


@pytest.fixture
def tiny_run_dir(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Callable[..., Path]
) -> Path:
    return run(write_config(), source=tiny_source, progress=False, report=False).run_dir


def test_the_run_saves_cards_of_the_features_the_optimal_method_uses_most(
    tiny_run_dir: Path, tiny_source: Any
) -> None:
    counts, _ = _qp_counts(tiny_run_dir)
    assert counts, "the tiny qp run must choose features for this test to mean anything"
    by_hand = sorted(counts, key=lambda f: (-counts[f], f))[:20]
    saved = json.loads((tiny_run_dir / FEATURES_JSON).read_text())
    ids = [c["feature"] for c in saved["cards"]]
    assert ids == by_hand
    rows = ResultsTable(tiny_run_dir / "results.jsonl").rows
    assert chosen_features(rows, ["qp"]) == ids
    assert chosen_features(rows, ["toy_direction"]) == []  # no support: nothing to describe
    # the cards are the source's, over the dataset's texts (train and test)
    texts = _dataset_texts()
    assert saved["n_texts"] == len(texts)
    direct = tiny_source.feature_cards(ids[:2], texts)
    for got, expected in zip(saved["cards"][:2], direct["cards"]):
        assert got["output_score"] == pytest.approx(expected["output_score"], rel=1e-6)
        assert got["contexts"] == expected["contexts"]
        assert [t for t, _ in got["lens_tokens"]] == [t for t, _ in expected["lens_tokens"]]
        got_logits = [v for _, v in got["lens_tokens"]]
        assert got_logits == pytest.approx([v for _, v in expected["lens_tokens"]], rel=1e-5)
    assert saved["n_dead"] == direct["n_dead"]


def test_the_report_shows_the_top_cards_with_each_features_share_of_inputs(
    tiny_run_dir: Path,
) -> None:
    counts, n = _qp_counts(tiny_run_dir)
    top = sorted(counts, key=lambda f: (-counts[f], f))
    text = write_report(tiny_run_dir).read_text()
    section = text[text.index("## Feature cards") :]
    section = section[: section.index("\n## ", 3)] if "\n## " in section[3:] else section
    titles = [line for line in section.splitlines() if line.startswith("### Feature ")]
    assert len(titles) == min(10, len(top))
    for f, title in zip(top, titles):
        assert title == f"### Feature {f} — in the δ support of qp {counts[f]}/{n} " + (
            f"({counts[f] / n:.0%}) inputs"
        )
    assert section.count("Output score (Arad et al. 2025)") == len(titles)
    assert "Logit lens (decoder row → final norm → W_U)" in section


def test_a_dead_feature_is_flagged_and_a_missing_features_file_is_said(
    tiny_run_dir: Path,
) -> None:
    path = tiny_run_dir / FEATURES_JSON
    saved = json.loads(path.read_text())
    saved["cards"][0].update(dead=True, contexts=[], max_activation=0.0)
    path.write_text(json.dumps(saved))
    text = write_report(tiny_run_dir).read_text()
    assert f"**Dead**: never active on any token of the dataset's {saved['n_texts']} texts" in text
    path.unlink()
    text = write_report(tiny_run_dir).read_text()
    assert f"The run has no {FEATURES_JSON}" in text and "### Feature " not in text


def test_card_lines_render_tokens_contexts_and_shares() -> None:
    card = {
        "feature": 7,
        "lens_tokens": [["good", 2.5], [" ", 1.0]],
        "output_score": 0.25,
        "max_activation": 3.0,
        "dead": False,
        "contexts": [{"left": "the cat is", "token": "good", "right": "and", "activation": 3.0}],
    }
    lines = card_lines(card, {"qp": (3, 4)}, 12)
    assert lines[0] == "### Feature 7 — in the δ support of qp 3/4 (75%) inputs"
    assert "`good` 2.5, ' ' 1" in lines[2]
    assert lines[3].endswith(": 0.25")
    assert "over the dataset's 12 texts" in lines[4]
    assert lines[5] == "  - 3: …the cat is **good** and…"


def test_the_features_command_prints_cards_from_a_run_or_a_config(
    tiny_run_dir: Path,
    tiny_source: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    counts, n = _qp_counts(tiny_run_dir)
    first = min(counts, key=lambda f: (-counts[f], f))
    assert main(["features", "--run-dir", str(tiny_run_dir), str(first)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"### Feature {first} — in the δ support of qp {counts[first]}/{n} ")

    monkeypatch.setattr(FeaturesCommand, "factory", lambda config: (tiny_source, None))
    assert main(["features", "--config", str(write_config()), "5", "63"]) == 0
    out = capsys.readouterr().out
    expected = tiny_source.feature_cards([5, 63], _dataset_texts())["cards"]
    for card in expected:
        assert "\n".join(card_lines(card, None, len(_dataset_texts()))) in out
    assert main(["features", "--config", str(write_config()), "64"]) == 1  # out of range
    assert "feature_ids[0]" in capsys.readouterr().err
