"""The append-only results table: one write per unit, NaN as null, keys never duplicated, a last
line cut short tolerated and never rewritten."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from steerkit_runner.results import RESULT_KEY, JsonlTable, ResultsTable


def row(i: int, *, value: float | None = 0.1, alpha: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "config_hash": "abc",
        "method": "qp",
        "solver": "path",
        "param": "lam" if value is not None else None,
        "value": value,
        "alpha": alpha,
        "input_id": i,
        "text": f"text {i}",
        "status": "optimal",
        "message": None,
        "support": [1, 5],
        **extra,
    }


def test_rows_round_trip_with_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    table = ResultsTable(path)
    assert len(table) == 0 and not path.exists()
    written = table.append([row(0, kl=0.5), row(1, kl=float("nan"), flipped=float("inf"))])
    assert written == 2
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["kl"] is None and json.loads(lines[1])["flipped"] is None
    assert "NaN" not in path.read_text()

    again = ResultsTable(path)
    rows = again.rows
    assert rows[0]["kl"] == 0.5 and math.isnan(rows[1]["kl"])
    assert rows[1]["message"] is None and rows[1]["support"] == [1, 5]  # not metrics: stay None
    assert again.done_keys() == {("abc", "qp", "path", "lam", 0.1, 1.0, 0.0)} | {
        ("abc", "qp", "path", "lam", 0.1, 1.0, 1.0)
    }
    assert again.has(row(1)) and not again.has(row(2))


def test_a_key_already_there_is_never_written_again(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    table = ResultsTable(path)
    table.append([row(0), row(1)])
    before = path.read_bytes()
    assert table.append([row(1, kl=9.0), row(1, kl=8.0), row(2)]) == 1  # only input 2 is new
    assert path.read_bytes().startswith(before)
    rows = ResultsTable(path).rows
    assert [r["input_id"] for r in rows] == [0, 1, 2] and "kl" not in rows[1]
    # the key compares numbers by value: 1 and 1.0 are the same α
    assert table.append([row(0, alpha=1)]) == 0
    assert ResultsTable(path).append([row(0, value=None)]) == 1  # no grid: another key


def test_each_append_is_one_write_flushed_and_fsynced(tmp_path: Path, monkeypatch: Any) -> None:
    import os

    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    table = ResultsTable(tmp_path / "results.jsonl")
    table.append([row(i) for i in range(5)])
    table.append([row(i, alpha=2.0) for i in range(5)])
    assert len(calls) == 2


def test_a_truncated_last_line_is_ignored_reported_and_never_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    ResultsTable(path).append([row(0), row(1)])
    complete = path.read_bytes()
    cut = json.dumps(row(2))[:37]  # the process died in the middle of the next unit's write
    path.write_bytes(complete + cut.encode())
    damaged = path.read_bytes()

    table = ResultsTable(path)
    assert len(table) == 2 and table.truncated
    assert [s.line for s in table.skipped] == [3] and "cut short" in table.skipped[0].reason
    assert path.read_bytes() == damaged  # opening never touches the file

    assert table.append([row(2), row(3)]) == 2
    data = path.read_bytes()
    assert data.startswith(damaged)  # appended after the cut line, which stays as it was
    assert data[len(damaged) : len(damaged) + 1] == b"\n"  # the next row starts clean
    reopened = ResultsTable(path)
    assert [r["input_id"] for r in reopened.rows] == [0, 1, 2, 3]
    assert not reopened.truncated and [s.line for s in reopened.skipped] == [3]


def test_a_complete_last_row_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(row(0)) + "\n" + json.dumps(row(1)))
    table = ResultsTable(path)
    assert len(table) == 2 and not table.skipped
    table.append([row(2)])
    assert [json.loads(x)["input_id"] for x in path.read_text().splitlines()] == [0, 1, 2]


def test_a_generic_table_has_its_own_key(tmp_path: Path) -> None:
    table = JsonlTable(tmp_path / "g.jsonl", key=("a",))
    assert table.append([{"a": 1, "b": 2}, {"a": 1, "b": 3}]) == 1
    assert JsonlTable(tmp_path / "g.jsonl", key=("a",)).rows == [{"a": 1, "b": 2}]
    assert RESULT_KEY[-1] == "input_id"
