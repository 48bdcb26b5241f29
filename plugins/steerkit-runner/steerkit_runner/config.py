"""A run's configuration: a TOML file loaded into frozen attrs classes.

Every error names the key path (``methods[2].lam``) and the line of the file it is on: tomllib
gives no positions, so `_toml_lines.KeyLines` finds them by scanning the text. The config hash is
the SHA-256 of the canonical JSON of the parsed, normalised config (defaults filled in), not of the
file's bytes: reordering keys or adding a comment keeps the hash; changing a value changes it.

Sections (see the README for every key): [run], [dataset], [source], [probe], [steering],
[[methods]], [evaluation], [execution] (where the units run; not part of the hash) and, for
`steerkit sweep`, [sweep]. In [dataset], [source], [probe] and
each [[methods]] table, keys other than the ones the runner reads are the plugin's own
parameters (passed to its constructor; a `params` sub-table may hold them too). In a
[[methods]] table a list-valued parameter is a grid: one unit per value.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from steerkit.errors import (
    DuplicatePluginError,
    SteerkitError,
    UnknownPluginError,
    ValidationError,
)
from steerkit_runner._toml_lines import KeyLines, format_path
from steerkit_runner._toml_lines import Path as KeyPath

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DEFAULT_CONFIG",
    "SHARED_MODE",
    "Config",
    "ConfigError",
    "DatasetSection",
    "EvaluationSection",
    "ExecutionSection",
    "MethodEntry",
    "PluginSection",
    "ProbeSection",
    "RunSection",
    "SteeringSection",
    "SweepSection",
    "canonical_json",
    "load_config",
    "parse_config",
    "resolve_config",
    "shipped_config_path",
    "shipped_configs",
]

#: The shipped config `steerkit run` uses when given none: runs offline.
DEFAULT_CONFIG = "gemma-3-270m-offline-sentiment"
SHARED_MODE = "shared"
PER_INPUT_MODE = "per_input"

_SPLITS = ("test", "train")
_INPUTS = ("non_target", "all")
_ON_FAILURE = ("record", "raise")
_POSITIONS = ("all", "prompt", "generated")
_MODES = (PER_INPUT_MODE, SHARED_MODE)
#: The metrics a sweep evaluates when [sweep] names none: the cheap ones (no generation).
SWEEP_METRICS = ("probe_shift", "sparsity", "norm", "solve_time")


class ConfigError(SteerkitError, ValueError):
    """A config that cannot be run: the message starts with `file:line: key.path:`."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = message
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = "".join(p + ": " for p in (where, key) if p)
        super().__init__(prefix + message)


# -- the sections -----------------------------------------------------------------------------


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@attrs.frozen
class RunSection:
    """[run]: name (of the run directory), seed (every random choice), output_dir (where run
    directories go, relative to the working directory), description (one line, for listings)."""

    name: str
    seed: int = 0
    output_dir: str = "runs"
    description: str = ""


@attrs.frozen
class PluginSection:
    """A plugin by its registered name, with the keyword parameters of its constructor."""

    name: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen
class DatasetSection(PluginSection):
    """[dataset]: the task; n_per_class is passed to `load` (None: all), the rest to the class."""

    n_per_class: int | None = None


@attrs.frozen
class ProbeSection(PluginSection):
    """[probe]: the probe, the class steered towards and the probe margin the concept asks for."""

    target_class: int = 1
    margin: float = 0.0


