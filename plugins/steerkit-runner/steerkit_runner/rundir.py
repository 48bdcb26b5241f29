"""A run directory's bookkeeping: the lock that keeps one writer, run.json (what the run is and
how far it got), the copy of its config, and the stage timings."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steerkit import SteerkitError
from steerkit_runner.config import Config
from steerkit_runner.results import to_json

__all__ = ["RUN_JSON", "RunFiles", "RunLock", "Stopwatch"]

RUN_JSON = "run.json"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Stopwatch:
    """Seconds per named stage, summed over every time the stage runs."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


class RunLock:
    """An exclusive lock on the run directory (released when the process dies)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self._handle: Any = None

    def __enter__(self) -> RunLock:
        self._handle = open(self.path, "a+")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._handle.close()
            raise SteerkitError(
                f"another steerkit process is writing {self.path.parent}; wait for it to finish"
            ) from e
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()


class RunFiles:
    """run.json and the config copy of one run directory (written atomically)."""

    def __init__(self, run_dir: Path, config: Config, clock: Stopwatch) -> None:
        self.run_dir = run_dir
        self.config = config
        self.clock = clock

    def update(self, **updates: Any) -> None:
        """Merge `updates` into run.json (with the timings so far); refuse a folder that
        belongs to another config."""
        path = self.run_dir / RUN_JSON
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                data = {}
        if data.get("config_hash") not in (None, self.config.hash):
            raise SteerkitError(
                f"{path} belongs to another config (hash {data.get('config_hash')}); "
                "choose another output folder"
            )
        data.setdefault("created", _now())
        data.update(updates)
        data["config_hash"] = self.config.hash
        data["updated"] = _now()
        data["timings"] = {k: round(v, 4) for k, v in self.clock.timings.items()}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            json.dumps(to_json(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        os.replace(tmp, path)

    def copy_config(self) -> None:
        """config.toml (the text as given, or written from the config) and config.json."""
        toml_path = self.run_dir / "config.toml"
        if not toml_path.exists():
            text = self.config.text if self.config.text is not None else self.config.to_toml()
            toml_path.write_text(text, encoding="utf-8")
        json_path = self.run_dir / "config.json"
        if not json_path.exists():
            json_path.write_text(
                json.dumps(self.config.to_dict(), indent=2, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
