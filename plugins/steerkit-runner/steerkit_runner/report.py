"""The run report: RUN_DIR/report/report.md with PNG plots, read back from a run's files.

`write_report(run_dir)` reads run.json (what ran: the source, the probe, the metrics' columns, the
methods and their families), results.jsonl through `results.read_results` and generations.jsonl
(optional), and writes the method comparison (`table.comparison_table`: the same table `steerkit
run` prints), frontiers of the optimal methods (each "cost" column against the first "effect"
column), their sparsity patterns and support overlap, solve times (the first "time" column) and
generation samples. Nothing here knows a method or a metric by name: columns describe themselves
(`steerkit.Column`) and methods say their family. The same input gives the same bytes: no clock,
no random state, every set sorted.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from steerkit import Column, SteerkitError
from steerkit_runner.answer import answer_section, curves_section
from steerkit_runner.results import Results, columns_of, read_generations, read_results
from steerkit_runner.table import (
    NONE,
    UnitKey,
    by_unit,
    cell,
    comparison_table,
    format_markdown,
    format_table,
    intervals_markdown,
    label,
    md_escape,
    md_table,
    mean,
    num,
    reported_rows,
)

__all__ = [
    "RunView",
    "comparison_table",
    "format_table",
    "read_results",
    "run_table",
    "write_report",
]

logger = logging.getLogger(__name__)

SAMPLE_CHARS = 300
PROMPTS_PER_METHOD = 2
TOP_FEATURES = 10
_DPI = 100

Row = Mapping[str, Any]


# --------------------------------------------------------------------------- reading


def _read_run(run_dir: pathlib.Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise SteerkitError(
            f"{path} not found: {run_dir} is not a run directory (the runner writes run.json "
            f"first); give the directory `steerkit run` printed"
        )
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SteerkitError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(run, dict):
        raise SteerkitError(f"{path} holds {type(run).__name__}, not a JSON object")
    return run


class RunView:
    """A run directory read for reporting: run.json, its rows (of its own config hash), the
    columns (declared in run.json, plus any undeclared numeric column of the rows) and the
    methods' families."""

    def __init__(self, run_dir: pathlib.Path) -> None:
        self.run_dir = pathlib.Path(run_dir)
        self.run = _read_run(self.run_dir)
        config_hash = self.run.get("config_hash")
        self.results = read_results(self.run_dir, config_hash)
        self.generations = read_generations(self.run_dir, config_hash)
        declared = self.run.get("columns")
        self.columns = columns_of(declared if isinstance(declared, list) else (), self.results.rows)
        methods = self.run.get("methods")
        self.methods: Mapping[str, Any] = methods if isinstance(methods, Mapping) else {}
        self.families = {
            name: str(spec.get("family", "baseline"))
            for name, spec in self.methods.items()
            if isinstance(spec, Mapping)
        }
        evaluation = self.run.get("evaluation")
        self.evaluation: Mapping[str, Any] = evaluation if isinstance(evaluation, Mapping) else {}
        dev = self.run.get("dev")
        self.n_dev = dev if isinstance(dev, int) and not isinstance(dev, bool) else 0
        tokens = self.run.get("new_tokens")
        self.new_tokens: Mapping[str, Any] = tokens if isinstance(tokens, Mapping) else {}

    def table(self) -> list[dict[str, Any]]:
        """The comparison table of the run (see `table.comparison_table`)."""
        return comparison_table(self.rows, self.columns, self.families)

    @property
    def rows(self) -> tuple[Row, ...]:
        return self.results.rows

    def optimal(self) -> list[str]:
        """The labels of the run's optimal methods (family "optimal"), in config order."""
        return [
            name
            for name, spec in self.methods.items()
            if isinstance(spec, Mapping) and spec.get("family") == "optimal"
        ]

    def role(self, role: str) -> list[Column]:
        """The table columns with this role, in table order."""
        return [c for c in self.columns if c.role == role and c.table]


def run_table(run_dir: pathlib.Path) -> str:
    """The comparison table of a run directory as plain text (what `steerkit run` prints)."""
    view = RunView(run_dir)
    return format_table(view.table(), view.columns)


