"""The one method comparison: what `steerkit run` prints and what the report opens with.

One entry per unit (method, solver, param, value) at the α it is reported at: with a dev split,
its test inputs at the α the dev inputs chose; without one, α = 1 (or the α closest to 1 the unit
has). Each entry holds how many inputs, how many failed (status neither optimal nor ok), the mean
over inputs of every column (NaN ignored; NaN when no input has a value) with its bootstrap 95%
interval, and — when rows carry an `aggregate` score and the run has baselines — the paired
difference of the unit's aggregate to the best baseline's on the same inputs, with its interval.
The columns come from the run (`results.columns_of`): whatever metrics ran, with their headers
and formats.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from steerkit import Column
from steerkit_runner.results import OK_STATUSES, columns_of, normalise

__all__ = [
    "BOOTSTRAP",
    "NONE",
    "UnitKey",
    "at_alpha_one",
    "bootstrap_interval",
    "by_unit",
    "cell",
    "comparison_table",
    "format_markdown",
    "format_table",
    "label",
    "mean",
    "num",
    "reported_rows",
    "setting",
]

NONE = "—"
#: bootstrap resamples per interval
BOOTSTRAP = 2000
#: the paired difference to the best baseline, in the entries and the tables
VERSUS = "vs_best_baseline"
#: columns whose interval the compact tables show beside the mean
_SCORES = ("concept", "fluency", "aggregate")

# (method, solver, param, value): one unit of the grid, before α
UnitKey = tuple[str, "str | None", "str | None", "float | None"]
Row = Mapping[str, Any]

# (entry key, header) of the columns every table starts with
_LEADING = (
    ("method", "method"),
    ("solver", "solver"),
    ("setting", "setting"),
    ("alpha", "α"),
    ("n_inputs", "n"),
    ("n_failed", "failed"),
)


def unit_of(row: Row) -> UnitKey:
    return (row["method"], row["solver"], row["param"], row["value"])


def _unit_order(unit: UnitKey) -> tuple[str, str, str, float]:
    method, solver, param, value = unit
    return (method, solver or "", param or "", -math.inf if value is None else value)


def by_unit(rows: Iterable[Row]) -> dict[UnitKey, list[Row]]:
    """Rows grouped by unit, units in a stable order (method, solver, param, value)."""
    units: dict[UnitKey, list[Row]] = defaultdict(list)
    for row in rows:
        units[unit_of(row)].append(row)
    return {u: units[u] for u in sorted(units, key=_unit_order)}


def at_alpha_one(rows: Iterable[Row]) -> dict[UnitKey, list[Row]]:
    """Per unit, its rows at α = 1, or at the α closest to 1 it has; sorted by input."""
    out = {}
    for unit, unit_rows in by_unit(rows).items():
        alpha = min((r["alpha"] for r in unit_rows), key=lambda a: (abs(a - 1.0), a))
        chosen = [r for r in unit_rows if r["alpha"] == alpha]
        out[unit] = sorted(chosen, key=lambda r: int(r["input_id"]))
    return out


def reported_rows(rows: Iterable[Row]) -> dict[UnitKey, list[Row]]:
    """Per unit, the rows it is reported by: its test rows (at the α its dev rows chose) in a
    run with a dev split, else its rows at α = 1 (or the α closest to 1); sorted by input."""
    rows = list(rows)
    test = [r for r in rows if r.get("split") == "test"]
    if not test:
        return at_alpha_one(rows)
    return {
        unit: sorted(unit_rows, key=lambda r: int(r["input_id"]))
        for unit, unit_rows in by_unit(test).items()
    }


def setting(param: str | None, value: float | None) -> str:
    """'λ=0.1', 'ε=0.5', 'k=8', or '' for a method without a grid parameter."""
    if param is None:
        return ""
    name = {"lam": "λ", "eps": "ε"}.get(param, param)
    return f"{name}={num(value)}"


def label(unit: UnitKey) -> str:
    method, solver, param, value = unit
    return " · ".join(part for part in (method, solver or "", setting(param, value)) if part)


def num(value: Any) -> str:
    """A grid value or α as written ('0.1', '1', '1e-05'); '—' for None."""
    if value is None:
        return NONE
    return f"{value:g}"


def mean(values: Iterable[float]) -> float:
    """The mean over the values that are not NaN; NaN when there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def bootstrap_interval(values: Sequence[float], key: str) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of the values that are not NaN
    (BOOTSTRAP resamples, seeded by `key`: the same values and key give the same interval);
    (NaN, NaN) without two values."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if data.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    means = data[rng.integers(0, data.size, size=(BOOTSTRAP, data.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return (float(low), float(high))


