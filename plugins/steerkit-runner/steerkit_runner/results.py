"""The results schema and the one reader of a run's tables.

results.jsonl holds one JSON object per (unit, α, input), never rewritten: each completed batch's
rows (`[steering] units_per_batch` units, one by default) go to the file in one write, then flush
and fsync, so an interrupted run loses at most the batch it was writing. A line that is not a
JSON object was cut short by an interrupted write: it is skipped and reported, never rewritten,
and the next append starts on a fresh line. Rows are keyed
(config hash, method, solver, param, value, alpha, input id) — `RESULT_KEY` — and `append` never
writes a key that is already there, so a resumed run cannot duplicate a row. JSON has no NaN: NaN
and ±inf are written as null and read back as NaN in the metric columns.

The columns: the key, the runner's descriptive columns (`DESCRIPTIVE`), and numeric columns —
the runner's own (`RUNNER_COLUMNS`) and every metric's. Metrics describe their columns
(`steerkit.Column`); a run records them in run.json, and `columns_of` reads them back, adding any
numeric column a metric wrote without describing it. `read_results` is how every consumer (the
printed table, the report, `RunResult.read_rows`) reads a run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from steerkit import Column, SteerkitError

__all__ = [
    "DESCRIPTIVE",
    "GENERATION_KEY",
    "NON_NUMERIC",
    "RESULT_KEY",
    "RUNNER_COLUMNS",
    "SCORE_COLUMNS",
    "JsonlTable",
    "MemoryTable",
    "Results",
    "ResultsError",
    "ResultsTable",
    "SkippedLine",
    "columns_of",
    "from_json",
    "read_generations",
    "read_jsonl",
    "read_results",
    "to_json",
]

logger = logging.getLogger(__name__)

RESULTS = "results.jsonl"
GENERATIONS = "generations.jsonl"

#: The columns that identify a row of results.jsonl (and of generations.jsonl).
RESULT_KEY = ("config_hash", "method", "solver", "param", "value", "alpha", "input_id")
GENERATION_KEY = RESULT_KEY
#: The runner's columns that describe a row rather than measure it.
DESCRIPTIVE = (
    "split",
    "text",
    "label",
    "shared",
    "status",
    "message",
    "support",
    "prompt",
    "steered",
    "base",
)
#: Columns that are not metrics: null stays None when read back (metric columns: NaN).
NON_NUMERIC = frozenset(RESULT_KEY) | frozenset(DESCRIPTIVE)
#: The numeric columns the runner writes itself.
RUNNER_COLUMNS = (
    Column(
        "method_seconds",
        "method s",
        better="lower",
        description="seconds the method took, per input",
    ),
)
#: The scores a run with [evaluation] concept and fluency writes on every row (per generation).
SCORE_COLUMNS = (
    Column(
        "concept",
        "concept",
        better="higher",
        format=".3f",
        description="how far the generation is towards the target, by a judge independent of "
        "the steering probe, in [0, 1]",
    ),
    Column(
        "fluency",
        "fluency",
        better="higher",
        format=".3f",
        description="how fluent the generation is, in [0, 1]",
    ),
    Column(
        "aggregate",
        "aggregate",
        better="higher",
        format=".3f",
        description="the harmonic mean of concept and fluency per generation (0 when either "
        "is 0), as in AxBench",
    ),
)
#: Statuses of an input that has a vector.
OK_STATUSES = frozenset({"optimal", "ok"})


class ResultsError(SteerkitError):
    """A results row that cannot be read (named by file and line)."""


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
    """A line of the file left out (1-based line number), and why."""

    line: int
    reason: str
    text: str


class JsonlTable:
    """An append-only JSON-lines file of rows keyed by `key` columns.

    Reading it never changes the file. A line that is not a JSON object is skipped (cut short by
    an interrupted write); a row repeating an earlier key is skipped; a JSON object without a key
    column raises ResultsError naming the file and line (a hand edit gone wrong is not silently
    dropped).
    """

    def __init__(self, path: str | Path, *, key: Sequence[str] = RESULT_KEY) -> None:
        self.path = Path(path)
        self.key_columns = tuple(key)
        self._rows: list[dict[str, Any]] = []
        self._lines: list[int] = []
        self._keys: set[tuple[Any, ...]] = set()
        self.skipped: list[SkippedLine] = []
        #: the last line was cut short (no newline at the end of the file)
        self.truncated = False
        self._needs_newline = False
        self._read()

    def key(self, row: Mapping[str, Any], where: str | None = None) -> tuple[Any, ...]:
        for column in self.key_columns:
            if column not in row:
                raise ResultsError(
                    f"{where or self.path.name}: missing {column!r}; rows need the key "
                    f"columns {', '.join(self.key_columns)}"
                )
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
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                row = None
            if not isinstance(row, dict):
                cut = number == len(lines) and self._needs_newline
                self.truncated = self.truncated or cut
                reason = (
                    "the last line is cut short (interrupted write)"
                    if cut
                    else "not a JSON object (cut short by an interrupted write?)"
                )
                self.skipped.append(
                    SkippedLine(number, reason, raw[:200].decode("utf-8", "replace"))
                )
                logger.warning("%s:%d: line ignored: %s", self.path, number, reason)
                continue
            key = self.key(row, f"{self.path}:{number}")
            if key in self._keys:
                self.skipped.append(SkippedLine(number, "a duplicate key", ""))
                continue
            self._keys.add(key)
            self._rows.append(row)
            self._lines.append(number)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row, in file order, with null metric values as NaN."""
        return [from_json(r) for r in self._rows]

    def numbered(self) -> list[tuple[int, dict[str, Any]]]:
        """(line number, row as written) of every row kept, in file order."""
        return list(zip(self._lines, self._rows))

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
        self._write(new)
        self._needs_newline = False
        first = max(self._lines, default=0) + 1
        self._lines.extend(range(first, first + len(new)))
        self._keys.update(keys)
        self._rows.extend(new)
        return len(new)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Append the rows to the file in one write, flushed and fsynced."""
        text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
        if self._needs_newline:
            text = "\n" + text
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())


class MemoryTable(JsonlTable):
    """A table in memory, for an executor's worker that has no access to the run directory:
    seeded with the rows already written (as written), it keys and dedups like the file and
    keeps what was appended in `added` (as the file would have it), for the driver to write."""

    def __init__(
        self, rows: Iterable[Mapping[str, Any]] = (), *, key: Sequence[str] = RESULT_KEY
    ) -> None:
        self._seed = list(rows)
        self.added: list[dict[str, Any]] = []
        super().__init__("<memory>", key=key)

    def _read(self) -> None:
        for number, row in enumerate(self._seed, start=1):
            key = self.key(row, f"row {number}")
            if key not in self._keys:
                self._keys.add(key)
                self._rows.append(dict(row))
                self._lines.append(number)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        self.added.extend(rows)


class ResultsTable(JsonlTable):
    """RUN_DIR/results.jsonl: one row per (unit, α, input)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, key=RESULT_KEY)