@attrs.frozen
class SteeringSection:
    """[steering]: which inputs are steered and how the vectors are evaluated.

    split: the split whose texts are steered; inputs: "non_target" (only texts whose label is not
    the target class) or "all"; max_inputs: at most this many (the first, in split order);
    alphas: the scales α each vector is evaluated at; n_generate: generations from the first
    n_generate steered texts; max_new_tokens: per generation; on_failure: "record" (a failing
    unit gets rows with its status and message and the run goes on) or "raise"; positions: where
    the vectors are added (all, prompt, generated).

    dev: how many of the steered inputs (the first, in split order) form the dev split on which
    each unit's α is chosen from `alphas`, by the mean aggregate score ([evaluation] concept and
    fluency); the other inputs are the test split, evaluated at the chosen α only, and every
    input of both splits is generated. 0 (the default): no selection — every input at every α.
    dev_new_tokens: the dev split's generations' length (default: max_new_tokens); shorter
    saves most of the selection's time, and α is then chosen on the generations' beginnings.
    units_per_batch: how many units share one generation call per phase (vectors one pass
    cannot steer together still get calls of their own); larger batches can use the hardware
    better, up to the source's own batch size.
    """

    split: str = "test"
    inputs: str = "non_target"
    max_inputs: int | None = None
    alphas: tuple[float, ...] = (1.0,)
    n_generate: int = 4
    max_new_tokens: int = 20
    on_failure: str = "record"
    positions: str = "all"
    dev: int = 0
    dev_new_tokens: int | None = None
    units_per_batch: int = 1

    @property
    def dev_tokens(self) -> int:
        """New tokens per dev generation."""
        return self.max_new_tokens if self.dev_new_tokens is None else self.dev_new_tokens


@attrs.frozen
class MethodEntry:
    """One [[methods]] table: a steering method, its label in the results (default: its name),
    the solver backend it asks for (None: automatic), fixed params and at most one grid."""

    name: str
    label: str
    solver: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    grid_param: str | None = None
    grid: tuple[Any, ...] = ()

    def settings(self) -> list[tuple[str | None, Any]]:
        """(param, value) of each unit: one per grid value, or (None, None) without a grid."""
        if self.grid_param is None:
            return [(None, None)]
        return [(self.grid_param, v) for v in self.grid]

    def params_for(self, value: Any) -> dict[str, Any]:
        """The constructor's keyword arguments for one grid value."""
        params = dict(self.params)
        if self.grid_param is not None:
            params[self.grid_param] = value
        return params


@attrs.frozen
class EvaluationSection:
    """[evaluation]: the metrics to compute, with optional constructor params per metric
    ([evaluation.params.<metric>]).

    concept and fluency: the names of two metric columns holding scores in [0, 1] — how far a
    generation is towards the target concept (a judge independent of the steering probe) and how
    fluent it is. With both set, every row gets `concept`, `fluency` and their harmonic mean
    `aggregate` (0 when either is 0), the score [steering] dev chooses α by.
    """

    metrics: tuple[str, ...] = ()
    params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, converter=_frozen_mapping)
    concept: str | None = None
    fluency: str | None = None

    @property
    def scores(self) -> bool:
        """True when rows get concept, fluency and aggregate."""
        return self.concept is not None and self.fluency is not None


@attrs.frozen
class SweepSection:
    """[sweep]: the Pareto sweep of `steerkit sweep` over λ (QP) and ε (SOCP).

    mode "per_input" runs `qp` and `socp`; "shared" runs `shared` with kind qp and socp. alphas,
    metrics and n_generate replace [steering] / [evaluation] for the sweep (defaults: α = 1, the
    metrics that need no generation, no generations). layers: sweep these blocks too — one run
    (probe, SAE, activations) per layer, the [source]'s `layer` parameter set to each; none: the
    [source]'s own layer only.
    """

    lam: tuple[float, ...] = ()
    eps: tuple[float, ...] = ()
    mode: str = PER_INPUT_MODE
    solver: str | None = None
    alphas: tuple[float, ...] = (1.0,)
    metrics: tuple[str, ...] = SWEEP_METRICS
    n_generate: int = 0
    layers: tuple[int, ...] = ()


@attrs.frozen
class ExecutionSection:
    """[execution]: where the units run. executor: a registered executor's name ("local", the
    default: in this process, as before; "ray": on a Ray cluster); num_cpus and num_gpus: what
    one task asks of a worker (num_gpus None: 1 when the source runs on a CUDA device, else 0);
    params: the executor's own parameters (Ray's: address, max_retries). Where units run does not
    change what they compute: [execution] is not part of the config hash, and a run started on
    one executor resumes on another."""

    executor: str = "local"
    num_cpus: float = 1.0
    num_gpus: float | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen(eq=False)