def _sample(text: str) -> str:
    text = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS].rstrip() + "…"
    return md_escape(text) if text else "*(empty)*"


# --------------------------------------------------------------------------- figures


def _figure(width: float = 6.4, height: float = 4.4) -> Any:
    """A matplotlib Figure drawn by the Agg canvas: no pyplot, no display, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: pathlib.Path) -> None:
    figure.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})


# --------------------------------------------------------------------------- sections


def _get(run: Mapping[str, Any], *keys: str) -> Any:
    value: Any = run
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items()) or NONE
    return md_escape(cell(value)) if isinstance(value, str) else cell(value)


def _facts(run: Mapping[str, Any]) -> list[list[str]]:
    """What ran, as (label, value) rows: model and weights, hook, SAE, task, probe."""
    model = _show(_get(run, "model"))
    if _get(run, "preset") not in (None, _get(run, "model")):
        model += f" (preset {_show(_get(run, 'preset'))})"
    if _get(run, "weights"):
        model += f"; weights {_show(_get(run, 'weights'))}"
    sae = _get(run, "sae")
    sae_text = (
        f"{_show(_get(run, 'sae', 'release'))} / {_show(_get(run, 'sae', 'id'))} "
        f"(d_sae {_show(_get(run, 'sae', 'd_sae'))})"
        if isinstance(sae, Mapping)
        else _show(sae)
    )
    probe = (
        f"{_show(_get(run, 'probe', 'name'))} (train accuracy "
        f"{_show(_get(run, 'probe', 'accuracy_train'))}, test accuracy "
        f"{_show(_get(run, 'probe', 'accuracy_test'))})"
        if isinstance(_get(run, "probe"), Mapping)
        else _show(_get(run, "probe"))
    )
    return [
        ["config hash", f"`{run.get('config_hash', NONE)}`"],
        ["created", _show(run.get("created"))],
        ["steerkit", _show(run.get("steerkit_version"))],
        ["model", model],
        ["hook point", _show(_get(run, "hook_point"))],
        ["layer", _show(_get(run, "layer"))],
        ["SAE", sae_text],
        ["dataset", _show(_get(run, "dataset"))],
        ["probe", probe],
        ["target class", _show(_get(run, "target_class"))],
        ["margin", _show(_get(run, "margin"))],
        ["inputs steered", _show(_get(run, "n_inputs"))],
    ]


def _notes(results: Results) -> list[str]:
    """What the reader of results.jsonl left out, and why."""
    notes = []
    if results.skipped:
        listed = ", ".join(str(n) for n in results.skipped)
        notes.append(
            f"results.jsonl line(s) {listed} are not JSON objects (cut short by an interrupted "
            f"write) and are left out."
        )
    if results.foreign:
        notes.append(f"{results.foreign} result rows of another config hash are left out.")
    if results.duplicates:
        notes.append(
            f"{results.duplicates} result rows repeat an earlier (unit, α, input) and are "
            f"left out (the first is kept)."
        )
    return [f"- Note: {n}" for n in notes]


def _header(run: Mapping[str, Any], run_dir: pathlib.Path, results: Results) -> list[str]:
    name = run.get("name") or run_dir.name
    status = str(run.get("status") or "unknown")
    lines = [f"# Steering report: {md_escape(str(name))}", ""]
    if status != "complete":
        lines += [
            f"> **This run is not complete** (status: {md_escape(status)}): every table and "
            f"figure below covers only the {len(results.rows)} result rows written so far.",
            "",
        ]
    facts = [["status", md_escape(status)], *_facts(run)]
    lines += md_table(["", ""], [*facts, ["result rows", str(len(results.rows))]])
    timings = _get(run, "timings")
    if isinstance(timings, Mapping) and timings:
        lines += ["", "Stage timings (seconds):", ""]
        lines += md_table(
            ["stage", "seconds"],
            [[md_escape(str(k)), cell(_float_or_nan(v))] for k, v in timings.items()],
        )
        total = sum(_float_or_nan(v) for v in timings.values())
        lines.append(f"| **total** | {cell(total)} |")
    notes = _notes(results)
    return lines + (["", *notes] if notes else [])


def _float_or_nan(value: Any) -> float:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )


def _comparison_section(view: RunView, table: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Method comparison", ""]
    rows = view.rows
    if not rows:
        return [*lines, "No result rows yet: nothing to compare."]
    where = (
        f"on the test inputs at the α chosen on the {view.n_dev} dev inputs (the unit's best "
        "mean aggregate)"
        if view.n_dev
        else "at α = 1 (or the α closest to 1 the unit has)"
    )
    lines += [
        f"One row per method and setting, {where}. Means are over inputs where the value is "
        "defined, with bootstrap 95% intervals for the scores (every mean's interval is in the "
        "table below it); `failed` counts inputs whose status is neither optimal nor ok; "
        f"{NONE} marks a value that does not apply or is missing.",
        "",
    ]
    described = [c for c in view.columns if c.table and c.description]
    if described:
        lines += [f"- **{md_escape(c.header)}**: {md_escape(c.description)}" for c in described]
        lines.append("")
    lines += format_markdown(table, view.columns)
    lines += ["", "### Every mean with its 95% interval", ""]
    lines += intervals_markdown(table, view.columns)
    effects = view.role("effect")
    if not effects:
        return lines
    effect = effects[0]
    if view.n_dev:
        rows = tuple(r for r in rows if r.get("split") == "dev")
    alphas = sorted({r["alpha"] for r in rows})
    lines += ["", f"### {md_escape(effect.header)} at each α", ""]
    if effect.description:
        lines += [f"Mean {md_escape(effect.description)}.", ""]
    if view.n_dev:
        lines += ["On the dev inputs, at every α of the grid.", ""]
    cells = []
    for unit, unit_rows in by_unit(rows).items():
        present = {r["alpha"] for r in unit_rows}
        by_alpha = {
            a: mean(r.get(effect.name, math.nan) for r in unit_rows if r["alpha"] == a)
            for a in alphas
        }
        cells.append(
            [label(unit)]
            + [cell(by_alpha[a], effect.format) if a in present else NONE for a in alphas]
        )
    return lines + md_table(["method"] + [f"α={num(a)}" for a in alphas], cells)


def _dominated(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (cost, gain) points: is another point at most as costly and at least as good, and
    better in one? NaN points count as dominated."""
    flags = []
    for i, (x, y) in enumerate(points):
        if math.isnan(x) or math.isnan(y):
            flags.append(True)
            continue
        flags.append(
            any(
                j != i and qx <= x and qy >= y and (qx < x or qy > y)
                for j, (qx, qy) in enumerate(points)
                if not (math.isnan(qx) or math.isnan(qy))
            )
        )
    return flags


