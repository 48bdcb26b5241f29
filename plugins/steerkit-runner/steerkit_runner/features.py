"""Feature cards: what the SAE features the optimal methods choose mean.

During a run (the model and SAE are loaded then), `write_features` picks the features the
optimal methods use most — per optimal unit, the `PER_UNIT` features in the most inputs'
δ supports — and saves the source's cards for them in RUN_DIR/features.json
(`ActivationSource.feature_cards`: logit-lens tokens, the output score of Arad et al. 2025, top
contexts in the dataset's texts, dead flag). The report renders them (`cards_section`) with the
share of inputs each method uses them for; `steerkit features` prints the same cards for chosen
ids (`describe_features`). Nothing here knows a source by name.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from steerkit import SteerkitError
from steerkit_runner.table import md_escape

__all__ = [
    "FEATURES_JSON",
    "card_lines",
    "cards_section",
    "chosen_features",
    "describe_features",
    "method_supports",
    "read_features",
    "write_features",
]

logger = logging.getLogger(__name__)

FEATURES_JSON = "features.json"
#: features described per optimal unit (the report shows the top 10 of them)
PER_UNIT = 20
#: cards in the report
TOP_CARDS = 10

Row = Mapping[str, Any]


def chosen_features(
    rows: Iterable[Row], optimal: Sequence[str], per_unit: int = PER_UNIT
) -> list[int]:
    """The features to describe: per unit of an `optimal` method, the `per_unit` features in
    the most inputs' supports (an input counts once whatever its α); ranked by their best share
    over the units, then id."""
    supports: dict[tuple[Any, ...], dict[int, Sequence[int]]] = {}
    for row in rows:
        if row.get("method") in optimal and row.get("support") is not None:
            unit = (row["method"], row.get("solver"), row.get("param"), row.get("value"))
            supports.setdefault(unit, {})[int(row["input_id"])] = row["support"]
    best: dict[int, float] = {}
    for by_input in supports.values():
        counts = Counter(int(f) for s in by_input.values() for f in s)
        for f, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:per_unit]:
            best[f] = max(best.get(f, 0.0), c / len(by_input))
    return sorted(best, key=lambda f: (-best[f], f))


def method_supports(rows: Iterable[Row], optimal: Sequence[str]) -> dict[str, dict[int, Any]]:
    """{method: {input id: support}} of each `optimal` method that is not shared, from its
    first unit with supports among the rows the report reports (`table.reported_rows`)."""
    from steerkit_runner.table import reported_rows

    at_one = reported_rows(rows)
    out: dict[str, dict[int, Any]] = {}
    for method in optimal:
        for unit, unit_rows in at_one.items():
            if unit[0] != method or not unit_rows or all(r.get("shared") for r in unit_rows):
                continue
            supports = {
                int(r["input_id"]): r["support"] for r in unit_rows if r["support"] is not None
            }
            if supports:
                out[method] = supports
                break
    return out


def write_features(
    run_dir: Path, source: Any, texts: Sequence[str], feature_ids: Sequence[int]
) -> Path | None:
    """Save the source's cards of `feature_ids` over `texts` in RUN_DIR/features.json (kept when
    it already holds exactly these features); None when there is nothing to describe or the
    source cannot describe features (logged)."""
    path = Path(run_dir) / FEATURES_JSON
    ids = [int(f) for f in feature_ids]
    if not ids:
        return None
    old = read_features(run_dir)
    if old is not None and [c.get("feature") for c in old.get("cards", [])] == ids:
        return path
    try:
        cards = source.feature_cards(ids, list(texts))
    except NotImplementedError as e:
        logger.info("no feature cards: %s", e)
        return None
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cards, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_features(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/features.json, or None when the run has none (or it is unreadable: logged)."""
    path = Path(run_dir) / FEATURES_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        logger.warning("%s is not valid JSON (%s): no feature cards", path, e)
        return None
    return data if isinstance(data, dict) and isinstance(data.get("cards"), list) else None


