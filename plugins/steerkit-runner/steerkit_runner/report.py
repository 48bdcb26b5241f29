"""The run report: RUN_DIR/report/report.md with PNG plots, read back from a run's files.

`write_report(run_dir)` reads run.json, results.jsonl (one row per unit × input; null → NaN) and
generations.jsonl (optional), and writes a method comparison table, Pareto frontiers of the
optimal methods, their sparsity patterns and SOCP/QP overlap, solve times, and generation samples.
The same input gives the same bytes: no clock, no random state, every set sorted.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from steerkit.errors import SteerkitError

__all__ = ["comparison_table", "format_table", "read_results", "write_report"]

logger = logging.getLogger(__name__)

#: metric columns of results.jsonl (null there, NaN here)
METRIC_COLUMNS = (
    "p_before",
    "p_after",
    "probe_shift",
    "flipped",
    "l0",
    "l1",
    "norm",
    "kl",
    "perplexity",
    "base_perplexity",
    "classifier_target",
    "classifier_base",
    "solve_seconds",
    "method_seconds",
)
OPTIMAL_METHODS = ("qp", "socp", "shared")
OK_STATUSES = frozenset({"optimal", "ok"})
#: every figure write_report may make; a stale one from an earlier report is removed
FIGURES = (
    "pareto_l0.png",
    "pareto_norm.png",
    "support_qp.png",
    "support_socp.png",
    "jaccard.png",
    "solve_time.png",
)
SAMPLE_CHARS = 300
PROMPTS_PER_METHOD = 2
TOP_FEATURES = 10
_DPI = 100
_NONE = "—"

# (method, solver, param, value): one unit of the grid, before α
UnitKey = tuple[str, "str | None", "str | None", "float | None"]
Row = dict[str, Any]

# (table key, plain-text / Markdown header) of comparison_table, in order
_COLUMNS = (
    ("method", "method"),
    ("solver", "solver"),
    ("setting", "setting"),
    ("alpha", "α"),
    ("n_inputs", "n"),
    ("n_failed", "failed"),
    ("probe_shift", "Δ probe"),
    ("p_after", "P after"),
    ("frac_flipped", "flipped"),
    ("l0", "L0"),
    ("l1", "L1"),
    ("norm", "‖α·v‖"),
    ("kl", "KL"),
    ("perplexity", "ppl"),
    ("base_perplexity", "base ppl"),
    ("classifier_target", "clf target"),
    ("classifier_base", "clf base"),
    ("solve_seconds", "solve s"),
    ("method_seconds", "method s"),
)
# table key → results column averaged into it
_MEANS = {key: key for key, _ in _COLUMNS[6:]} | {"frac_flipped": "flipped"}


# --------------------------------------------------------------------------- reading


def _jsonl(path: pathlib.Path) -> tuple[list[tuple[int, dict[str, Any]]], tuple[int, ...]]:
    """(line number, object) per line, and the numbers of the lines left out.

    A line that is not a JSON object is one an interrupted append cut short: the runner then
    starts its next append on a fresh line, so such a line can sit anywhere, not only last.
    """
    records: list[tuple[int, dict[str, Any]]] = []
    skipped: list[int] = []
    for lineno, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if not isinstance(record, dict):
            logger.warning("%s:%d: not a JSON object (cut short?); left out", path, lineno)
            skipped.append(lineno)
            continue
        records.append((lineno, record))
    return records, tuple(skipped)


def _float(value: Any, where: str, key: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SteerkitError(f"{where}: {key!r} must be a number or null, got {value!r}")
    return float(value)


def _normalise(record: Mapping[str, Any], where: str) -> Row:
    """A results row with floats (NaN for null) in every metric column and a typed unit key."""
    for key in ("method", "alpha", "input_id"):
        if record.get(key) is None:
            raise SteerkitError(
                f"{where}: missing {key!r}; results rows need method, alpha and input_id"
            )
    row = dict(record)
    row["method"] = str(record["method"])
    row["solver"] = None if record.get("solver") is None else str(record["solver"])
    row["param"] = None if record.get("param") is None else str(record["param"])
    row["value"] = None if record.get("value") is None else _float(record["value"], where, "value")
    row["alpha"] = _float(record["alpha"], where, "alpha")
    row["input_id"] = int(record["input_id"])
    row["status"] = str(record.get("status") or "unknown")
    row["shared"] = bool(record.get("shared", False))
    support = record.get("support")
    if support is not None and not isinstance(support, (list, tuple)):
        raise SteerkitError(f"{where}: 'support' must be a list of feature ids or null")
    row["support"] = None if support is None else tuple(sorted({int(f) for f in support}))
    for column in METRIC_COLUMNS:
        row[column] = _float(record.get(column), where, column)
    return row


@attrs.frozen
class _Results:
    rows: tuple[Row, ...]
    skipped: tuple[int, ...]  # numbers of lines that are not JSON objects (cut short)
    foreign: int  # rows of another config hash, left out
    duplicates: int  # rows whose (unit, α, input) came earlier, left out


def _dedupe(
    pairs: Iterable[tuple[str, Row]], key: Callable[[Row], Any], config_hash: Any
) -> tuple[list[Row], int, int]:
    seen: set[Any] = set()
    kept: list[Row] = []
    foreign = duplicates = 0
    for _, row in pairs:
        if config_hash is not None and row.get("config_hash", config_hash) != config_hash:
            foreign += 1
            continue
        k = key(row)
        if k in seen:
            duplicates += 1
            continue
        seen.add(k)
        kept.append(row)
    return kept, foreign, duplicates


def read_results(run_dir: pathlib.Path, config_hash: str | None = None) -> list[Row]:
    """The rows of RUN_DIR/results.jsonl, normalised (null → NaN, supports as sorted tuples)."""
    return list(_read_results(pathlib.Path(run_dir), config_hash).rows)


def _read_results(run_dir: pathlib.Path, config_hash: Any) -> _Results:
    path = run_dir / "results.jsonl"
    if not path.is_file():
        raise SteerkitError(
            f"{path} not found: {run_dir} holds no results table; give the directory a "
            f"`steerkit run` wrote, or run it first"
        )
    records, skipped = _jsonl(path)
    pairs = [(f"{path}:{n}", _normalise(r, f"{path}:{n}")) for n, r in records]
    rows, foreign, duplicates = _dedupe(
        pairs, lambda r: (*_unit(r), r["alpha"], r["input_id"]), config_hash
    )
    return _Results(tuple(rows), skipped, foreign, duplicates)


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


def _read_generations(run_dir: pathlib.Path, config_hash: Any) -> list[Row] | None:
    path = run_dir / "generations.jsonl"
    if not path.is_file():
        return None
    records, _ = _jsonl(path)
    pairs = []
    for n, record in records:
        where = f"{path}:{n}"
        row = _normalise(record, where)
        for key in ("prompt", "steered", "base"):
            row[key] = "" if record.get(key) is None else str(record[key])
        pairs.append((where, row))
    rows, _, _ = _dedupe(pairs, lambda r: (*_unit(r), r["alpha"], r["input_id"]), config_hash)
    return rows


# --------------------------------------------------------------------------- tables


def _unit(row: Mapping[str, Any]) -> UnitKey:
    return (row["method"], row["solver"], row["param"], row["value"])


def _unit_order(unit: UnitKey) -> tuple[str, str, str, float]:
    method, solver, param, value = unit
    return (method, solver or "", param or "", -math.inf if value is None else value)


def _setting(param: str | None, value: float | None) -> str:
    """'λ=0.1', 'ε=0.5', 'k=8', or '' for a method without a grid parameter."""
    if param is None:
        return ""
    name = {"lam": "λ", "eps": "ε"}.get(param, param)
    return f"{name}={_num(value)}"


def _label(unit: UnitKey) -> str:
    method, solver, param, value = unit
    return " · ".join(part for part in (method, solver or "", _setting(param, value)) if part)


def _num(value: Any) -> str:
    """A grid value or α as written ('0.1', '1', '1e-05'); '—' for None."""
    if value is None:
        return _NONE
    return f"{value:g}"


def _mean(values: Iterable[float]) -> float:
    """The mean over the values that are not NaN; NaN when there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _by_unit(rows: Iterable[Row]) -> dict[UnitKey, list[Row]]:
    units: dict[UnitKey, list[Row]] = defaultdict(list)
    for row in rows:
        units[_unit(row)].append(row)
    return {u: units[u] for u in sorted(units, key=_unit_order)}