def _names(items: Sequence[str]) -> str:
    """'qp', 'qp or socp', 'qp, socp or shared'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _pareto_section(
    view: RunView, table: Sequence[Mapping[str, Any]], out: pathlib.Path
) -> list[str]:
    lines = ["## Pareto frontiers", ""]
    optimal = view.optimal()
    effects, costs = view.role("effect"), view.role("cost")
    curves: dict[tuple[str, str | None], list[Mapping[str, Any]]] = defaultdict(list)
    baselines = []
    for entry in table:
        if entry["method"] in optimal:
            curves[(entry["method"], entry["solver"])].append(entry)
        else:
            baselines.append(entry)
    if not curves:
        what = _names(optimal) if optimal else "optimal-method"
        return [
            *lines,
            f"No {what} results in this run: no frontier to draw "
            "(add the optimal methods to the config's methods).",
        ]
    if not effects or not costs:
        return [
            *lines,
            "No metric of this run describes an effect and a cost column: no frontier to draw "
            "(the first-party `probe_shift`, `sparsity` and `norm` metrics do).",
        ]
    effect = effects[0]
    lines += [
        f"Each optimal method across its grid at the α it is reported at: what it costs "
        f"({', '.join(c.header for c in costs)}) against what it buys ({effect.header}). "
        "Baselines are reference points (×); the thin lines follow every unit across every α "
        "of the grid.",
        "",
    ]
    ordered = sorted(curves.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    made = []
    for cost in costs:
        filename = f"pareto_{cost.name}.png"
        sweep = _alpha_curves(view.rows, cost, effect)
        if _frontier_figure(ordered, baselines, sweep, cost, effect, out / filename):
            made.append((cost, filename))
        else:
            lines.append(
                f"- No optimal unit has both a mean {cost.header} and a mean {effect.header}: "
                f"no {cost.header} frontier."
            )
    for cost, filename in made:
        lines += [f"![{cost.header} vs {effect.header}]({filename})", ""]
    lines += [
        "Points on each curve's frontier are those no other setting of the same method and "
        "solver beats on both axes.",
        "",
    ]
    return lines + _frontier_table(ordered, costs, effect)


def _frontier_table(
    curves: Sequence[tuple[tuple[str, str | None], list[Mapping[str, Any]]]],
    costs: Sequence[Column],
    effect: Column,
) -> list[str]:
    """Each optimal unit's costs and effect, and whether it is on its curve's frontiers."""
    rows = []
    for (method, solver), entries in curves:
        flags = [_dominated([(e[c.name], e[effect.name]) for e in entries]) for c in costs]
        for k, e in enumerate(entries):
            rows.append(
                [method, solver or NONE, e["setting"] or NONE]
                + [cell(e[c.name], c.format) for c in costs]
                + [cell(e[effect.name], effect.format)]
                + ["yes" if not f[k] else "" for f in flags]
            )
    headers = ["method", "solver", "setting", *(c.header for c in costs), effect.header]
    headers += [f"{c.header} frontier" for c in costs]
    return md_table(headers, rows)


def _alpha_curves(
    rows: Sequence[Row], cost: Column, effect: Column
) -> dict[UnitKey, list[tuple[float, float]]]:
    """Per unit, (mean cost, mean effect) at each α of the grid, in α order: over the dev
    inputs, or every input without a dev split."""
    dev = [r for r in rows if r.get("split", "dev") == "dev"]
    out: dict[UnitKey, list[tuple[float, float]]] = {}
    for unit, unit_rows in by_unit(dev).items():
        points = []
        for alpha in sorted({r["alpha"] for r in unit_rows}):
            members = [r for r in unit_rows if r["alpha"] == alpha]
            x = mean(r.get(cost.name, math.nan) for r in members)
            y = mean(r.get(effect.name, math.nan) for r in members)
            if not (math.isnan(x) or math.isnan(y)):
                points.append((x, y))
        if len(points) > 1:
            out[unit] = points
    return out


def _frontier_figure(
    curves: Sequence[tuple[tuple[str, str | None], list[Mapping[str, Any]]]],
    baselines: Sequence[Mapping[str, Any]],
    sweep: Mapping[UnitKey, list[tuple[float, float]]],
    cost: Column,
    effect: Column,
    path: pathlib.Path,
) -> bool:
    """One frontier plot (cost against effect, a curve per optimal method, baselines as
    crosses, every unit's path across α thin); False, and no file, when no optimal unit has
    both values."""
    figure = _figure()
    ax = figure.add_subplot()
    for unit in sorted(sweep, key=label):
        xs, ys = zip(*sweep[unit])
        ax.plot(xs, ys, linewidth=0.6, marker=".", markersize=3, color="grey", alpha=0.6)
    drawn = False
    for (method, solver), entries in curves:
        points = [
            (e[cost.name], e[effect.name], e["setting"])
            for e in entries
            if not (math.isnan(e[cost.name]) or math.isnan(e[effect.name]))
        ]
        if not points:
            continue
        drawn = True
        xs, ys, _ = zip(*points)
        ax.plot(xs, ys, marker="o", label=f"{method} ({solver})" if solver else method)
        for x, y, name in points:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if not drawn:
        return False
    for entry in baselines:
        x, y = entry[cost.name], entry[effect.name]
        if math.isnan(x) or math.isnan(y):
            continue
        ax.scatter([x], [y], marker="x", color="black", zorder=3)
        ax.annotate(
            label((entry["method"], entry["solver"], entry["param"], entry["value"])),
            (x, y),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    ax.set_xlabel(f"mean {cost.header}" + (f" ({cost.description})" if cost.description else ""))
    ax.set_ylabel(f"mean {effect.header}")
    ax.set_title(f"{cost.header} vs {effect.header} (thin: across α)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return True


def _jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """|A ∩ B| / |A ∪ B|; 1 for two empty supports (both leave the input alone)."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 1.0


def _supports(unit_rows: Sequence[Row]) -> dict[int, tuple[int, ...]]:
    return {r["input_id"]: r["support"] for r in unit_rows if r["support"] is not None}


def _per_input_optimal(view: RunView, at_one: Mapping[UnitKey, list[Row]]) -> list[str]:
    """The optimal methods that are not (only) shared: those with a support per input."""
    shared = {
        unit[0]
        for unit, unit_rows in at_one.items()
        if unit_rows and all(r["shared"] for r in unit_rows)
    }
    return [m for m in view.optimal() if m not in shared]


def _sparsity_section(
    view: RunView, at_one: Mapping[UnitKey, list[Row]], out: pathlib.Path
) -> list[str]:
    lines = ["## Sparsity patterns", ""]
    methods = _per_input_optimal(view, at_one)
    if not methods:
        return [*lines, "No optimal per-input method in this run: no sparsity pattern."]
    first: dict[str, UnitKey] = {}
    for method in methods:
        units = [u for u in at_one if u[0] == method and _supports(at_one[u])]
        if not units:
            lines.append(f"- No {method} rows with a δ support: no {method} sparsity pattern.")
            continue
        unit = first[method] = units[0]
        lines += _support_pattern(method, unit, at_one[unit], out)
    return lines + _overlap(methods[:2], first, at_one, out)


def _feature_cards_section(view: RunView) -> list[str]:
    """Cards (features.json, written by the runner) of the features the optimal per-input
    methods use most."""
    from steerkit_runner.features import cards_section, method_supports, read_features

    supports = method_supports(view.rows, view.optimal())
    return cards_section(read_features(view.run_dir), supports)


def _support_pattern(
    method: str, unit: UnitKey, unit_rows: Sequence[Row], out: pathlib.Path
) -> list[str]:
    supports = _supports(unit_rows)
    inputs = sorted(r["input_id"] for r in unit_rows)
    features = sorted(set().union(*supports.values()))
    sizes = [len(s) for s in supports.values()]
    lines = [
        f"### {method}: {label(unit)}",
        "",
        f"{len(supports)} of {len(inputs)} inputs have a support; {len(features)} distinct "
        f"features; support size mean {statistics.fmean(sizes):.3g}, "
        f"median {statistics.median(sizes):g}, max {max(sizes)}.",
        "",
    ]
    if features:
        grid = np.full((len(inputs), len(features)), np.nan)
        column = {f: j for j, f in enumerate(features)}
        for i, input_id in enumerate(inputs):
            if input_id in supports:
                grid[i] = 0.0
                grid[i, [column[f] for f in supports[input_id]]] = 1.0
        title = f"{label(unit)}: δ support at α = 1"
        _heatmap(grid, inputs, features, title, out / f"support_{method}.png")
        lines += [
            f"![{method} support heatmap](support_{method}.png)",
            "",
            "Rows are inputs, columns the features any input uses (sorted by id); dark = in "
            "the support, grey = no solution.",
            "",
        ]
    counts = Counter(f for s in supports.values() for f in s)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_FEATURES]
    if top:
        listed = ", ".join(f"{f} ({c}/{len(supports)})" for f, c in top)
        return [*lines, f"Most often chosen features (id (inputs)): {listed}.", ""]
    return [*lines, "Every support is empty.", ""]


