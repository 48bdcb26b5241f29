"""Where each key of a TOML document is: tomllib gives values, not positions, so errors about a
value find its line here by scanning the text for table headers and `key =` lines.

Paths are tuples of keys and array-of-table indices: ("methods", 2, "lam") is the key `lam` of
the third `[[methods]]` table. Keys inside inline tables and array elements are not recorded:
`line_of` falls back to the nearest recorded ancestor (the line of `key = [...]`, or the table's
header).
"""

from __future__ import annotations

import contextlib
import json
import re

__all__ = ["KeyLines", "Path", "format_path"]

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Path) -> str:
    """("methods", 2, "lam") → "methods[2].lam"; ("a", "b", 1) → "a.b[1]"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out


class _State:
    def __init__(self) -> None:
        self.depth = 0  # open [ and { of a value spanning lines
        self.multiline: str | None = None  # the delimiter of an open multi-line string


def _skip_string(line: str, i: int, quote: str) -> int:
    """The index after the single-line string that starts at line[i] (a quote)."""
    j = i + 1
    while j < len(line):
        if quote == '"' and line[j] == "\\":
            j += 2
            continue
        if line[j] == quote:
            return j + 1
        j += 1
    return len(line)


def _close_multiline(line: str, i: int, delimiter: str) -> int:
    """The index after the closing delimiter at or after i, or -1 if the string stays open."""
    j = i
    while j < len(line):
        if delimiter == '"""' and line[j] == "\\":
            j += 2
            continue
        if line.startswith(delimiter, j):
            j += 3
            while j < len(line) and line[j] == delimiter[0]:  # up to two quotes may end it
                j += 1
            return j
        j += 1
    return -1


def _consume(line: str, i: int, state: _State) -> None:
    """Scan a value from line[i:], tracking brackets and multi-line strings across lines."""
    n = len(line)
    while i < n:
        if state.multiline is not None:
            end = _close_multiline(line, i, state.multiline)
            if end < 0:
                return
            state.multiline = None
            i = end
            continue
        c = line[i]
        if c == "#":
            return
        if line.startswith('"""', i) or line.startswith("'''", i):
            state.multiline = line[i : i + 3]
            i += 3
            continue
        if c in "\"'":
            i = _skip_string(line, i, c)
            continue
        if c in "[{":
            state.depth += 1
        elif c in "]}":
            state.depth = max(0, state.depth - 1)
        i += 1


def _parse_key(text: str, i: int) -> tuple[list[str], int] | None:
    """A dotted key starting at text[i]: (its parts, the index after it), or None."""
    parts: list[str] = []
    n = len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            end = _skip_string(text, i, text[i])
            raw = text[i + 1 : end - 1]
            if text[i] == '"' and "\\" in raw:
                with contextlib.suppress(ValueError):
                    raw = json.loads(text[i:end])
            parts.append(raw)
            i = end
        else:
            match = _BARE.match(text, i)
            if match is None:
                return None
            parts.append(match.group(0))
            i = match.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == ".":
            i += 1
            continue
        return parts, i


class KeyLines:
    """Line numbers (1-based) of the keys and table headers of a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        self._arrays: dict[Path, int] = {}  # array-of-tables path → index of its last table
        self._scan(text)

    def _resolve(self, parts: list[str]) -> Path:
        """The path of a header's key parts, with the current index of every array crossed."""
        path: Path = ()
        for part in parts:
            path = (*path, part)
            if path in self._arrays:
                path = (*path, self._arrays[path])
        return path

    def _record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    def _scan(self, text: str) -> None:
        state = _State()
        table: Path = ()
        for number, line in enumerate(text.splitlines(), start=1):
            if state.multiline is not None or state.depth > 0:
                _consume(line, 0, state)
                continue
            stripped = line.lstrip()
            offset = len(line) - len(stripped)
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("[["):
                parsed = _parse_key(stripped, 2)
                if parsed is None:
                    continue
                *parents, last = parsed[0]
                array = (*self._resolve(parents), last)
                self._arrays[array] = self._arrays.get(array, -1) + 1
                table = (*array, self._arrays[array])
                self._record(array, number)
                self._record(table, number)
                continue
            if stripped.startswith("["):
                parsed = _parse_key(stripped, 1)
                if parsed is None:
                    continue
                table = self._resolve(parsed[0])
                self._record(table, number)
                continue
            parsed = _parse_key(line, offset)
            if parsed is None or parsed[1] >= len(line) or line[parsed[1]] != "=":
                _consume(line, offset, state)
                continue
            parts, end = parsed
            for k in range(1, len(parts) + 1):
                self._record((*table, *parts[:k]), number)
            _consume(line, end + 1, state)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest recorded ancestor; None if neither is in the
        file (e.g. a table that is missing altogether)."""
        for k in range(len(path), 0, -1):
            line = self.lines.get(path[:k])
            if line is not None:
                return line
        return None