def _closest_to_one(alphas: Iterable[float]) -> float:
    return min(alphas, key=lambda a: (abs(a - 1.0), a))


def _at_alpha_one(rows: Iterable[Row]) -> dict[UnitKey, list[Row]]:
    """Per unit, its rows at α = 1, or at the α closest to 1 it has; sorted by input."""
    out = {}
    for unit, unit_rows in _by_unit(rows).items():
        alpha = _closest_to_one(r["alpha"] for r in unit_rows)
        out[unit] = sorted((r for r in unit_rows if r["alpha"] == alpha), key=_input_order)
    return out


def _input_order(row: Row) -> int:
    return int(row["input_id"])


def comparison_table(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (method, solver, param, value) at α = 1 (or the α closest to 1 it has).

    rows: results rows as in results.jsonl (null or NaN for a missing value). Each entry holds
    the unit, `setting` ('λ=0.1'), `alpha`, `n_inputs`, `n_failed` (status neither optimal nor
    ok), `frac_flipped` (mean of `flipped` over inputs where it is defined), and the mean over
    inputs of every other metric, NaN where no input has it.
    """
    normalised = [_normalise(r, f"row {i}") for i, r in enumerate(rows)]
    table = []
    for unit, unit_rows in _at_alpha_one(normalised).items():
        method, solver, param, value = unit
        entry: dict[str, Any] = {
            "method": method,
            "solver": solver,
            "param": param,
            "value": value,
            "setting": _setting(param, value),
            "alpha": unit_rows[0]["alpha"],
            "n_inputs": len(unit_rows),
            "n_failed": sum(r["status"] not in OK_STATUSES for r in unit_rows),
        }
        for key, column in _MEANS.items():
            entry[key] = _mean(r[column] for r in unit_rows)
        table.append(entry)
    return table


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _NONE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _comparison_cells(table: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = [header for _, header in _COLUMNS]
    cells = []
    for entry in table:
        row = []
        for key, _ in _COLUMNS:
            value = entry.get(key)
            if key == "alpha":
                row.append(_num(value))
            else:
                row.append(_cell(value) or _NONE)
        cells.append(row)
    return headers, cells


def format_table(table: Sequence[Mapping[str, Any]]) -> str:
    """comparison_table's entries as aligned plain text (for a terminal); NaN shown as '—'."""
    headers, cells = _comparison_cells(table)
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    """Text safe inside a Markdown paragraph or table cell: one line, no markup."""
    text = text.replace("\\", "\\\\")
    for ch in "`*_[]<>|#~$":
        text = text.replace(ch, "\\" + ch)
    return " ↵ ".join(part for part in text.replace("\r", "").split("\n")).replace("\t", " ")


def _sample(text: str) -> str:
    text = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS].rstrip() + "…"
    return _md_escape(text) if text else "*(empty)*"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|"] + [line(r) for r in rows]


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


