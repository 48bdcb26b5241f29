"""The report's opening: the answer to "does steering change what the model writes, at what cost
in fluency, and do the optimal methods beat the best baseline?", in words generated from the
numbers of the comparison table — whatever the answer is — and the curves behind it: concept
against fluency across α, each unit's chosen α marked.

A run answers with its [evaluation] concept and fluency scores (judges of the generated text,
independent of the steering probe) on test inputs at an α chosen on dev inputs; without them it
can say only what the probe says, and says so.
"""

from __future__ import annotations

import math
import pathlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from steerkit import Column
from steerkit_runner.table import NONE, UnitKey, by_unit, label, md_escape, mean, num

__all__ = ["answer_section", "curves_section"]

Entry = Mapping[str, Any]
Row = Mapping[str, Any]


def _unit(entry: Entry) -> UnitKey:
    return (entry["method"], entry["solver"], entry["param"], entry["value"])


def _name(entry: Entry) -> str:
    return f"**{md_escape(label(_unit(entry)))}** (α = {num(entry['alpha'])})"


def _ci(entry: Entry, column: str, spec: str = ".3f") -> str:
    value = entry.get(column, math.nan)
    if math.isnan(value):
        return NONE
    low, high = entry.get(f"{column}_ci", (math.nan, math.nan))
    if math.isnan(low):
        return format(value, spec)
    return f"{format(value, spec)} [{format(low, spec)}, {format(high, spec)}]"


def _finite(entries: Sequence[Entry], column: str) -> list[Entry]:
    return [e for e in entries if not math.isnan(e.get(column, math.nan))]


def answer_section(
    table: Sequence[Entry],
    families: Mapping[str, str],
    evaluation: Mapping[str, Any],
    effect: Column | None,
    n_dev: int,
    new_tokens: Mapping[str, Any] | None = None,
) -> list[str]:
    """'## The answer': which method moves generations most toward the target and at what
    fluency cost, and whether the optimal methods beat the best baseline, with intervals.
    new_tokens: the generations' lengths ({"dev": …, "test": …}), said when known."""
    lines = ["## The answer", ""]
    if not table:
        return [*lines, "No result rows yet: nothing to answer."]
    scored = _finite([e for e in table if families.get(e["method"]) != "control"], "aggregate")
    if not scored:
        return lines + _probe_only(table, families, effect)
    best = max(scored, key=lambda e: e["aggregate"])
    control = _finite([e for e in table if families.get(e["method"]) == "control"], "aggregate")
    n = best.get("aggregate_n", best["n_inputs"])  # the prompts judged, not the inputs steered
    tokens = new_tokens or {}

    def length(split: str) -> str:
        value = tokens.get(split)
        return f" × {value} new tokens" if isinstance(value, int) else ""

    how = (
        f"on {n} test prompts{length('test')}, each method at the α its mean aggregate chose on "
        f"{n_dev} dev prompts{length('dev')}"
        if n_dev
        else f"on {n} prompts{length('test')} at α = {num(best['alpha'])}"
    )
    judge = evaluation.get("concept") or "the concept column"
    lines.append(
        f"**Which method moves generations most toward the target?** Judged {how} — concept "
        f"by `{md_escape(str(judge))}`, a judge of the generated text independent of the "
        f"steering probe, fluency by `{md_escape(str(evaluation.get('fluency')))}` — "
        f"{_name(best)} has the highest aggregate, {_ci(best, 'aggregate')}: concept "
        f"{_ci(best, 'concept')}, fluency {_ci(best, 'fluency')}."
        + (
            f" Unsteered generations score concept {_ci(control[0], 'concept')} and fluency "
            f"{_ci(control[0], 'fluency')}: steering moved the concept score by "
            f"{best['concept'] - control[0]['concept']:+.3f} and the fluency score by "
            f"{best['fluency'] - control[0]['fluency']:+.3f}."
            if control
            else ""
        )
    )
    lines += ["", *_versus(table, families), "", *_cost(scored, control)]
    return lines


def _versus(table: Sequence[Entry], families: Mapping[str, str]) -> list[str]:
    """Whether the best optimal method beats the best baseline (paired interval)."""
    optimal = _finite([e for e in table if families.get(e["method"]) == "optimal"], "aggregate")
    if not optimal or "vs_best_baseline" not in table[0]:
        return [
            "**Do the optimal methods beat the best baseline?** This run cannot say: it needs "
            "both optimal methods and baselines with an aggregate score."
        ]
    best = max(optimal, key=lambda e: e["aggregate"])
    low, high = best.get("vs_best_baseline_ci", (math.nan, math.nan))
    difference = best["vs_best_baseline"]
    if math.isnan(low):
        verdict = "too few paired prompts for an interval"
    elif low > 0:
        verdict = "**yes**: the interval lies above 0"
    elif high < 0:
        verdict = "**no, it is worse**: the interval lies below 0"
    else:
        verdict = (
            "**not distinguishable** at this sample size: the interval contains 0 (neither is "
            "shown better)"
        )
    baseline = best["best_baseline"]
    reference = next(
        (e for e in table if label(_unit(e)) == baseline),
        None,
    )
    shown = f" (aggregate {_ci(reference, 'aggregate')})" if reference is not None else ""
    return [
        f"**Do the optimal methods beat the best baseline?** The best baseline is "
        f"**{md_escape(baseline)}**{shown}; the best optimal method, {_name(best)}, differs from "
        f"it by {difference:+.3f} [{low:+.3f}, {high:+.3f}] in aggregate (paired over the same "
        f"prompts, bootstrap 95% interval): {verdict}."
    ]