def read_jsonl(path: str | Path, *, key: Sequence[str] = RESULT_KEY) -> list[dict[str, Any]]:
    """The rows of an append-only table (skipping lines cut short), null metrics as NaN."""
    return JsonlTable(path, key=key).rows


# -- reading a run for analysis -----------------------------------------------------------------


def _float(value: Any, where: str, key: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f"{where}: {key!r} must be a number or null, got {value!r}")
    return float(value)


def normalise(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A row for analysis: typed key columns, the support as a sorted tuple of feature ids (or
    None), status "unknown" when missing, and every numeric column a float (NaN for null)."""
    for key in ("method", "alpha", "input_id"):
        if record.get(key) is None:
            raise ResultsError(
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
        raise ResultsError(f"{where}: 'support' must be a list of feature ids or null")
    row["support"] = None if support is None else tuple(sorted({int(f) for f in support}))
    for column, value in record.items():
        if column not in NON_NUMERIC:
            row[column] = _float(value, where, column)
    for column in ("prompt", "steered", "base"):
        if column in record:
            row[column] = "" if record[column] is None else str(record[column])
    return row


@attrs.frozen
class Results:
    """A run's rows for analysis (normalised, of one config hash) and what was left out:
    skipped: line numbers that are not JSON objects; foreign: rows of another config hash;
    duplicates: rows repeating an earlier key."""

    rows: tuple[dict[str, Any], ...]
    skipped: tuple[int, ...] = ()
    foreign: int = 0
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)


def _read(path: Path, config_hash: str | None) -> Results:
    table = JsonlTable(path, key=RESULT_KEY)
    rows = []
    foreign = 0
    for number, record in table.numbered():
        if config_hash is not None and record.get("config_hash", config_hash) != config_hash:
            foreign += 1
            continue
        rows.append(normalise(record, f"{path}:{number}"))
    return Results(
        rows=tuple(rows),
        skipped=tuple(s.line for s in table.skipped if s.reason != "a duplicate key"),
        foreign=foreign,
        duplicates=sum(s.reason == "a duplicate key" for s in table.skipped),
    )


def read_results(run_dir: str | Path, config_hash: str | None = None) -> Results:
    """RUN_DIR/results.jsonl for analysis (rows of `config_hash` only, when given); a missing
    file is a SteerkitError that says what to give instead."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS
    if not path.is_file():
        raise SteerkitError(
            f"{path} not found: {run_dir} holds no results table; give the directory a "
            f"`steerkit run` wrote, or run it first"
        )
    return _read(path, config_hash)


def read_generations(run_dir: str | Path, config_hash: str | None = None) -> Results | None:
    """RUN_DIR/generations.jsonl for analysis, or None when the run has none."""
    path = Path(run_dir) / GENERATIONS
    return _read(path, config_hash) if path.is_file() else None


def columns_of(
    declared: Iterable[Mapping[str, Any] | Column], rows: Iterable[Mapping[str, Any]]
) -> tuple[Column, ...]:
    """The numeric columns of a run, in table order: the declared ones (as run.json records
    them: metrics' in config order, then the runner's), then any other numeric column the rows
    hold (undescribed: shown under its name), in first-seen order."""
    out: dict[str, Column] = {}
    for item in declared:
        column = item if isinstance(item, Column) else Column.from_dict(item)
        out.setdefault(column.name, column)
    for row in rows:
        for name, value in row.items():
            if name in out or name in NON_NUMERIC:
                continue
            if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                out[name] = Column(name)
    return tuple(out.values())