def _header(run: Mapping[str, Any], run_dir: pathlib.Path, results: _Results) -> list[str]:
    def get(*keys: str) -> Any:
        value: Any = run
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    def show(value: Any) -> str:
        if isinstance(value, Mapping):
            return ", ".join(f"{k}={show(v)}" for k, v in value.items()) or _NONE
        return _md_escape(_cell(value)) if isinstance(value, str) else _cell(value)

    name = run.get("name") or run_dir.name
    model = show(get("model"))
    if get("preset") not in (None, get("model")):
        model += f" (preset {show(get('preset'))})"
    sae = get("sae")
    sae_text = (
        f"{show(get('sae', 'release'))} / {show(get('sae', 'id'))} "
        f"(d_sae {show(get('sae', 'd_sae'))})"
        if isinstance(sae, Mapping)
        else show(sae)
    )
    probe = (
        f"{show(get('probe', 'name'))} (train accuracy {show(get('probe', 'accuracy_train'))}, "
        f"test accuracy {show(get('probe', 'accuracy_test'))})"
        if isinstance(get("probe"), Mapping)
        else show(get("probe"))
    )
    status = str(run.get("status") or "unknown")
    lines = [f"# Steering report: {_md_escape(str(name))}", ""]
    if status != "complete":
        lines += [
            f"> **This run is not complete** (status: {_md_escape(status)}): every table and "
            f"figure below covers only the {len(results.rows)} result rows written so far.",
            "",
        ]
    lines += _md_table(
        ["", ""],
        [
            ["status", _md_escape(status)],
            ["config hash", f"`{run.get('config_hash', _NONE)}`"],
            ["created", show(run.get("created"))],
            ["steerkit", show(run.get("steerkit_version"))],
            ["model", model],
            ["hook point", show(get("hook_point"))],
            ["layer", show(get("layer"))],
            ["SAE", sae_text],
            ["dataset", show(get("dataset"))],
            ["probe", probe],
            ["target class", show(get("target_class"))],
            ["margin", show(get("margin"))],
            ["inputs steered", show(get("n_inputs"))],
            ["result rows", str(len(results.rows))],
        ],
    )
    timings = get("timings")
    if isinstance(timings, Mapping) and timings:
        lines += ["", "Stage timings (seconds):", ""]
        lines += _md_table(
            ["stage", "seconds"],
            [[_md_escape(str(k)), _cell(_float_or_nan(v))] for k, v in timings.items()],
        )
        total = sum(_float_or_nan(v) for v in timings.values())
        lines.append(f"| **total** | {_cell(total)} |")
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
    if notes:
        lines += [""] + [f"- Note: {n}" for n in notes]
    return lines


