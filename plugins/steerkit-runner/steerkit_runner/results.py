"""The append-only results table: one JSON object per line, never rewritten.

Each completed unit's rows go to the file in one write, then flush and fsync, so an interrupted
run loses at most the unit it was writing. Opening the table reads what is there; a last line cut
short (the process died mid-write) is ignored and reported, never rewritten: the next append
starts with a newline so that the next row starts clean. Rows are keyed (config hash, method,
solver, param, value, alpha, input id); `append` never writes a key that is already there, so a
resumed run cannot duplicate a row. JSON has no NaN: NaN and ±inf are written as null and read
back as NaN in the metric columns.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "GENERATION_KEY",
    "NON_NUMERIC",
    "RESULT_KEY",
    "JsonlTable",
    "ResultsTable",
    "SkippedLine",
    "from_json",
    "read_jsonl",
    "to_json",
]

logger = logging.getLogger(__name__)

#: The columns that identify a row of results.jsonl (and of generations.jsonl).
RESULT_KEY = ("config_hash", "method", "solver", "param", "value", "alpha", "input_id")
GENERATION_KEY = RESULT_KEY
#: Columns that are not metrics: null stays None when read back (metric columns: NaN).
NON_NUMERIC = frozenset(
    {
        "config_hash",
        "method",
        "solver",
        "param",
        "value",
        "alpha",
        "input_id",
        "text",
        "label",
        "shared",
        "status",
        "message",
        "support",
        "prompt",
        "steered",
        "base",
    }
)


def to_json(value: Any) -> Any:
    """numpy scalars and arrays to plain values; NaN and ±inf to None (JSON has neither)."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy
        return to_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def from_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row read back: null in a metric column is NaN."""
    return {k: (float("nan") if v is None and k not in NON_NUMERIC else v) for k, v in row.items()}


def _key_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


@attrs.frozen
class SkippedLine:
    """A line of the file that is not a JSON object (1-based line number), and why."""

    line: int
    reason: str
    text: str


class JsonlTable:
    """An append-only JSON-lines file of rows keyed by `key` columns."""

    def __init__(self, path: str | Path, *, key: Sequence[str] = RESULT_KEY) -> None:
        self.path = Path(path)
        self.key_columns = tuple(key)
        self._rows: list[dict[str, Any]] = []
        self._keys: set[tuple[Any, ...]] = set()
        self.skipped: list[SkippedLine] = []
        #: the last line was cut short (no newline at the end of the file)
        self.truncated = False
        self._needs_newline = False
        self._read()

    def key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        missing = [c for c in self.key_columns if c not in row]
        if missing:
            raise KeyError(f"{self.path.name}: a row without the key column(s) {missing}")
        return tuple(_key_value(row[c]) for c in self.key_columns)

    def _read(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data:
            return
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        else:
            self._needs_newline = True
        for number, raw in enumerate(lines, start=1):
            last = number == len(lines)
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
                if not isinstance(row, dict):
                    raise ValueError(f"a JSON {type(row).__name__}, not an object")
                key = self.key(row)
            except (ValueError, KeyError, UnicodeDecodeError) as e:
                cut = last and self._needs_newline
                reason = "the last line is cut short (interrupted write)" if cut else str(e)
                self.truncated = self.truncated or cut
                self.skipped.append(
                    SkippedLine(number, reason, raw[:200].decode("utf-8", "replace"))
                )
                logger.warning("%s:%d: line ignored: %s", self.path, number, reason)
                continue
            if key in self._keys:
                self.skipped.append(SkippedLine(number, "a duplicate key", ""))
                continue
            self._keys.add(key)
            self._rows.append(row)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row, in file order, with null metric values as NaN."""
        return [from_json(r) for r in self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def done_keys(self) -> set[tuple[Any, ...]]:
        """The keys of every row in the table (value and alpha as floats)."""
        return set(self._keys)

    def has(self, row_or_key: Mapping[str, Any] | tuple[Any, ...]) -> bool:
        key = row_or_key if isinstance(row_or_key, tuple) else self.key(row_or_key)
        return tuple(_key_value(v) for v in key) in self._keys

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append the rows whose key is not in the table yet, in one write (flushed and fsynced);
        returns how many were written."""
        new: list[dict[str, Any]] = []
        keys: list[tuple[Any, ...]] = []
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            key = self.key(row)
            if key in self._keys or key in seen:
                continue
            seen.add(key)
            new.append(to_json(row))
            keys.append(key)
        if not new:
            return 0
        text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in new)
        if self._needs_newline:
            text = "\n" + text
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self._needs_newline = False
        self._keys.update(keys)
        self._rows.extend(new)
        return len(new)


class ResultsTable(JsonlTable):
    """RUN_DIR/results.jsonl: one row per (unit, input); see the README for the columns."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, key=RESULT_KEY)


def read_jsonl(path: str | Path, *, key: Sequence[str] = RESULT_KEY) -> list[dict[str, Any]]:
    """The rows of an append-only table (skipping lines cut short), null metrics as NaN."""
    return JsonlTable(path, key=key).rows
