"""The one method comparison: what `steerkit run` prints and what the report opens with.

One entry per unit (method, solver, param, value) at α = 1, or at the α closest to 1 the unit has:
how many inputs, how many failed (status neither optimal nor ok), and the mean over inputs of
every table column (NaN ignored; NaN when no input has a value). The columns come from the run
(`results.columns_of`): whatever metrics ran, with their headers and formats.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from steerkit import Column
from steerkit_runner.results import OK_STATUSES, columns_of, normalise

__all__ = [
    "NONE",
    "UnitKey",
    "at_alpha_one",
    "by_unit",
    "cell",
    "comparison_table",
    "format_markdown",
    "format_table",
    "label",
    "mean",
    "num",
    "setting",
]

NONE = "—"

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
    rows: Iterable[Mapping[str, Any]], columns: Sequence[Column] | None = None
) -> list[dict[str, Any]]:
    """One entry per unit at α = 1 (or the α closest to 1 it has).

    rows: results rows as in results.jsonl (null or NaN for a missing value); columns: the
    numeric columns to average (default: every numeric column of the rows). Each entry holds the
    unit, `setting` ('λ=0.1'), `alpha`, `n_inputs`, `n_failed` (status neither optimal nor ok)
    and, per column, the mean over inputs where it is defined (NaN where none is).
    """
    normalised = [normalise(r, f"row {i}") for i, r in enumerate(rows)]
    if columns is None:
        columns = columns_of((), normalised)
    table = []
    for unit, unit_rows in at_alpha_one(normalised).items():
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
            entry[column.name] = mean(r.get(column.name, math.nan) for r in unit_rows)
        table.append(entry)
    return table


def _cells(
    table: Sequence[Mapping[str, Any]], columns: Sequence[Column]
) -> tuple[list[str], list[list[str]]]:
    shown = [c for c in columns if c.table]
    headers = [h for _, h in _LEADING] + [c.header for c in shown]
    out = []
    for entry in table:
        row = [cell(entry.get(key)) or NONE for key, _ in _LEADING]
        row[3] = num(entry.get("alpha"))
        row += [cell(entry.get(c.name), c.format) for c in shown]
        out.append(row)
    return headers, out


def _table_columns(
    table: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None
) -> Sequence[Column]:
    if columns is not None:
        return columns
    leading = {key for key, _ in _LEADING} | {"param", "value"}
    names = [k for k in (table[0] if table else {}) if k not in leading]
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