def _float_or_nan(value: Any) -> float:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )


def _comparison_section(rows: Sequence[Row]) -> list[str]:
    lines = ["## Method comparison", ""]
    if not rows:
        return [*lines, "No result rows yet: nothing to compare."]
    table = comparison_table(rows)
    lines += [
        "One row per method and setting at α = 1 (or the α closest to 1 the unit has). Means are "
        "over inputs where the value is defined; `flipped` is the fraction of inputs not in the "
        "target class before steering that are after; `failed` counts inputs whose status is "
        f"neither optimal nor ok; {_NONE} marks a value that does not apply or is missing.",
        "",
    ]
    headers, cells = _comparison_cells(table)
    lines += _md_table(headers, cells)

    alphas = sorted({r["alpha"] for r in rows})
    lines += ["", "### Probe shift at each α", "", "Mean P(target) after − before.", ""]
    cells = []
    for unit, unit_rows in _by_unit(rows).items():
        by_alpha = {
            a: _mean(r["probe_shift"] for r in unit_rows if r["alpha"] == a) for a in alphas
        }
        present = {r["alpha"] for r in unit_rows}
        cells.append(
            [_label(unit)] + [_cell(by_alpha[a]) if a in present else _NONE for a in alphas]
        )
    return lines + _md_table(["method"] + [f"α={_num(a)}" for a in alphas], cells)


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