def cell(value: Any, spec: str = ".4g") -> str:
    """A table cell: '—' for None or NaN, numbers in `spec`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def comparison_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column] | None = None,
    families: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One entry per unit at the α it is reported at (see `reported_rows`).

    rows: results rows as in results.jsonl (null or NaN for a missing value); columns: the
    numeric columns to average (default: every numeric column of the rows); families: method
    label → "optimal" or "baseline" (for the best baseline). Each entry holds the unit,
    `setting` ('λ=0.1'), `alpha`, `n_inputs`, `n_failed` (status neither optimal nor ok) and,
    per column, the mean over inputs where it is defined (NaN where none is) and `<column>_ci`,
    its bootstrap 95% interval; with an `aggregate` column and a baseline, `vs_best_baseline`
    (the mean paired difference of aggregate to the best baseline's, on the inputs both have)
    with `vs_best_baseline_ci`, and `best_baseline`, that baseline's label.
    """
    normalised = [normalise(r, f"row {i}") for i, r in enumerate(rows)]
    if columns is None:
        columns = columns_of((), normalised)
    table = []
    reported = reported_rows(normalised)
    for unit, unit_rows in reported.items():
        method, solver, param, value = unit
        entry: dict[str, Any] = {
            "method": method,
            "solver": solver,
            "param": param,
            "value": value,
            "setting": setting(param, value),
            "alpha": unit_rows[0]["alpha"],
            "n_inputs": len(unit_rows),
            "n_failed": sum(r["status"] not in OK_STATUSES for r in unit_rows),
        }
        for column in columns:
            values = [r.get(column.name, math.nan) for r in unit_rows]
            entry[column.name] = mean(values)
            entry[f"{column.name}_ci"] = bootstrap_interval(values, f"{label(unit)}|{column.name}")
            entry[f"{column.name}_n"] = sum(not math.isnan(v) for v in values)
        table.append(entry)
    _versus_best_baseline(table, reported, families or {})
    return table


def _versus_best_baseline(
    table: list[dict[str, Any]], reported: Mapping[UnitKey, list[Row]], families: Mapping[str, str]
) -> None:
    """Add each entry's paired difference in aggregate to the best baseline's."""
    baselines = [
        e
        for e in table
        if families.get(e["method"]) == "baseline" and not math.isnan(e.get("aggregate", math.nan))
    ]
    if not baselines:
        return
    best = max(baselines, key=lambda e: e["aggregate"])
    best_unit = (best["method"], best["solver"], best["param"], best["value"])
    reference = {r["input_id"]: r.get("aggregate", math.nan) for r in reported[best_unit]}
    for entry in table:
        unit = (entry["method"], entry["solver"], entry["param"], entry["value"])
        diffs = [
            r.get("aggregate", math.nan) - reference[r["input_id"]]
            for r in reported[unit]
            if r["input_id"] in reference
        ]
        entry["best_baseline"] = label(best_unit)
        entry[VERSUS] = mean(diffs)
        entry[f"{VERSUS}_ci"] = bootstrap_interval(diffs, f"{label(unit)}|{VERSUS}")


def _with_interval(value: Any, interval: Any, spec: str) -> str:
    text = cell(value, spec)
    if text == NONE or not isinstance(interval, tuple) or math.isnan(interval[0]):
        return text
    return f"{text} [{format(interval[0], spec)}, {format(interval[1], spec)}]"


def _cells(
    table: Sequence[Mapping[str, Any]], columns: Sequence[Column]
) -> tuple[list[str], list[list[str]]]:
    shown = [c for c in columns if c.table]
    interval = {c.name for c in shown if c.name in _SCORES}
    versus = any(VERSUS in e for e in table)
    headers = [h for _, h in _LEADING] + [c.header for c in shown]
    if versus:
        headers.append(f"Δ aggregate vs {table[0]['best_baseline']}")
    out = []
    for entry in table:
        row = [cell(entry.get(key)) or NONE for key, _ in _LEADING]
        row[3] = num(entry.get("alpha"))
        for c in shown:
            if c.name in interval:
                row.append(_with_interval(entry.get(c.name), entry.get(f"{c.name}_ci"), c.format))
            else:
                row.append(cell(entry.get(c.name), c.format))
        if versus:
            row.append(_with_interval(entry.get(VERSUS), entry.get(f"{VERSUS}_ci"), "+.3f"))
        out.append(row)
    return headers, out


def _table_columns(
    table: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None
) -> Sequence[Column]:
    if columns is not None:
        return columns
    leading = {key for key, _ in _LEADING} | {"param", "value", "best_baseline"}
    names = [
        k
        for k in (table[0] if table else {})
        if k not in leading and not k.endswith(("_ci", "_n")) and k != VERSUS
    ]
    return [Column(name) for name in names]


def format_table(
    table: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None
) -> str:
    """comparison_table's entries as aligned plain text (for a terminal); NaN shown as '—'."""
    if not table:
        return "(no results)"
    headers, cells = _cells(table, _table_columns(table, columns))
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


def md_escape(text: str) -> str:
    """Text safe inside a Markdown paragraph or table cell: one line, no markup."""
    text = text.replace("\\", "\\\\")
    for ch in "`*_[]<>|#~$":
        text = text.replace(ch, "\\" + ch)
    return " ↵ ".join(part for part in text.replace("\r", "").split("\n")).replace("\t", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|"] + [line(r) for r in rows]


def format_markdown(
    table: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None
) -> list[str]:
    """comparison_table's entries as the lines of a Markdown table."""
    headers, cells = _cells(table, _table_columns(table, columns))
    return md_table(headers, cells)


def intervals_markdown(table: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """Every mean of the table with its bootstrap 95% interval, one line per unit and column."""
    rows = []
    for entry in table:
        unit = (entry["method"], entry["solver"], entry["param"], entry["value"])
        for column in columns:
            if column.table and not math.isnan(entry.get(column.name, math.nan)):
                low, high = entry.get(f"{column.name}_ci", (math.nan, math.nan))
                rows.append(
                    [
                        md_escape(label(unit)),
                        md_escape(column.header),
                        cell(entry[column.name], column.format),
                        cell(low, column.format),
                        cell(high, column.format),
                    ]
                )
    return md_table(["unit", "column", "mean", "2.5%", "97.5%"], rows)