class Config:
    """A whole run. `path` and `text` record where it came from (not part of the hash)."""

    run: RunSection
    dataset: DatasetSection
    source: PluginSection
    probe: ProbeSection
    steering: SteeringSection = SteeringSection()
    methods: tuple[MethodEntry, ...] = ()
    evaluation: EvaluationSection = EvaluationSection()
    sweep: SweepSection | None = None
    execution: ExecutionSection = ExecutionSection()
    path: Path | None = None
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The normalised config as plain JSON-able values (without path and text)."""
        out = attrs.asdict(self, filter=lambda a, _: a.name not in ("path", "text"))
        out["methods"] = [attrs.asdict(m) for m in self.methods]
        result: dict[str, Any] = _jsonable(out)
        return result

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of `to_dict()` without run.output_dir, run.description,
        [sweep] and [execution]: they do not change what `run` computes (a sweep runs a config
        derived from [sweep], with its own hash; units compute the same on every executor)."""
        data = self.to_dict()
        data["run"].pop("output_dir", None)
        data["run"].pop("description", None)
        data.pop("sweep", None)
        data.pop("execution", None)
        # keys added later count only when set: a config written before them keeps its hash
        for section, key in _LATER_KEYS:
            if data[section].get(key) == _LATER_KEYS[(section, key)]:
                data[section].pop(key, None)
        return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()

    def line_of(self, path: KeyPath) -> int | None:
        """The line of a key in this config's file (None without a file)."""
        return None if self.text is None else KeyLines(self.text).line_of(path)

    def to_toml(self) -> str:
        """A TOML text that parses back to the same config (for configs built in code)."""
        return config_to_toml(self)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            message,
            file=str(self.path) if self.path is not None else None,
            line=self.line_of(path),
            key=format_path(path),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8, no NaN: the same text for the same config."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- reading and checking ---------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Reads one table of the parsed TOML, naming the key path and line in every error."""

    def __init__(self, data: Any, path: KeyPath, ctx: _Context) -> None:
        self.path = path
        self.ctx = ctx
        if not isinstance(data, dict):
            raise ctx.error(path, f"expected a table, received {_kind(data)}")
        self.data: dict[str, Any] = dict(data)
        self.used: set[str] = set()

    def error(self, key: str | int | None, message: str) -> ConfigError:
        return self.ctx.error(self.path if key is None else (*self.path, key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> Any:
        if key not in self.data:
            if required:
                raise self.error(None, f"missing required key {key!r}")
            return default
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, received {_kind(value)} {_shown(value)}")
        if required and not value.strip():
            raise self.error(key, "expected a non-empty string, received ''")
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.string(key, default=default)
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise self.error(key, f"expected one of {listed}, received {value!r}")
        return str(value)

    def integer(self, key: str, *, default: int | None, minimum: int | None = None) -> Any:
        if key not in self.data:
            return default
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, received {_kind(value)} {_shown(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"expected an integer ≥ {minimum}, received {value}")
        return value

    def number(self, key: str, *, default: float) -> float:
        if key not in self.data:
            return default
        return _number(self.raw(key), lambda m: self.error(key, m))

    def numbers(
        self, key: str, *, default: tuple[float, ...], positive: bool = False
    ) -> tuple[float, ...]:
        if key not in self.data:
            return default
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.error(key, f"expected a list of numbers, received {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            number = _number(item, lambda m, i=i: self.ctx.error((*self.path, key, i), m))
            if positive and number <= 0:
                raise self.ctx.error(
                    (*self.path, key, i), f"expected a number > 0, received {number}"
                )
            out.append(number)
        return tuple(out)

    def strings(self, key: str, *, default: tuple[str, ...]) -> tuple[str, ...]:
        if key not in self.data:
            return default
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.error(key, f"expected a list of strings, received {_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.ctx.error(
                    (*self.path, key, i), f"expected a string, received {_kind(item)}"
                )
        return tuple(value)

    def params(self) -> dict[str, Any]:
        """Every key not read yet, merged with a `params` sub-table: a plugin's parameters."""
        out: dict[str, Any] = {}
        if "params" in self.data:
            table = self.raw("params")
            if not isinstance(table, dict):
                raise self.error("params", f"expected a table, received {_kind(table)}")
            for key, value in table.items():
                _check_param(value, (*self.path, "params", key), self.ctx)
                out[key] = value
        for key in self.data:
            if key in self.used:
                continue
            self.used.add(key)
            if key in out:
                raise self.error(key, f"{key!r} is given both here and in the params table")
            _check_param(self.data[key], (*self.path, key), self.ctx)
            out[key] = self.data[key]
        return out

    def finish(self, known: Iterable[str]) -> None:
        """Reject keys nobody read."""
        for key in self.data:
            if key not in self.used:
                listed = ", ".join(known)
                raise self.error(key, f"unknown key {key!r}; the keys here are: {listed}")


def _number(value: Any, error: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"expected a number, received {_kind(value)} {_shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise error(f"expected a finite number, received {value}")
    return number


def _check_param(value: Any, path: KeyPath, ctx: _Context) -> None:
    """A plugin parameter: a string, number, boolean, or lists / tables of them."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_param(item, (*path, key), ctx)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_param(item, (*path, i), ctx)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ctx.error(path, f"expected a finite number, received {value}")
    elif not isinstance(value, (str, int, float, bool)):
        raise ctx.error(
            path, f"expected a string, number, boolean, list or table, received {_kind(value)}"
        )


@attrs.frozen
class _Context:
    file: str | None
    lines: KeyLines

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            message, file=self.file, line=self.lines.line_of(path), key=format_path(path)
        )


_SECTIONS = (
    "run",
    "dataset",
    "source",
    "probe",
    "steering",
    "methods",
    "evaluation",
    "sweep",
    "execution",
)
#: (section, key) → default of the keys added after the first release: left out of the hash at
#: their default, so that the runs of older configs still resume
_LATER_KEYS: dict[tuple[str, str], Any] = {
    ("steering", "dev"): 0,
    ("steering", "dev_new_tokens"): None,
    ("steering", "units_per_batch"): 1,
    ("evaluation", "concept"): None,
    ("evaluation", "fluency"): None,
}


def parse_config(text: str, *, path: str | Path | None = None) -> Config:
    """Parse and check a config's TOML text (`path`, if given, only names it in errors)."""
    file = str(path) if path is not None else None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None)
        if line is None:
            match = re.search(r"line (\d+)", str(e))
            line = int(match.group(1)) if match else None
        message = getattr(e, "msg", None) or re.sub(r"\s*\(at .*\)$", "", str(e))
        raise ConfigError(f"invalid TOML: {message}", file=file, line=line) from e
    ctx = _Context(file, KeyLines(text))
    top = _Reader(data, (), ctx)
    for key in data:
        if key not in _SECTIONS:
            raise ctx.error(
                (key,), f"unknown table {key!r}; the tables are: {', '.join(_SECTIONS)}"
            )
    for section in ("run", "dataset", "source", "probe"):
        if section not in data:
            raise ConfigError(
                f"missing required table [{section}]", file=file, line=None, key=section
            )

    config = Config(
        run=_run(_Reader(top.raw("run"), ("run",), ctx)),
        dataset=_dataset(_Reader(top.raw("dataset"), ("dataset",), ctx)),
        source=_plugin(_Reader(top.raw("source"), ("source",), ctx)),
        probe=_probe(_Reader(top.raw("probe"), ("probe",), ctx)),
        steering=_steering(_Reader(_table(top, "steering"), ("steering",), ctx)),
        methods=_methods(top.raw("methods"), ctx) if top.has("methods") else (),
        evaluation=_evaluation(_Reader(_table(top, "evaluation"), ("evaluation",), ctx)),
        sweep=_sweep(_Reader(top.raw("sweep"), ("sweep",), ctx)) if top.has("sweep") else None,
        execution=_execution(_Reader(_table(top, "execution"), ("execution",), ctx)),
        path=Path(path) if path is not None else None,
        text=text,
    )
    top.finish(_SECTIONS)
    if config.steering.dev and not config.evaluation.scores:
        raise ctx.error(
            ("steering", "dev"),
            "a dev split chooses α by the aggregate score: set [evaluation] concept and fluency "
            "(the metric columns it is made of), or dev = 0",
        )
    return config


def _table(top: _Reader, key: str) -> Any:
    return top.raw(key) if top.has(key) else {}


def _run(r: _Reader) -> RunSection:
    name = r.string("name", required=True)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise r.error(
            "name",
            f"expected a name of letters, digits, '.', '_' and '-' (it names the run "
            f"directory), received {name!r}",
        )
    section = RunSection(
        name=name,
        seed=r.integer("seed", default=0, minimum=0),
        output_dir=r.string("output_dir", default="runs"),
        description=r.string("description", default=""),
    )
    r.finish(("name", "seed", "output_dir", "description"))
    return section


def _plugin(r: _Reader) -> PluginSection:
    return PluginSection(name=r.string("name", required=True), params=r.params())


def _dataset(r: _Reader) -> DatasetSection:
    name = r.string("name", required=True)
    n_per_class = r.integer("n_per_class", default=None, minimum=1)
    return DatasetSection(name=name, params=r.params(), n_per_class=n_per_class)


def _probe(r: _Reader) -> ProbeSection:
    name = r.string("name", required=True)
    target_class = r.integer("target_class", default=1, minimum=0)
    margin = r.number("margin", default=0.0)
    return ProbeSection(name=name, params=r.params(), target_class=target_class, margin=margin)


def _steering(r: _Reader) -> SteeringSection:
    alphas = r.numbers("alphas", default=(1.0,))
    if not alphas:
        raise r.error("alphas", "expected at least one α")
    if len(set(alphas)) != len(alphas):
        raise r.error("alphas", f"expected distinct values, received {list(alphas)}")
    section = SteeringSection(
        split=r.choice("split", _SPLITS, "test"),
        inputs=r.choice("inputs", _INPUTS, "non_target"),
        max_inputs=r.integer("max_inputs", default=None, minimum=1),
        alphas=alphas,
        n_generate=r.integer("n_generate", default=4, minimum=0),
        max_new_tokens=r.integer("max_new_tokens", default=20, minimum=1),
        on_failure=r.choice("on_failure", _ON_FAILURE, "record"),
        positions=r.choice("positions", _POSITIONS, "all"),
        dev=r.integer("dev", default=0, minimum=0),
        dev_new_tokens=r.integer("dev_new_tokens", default=None, minimum=1),
        units_per_batch=r.integer("units_per_batch", default=1, minimum=1),
    )
    if section.dev_new_tokens is not None and not section.dev:
        raise r.error(
            "dev_new_tokens",
            "a dev split to generate for: set dev (the number of dev inputs) or remove "
            f"dev_new_tokens, received {section.dev_new_tokens} with dev = 0",
        )
    if section.max_inputs is not None and section.dev >= section.max_inputs:
        raise r.error(
            "dev",
            f"expected fewer dev inputs than max_inputs ({section.max_inputs}): the rest are "
            f"the test inputs, received {section.dev}",
        )
    r.finish(
        (
            "split",
            "inputs",
            "max_inputs",
            "alphas",
            "n_generate",
            "max_new_tokens",
            "on_failure",
            "positions",
            "dev",
            "dev_new_tokens",
            "units_per_batch",
        )
    )
    return section


def _methods(value: Any, ctx: _Context) -> tuple[MethodEntry, ...]:
    if not isinstance(value, list):
        raise ctx.error(("methods",), "expected [[methods]] tables (an array of tables)")
    entries: list[MethodEntry] = []
    units: dict[tuple[Any, ...], int] = {}
    for index, table in enumerate(value):
        r = _Reader(table, ("methods", index), ctx)
        name = r.string("name", required=True)
        label = r.string("label", default=name)
        solver = r.string("solver", default=None)
        params = r.params()
        grids = [k for k, v in params.items() if isinstance(v, list)]
        if len(grids) > 1:
            raise r.error(
                grids[1],
                f"one grid per [[methods]] table, received grids for {', '.join(grids)}; "
                "split them into several [[methods]] tables",
            )
        grid_param = grids[0] if grids else None
        grid: tuple[Any, ...] = ()
        if grid_param is not None:
            items = params.pop(grid_param)
            if not items:
                raise r.error(grid_param, "expected a non-empty list of values (a grid)")
            grid = tuple(
                _number(v, functools.partial(ctx.error, ("methods", index, grid_param, k)))
                for k, v in enumerate(items)
            )
            if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                grid = tuple(int(v) for v in items)  # an integer grid (e.g. k) stays integer
            if len(set(grid)) != len(grid):
                raise r.error(grid_param, f"expected distinct values, received {list(grid)}")
        entry = MethodEntry(
            name=name,
            label=label,
            solver=solver,
            params=params,
            grid_param=grid_param,
            grid=grid,
        )
        for param, grid_value in entry.settings():
            key = (label, solver, param, grid_value)
            if key in units:
                raise r.error(
                    param or "name",
                    f"the unit (method {label!r}, solver {solver!r}, {param} = {grid_value}) "
                    f"is already in methods[{units[key]}]; give one of them another `label`",
                )
            units[key] = index
        entries.append(entry)
    return tuple(entries)


def _evaluation(r: _Reader) -> EvaluationSection:
    metrics = r.strings("metrics", default=())
    if len(set(metrics)) != len(metrics):
        raise r.error("metrics", f"expected distinct metric names, received {list(metrics)}")
    params: dict[str, dict[str, Any]] = {}
    if r.has("params"):
        table = r.raw("params")
        if not isinstance(table, dict):
            raise r.error("params", f"expected a table, received {_kind(table)}")
        for metric, values in table.items():
            if metric not in metrics:
                raise r.ctx.error(
                    ("evaluation", "params", metric),
                    f"parameters for {metric!r}, which is not in evaluation.metrics",
                )
            if not isinstance(values, dict):
                raise r.ctx.error(
                    ("evaluation", "params", metric), f"expected a table, received {_kind(values)}"
                )
            _check_param(values, ("evaluation", "params", metric), r.ctx)
            params[metric] = dict(values)
    concept = r.string("concept", default=None)
    fluency = r.string("fluency", default=None)
    if (concept is None) != (fluency is None):
        missing = "fluency" if fluency is None else "concept"
        raise r.error(
            None,
            f"expected both `concept` and `fluency` (the columns the aggregate score is the "
            f"harmonic mean of), missing {missing!r}",
        )
    r.finish(("metrics", "params", "concept", "fluency"))
    return EvaluationSection(metrics=metrics, params=params, concept=concept, fluency=fluency)


def _sweep(r: _Reader) -> SweepSection:
    section = SweepSection(
        lam=r.numbers("lam", default=(), positive=True),
        eps=r.numbers("eps", default=(), positive=True),
        mode=r.choice("mode", _MODES, PER_INPUT_MODE),
        solver=r.string("solver", default=None),
        alphas=r.numbers("alphas", default=(1.0,)),
        metrics=r.strings("metrics", default=SWEEP_METRICS),
        n_generate=r.integer("n_generate", default=0, minimum=0),
        layers=_layers(r),
    )
    if not section.lam and not section.eps:
        raise r.error(None, "expected a grid: `lam = [...]` and/or `eps = [...]`")
    r.finish(("lam", "eps", "mode", "solver", "alphas", "metrics", "n_generate", "layers"))
    return section


def _layers(r: _Reader) -> tuple[int, ...]:
    if not r.has("layers"):
        return ()
    value = r.raw("layers")
    if not isinstance(value, list):
        raise r.error("layers", f"expected a list of block indices, received {_kind(value)}")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise r.ctx.error(
                ("sweep", "layers", i), f"expected a block index ≥ 0, received {_shown(item)}"
            )
    if len(set(value)) != len(value):
        raise r.error("layers", f"expected distinct layers, received {value}")
    return tuple(value)


def _execution(r: _Reader) -> ExecutionSection:
    executor = r.string("executor", default="local")
    if not executor.strip():
        raise r.error(
            "executor", "expected an executor's name (e.g. 'local' or 'ray'), received ''"
        )
    num_cpus = r.number("num_cpus", default=1.0)
    if num_cpus <= 0:
        raise r.error("num_cpus", f"expected a number > 0 (CPUs per task), received {num_cpus}")
    num_gpus: float | None = None
    if r.has("num_gpus"):
        num_gpus = r.number("num_gpus", default=0.0)
        if num_gpus < 0:
            raise r.error("num_gpus", f"expected a number ≥ 0 (GPUs per task), received {num_gpus}")
    return ExecutionSection(
        executor=executor, num_cpus=num_cpus, num_gpus=num_gpus, params=r.params()
    )


# -- files and shipped configs ----------------------------------------------------------------


def shipped_configs() -> dict[str, Path]:
    """The configs shipped with steerkit-runner: name → path."""
    folder = resources.files("steerkit_runner") / "configs"
    out = {}
    for item in folder.iterdir():
        if item.name.endswith(".toml"):
            out[item.name[: -len(".toml")]] = Path(str(item))
    return dict(sorted(out.items()))


def shipped_config_path(name: str) -> Path:
    """The path of a shipped config; an unknown name lists the shipped ones."""
    configs = shipped_configs()
    key = name[: -len(".toml")] if name.endswith(".toml") else name
    if key not in configs:
        raise UnknownPluginError("shipped config", name, configs)
    return configs[key]


def load_config(config: str | Path) -> Config:
    """A config from a TOML file, or the name of a shipped config (`steerkit configs`)."""
    path = Path(config)
    if not path.is_file():
        if (
            isinstance(config, str)
            and "/" not in config
            and config.removesuffix(".toml") in (shipped_configs())
        ):
            path = shipped_config_path(config)
        else:
            shipped = ", ".join(shipped_configs())
            raise ConfigError(
                f"no config file at {str(config)!r}, and no shipped config of that name "
                f"(shipped: {shipped})"
            )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not a UTF-8 text file: {e}", file=str(path)) from e
    return parse_config(text, path=path)


# -- resolution against the plugin registries -------------------------------------------------


def accepted_params(cls: type) -> set[str] | None:
    """The keyword parameters `cls(...)` accepts, following `**kwargs` up the MRO; None when
    it accepts any keyword."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return names
        try:
            signature = inspect.signature(init)
        except (TypeError, ValueError):
            return None
        var_keyword = False
        for parameter in list(signature.parameters.values())[1:]:
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = True
            elif parameter.kind in (
                inspect.Parameter.KEYWORD_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                names.add(parameter.name)
        if not var_keyword:
            return names
    return None


def _lookup(config: Config, host: Any, kind: str, name: str, path: KeyPath) -> type:
    try:
        return host.registry(kind).get(name)  # type: ignore[no-any-return]
    except (UnknownPluginError, DuplicatePluginError) as e:
        raise config.error(path, str(e)) from e


def _check_params(
    config: Config, cls: type, params: Iterable[str], path: KeyPath, what: str
) -> None:
    accepted = accepted_params(cls)
    if accepted is None:
        return
    for key in params:
        if key not in accepted:
            listed = ", ".join(sorted(accepted)) or "none"
            raise config.error(
                (*path, key),
                f"{what} does not take a parameter {key!r}; its parameters: {listed}",
            )


def _build_methods(config: Config, cls: type, entry: MethodEntry, index: int) -> None:
    """Build the entry's method once per grid value (constructors are cheap and check their
    parameters), so a bad value fails here with its key and line rather than as error rows.

    A ValidationError on a parameter names it (``methods[0].lam[1]`` for a grid's second value);
    a missing required parameter or another refusal names the table."""
    table: KeyPath = ("methods", index)
    what = f"method {entry.name!r}"
    for k, (param, value) in enumerate(entry.settings()):
        params = entry.params_for(value)
        try:
            inspect.signature(cls).bind(**params)
        except TypeError as e:
            raise config.error(table, f"{what}: {e}") from e
        except ValueError:  # no signature to check (a builtin): the call below says
            pass
        try:
            cls(**params)
        except ValidationError as e:
            if e.field not in params:
                path = table
            elif e.field == param:
                path = (*table, e.field, k)
            else:
                path = (*table, e.field)
            raise config.error(path, f"{what}: expected {e.expected}, received {e.received}") from e
        except (SteerkitError, TypeError, ValueError) as e:
            setting = f" with {param} = {value!r}" if param is not None else ""
            raise config.error(
                table, f"{what} refused its parameters{setting}: {type(e).__name__}: {e}"
            ) from e


def resolve_config(config: Config, host: Any = None, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Check every plugin name of the config against the registries (datasets, sources, probes,
    methods, solvers, metrics) and every parameter against the class's constructor, without
    loading a model; each [[methods]] entry's method is built once per grid value, so its
    constructor checks the values (λ > 0, k ≥ 1, …). Returns {"dataset": class, "source": class,
    "probe": class, "methods": [class per entry], "metrics": [class per metric], "executor":
    class}.
    skip: sections not to check ("dataset", "source": objects the caller supplies itself)."""
    if host is None:
        import steerkit

        host = steerkit.get_host()
    skip = set(skip)
    out: dict[str, Any] = {"dataset": None, "source": None}
    sections = (("dataset", "dataset"), ("source", "activation_source"), ("probe", "probe"))
    for section, kind in sections:
        if section in skip:
            continue
        spec = getattr(config, section)
        cls = _lookup(config, host, kind, spec.name, (section, "name"))
        _check_params(config, cls, spec.params, (section,), f"{section} {spec.name!r}")
        out[section] = cls
    methods = []
    for i, entry in enumerate(config.methods):
        cls = _lookup(config, host, "steering_method", entry.name, ("methods", i, "name"))
        names = list(entry.params) + ([entry.grid_param] if entry.grid_param else [])
        _check_params(config, cls, names, ("methods", i), f"method {entry.name!r}")
        if entry.solver is not None:
            _lookup(config, host, "solver", entry.solver, ("methods", i, "solver"))
        _build_methods(config, cls, entry, i)
        methods.append(cls)
    metrics = []
    for i, metric in enumerate(config.evaluation.metrics):
        cls = _lookup(config, host, "metric", metric, ("evaluation", "metrics", i))
        _check_params(
            config,
            cls,
            config.evaluation.params.get(metric, {}),
            ("evaluation", "params", metric),
            f"metric {metric!r}",
        )
        metrics.append(cls)
    execution = config.execution
    out["executor"] = _lookup(
        config, host, "executor", execution.executor, ("execution", "executor")
    )
    _check_params(
        config,
        out["executor"],
        execution.params,
        ("execution",),
        f"executor {execution.executor!r}",
    )
    if config.sweep is not None:
        for kind, name in (("solver", config.sweep.solver),):
            if name is not None:
                _lookup(config, host, kind, name, ("sweep", "solver"))
        for i, metric in enumerate(config.sweep.metrics):
            _lookup(config, host, "metric", metric, ("sweep", "metrics", i))
    out["methods"] = methods
    out["metrics"] = metrics
    return out


# -- writing a config back as TOML (for configs built in code) --------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot write {value} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise ValueError(f"cannot write {type(value).__name__} to TOML")


def _toml_table(header: str, items: Mapping[str, Any]) -> str:
    lines = [header]
    lines += [f"{k} = {_toml_value(v)}" for k, v in items.items() if v is not None]
    return "\n".join(lines) + "\n"


def config_to_toml(config: Config) -> str:
    """A TOML text that parses back to the same config."""
    parts = [
        "# written by steerkit-runner from a config built in code\n",
        _toml_table("[run]", attrs.asdict(config.run)),
        _toml_table(
            "[dataset]",
            {
                "name": config.dataset.name,
                "n_per_class": config.dataset.n_per_class,
                **config.dataset.params,
            },
        ),
        _toml_table("[source]", {"name": config.source.name, **config.source.params}),
        _toml_table(
            "[probe]",
            {
                "name": config.probe.name,
                "target_class": config.probe.target_class,
                "margin": config.probe.margin,
                **config.probe.params,
            },
        ),
        _toml_table("[steering]", attrs.asdict(config.steering)),
    ]
    for entry in config.methods:
        items: dict[str, Any] = {"name": entry.name, "label": entry.label, "solver": entry.solver}
        items.update(entry.params)
        if entry.grid_param is not None:
            items[entry.grid_param] = list(entry.grid)
        parts.append(_toml_table("[[methods]]", items))
    evaluation = config.evaluation
    parts.append(
        _toml_table(
            "[evaluation]",
            {
                "metrics": list(evaluation.metrics),
                "concept": evaluation.concept,
                "fluency": evaluation.fluency,
            },
        )
    )
    for metric, params in config.evaluation.params.items():
        parts.append(_toml_table(f"[evaluation.params.{json.dumps(metric)}]", params))
    if config.sweep is not None:
        parts.append(_toml_table("[sweep]", attrs.asdict(config.sweep)))
    execution = config.execution
    if execution != ExecutionSection():
        parts.append(
            _toml_table(
                "[execution]",
                {
                    "executor": execution.executor,
                    "num_cpus": execution.num_cpus,
                    "num_gpus": execution.num_gpus,
                    **execution.params,
                },
            )
        )
    return "\n".join(parts)