def _pareto_section(table: Sequence[Mapping[str, Any]], out: pathlib.Path) -> list[str]:
    lines = ["## Pareto frontiers", ""]
    curves: dict[tuple[str, str | None], list[Mapping[str, Any]]] = defaultdict(list)
    baselines = []
    for entry in table:
        if entry["method"] in OPTIMAL_METHODS:
            curves[(entry["method"], entry["solver"])].append(entry)
        else:
            baselines.append(entry)
    if not curves:
        return [
            *lines,
            "No qp, socp or shared results in this run: no frontier to draw "
            "(add the optimal methods to the config's methods).",
        ]
    lines += [
        "Each optimal method across its grid (λ for qp, ε for socp) at α = 1: the sparsity and "
        "the size of the vector against the probe shift it buys. Baselines are single reference "
        "points.",
        "",
    ]
    made = []
    for axis, column, xlabel, filename in (
        ("L0", "l0", "mean L0 (features in δ)", "pareto_l0.png"),
        ("norm", "norm", "mean ‖Dᵀδ‖₂ (‖α·v‖₂)", "pareto_norm.png"),
    ):
        figure = _figure()
        ax = figure.add_subplot()
        drawn = False
        for (method, solver), entries in sorted(
            curves.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        ):
            points = [
                (e[column], e["probe_shift"], e["setting"])
                for e in entries
                if not (math.isnan(e[column]) or math.isnan(e["probe_shift"]))
            ]
            if not points:
                continue
            drawn = True
            xs, ys, _names = zip(*points)
            ax.plot(xs, ys, marker="o", label=f"{method} ({solver})" if solver else method)
            for x, y, name in points:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for entry in baselines:
            x, y = entry[column], entry["probe_shift"]
            if math.isnan(x) or math.isnan(y):
                continue
            ax.scatter([x], [y], marker="x", color="black", zorder=3)
            ax.annotate(
                _label((entry["method"], entry["solver"], entry["param"], entry["value"])),
                (x, y),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
        if not drawn:
            lines.append(
                f"- No optimal unit has both a mean {axis} and a mean probe shift: "
                f"no {axis} frontier."
            )
            continue
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean probe shift (P after − P before)")
        ax.set_title(f"{axis} vs probe shift at α = 1")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        figure.tight_layout()
        _save(figure, out / filename)
        made.append((axis, filename))
    for axis, filename in made:
        lines += [f"![{axis} vs probe shift]({filename})", ""]

    rows = []
    for (method, solver), entries in sorted(
        curves.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
    ):
        l0_dom = _dominated([(e["l0"], e["probe_shift"]) for e in entries])
        norm_dom = _dominated([(e["norm"], e["probe_shift"]) for e in entries])
        for e, a, b in zip(entries, l0_dom, norm_dom):
            rows.append(
                [
                    method,
                    solver or _NONE,
                    e["setting"] or _NONE,
                    _cell(e["l0"]),
                    _cell(e["norm"]),
                    _cell(e["probe_shift"]),
                    "yes" if not a else "",
                    "yes" if not b else "",
                ]
            )
    lines += [
        "Points on each curve's frontier are those no other setting of the same method and "
        "solver beats on both axes.",
        "",
    ]
    return lines + _md_table(
        ["method", "solver", "setting", "L0", "norm", "Δ probe", "L0 frontier", "norm frontier"],
        rows,
    )


def _jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """|A ∩ B| / |A ∪ B|; 1 for two empty supports (both leave the input alone)."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 1.0


def _supports(unit_rows: Sequence[Row]) -> dict[int, tuple[int, ...]]:
    return {r["input_id"]: r["support"] for r in unit_rows if r["support"] is not None}


def _sparsity_section(at_one: Mapping[UnitKey, list[Row]], out: pathlib.Path) -> list[str]:
    lines = ["## Sparsity patterns", ""]
    first: dict[str, UnitKey] = {}
    for method in ("qp", "socp"):
        units = [u for u in at_one if u[0] == method and _supports(at_one[u])]
        if not units:
            lines.append(f"- No {method} rows with a δ support: no {method} sparsity pattern.")
            continue
        unit = first[method] = units[0]
        supports = _supports(at_one[unit])
        inputs = sorted(r["input_id"] for r in at_one[unit])
        features = sorted(set().union(*supports.values()))
        sizes = [len(s) for s in supports.values()]
        lines += [
            f"### {method}: {_label(unit)}",
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
            _heatmap(
                grid,
                inputs,
                features,
                f"{_label(unit)}: δ support at α = 1",
                out / f"support_{method}.png",
            )
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
            lines += [f"Most often chosen features (id (inputs)): {listed}.", ""]
        else:
            lines += ["Every support is empty.", ""]

    lines += ["### Overlap between SOCP and QP supports", ""]
    if "qp" not in first or "socp" not in first:
        return [*lines, "Needs both qp and socp supports in this run: no overlap to compute."]
    qp, socp = _supports(at_one[first["qp"]]), _supports(at_one[first["socp"]])
    common = sorted(set(qp) & set(socp))
    if not common:
        return [*lines, "qp and socp have no input with a support in common: no overlap."]
    values = [_jaccard(qp[i], socp[i]) for i in common]
    lines += [
        f"Jaccard index (features in both / features in either) per input, "
        f"{_label(first['qp'])} vs "
        f"{_label(first['socp'])}, over {len(values)} inputs: mean {statistics.fmean(values):.3f}, "
        f"median {statistics.median(values):.3f}, min {min(values):.3f}, "
        f"max {max(values):.3f}.",
        "",
    ]
    figure = _figure(5.6, 3.8)
    ax = figure.add_subplot()
    ax.hist(values, bins=np.linspace(0.0, 1.0, 11), edgecolor="black")
    ax.set_xlabel("Jaccard(S_qp, S_socp)")
    ax.set_ylabel("inputs")
    ax.set_title(f"{_label(first['qp'])} vs {_label(first['socp'])}")
    figure.tight_layout()
    _save(figure, out / "jaccard.png")
    lines += ["![Jaccard histogram](jaccard.png)", ""]

    qp_units = [u for u in at_one if u[0] == "qp" and _supports(at_one[u])]
    socp_units = [u for u in at_one if u[0] == "socp" and _supports(at_one[u])]
    if len(qp_units) * len(socp_units) > 1:
        cells = []
        for q in qp_units:
            sq = _supports(at_one[q])
            row = [_label(q)]
            for s in socp_units:
                ss = _supports(at_one[s])
                shared_inputs = sorted(set(sq) & set(ss))
                row.append(_cell(_mean(_jaccard(sq[i], ss[i]) for i in shared_inputs)))
            cells.append(row)
        lines += ["Mean Jaccard over inputs for every pair of settings:", ""]
        lines += _md_table(["qp \\ socp"] + [_label(s) for s in socp_units], cells)
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


def _solve_time_section(at_one: Mapping[UnitKey, list[Row]], out: pathlib.Path) -> list[str]:
    lines = ["## Solve time by solver", ""]
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for unit, unit_rows in at_one.items():
        seconds = [r["solve_seconds"] for r in unit_rows if not math.isnan(r["solve_seconds"])]
        if unit_rows and all(r["shared"] for r in unit_rows):
            seconds = seconds[:1]  # one solve for the whole unit, repeated on every row
        groups[(unit[0], unit[1] or _NONE)].extend(seconds)
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
        [m, s, str(len(v)), _cell(statistics.median(v)), _cell(statistics.fmean(v)), _cell(max(v))]
        for (m, s), v in groups.items()
    ]
    return lines + _md_table(["method", "solver", "solves", "median s", "mean s", "max s"], cells)


def _generation_section(generations: list[Row] | None) -> list[str]:
    lines = ["## Steered generation samples", ""]
    if generations is None:
        return [
            *lines,
            "No generations.jsonl in this run (generation was not configured, or the run has "
            "not reached it).",
        ]
    if not generations:
        return [*lines, "generations.jsonl holds no generations for this run."]
    units = _by_unit(generations)
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
        lines += [f"### {_md_escape(_label(unit))}", ""]
        by_input: dict[int, list[Row]] = defaultdict(list)
        for row in unit_rows:
            by_input[row["input_id"]].append(row)
        for input_id in sorted(by_input)[:PROMPTS_PER_METHOD]:
            samples = sorted(by_input[input_id], key=lambda r: r["alpha"])
            base = next((r["base"] for r in samples if r["base"]), "")
            lines += [f"**Input {input_id}.** Prompt: {_sample(samples[0]['prompt'])}", ""]
            cells = [["unsteered", _sample(base)]]
            cells += [[f"α={_num(r['alpha'])}", _sample(r["steered"])] for r in samples]
            lines += [*_md_table(["", "continuation"], cells), ""]
    return lines


# --------------------------------------------------------------------------- entry point


def write_report(run_dir: pathlib.Path) -> pathlib.Path:
    """Write RUN_DIR/report/report.md and its PNG figures from the run's files; return its path.

    Reads run.json and results.jsonl (both required; a SteerkitError names a missing one) and
    generations.jsonl (optional). A section without data says so. Same files in, same bytes out.
    """
    run_dir = pathlib.Path(run_dir)
    run = _read_run(run_dir)
    config_hash = run.get("config_hash")
    results = _read_results(run_dir, config_hash)
    generations = _read_generations(run_dir, config_hash)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:  # only the files this function writes, so none is stale
        (out / name).unlink(missing_ok=True)

    rows = list(results.rows)
    at_one = _at_alpha_one(rows)
    table = comparison_table(rows)
    sections = [
        _header(run, run_dir, results),
        _comparison_section(rows),
        _pareto_section(table, out),
        _sparsity_section(at_one, out),
        _solve_time_section(at_one, out),
        _generation_section(generations),
    ]
    text = "\n\n".join("\n".join(s).strip("\n") for s in sections) + "\n"
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    logger.info("wrote %s", path)
    return path