def _overlap(
    pair: Sequence[str],
    first: Mapping[str, UnitKey],
    at_one: Mapping[UnitKey, list[Row]],
    out: pathlib.Path,
) -> list[str]:
    if len(pair) < 2:
        return [
            "### Overlap between supports",
            "",
            "Needs two optimal per-input methods in this run: no overlap to compute.",
        ]
    a, b = pair
    lines = [f"### Overlap between {b.upper()} and {a.upper()} supports", ""]
    if a not in first or b not in first:
        return [*lines, f"Needs both {a} and {b} supports in this run: no overlap to compute."]
    sa, sb = _supports(at_one[first[a]]), _supports(at_one[first[b]])
    common = sorted(set(sa) & set(sb))
    if not common:
        return [*lines, f"{a} and {b} have no input with a support in common: no overlap."]
    values = [_jaccard(sa[i], sb[i]) for i in common]
    lines += [
        f"Jaccard index (features in both / features in either) per input, "
        f"{label(first[a])} vs {label(first[b])}, over {len(values)} inputs: mean "
        f"{statistics.fmean(values):.3f}, median {statistics.median(values):.3f}, min "
        f"{min(values):.3f}, max {max(values):.3f}.",
        "",
    ]
    figure = _figure(5.6, 3.8)
    ax = figure.add_subplot()
    ax.hist(values, bins=np.linspace(0.0, 1.0, 11), edgecolor="black")
    ax.set_xlabel(f"Jaccard(S_{a}, S_{b})")
    ax.set_ylabel("inputs")
    ax.set_title(f"{label(first[a])} vs {label(first[b])}")
    figure.tight_layout()
    _save(figure, out / "jaccard.png")
    lines += ["![Jaccard histogram](jaccard.png)", ""]
    units_a = [u for u in at_one if u[0] == a and _supports(at_one[u])]
    units_b = [u for u in at_one if u[0] == b and _supports(at_one[u])]
    if len(units_a) * len(units_b) > 1:
        cells = []
        for ua in units_a:
            s1 = _supports(at_one[ua])
            row = [label(ua)]
            for ub in units_b:
                s2 = _supports(at_one[ub])
                shared_inputs = sorted(set(s1) & set(s2))
                row.append(cell(mean(_jaccard(s1[i], s2[i]) for i in shared_inputs)))
            cells.append(row)
        lines += ["Mean Jaccard over inputs for every pair of settings:", ""]
        lines += md_table([f"{a} \\ {b}"] + [label(u) for u in units_b], cells)
    return lines