def describe_features(
    config: Any,
    feature_ids: Sequence[int],
    *,
    source: Any = None,
    dataset: Any = None,
    host: Any = None,
) -> dict[str, Any]:
    """The cards of `feature_ids` for a config (a Config, a TOML path or a shipped config's
    name): its [source] (or `source`) over the texts of its [dataset] (or `dataset`) splits."""
    from steerkit_runner.config import Config, load_config, resolve_config

    if not isinstance(config, Config):
        config = load_config(config)
    skip = [k for k, v in (("source", source), ("dataset", dataset)) if v is not None]
    classes = resolve_config(config, host, skip=skip)
    if dataset is None:
        dataset = classes["dataset"](**config.dataset.params)
    splits = dataset.load(seed=config.run.seed, n_per_class=config.dataset.n_per_class)
    if source is None:
        source = classes["source"](**config.source.params)
    texts = list(dict.fromkeys([*splits.train.texts, *splits.test.texts]))
    try:
        return dict(source.feature_cards([int(f) for f in feature_ids], texts))
    except NotImplementedError as e:
        raise SteerkitError(f"{e}: feature cards need a source with an SAE and a model") from e


# --------------------------------------------------------------------------- rendering


def _token(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", "↵") + "`" if text.strip() else repr(text)


def card_lines(
    card: Mapping[str, Any],
    shares: Mapping[str, tuple[int, int]] | None = None,
    n_texts: int | None = None,
) -> list[str]:
    """One feature card as Markdown lines; shares: {method: (inputs using it, inputs)}."""
    f = card.get("feature")
    title = f"### Feature {f}"
    if shares:
        used = ", ".join(f"{m} {c}/{n} ({c / n:.0%})" for m, (c, n) in shares.items() if n)
        title += f" — in the δ support of {used} inputs"
    lens = ", ".join(f"{_token(str(t))} {float(v):.3g}" for t, v in card.get("lens_tokens", []))
    lines = [
        title,
        "",
        f"- Logit lens (decoder row → final norm → W_U): {lens or 'none'}",
        f"- Output score (Arad et al. 2025): {float(card.get('output_score', float('nan'))):.3g}",
    ]
    where = f"the dataset's {n_texts} texts" if n_texts else "the dataset's texts"
    if card.get("dead"):
        lines.append(f"- **Dead**: never active on any token of {where}.")
    else:
        lines.append(
            f"- Top contexts (max activation {float(card.get('max_activation', 0.0)):.3g} "
            f"over {where}):"
        )
        for c in card.get("contexts", []):
            left, token, right = (md_escape(str(c.get(k, ""))) for k in ("left", "token", "right"))
            lines.append(f"  - {float(c['activation']):.3g}: …{left} **{token}** {right}…")
    return [*lines, ""]


def cards_section(
    features: Mapping[str, Any] | None, supports: Mapping[str, Mapping[int, Sequence[int]]]
) -> list[str]:
    """The report's "Feature cards" section: the TOP_CARDS features in the most inputs' supports
    of the optimal per-input methods (`supports`: {method: {input id: support}}), each with its
    card from features.json and its share of inputs per method."""
    lines = ["## Feature cards", ""]
    counts = {
        m: Counter(int(f) for s in by_input.values() for f in s) for m, by_input in supports.items()
    }
    share = {
        f: max(c[f] / len(supports[m]) for m, c in counts.items() if supports[m])
        for c in counts.values()
        for f in c
    }
    top = sorted(share, key=lambda f: (-share[f], f))[:TOP_CARDS]
    if not top:
        return [*lines, "No optimal per-input method chose a feature: no feature cards."]
    if features is None:
        return [
            *lines,
            f"The run has no {FEATURES_JSON} (its source cannot describe SAE features, or the "
            "run predates feature cards): no feature cards.",
        ]
    cards = {c.get("feature"): c for c in features.get("cards", []) if isinstance(c, Mapping)}
    n_texts = features.get("n_texts")
    lines += [
        f"The {len(top)} features the optimal methods use for the most inputs. "
        f"{features.get('n_dead', '?')} of the SAE's {features.get('d_sae', '?')} features are "
        f"dead (never active on the dataset's {n_texts} texts). How each field is computed: "
        + "; ".join(f"{k}: {v}" for k, v in sorted(features.get("method", {}).items()))
        + ".",
        "",
    ]
    for f in top:
        used = {m: (counts[m][f], len(supports[m])) for m in supports if counts[m][f]}
        card = cards.get(f)
        if card is None:
            lines += [f"### Feature {f}", "", f"No card in {FEATURES_JSON} for this feature.", ""]
        else:
            lines += card_lines(card, used, n_texts)
    return lines