def _cost(scored: Sequence[Entry], control: Sequence[Entry]) -> list[str]:
    """How far each method moves fluency from unsteered text's, when the run has it."""
    if not control or math.isnan(control[0].get("fluency", math.nan)):
        return []
    reference = control[0]["fluency"]
    fluent = [e for e in scored if not math.isnan(e.get("fluency", math.nan))]
    # ties (equal fluency) are common: sort by the change alone, never compare the rows
    changes = sorted(((e["fluency"] - reference, e) for e in fluent), key=lambda c: c[0])
    if not changes:
        return []
    (low, lowest), (high, highest) = changes[0], changes[-1]
    return [
        f"**What it costs in fluency:** against unsteered text's fluency ({reference:.3f}), the "
        f"methods change it by {low:+.3f} ({_name(lowest)}) to {high:+.3f} ({_name(highest)}). "
        "Fluency counts perplexity under the unsteered model and repetition, so unsteered text "
        "is not automatically the most fluent."
    ]


def _probe_only(
    table: Sequence[Entry], families: Mapping[str, str], effect: Column | None
) -> list[str]:
    if effect is None:
        return ["This run has no score of the generated text and no probe effect to report."]
    scored = _finite(table, effect.name)
    if not scored:
        return [f"No unit has a mean {md_escape(effect.header)}: nothing to report."]
    best = max(scored, key=lambda e: e[effect.name])
    return [
        f"This run measures no generated text with a judge, so it cannot say whether the model "
        f"*writes* differently: set [evaluation] concept and fluency (and [steering] dev) to "
        f"answer that. At the probe — what the optimal methods optimise, so not evidence by "
        f"itself — {_name(best)} moves {md_escape(effect.header)} the most: "
        f"{format(best[effect.name], effect.format)}."
    ]


# --------------------------------------------------------------------------- the curves


def curves_section(
    rows: Sequence[Row], chosen: Mapping[UnitKey, float], out: pathlib.Path, figure: Any, save: Any
) -> list[str]:
    """Concept against fluency across α, a curve per unit (mean over the dev inputs, or over
    every input without a dev split), each unit's reported α marked."""
    lines = ["## Concept against fluency across α", ""]
    dev = [r for r in rows if r.get("split", "dev") == "dev"]
    points: dict[UnitKey, dict[float, tuple[float, float]]] = defaultdict(dict)
    for unit, unit_rows in by_unit(dev).items():
        by_alpha: dict[float, list[Row]] = defaultdict(list)
        for row in unit_rows:
            by_alpha[row["alpha"]].append(row)
        for alpha, members in sorted(by_alpha.items()):
            concept = mean(r.get("concept", math.nan) for r in members)
            fluency = mean(r.get("fluency", math.nan) for r in members)
            if not (math.isnan(concept) or math.isnan(fluency)):
                points[unit][alpha] = (fluency, concept)
    if not points:
        return [*lines, "No concept and fluency scores in this run: no curves to draw."]
    fig = figure(7.6, 5.4)
    ax = fig.add_subplot()
    for k, (unit, curve) in enumerate(sorted(points.items(), key=lambda kv: label(kv[0]))):
        alphas = sorted(curve)
        xs, ys = [curve[a][0] for a in alphas], [curve[a][1] for a in alphas]
        (line,) = ax.plot(xs, ys, marker=".", label=label(unit), color=_colour(k))
        if chosen.get(unit) in curve:
            x, y = curve[chosen[unit]]
            ax.scatter([x], [y], marker="*", s=140, color=line.get_color(), zorder=3)
    ax.set_xlabel("mean fluency (higher: more fluent)")
    ax.set_ylabel("mean concept score (higher: more towards the target)")
    ax.set_title("Each unit across α (★ the α it is reported at)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    save(fig, out / "concept_fluency.png")
    where = "the dev inputs" if any(r.get("split") == "dev" for r in rows) else "every input"
    return [
        *lines,
        f"Mean over {where} at each α of the grid; up and to the right is better. A method "
        "that steers moves up as α grows and, past some α, to the left as the text degrades.",
        "",
        "![concept against fluency across α](concept_fluency.png)",
    ]


def _colour(k: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab20"](k % 20)