def _heatmap(
    grid: np.ndarray, inputs: Sequence[int], features: Sequence[int], title: str, path: pathlib.Path
) -> None:
    from matplotlib import colormaps

    width = min(14.0, max(4.5, 1.5 + 0.25 * len(features)))
    height = min(10.0, max(3.0, 1.2 + 0.25 * len(inputs)))
    figure = _figure(width, height)
    ax = figure.add_subplot()
    cmap = colormaps["Blues"].with_extremes(bad="lightgrey")
    ax.imshow(
        np.ma.masked_invalid(grid),
        aspect="auto",
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    if len(features) <= 40:
        ax.set_xticks(range(len(features)), [str(f) for f in features], rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
    if len(inputs) <= 40:
        ax.set_yticks(range(len(inputs)), [str(i) for i in inputs], fontsize=7)
    else:
        ax.set_yticks([])
    ax.set_xlabel(f"SAE feature ({len(features)} used)")
    ax.set_ylabel(f"input ({len(inputs)})")
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def _solve_time_section(
    view: RunView, at_one: Mapping[UnitKey, list[Row]], out: pathlib.Path
) -> list[str]:
    lines = ["## Solve time by solver", ""]
    times = view.role("time")
    if not times:
        return [*lines, "No row has a solve time (no metric of this run measures one)."]
    column = times[0].name
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for unit, unit_rows in at_one.items():
        seconds = [r.get(column, math.nan) for r in unit_rows]
        seconds = [s for s in seconds if not math.isnan(s)]
        if unit_rows and all(r["shared"] for r in unit_rows):
            seconds = seconds[:1]  # one solve for the whole unit, repeated on every row
        groups[(unit[0], unit[1] or NONE)].extend(seconds)
    groups = {k: groups[k] for k in sorted(groups) if groups[k]}
    if not groups:
        return [*lines, "No row has a solve time (no optimal method ran, or none finished)."]
    lines += [
        "Seconds per solve (one per input; one per unit for a shared solve) over every setting, "
        "at α = 1 (α does not re-solve).",
        "",
    ]
    figure = _figure(max(5.0, 1.0 + 1.2 * len(groups)), 4.2)
    ax = figure.add_subplot()
    names = [f"{m}\n{s}" for m, s in groups]
    ax.boxplot(list(groups.values()))
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    values = [v for vs in groups.values() for v in vs]
    if min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    ax.set_ylabel("solve seconds")
    ax.set_title("Solve time by method and solver")
    ax.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    _save(figure, out / "solve_time.png")
    lines += ["![solve time box plot](solve_time.png)", ""]
    cells = [
        [m, s, str(len(v)), cell(statistics.median(v)), cell(statistics.fmean(v)), cell(max(v))]
        for (m, s), v in groups.items()
    ]
    return lines + md_table(["method", "solver", "solves", "median s", "mean s", "max s"], cells)


def _generation_section(generations: Sequence[Row] | None) -> list[str]:
    lines = ["## Steered generation samples", ""]
    if generations is None:
        return [
            *lines,
            "No generations.jsonl in this run (generation was not configured, or the run has "
            "not reached it).",
        ]
    if not generations:
        return [*lines, "generations.jsonl holds no generations for this run."]
    units = by_unit(generations)
    lines += [
        f"Per method, its first setting and first {PROMPTS_PER_METHOD} prompts: the unsteered "
        f"continuation and the steered one at each α (cut at {SAMPLE_CHARS} characters; ↵ marks "
        f"a line break).",
        "",
    ]
    done: set[str] = set()
    for unit, unit_rows in units.items():
        if unit[0] in done:
            continue
        done.add(unit[0])
        lines += [f"### {md_escape(label(unit))}", ""]
        by_input: dict[int, list[Row]] = defaultdict(list)
        for row in unit_rows:
            by_input[row["input_id"]].append(row)
        for input_id in sorted(by_input)[:PROMPTS_PER_METHOD]:
            samples = sorted(by_input[input_id], key=lambda r: r["alpha"])
            base = next((r["base"] for r in samples if r["base"]), "")
            lines += [f"**Input {input_id}.** Prompt: {_sample(samples[0]['prompt'])}", ""]
            cells = [["unsteered", _sample(base)]]
            cells += [[f"α={num(r['alpha'])}", _sample(r["steered"])] for r in samples]
            lines += [*md_table(["", "continuation"], cells), ""]
    return lines


# --------------------------------------------------------------------------- entry point


def write_report(run_dir: pathlib.Path) -> pathlib.Path:
    """Write RUN_DIR/report/report.md and its PNG figures from the run's files; return its path.

    Reads run.json and results.jsonl (both required; a SteerkitError names a missing one) and
    generations.jsonl (optional). A section without data says so. Same files in, same bytes out.
    """
    view = RunView(pathlib.Path(run_dir))
    out = view.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):  # the folder is the report's own: no figure stays stale
        stale.unlink()
    at_one = reported_rows(view.rows)
    table = view.table()
    chosen = {unit: unit_rows[0]["alpha"] for unit, unit_rows in at_one.items() if unit_rows}
    generations = None if view.generations is None else view.generations.rows
    effects = view.role("effect")
    answer = answer_section(
        table,
        view.families,
        view.evaluation,
        effects[0] if effects else None,
        view.n_dev,
        view.new_tokens,
    )
    header = _header(view.run, view.run_dir, view.results)
    sections = [
        header[:2] + answer,
        header[2:],
        _comparison_section(view, table),
        curves_section(view.rows, chosen, out, _figure, _save),
        _pareto_section(view, table, out),
        _sparsity_section(view, at_one, out),
        _feature_cards_section(view),
        _solve_time_section(view, at_one, out),
        _generation_section(generations),
    ]
    text = "\n\n".join("\n".join(s).strip("\n") for s in sections) + "\n"
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    logger.info("wrote %s", path)
    return path
