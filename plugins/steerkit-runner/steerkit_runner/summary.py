"""The method comparison `steerkit run` prints: one line per (method, setting, α), the mean of
each metric column over the steered inputs (NaN ignored), as plain text."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SUMMARY_COLUMNS", "comparison_table", "format_table"]

#: (results column, header) of the metric means shown, in order; absent columns are left out.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("p_after", "P(target)"),
    ("probe_shift", "shift"),
    ("flipped", "flipped"),
    ("l0", "L0"),
    ("norm", "norm"),
    ("kl", "KL"),
    ("perplexity", "ppl"),
    ("classifier_target", "clf"),
    ("solve_seconds", "solve s"),
)
_OK = ("ok", "optimal")


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dict per (method, solver, param, value, alpha), in first-seen order: n, ok (inputs
    with a vector), and the mean of each summary column."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (row["method"], row["solver"], row["param"], row["value"], row["alpha"])
        groups.setdefault(key, []).append(row)
    present = [c for c, _ in SUMMARY_COLUMNS if any(c in r for r in rows)]
    out = []
    for (method, solver, param, value, alpha), members in groups.items():
        item: dict[str, Any] = {
            "method": method,
            "solver": solver,
            "setting": "" if param is None else f"{param}={value:g}",
            "alpha": alpha,
            "n": len(members),
            "ok": sum(1 for r in members if r.get("status") in _OK),
        }
        for column in present:
            values = np.array([_float(r.get(column)) for r in members], dtype=np.float64)
            finite = values[np.isfinite(values)]
            item[column] = float(finite.mean()) if finite.size else float("nan")
        out.append(item)
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)


def format_table(table: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as aligned plain-text columns."""
    if not table:
        return "(no results)"
    headers = [("method", "method"), ("solver", "solver"), ("setting", "setting")]
    headers += [("alpha", "α"), ("ok", "ok/n")]
    headers += [(c, h) for c, h in SUMMARY_COLUMNS if c in table[0]]
    cells = []
    for item in table:
        line = []
        for column, _ in headers:
            if column == "ok":
                line.append(f"{item['ok']}/{item['n']}")
            else:
                line.append(_cell(item.get(column)))
        cells.append(line)
    widths = [max(len(h), *(len(line[k]) for line in cells)) for k, (_, h) in enumerate(headers)]

    def render(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [render([h for _, h in headers]), render(["-" * w for w in widths])]
    out += [render(line) for line in cells]
    return "\n".join(out)
