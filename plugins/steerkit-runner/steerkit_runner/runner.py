"""The runner: a config becomes a run directory of result rows, vectors, generations and a report.

Read top to bottom, this file is one run. `run` loads the config and resolves every plugin name
through the registries. `_Runner.prepare` turns the dataset, the source and the probe into one
frozen `Prepared` value: what every unit shares. The config's `Unit`s — one [[methods]] entry at
one grid setting — then run in batches on the [execution] executor (`execution.py`; in this
process by default), each batch through `_Units.run_units`: each unit computes its method once
(`_Units.compute`, a `MethodResult`), has its vectors saved, and is evaluated at each α still
missing (`_Units.evaluate`): generations when a metric needs them, then every metric, into one
result row per input; the driver appends each batch's rows to results.jsonl in one write.
Nothing here imports a plugin or knows one by name: methods, metrics and sources describe
themselves.

A run resumes: `run` skips every (unit, α) already in the table and never rewrites or duplicates
a row. The same config resumes in the same run directory (`<name>-<config hash[:10]>` under the
output folder); a changed config gets a new one.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import steerkit
from steerkit import (
    Activations,
    ActivationSource,
    Concept,
    Dataset,
    EvalContext,
    Executor,
    InfeasibleError,
    MethodContext,
    MethodResult,
    Metric,
    Needs,
    Positions,
    Probe,
    SourceInfo,
    Splits,
    SteeringMethod,
    SteeringVector,
    SteerkitError,
    layer_of,
)
from steerkit_runner.config import (
    PER_INPUT_MODE,
    Config,
    ConfigError,
    EvaluationSection,
    MethodEntry,
    accepted_params,
    load_config,
    resolve_config,
)
from steerkit_runner.memo import UnsteeredMemo
from steerkit_runner.results import (
    GENERATION_KEY,
    GENERATIONS,
    OK_STATUSES,
    RESULTS,
    RUNNER_COLUMNS,
    SCORE_COLUMNS,
    JsonlTable,
    ResultsTable,
    SkippedLine,
)
from steerkit_runner.rundir import RUN_JSON, RunFiles, RunLock, Stopwatch
from steerkit_runner.vectors import check_saved, save_vector, save_vectors, vector_paths

__all__ = [
    "Prepared",
    "RunResult",
    "Unit",
    "layer_config",
    "run",
    "run_dir_for",
    "sweep",
    "sweep_config",
    "sweep_layers",
    "with_execution",
]

logger = logging.getLogger(__name__)


@attrs.frozen
class RunResult:
    """What a run did. rows: rows in the table now; new_rows: written by this call; units_run /
    units_skipped: (method, setting, α) units computed now / already in the table; failed_units:
    "method setting α: message" of units recorded as failed; timings: seconds per stage
    (`metric.NAME` for each metric); seconds: the whole call's wall-clock time; notes: what the
    run repaired on the way (e.g. vectors rewritten)."""

    run_dir: Path
    config_hash: str
    report: Path | None
    rows: int
    new_rows: int
    units_run: int
    units_skipped: int
    failed_units: tuple[str, ...] = ()
    timings: Mapping[str, float] = attrs.field(factory=dict)
    skipped_lines: tuple[SkippedLine, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def results_path(self) -> Path:
        return self.run_dir / RESULTS

    def read_rows(self) -> list[dict[str, Any]]:
        """The results table's rows (null metric values as NaN)."""
        return ResultsTable(self.results_path).rows


def run_dir_for(
    config: Config, output_dir: str | Path | None = None, *, resume: bool = True
) -> Path:
    """`<output_dir>/<name>-<hash[:10]>`; with resume=False and that folder already holding a
    run, the first free `<name>-<hash[:10]>-<k>` (a fresh run that overwrites nothing)."""
    base = Path(output_dir if output_dir is not None else config.run.output_dir)
    stem = f"{config.run.name}-{config.hash[:10]}"
    folder = base / stem
    if resume or not ((folder / RUN_JSON).exists() or (folder / RESULTS).exists()):
        return folder
    k = 2
    while (base / f"{stem}-{k}").exists():
        k += 1
    return base / f"{stem}-{k}"


def run(
    config: Config | str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    output_dir: str | Path | None = None,
    report: bool = True,
    source: ActivationSource | None = None,
    dataset: Dataset | None = None,
    host: steerkit.PluginHost | None = None,
    executor: str | None = None,
    address: str | None = None,
) -> RunResult:
    """Run a config (a Config, a TOML path or a shipped config's name) end to end and write the
    report. `source` / `dataset` replace the ones [source] / [dataset] would build (tests, or
    a model already in memory); `host` replaces the process-wide plugin host, for every plugin
    the run uses (methods solve through it too); `executor` and `address` replace [execution]'s
    (see `with_execution`)."""
    if not isinstance(config, Config):
        config = load_config(config)
    host = host if host is not None else steerkit.get_host()
    config = with_execution(config, executor, address, host=host)
    runner = _Runner(
        config,
        run_dir=run_dir_for(config, output_dir, resume=resume),
        progress=progress,
        source=source,
        dataset=dataset,
        host=host,
    )
    return runner.execute(report=report)


def with_execution(
    config: Config,
    executor: str | None = None,
    address: str | None = None,
    *,
    host: steerkit.PluginHost | None = None,
) -> Config:
    """The config with [execution] executor (its parameters dropped when it names another
    executor) and address replaced; None keeps the config's. An executor no plugin registered
    raises UnknownPluginError listing those that are. The config hash does not change."""
    execution = config.execution
    if executor is not None:
        host = host if host is not None else steerkit.get_host()
        host.registry("executor").get(executor)  # UnknownPluginError lists the executors
        if executor != execution.executor:
            execution = attrs.evolve(execution, executor=executor, params={})
    if address is not None:
        execution = attrs.evolve(execution, params={**execution.params, "address": address})
    return attrs.evolve(config, execution=execution)


def sweep_config(config: Config, *, mode: str | None = None) -> Config:
    """The config `steerkit sweep` runs: [sweep]'s λ grid for `qp` and ε grid for `socp`
    (per-input mode), or both for `shared` (shared mode), at [sweep]'s α and metrics."""
    spec = config.sweep
    if spec is None:
        raise ConfigError(
            "no [sweep] table: add one with `lam = [...]` and/or `eps = [...]`",
            file=str(config.path) if config.path else None,
            key="sweep",
        )
    mode = mode or spec.mode
    if mode not in (PER_INPUT_MODE, "shared"):
        raise ConfigError(f"expected mode 'per_input' or 'shared', received {mode!r}", key="mode")
    methods: list[MethodEntry] = []
    for param, grid, kind in (("lam", spec.lam, "qp"), ("eps", spec.eps, "socp")):
        if not grid:
            continue
        name, params = (kind, {}) if mode == PER_INPUT_MODE else ("shared", {"kind": kind})
        methods.append(
            MethodEntry(
                name=name,
                label=name,
                solver=spec.solver,
                params=params,
                grid_param=param,
                grid=grid,
            )
        )
    metric_params = {k: v for k, v in config.evaluation.params.items() if k in spec.metrics}
    return attrs.evolve(
        config,
        run=attrs.evolve(config.run, name=f"{config.run.name}-sweep"),
        steering=attrs.evolve(config.steering, alphas=spec.alphas, n_generate=spec.n_generate),
        methods=tuple(methods),
        evaluation=EvaluationSection(metrics=spec.metrics, params=metric_params),
        sweep=None,
    )


def sweep(
    config: Config | str | Path,
    *,
    mode: str | None = None,
    **options: Any,
) -> RunResult:
    """The Pareto sweep over [sweep]'s λ and ε grids (mode: "per_input" or "shared", default
    [sweep].mode): the same results table, vectors and report as `run` (same `options`). A
    [sweep] with `layers` is swept by `sweep_layers` (one run per layer)."""
    if not isinstance(config, Config):
        config = load_config(config)
    if config.sweep is not None and config.sweep.layers:
        raise config.error(
            ("sweep", "layers"),
            f"this sweep covers layers {list(config.sweep.layers)}, one run each: call "
            "sweep_layers (the CLI's `steerkit sweep` does)",
        )
    return run(sweep_config(config, mode=mode), **options)


def layer_config(config: Config, layer: int) -> Config:
    """The config at one layer: its [source] `layer` parameter set (the source builds that
    block's model hook and SAE) and its run named `<name>-layer<L>`; [sweep] without layers."""
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ConfigError(f"expected a block index ≥ 0, received {layer!r}", key="sweep.layers")
    sweep_section = config.sweep
    if sweep_section is not None:
        sweep_section = attrs.evolve(sweep_section, layers=())
    return attrs.evolve(
        config,
        run=attrs.evolve(config.run, name=f"{config.run.name}-layer{layer}"),
        source=attrs.evolve(config.source, params={**config.source.params, "layer": layer}),
        sweep=sweep_section,
        text=None,
    )


def sweep_layers(
    config: Config | str | Path,
    layers: Sequence[int] | None = None,
    *,
    mode: str | None = None,
    source: Any = None,
    **options: Any,
) -> list[RunResult]:
    """The sweep at each layer (default: [sweep] layers; none there: the [source]'s own layer
    only), one after another, each a run of its own — its own activations, probe, SAE, run
    directory and report — whose units go to the [execution] executor. `source`: an
    ActivationSource (one layer only), or a function layer → ActivationSource that replaces
    the one [source] would build at that layer. Other `options` are `run`'s."""
    if not isinstance(config, Config):
        config = load_config(config)
    if layers is None:
        layers = config.sweep.layers if config.sweep is not None else ()
    if not layers:
        plain = (
            config
            if config.sweep is None
            else attrs.evolve(config, sweep=attrs.evolve(config.sweep, layers=()))
        )
        return [sweep(plain, mode=mode, source=source, **options)]
    if len(set(layers)) != len(layers):
        raise ConfigError(f"expected distinct layers, received {list(layers)}", key="sweep.layers")
    if source is not None and not callable(source):
        raise ConfigError(
            "a layer sweep builds one source per layer: pass a function layer → source",
            key="sweep.layers",
        )
    results = []
    for layer in layers:
        at_layer = source(layer) if source is not None else None
        results.append(sweep(layer_config(config, layer), mode=mode, source=at_layer, **options))
    return results


# -- the values between the stages --------------------------------------------------------------


@attrs.frozen(eq=False)
class Prepared:
    """What every unit of a run shares, computed once.

    dataset and splits: the task; source and info: the model and what it says it is (info.layer
    is the layer steered); train: the training split's activations; inputs: the activations of
    the inputs steered, with their texts and labels; probe and concept: the trained probe and the
    half-spaces W h ≥ t it asks for; decoder: the SAE decoder, or None for a source without an
    SAE; accuracy: the probe's (train, test) accuracy.
    """

    dataset: Dataset
    splits: Splits
    source: ActivationSource
    info: SourceInfo
    train: Activations
    inputs: Activations
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    probe: Probe
    concept: Concept
    decoder: Any
    accuracy: tuple[float, float]
    dev: int = 0

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(range(self.n))

    @property
    def dev_ids(self) -> tuple[int, ...]:
        """The inputs that choose α (the first `dev`); none without a dev split."""
        return tuple(range(self.dev))

    @property
    def test_ids(self) -> tuple[int, ...]:
        """The inputs evaluated at the chosen α."""
        return tuple(range(self.dev, self.n))


@attrs.frozen
class Unit:
    """One [[methods]] entry at one grid setting (param = value; both None without a grid): its
    method is computed once and evaluated at each α."""

    entry: MethodEntry
    method: type[SteeringMethod]
    param: str | None
    value: float | None

    @property
    def setting(self) -> str:
        """'qp lam=0.1', or the label alone without a grid."""
        return self.entry.label + (f" {self.param}={float(self.value)!r}" if self.param else "")

    def key(self, config_hash: str, alpha: float, input_id: int) -> tuple[Any, ...]:
        """The results key (RESULT_KEY) of one row of this unit."""
        value = None if self.value is None else float(self.value)
        entry = self.entry
        return (config_hash, entry.label, entry.solver, self.param, value, float(alpha), input_id)

    def vector_name(self, with_solver: bool) -> str:
        """The file stem of its saved vectors: label[_solver][_paramVALUE], filename-safe."""
        name = self.entry.label
        if with_solver and self.entry.solver:
            name += f"_{self.entry.solver}"
        if self.param is not None:
            name += f"_{self.param}{float(self.value)!r}"  # type: ignore[arg-type]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def units_of(config: Config, methods: Sequence[type[SteeringMethod]]) -> list[Unit]:
    """Every unit of the config, in config order."""
    return [
        Unit(entry=entry, method=cls, param=param, value=value)
        for entry, cls in zip(config.methods, methods)
        for param, value in entry.settings()
    ]


# -- the run --------------------------------------------------------------------------------


class _Runner:
    """One run of a config in one run directory; every attribute is set here, in __init__."""

    def __init__(
        self,
        config: Config,
        *,
        run_dir: Path,
        progress: bool,
        source: ActivationSource | None,
        dataset: Dataset | None,
        host: steerkit.PluginHost,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.progress = progress
        self.source_override = source
        self.dataset_override = dataset
        self.host = host
        skip = [k for k, v in (("source", source), ("dataset", dataset)) if v is not None]
        self.classes = resolve_config(config, host, skip=skip)
        self.metrics: list[tuple[str, Metric]] = [
            (name, cls(**config.evaluation.params.get(name, {})))
            for name, cls in zip(config.evaluation.metrics, self.classes["metrics"])
        ]
        self.needs = functools.reduce(
            Needs.__or__, (Needs.of(m.requires()) for _, m in self.metrics), Needs()
        )
        self.check_scores()
        self.clock = Stopwatch()
        self.files = RunFiles(run_dir, config, self.clock)

    def check_scores(self) -> None:
        """[evaluation] concept and fluency must name columns the metrics declare."""
        evaluation = self.config.evaluation
        declared = {c.name for _, metric in self.metrics for c in metric.columns()}
        for key in ("concept", "fluency"):
            column = getattr(evaluation, key)
            if column is not None and column not in declared:
                raise self.config.error(
                    ("evaluation", key),
                    f"{column!r} is not a column of the metrics {list(evaluation.metrics)}; "
                    f"they write: {', '.join(sorted(declared)) or 'no described column'}",
                )

    def execute(self, *, report: bool) -> RunResult:
        config = self.config
        start = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(self.run_dir):
            self.files.copy_config()
            results = ResultsTable(self.run_dir / RESULTS)
            generations = JsonlTable(self.run_dir / GENERATIONS, key=GENERATION_KEY)
            resumed_rows = len(results)
            self.files.update(
                name=config.run.name,
                executor=config.execution.executor,
                steerkit_version=steerkit.__version__,
                dataset=config.dataset.name,
                target_class=config.probe.target_class,
                margin=config.probe.margin,
                status="running",
            )
            try:
                from steerkit_runner.execution import run_on_executor

                prepared = self.prepare()
                units = _Units(self, prepared, results, generations, self.clock.stage)
                counts = run_on_executor(
                    units, units_of(config, self.classes["methods"]), self.executor()
                )
                counts.notes.extend(self.features(prepared, results))
                self.files.update(status="complete", failed_units=counts.failed)
                report_path = self.report() if report else None
            except Exception as e:  # a failed run says so; a killed one stays "running"
                self.files.update(status="failed", error=f"{type(e).__name__}: {e}")
                raise
        if resumed_rows:
            logger.info("resumed %s: %d rows were already there", self.run_dir, resumed_rows)
        return RunResult(
            run_dir=self.run_dir,
            config_hash=config.hash,
            report=report_path,
            rows=len(results),
            new_rows=counts.new_rows,
            units_run=counts.run,
            units_skipped=counts.skipped,
            failed_units=tuple(counts.failed),
            timings=dict(self.clock.timings),
            skipped_lines=tuple(results.skipped),
            notes=tuple(counts.notes),
            seconds=time.perf_counter() - start,
        )

    def features(self, prepared: Prepared, results: ResultsTable) -> list[str]:
        """features.json: the source's cards (`ActivationSource.feature_cards`) of the features
        the optimal methods use most, for the report; none from a source that cannot describe
        features. Returns the notes of a failure (raised with on_failure = "raise")."""
        from steerkit_runner.features import chosen_features, write_features

        optimal = [
            entry.label
            for entry, cls in zip(self.config.methods, self.classes["methods"])
            if cls.family == "optimal"
        ]
        texts = dict.fromkeys([*prepared.splits.train.texts, *prepared.splits.test.texts])
        try:
            with self.clock.stage("features"):
                ids = chosen_features(results.rows, optimal)
                write_features(self.run_dir, prepared.source, list(texts), ids)
        except Exception as e:
            if self.config.steering.on_failure == "raise":
                raise
            logger.warning("feature cards failed: %s", e)
            return [f"feature cards: {_describe_failure(e)}"]
        return []

    def executor(self) -> Executor:
        """The [execution] executor, built with its parameters (its engine must be installed)."""
        execution = self.config.execution
        cls: type[Executor] = self.classes["executor"]
        cls.require()
        return cls(**execution.params)

    def report(self) -> Path:
        from steerkit_runner import report as report_module

        with self.clock.stage("report"):
            path = report_module.write_report(self.run_dir)
        self.files.update(report=str(path))
        return path

    # -- stage 1-3: dataset, source, probe ------------------------------------------------------

    def prepare(self) -> Prepared:
        """The dataset's splits, the activations, the inputs to steer, the probe and its concept,
        the decoder — and what the source is, recorded in run.json."""
        config, stage = self.config, self.clock.stage
        with stage("dataset"):
            dataset = self.dataset_override or self.classes["dataset"](**config.dataset.params)
            splits = dataset.load(seed=config.run.seed, n_per_class=config.dataset.n_per_class)
        with stage("source"):
            source = self.source_override or self.classes["source"](**config.source.params)
        with stage("activations"):
            train = source.activations(list(splits.train.texts))
            test = source.activations(list(splits.test.texts))
        steered = splits.test if config.steering.split == "test" else splits.train
        chosen = self.chosen_inputs(steered.labels)
        with stage("probe"):
            probe = self.classes["probe"](**config.probe.params)
            probe = probe.fit(train.hidden, splits.train.labels, seed=config.run.seed)
            accuracy = (
                _score(probe, train.hidden, splits.train.labels),
                _score(probe, test.hidden, splits.test.labels),
            )
            concept = probe.concept(
                target_class=config.probe.target_class, margin=config.probe.margin
            )
        with stage("decoder"):
            decoder = _decoder(source)
        info = source.describe()
        if info.layer is None:
            info = attrs.evolve(info, layer=layer_of(info.hook_point))
        prepared = Prepared(
            dataset=dataset,
            splits=splits,
            source=source,
            info=info,
            train=train,
            inputs=(test if steered is splits.test else train).take(chosen),
            texts=tuple(steered.texts[i] for i in chosen),
            labels=tuple(int(steered.labels[i]) for i in chosen),
            probe=probe,
            concept=concept,
            decoder=decoder,
            accuracy=accuracy,
            dev=config.steering.dev,
        )
        if prepared.dev and prepared.dev >= prepared.n:
            raise SteerkitError(
                f"[steering] dev = {prepared.dev}, but only {prepared.n} inputs are steered: "
                "the test inputs would be none (lower dev, or steer more inputs)"
            )
        self.files.update(**self.provenance(prepared))
        return prepared

    def chosen_inputs(self, labels: Sequence[int]) -> list[int]:
        """The indices of the split's texts to steer ([steering] inputs and max_inputs)."""
        steering, target = self.config.steering, self.config.probe.target_class
        chosen = [i for i, y in enumerate(labels) if steering.inputs == "all" or int(y) != target]
        chosen = chosen[: steering.max_inputs]
        if not chosen:
            raise SteerkitError(
                f"no inputs to steer: the {steering.split} split has no texts whose label "
                f"is not the target class {target} (set [steering] inputs = 'all')"
            )
        return chosen

    def provenance(self, prepared: Prepared) -> dict[str, Any]:
        """What run.json records about the prepared run (the report reads it)."""
        config, info = self.config, prepared.info
        d_sae = None if prepared.decoder is None else int(np.shape(prepared.decoder)[0])
        columns = [c for _, metric in self.metrics for c in metric.columns()]
        if config.evaluation.scores:
            columns = [*SCORE_COLUMNS, *columns]
        return {
            "source": info.to_dict(),
            "model": info.model,
            "preset": info.preset,
            "weights": info.weights,
            "layer": info.layer,
            "hook_point": info.hook_point,
            "sae": {"release": info.sae_release, "id": info.sae_id, "d_sae": d_sae},
            "probe": {
                "name": config.probe.name,
                "accuracy_train": prepared.accuracy[0],
                "accuracy_test": prepared.accuracy[1],
            },
            "n_inputs": prepared.n,
            "dev": prepared.dev,
            "new_tokens": {
                "dev": config.steering.dev_tokens if prepared.dev else None,
                "test": config.steering.max_new_tokens,
            },
            "evaluation": {
                "concept": config.evaluation.concept,
                "fluency": config.evaluation.fluency,
            },
            "split": config.steering.split,
            "n_train": len(prepared.splits.train),
            "n_test": len(prepared.splits.test),
            "columns": [c.to_dict() for c in (*columns, *RUNNER_COLUMNS)],
            "methods": {
                entry.label: {"name": entry.name, "family": cls.family, "solver": entry.solver}
                for entry, cls in zip(config.methods, self.classes["methods"])
            },
        }


def _score(probe: Probe, hidden: Any, labels: Any) -> float:
    try:
        return float(probe.score(hidden, labels))
    except NotImplementedError:
        return float("nan")


def _decoder(source: ActivationSource) -> Any:
    try:
        return source.decoder()
    except (NotImplementedError, SteerkitError) as e:
        logger.info("the source has no SAE decoder (%s): SAE methods will fail", e)
        return None


def _describe_failure(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- stages 4-8, one unit at a time --------------------------------------------------------------


@attrs.define
class _Counts:
    new_rows: int = 0
    run: int = 0
    skipped: int = 0
    failed: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)


#: one evaluation of a unit: the inputs `ids` at scale α
Step = tuple[float, tuple[int, ...]]
#: A step's steered continuations ({input id: text}) and why generation failed, if it did.
Continuations = tuple[dict[int, str], str | None]
#: a unit's method, once computed: its result and seconds per input, or why it failed
Outcome = tuple[MethodResult, float] | Exception


class _Units:
    """The units of one prepared run: compute, save, evaluate, write rows.

    plan: what the run is (config, run_dir, host, metrics, needs, progress: the `_Runner`, or an
    `execution.Plan` on an executor's worker); stage: the stopwatch's context manager."""

    def __init__(
        self,
        plan: Any,
        prepared: Prepared,
        results: JsonlTable,
        generations: JsonlTable,
        stage: Any,
    ) -> None:
        self.config = plan.config
        self.hash = plan.config.hash
        self.run_dir = plan.run_dir
        self.host = plan.host
        self.progress = plan.progress
        self.metrics = plan.metrics
        self.needs = plan.needs
        self.stage = stage
        self.prepared = prepared
        self.results = results
        self.generations = generations
        # the model for metrics: unsteered answers are asked again by every unit
        self.metric_source = UnsteeredMemo(prepared.source)
        self.generator = _Generator(prepared, self.config, self.stage)
        labels: dict[str, set[str | None]] = {}
        for entry in self.config.methods:
            labels.setdefault(entry.label, set()).add(entry.solver)
        self.solver_in_name = {label for label, solvers in labels.items() if len(solvers) > 1}

    @property
    def steps_per_unit(self) -> int:
        """Evaluations of one unit: one per α, and the test inputs' with a dev split."""
        return len(self.config.steering.alphas) + (1 if self.prepared.dev else 0)

    def pending(self, unit: Unit) -> bool:
        """Whether the unit has an evaluation missing from the table (what `run_units` would
        compute): an α of the grid on the first inputs, or the test inputs at the chosen α."""
        prepared = self.prepared
        first = prepared.dev_ids if prepared.dev else prepared.ids
        if any(self.missing(unit, float(a), first) for a in self.config.steering.alphas):
            return True
        return bool(prepared.dev and self.missing(unit, self.chosen_alpha(unit), prepared.test_ids))

    def run_units(self, units: Sequence[Unit], bar: Any, counts: _Counts) -> None:
        """Every α of the grid on the dev inputs (on every input without a dev split), then
        the test inputs at the α the dev inputs chose, for each of `units`, whose generations
        share one batched call per phase; each method is computed once, and only when
        something is missing."""
        prepared = self.prepared
        steering = self.config.steering
        first = prepared.dev_ids if prepared.dev else prepared.ids
        grids = [[(float(a), self.missing(u, a, first)) for a in steering.alphas] for u in units]
        tokens = steering.dev_tokens if prepared.dev else steering.max_new_tokens
        outcomes = self.evaluate_steps(units, grids, tokens, [None] * len(units), bar, counts)
        if prepared.dev:
            tests = []
            for unit in units:
                alpha = self.chosen_alpha(unit)
                tests.append([(alpha, self.missing(unit, alpha, prepared.test_ids))])
            outcomes = self.evaluate_steps(
                units, tests, steering.max_new_tokens, outcomes, bar, counts
            )
        for unit, outcome in zip(units, outcomes):
            if outcome is None:
                counts.notes.extend(self.check_vectors(unit))

    def missing(self, unit: Unit, alpha: float, ids: Sequence[int]) -> tuple[int, ...]:
        """The inputs of `ids` with no row at α yet."""
        return tuple(i for i in ids if not self.results.has(unit.key(self.hash, alpha, i)))

    def evaluate_steps(
        self,
        units: Sequence[Unit],
        steps: Sequence[Sequence[Step]],
        tokens: int,
        outcomes: Sequence[Outcome | None],
        bar: Any,
        counts: _Counts,
    ) -> list[Outcome | None]:
        """Evaluate each unit's steps that have inputs missing (generating `tokens` new tokens
        per prompt, every unit's steps in one batched call), computing a unit's method first if
        it has not been; returns each unit's outcome (None when nothing was missing)."""
        plans: list[tuple[Unit, list[Step], Outcome, list[MethodResult]]] = []
        done: list[Outcome | None] = []
        for unit, unit_steps, outcome in zip(units, steps, outcomes):
            todo = [(alpha, ids) for alpha, ids in unit_steps if ids]
            counts.skipped += len(unit_steps) - len(todo)
            bar.update(len(unit_steps) - len(todo))
            if todo and outcome is None:
                bar.set_postfix_str(unit.setting, refresh=False)
                outcome = self.outcome(unit)
            done.append(outcome)
            if todo:
                assert outcome is not None
                scaled = (
                    []
                    if isinstance(outcome, Exception)
                    else [outcome[0].scaled(alpha) for alpha, _ in todo]
                )
                plans.append((unit, todo, outcome, scaled))
        # every step's generations in one batched call (the units' whole dev grids)
        requests = [
            (ids, result.per_input(self.prepared.n))
            for _, todo, _, scaled in plans
            for (_, ids), result in zip(todo, scaled)
        ]
        texts = iter(self.generator.continuations(requests, self.needs.generations, tokens))
        for unit, todo, outcome, scaled in plans:
            for k, (alpha, ids) in enumerate(todo):
                if isinstance(outcome, Exception):
                    rows, generations = self.failed_rows(unit, alpha, ids, outcome), []
                    problems = [_describe_failure(outcome)]
                else:
                    rows, generations, problems = self.evaluate(
                        unit, scaled[k], outcome[1], alpha, ids, next(texts)
                    )
                self.generations.append(generations)
                counts.new_rows += self.results.append(rows)
                counts.run += 1
                counts.failed.extend(f"{unit.setting} α={alpha}: {m}" for m in problems)
                bar.update(1)
        return done

    def outcome(self, unit: Unit) -> Outcome:
        """The unit's method computed (and its vectors saved), or why it failed (raised with
        on_failure = "raise")."""
        try:
            outcome = self.compute(unit)
        except Exception as e:
            if self.config.steering.on_failure == "raise":
                raise
            return e
        self.save(unit, outcome[0])
        return outcome

    def chosen_alpha(self, unit: Unit) -> float:
        """The α of the grid with the highest mean aggregate over the dev inputs (ties: the
        smaller α); the α closest to 1 when no α has one (e.g. the method failed)."""
        dev = set(self.prepared.dev_ids)
        by_alpha: dict[float, list[float]] = {}
        for row in self.results.rows:
            if self.owns(unit, row) and row["input_id"] in dev:
                value = float(row.get("aggregate", float("nan")))
                if np.isfinite(value):
                    by_alpha.setdefault(float(row["alpha"]), []).append(value)
        grid = [float(a) for a in self.config.steering.alphas]
        scored = [a for a in grid if by_alpha.get(a)]
        if not scored:
            return min(grid, key=lambda a: (abs(a - 1.0), a))
        return max(scored, key=lambda a: (float(np.mean(by_alpha[a])), -a))

    # -- stage 4-5: the method (and its solves) ---------------------------------------------

    def compute(self, unit: Unit) -> tuple[MethodResult, float]:
        """The unit's MethodResult, checked, with each vector at the run's positions and layer;
        and the method's seconds per input."""
        params = unit.entry.params_for(unit.value)
        if self.config.steering.on_failure == "record" and "on_failure" not in params:
            accepted = accepted_params(unit.method)
            if accepted is not None and "on_failure" in accepted:
                params["on_failure"] = "keep"  # one infeasible input must not fail the unit
        prepared = self.prepared
        with self.stage("methods"):
            method = unit.method(**params)
            start = time.perf_counter()
            result = method.compute(
                MethodContext(
                    inputs=prepared.inputs,
                    concept=prepared.concept,
                    decoder=prepared.decoder,
                    solver=unit.entry.solver,
                    source=prepared.source,
                    splits=prepared.splits,
                    train=prepared.train,
                    dataset=prepared.dataset,
                    target_class=self.config.probe.target_class,
                    seed=self.config.run.seed,
                    host=self.host,
                )
            )
            seconds = (time.perf_counter() - start) / prepared.n
        return self.checked(unit, result), seconds

    def checked(self, unit: Unit, result: Any) -> MethodResult:
        if not isinstance(result, MethodResult):
            raise SteerkitError(
                f"method {unit.entry.name!r} returned {type(result).__name__}, not a MethodResult"
            )
        result.per_input(self.prepared.n)  # the number of vectors fits the inputs
        hook_point, layer = self.prepared.inputs.hook_point, self.prepared.info.layer
        vectors = []
        for vector in result.vectors:
            if vector is not None:
                if vector.hook_point != hook_point:
                    raise SteerkitError(
                        f"method {unit.entry.name!r} returned a vector for {vector.hook_point}, "
                        f"but the run steers {hook_point}"
                    )
                vector = attrs.evolve(
                    vector,
                    positions=(
                        vector.positions  # a per-token steering function keeps its mode
                        if vector.positions is Positions.ADAPTIVE
                        else self.config.steering.positions
                    ),
                    layer=vector.layer if vector.layer is not None else layer,
                )
            vectors.append(vector)
        return attrs.evolve(result, vectors=tuple(vectors))

    def failed_rows(
        self, unit: Unit, alpha: float, ids: Sequence[int], error: Exception
    ) -> list[dict[str, Any]]:
        """The rows of a unit whose method failed: the status and message, no vector."""
        message = _describe_failure(error)
        status = "infeasible" if isinstance(error, InfeasibleError) else "error"
        logger.warning("%s failed: %s", unit.setting, message)
        logger.debug("traceback", exc_info=True)
        return [
            {
                **self.row(unit, alpha, i),
                "shared": False,
                "status": status,
                "message": message,
                "support": None,
                "method_seconds": float("nan"),
            }
            for i in ids
        ]

    # -- stage 6: vectors on disk -----------------------------------------------------------

    def vector_files(self, unit: Unit) -> tuple[Path, Path]:
        """The stems of the unit's saved vectors: one vector (the first input's, or the shared
        one) and the per-input stack."""
        name = unit.vector_name(unit.entry.label in self.solver_in_name)
        folder = self.run_dir / "vectors"
        return folder / name, folder / f"{name}_inputs"

    def save(self, unit: Unit, result: MethodResult) -> None:
        """Save the unit's vectors; a file already there is kept when it verifies, and written
        again when it does not (torn by a crash, or its sidecar missing)."""
        ids = [i for i, v in enumerate(result.vectors) if v is not None]
        if not ids:
            return
        single, stack = self.vector_files(unit)
        metadata = self.vector_metadata(unit, result)
        with self.stage("save"):
            if self.needs_writing(single):
                first = result.vectors[ids[0]]
                assert first is not None
                meta = {**metadata, "input_id": ids[0]}
                save_vector(first, single, metadata=meta, overwrite=True)
            if not result.shared and self.needs_writing(stack):
                kept = [v for v in result.vectors if v is not None]
                save_vectors(kept, stack, input_ids=ids, metadata=metadata, overwrite=True)

    def needs_writing(self, stem: Path) -> bool:
        if not any(p.exists() for p in vector_paths(stem)):
            return True
        problem = check_saved(stem)
        if problem is not None:
            logger.warning("%s is damaged (%s): writing it again", stem, problem)
        return problem is not None

    def check_vectors(self, unit: Unit) -> list[str]:
        """A unit already in the table whose vectors are missing or damaged (a deleted vectors/
        folder, a crash while saving) gets them back: its method is computed again."""
        single, stack = self.vector_files(unit)
        ok = [r for r in self.results.rows if self.owns(unit, r) and r["status"] in OK_STATUSES]
        if not ok:
            return []  # the unit never had a vector
        shared = all(r.get("shared") for r in ok)
        stems = [single] if shared else [single, stack]
        damaged = [s for s in stems if self.needs_writing(s)]
        if not damaged:
            return []
        result, _ = self.compute(unit)
        self.save(unit, result)
        names = ", ".join(s.name for s in damaged)
        return [f"{unit.setting}: vectors {names} were missing or damaged and were saved again"]

    def owns(self, unit: Unit, row: Mapping[str, Any]) -> bool:
        value = row.get("value")
        return unit.key(self.hash, 0.0, 0)[:5] == (
            row.get("config_hash"),
            row.get("method"),
            row.get("solver"),
            row.get("param"),
            None if value is None else float(value),
        )

    def vector_metadata(self, unit: Unit, result: MethodResult) -> dict[str, Any]:
        """The sidecar's provenance: the source (to rebuild it), the method and its setting."""
        prepared, entry = self.prepared, unit.entry
        info = prepared.info
        metadata: dict[str, Any] = {
            "model": info.model,
            "preset": info.preset,
            "weights": info.weights,
            "hook_point": info.hook_point,
            "layer": info.layer,
            "sae": {"release": info.sae_release, "id": info.sae_id, "d_sae": info.d_sae},
            "source": info.to_dict(),
            "dataset": self.config.dataset.name,
            "target_class": self.config.probe.target_class,
            "config_hash": self.hash,
            "run": self.config.run.name,
            "method": entry.name,
            "label": entry.label,
            "solver": entry.solver,
            "param": unit.param,
            "value": None if unit.value is None else float(unit.value),
            "params": entry.params_for(unit.value),
            "alphas": list(self.config.steering.alphas),
            "shared": result.shared,
        }
        if unit.param is not None:
            metadata[unit.param] = float(unit.value)  # type: ignore[arg-type]
        return metadata

    # -- stages 7-8: generation and metrics, into rows --------------------------------------

    def evaluate(
        self,
        unit: Unit,
        scaled: MethodResult,
        method_seconds: float,
        alpha: float,
        ids: Sequence[int],
        continuations: Continuations,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        """The rows (one per input of `ids`) and generation rows of the result at one α
        (`scaled`), with its steered continuations; problems: failures recorded in the rows."""
        vectors = scaled.per_input(self.prepared.n)
        ok = [i for i in ids if vectors[i] is not None]
        columns: dict[str, np.ndarray[Any, Any]] = {}
        problems: list[str] = []
        generation_rows: list[dict[str, Any]] = []
        if ok:
            steered, problem = continuations
            problems += [problem] if problem else []
            context = self.context(scaled, ok, steered)
            columns, failures = self.measure(unit, context, ok)
            problems += failures + self.scores(columns)
            generation_rows = [
                {
                    **self.row(unit, alpha, i),
                    "prompt": self.prepared.texts[i],
                    "steered": text,
                    "base": self.generator.base[i],
                }
                for i, text in steered.items()
            ]
            for row in generation_rows:
                del row["text"], row["label"]
        rows = []
        for i in ids:
            status, message = _status(scaled, i, vectors[i])
            support = None if vectors[i] is None else vectors[i].provenance.get("support")
            row = {
                **self.row(unit, alpha, i),
                "shared": bool(scaled.shared),
                "status": status,
                "message": "; ".join([m for m in (message, *problems) if m]) or None,
                "support": None if support is None else [int(s) for s in support],
                "method_seconds": method_seconds,
            }
            row.update({column: float(data[i]) for column, data in columns.items()})
            rows.append(row)
        return rows, generation_rows, problems

    def context(
        self, scaled: MethodResult, ok: Sequence[int], steered: Mapping[int, str]
    ) -> EvalContext:
        """What the metrics see for the inputs `ok` (those with a vector), fed as they need."""
        prepared, needs = self.prepared, self.needs
        prompt_ids = list(steered)
        return EvalContext(
            inputs=prepared.inputs.take(ok),
            result=scaled.take(ok),
            probe=prepared.probe,
            source=self.metric_source if needs.model else None,
            target_class=self.config.probe.target_class,
            texts=tuple(prepared.texts[i] for i in ok),
            dataset=prepared.dataset if needs.text_classifier else None,
            train=prepared.splits.train if needs.text_classifier else None,
            prompts=tuple(prepared.texts[i] for i in prompt_ids),
            generations=tuple(steered[i] for i in prompt_ids),
            base_generations=tuple(self.generator.base[i] for i in prompt_ids),
            seed=self.config.run.seed,
        )

    def measure(
        self, unit: Unit, context: EvalContext, ok: Sequence[int]
    ) -> tuple[dict[str, np.ndarray[Any, Any]], list[str]]:
        """Every metric's columns as (n,) arrays (NaN for inputs without a vector), and the
        failures recorded (or raised, with on_failure = "raise")."""
        columns: dict[str, np.ndarray[Any, Any]] = {}
        problems: list[str] = []
        for name, metric in self.metrics:
            try:
                with self.stage(f"metric.{name}"):
                    values = metric.compute(context)
                for column, data in _metric_columns(name, values, len(ok)).items():
                    full = np.full(self.prepared.n, np.nan)
                    full[list(ok)] = data
                    columns[column] = full
            except Exception as e:
                if self.config.steering.on_failure == "raise":
                    raise
                problems.append(f"metric {name!r}: {_describe_failure(e)}")
                logger.warning("metric %r failed on %s: %s", name, unit.setting, e)
        return columns, problems

    def scores(self, columns: dict[str, np.ndarray[Any, Any]]) -> list[str]:
        """With [evaluation] concept and fluency: the columns `concept` and `fluency` (copies of
        the columns named) and `aggregate`, their harmonic mean per generation (0 when either
        is 0, NaN when either is missing). Returns the problems (a column missing or not a
        [0, 1] score), in which case no score is written."""
        evaluation = self.config.evaluation
        if evaluation.concept is None or evaluation.fluency is None:
            return []
        pair = {"concept": evaluation.concept, "fluency": evaluation.fluency}
        for name, column in pair.items():
            data = columns.get(column)
            if data is None:
                return [f"[evaluation] {name} = {column!r}: no metric wrote that column"]
            finite = data[np.isfinite(data)]
            if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
                return [
                    f"[evaluation] {name} = {column!r} holds values outside [0, 1] "
                    f"({finite.min():.3g} … {finite.max():.3g}): name a [0, 1] score"
                ]
        concept, fluency = columns[pair["concept"]], columns[pair["fluency"]]
        columns["concept"], columns["fluency"] = concept.copy(), fluency.copy()
        columns["aggregate"] = harmonic_mean(concept, fluency)
        return []

    def row(self, unit: Unit, alpha: float, i: int) -> dict[str, Any]:
        """The key columns of a row, with the input's text, label and split."""
        key = dict(zip(GENERATION_KEY, unit.key(self.hash, alpha, i)))
        row = {**key, "text": self.prepared.texts[i], "label": self.prepared.labels[i]}
        if self.prepared.dev:
            row["split"] = "dev" if i < self.prepared.dev else "test"
        return row


def harmonic_mean(concept: np.ndarray[Any, Any], fluency: np.ndarray[Any, Any]) -> Any:
    """2cf / (c + f) element by element; 0 where either is 0, NaN where either is NaN."""
    total = concept + fluency
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, 2.0 * concept * fluency / np.where(total > 0, total, 1.0), 0.0)
    return np.where(np.isnan(concept) | np.isnan(fluency), np.nan, out)


def _status(result: MethodResult, i: int, vector: SteeringVector | None) -> tuple[str, str | None]:
    """Input i's status and message: its solution's, or "ok" for a method without solutions."""
    solution = result.solution_for(i)
    if solution is None:
        if vector is None:
            return "error", "the method returned no vector for this input"
        return "ok", None
    status = str(solution.status.value)
    if vector is None and status == "optimal":
        status = "error"
    return status, solution.message or None


def _metric_columns(name: str, values: Any, n: int) -> dict[str, np.ndarray[Any, Any]]:
    """A metric's {column: (n,) or scalar} as (n,) float arrays; a wrong length is an error."""
    if not isinstance(values, Mapping):
        raise SteerkitError(f"metric {name!r} returned {type(values).__name__}, not a mapping")
    out = {}
    for column, data in values.items():
        if isinstance(data, (int, float, np.number)) and not isinstance(data, bool):
            out[str(column)] = np.full(n, float(data))
            continue
        array = np.asarray(data, dtype=np.float64).reshape(-1)
        if array.shape != (n,):
            raise SteerkitError(
                f"metric {name!r} column {column!r}: expected {n} values (one per input) or one "
                f"value, received shape {np.shape(data)}"
            )
        out[str(column)] = array
    return out


def _call_key(vector: SteeringVector) -> tuple[Any, ...]:
    """Vectors with equal keys can steer one batched call: the same hook point, positions mode,
    width and (adaptive) steering function."""
    function = None if vector.function is None else id(vector.function)
    return (vector.hook_point, vector.positions, np.shape(vector.vector), function)


def _adds_nothing(vector: SteeringVector | None) -> bool:
    return vector is None or vector.scale == 0.0 or not np.any(vector.vector)


class _Generator:
    """Continuations of the first n_generate inputs, each steered by its own vector in one
    batched call; the unsteered ones are generated once per run (`base`). A source that cannot
    generate is told once (`unavailable`) and never asked again."""

    def __init__(self, prepared: Prepared, config: Config, stage: Any) -> None:
        self.source = prepared.source
        self.texts = prepared.texts
        self.steering = config.steering
        self.seed = config.run.seed
        self.stage = stage
        self.base: dict[int, str] = {}
        self.unavailable: str | None = None

    def _generate(self, ids: Sequence[int], vectors: Any, tokens: int) -> list[str]:
        if not ids:
            return []
        return self.source.generate(
            [self.texts[i] for i in ids],
            max_new_tokens=tokens,
            vector=vectors,
            seed=self.seed,
        )

    def _failure(self, error: Exception) -> str:
        """Why generation failed, as the rows record it (raised with on_failure = "raise")."""
        if self.steering.on_failure == "raise":
            raise error
        logger.warning("generation failed: %s", error)
        return f"generation: {_describe_failure(error)}"

    def continuations(
        self,
        steps: Sequence[tuple[Sequence[int], Sequence[SteeringVector | None]]],
        needed: bool,
        tokens: int,
    ) -> list[Continuations]:
        """For each step (its input ids, and the vector of every input): {input id: steered
        continuation of `tokens` new tokens} for its inputs with a vector below n_generate — all
        of them with a dev split — and why generation failed, if it did (failures are
        recorded). Every step's prompts go to the source in one batched call; none when no
        metric needs generations. An input's unsteered continuation is generated once, at the
        length of its first request (an input is either dev or test)."""
        every = self.steering.dev > 0  # scores per generation: every input is generated
        wanted = [
            [i for i in ids if vectors[i] is not None and (every or i < self.steering.n_generate)]
            for ids, vectors in steps
        ]
        if not needed or self.unavailable is not None or not any(wanted):
            return [({}, None) for _ in steps]
        # a zero vector adds nothing: its continuation is the unsteered one; the others go in
        # one call per kind of intervention (one hook point, positions mode and steering
        # function per call: two units' adaptive tables cannot share a pass)
        calls: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        for k, ids in enumerate(wanted):
            for i in ids:
                if not _adds_nothing(steps[k][1][i]):
                    calls.setdefault(_call_key(steps[k][1][i]), []).append((k, i))
        texts: dict[tuple[int, int], str] = {}
        problems: dict[int, str] = {}
        try:
            with self.stage("generation"):
                missing = sorted({i for ids in wanted for i in ids} - set(self.base))
                self.base.update(zip(missing, self._generate(missing, None, tokens)))
                for call in calls.values():
                    vectors = [steps[k][1][i] for k, i in call]
                    try:
                        texts.update(
                            zip(call, self._generate([i for _, i in call], vectors, tokens))
                        )
                    except NotImplementedError:
                        raise
                    except Exception as e:  # this call's units fail, the others go on
                        message = self._failure(e)
                        problems.update((k, message) for k, _ in call)
        except NotImplementedError as e:  # the source cannot generate: say so once
            self.unavailable = str(e)
            logger.warning("no generations: %s", e)
            return [({}, None) for _ in steps]
        except Exception as e:  # the unsteered continuations: every step fails
            message = self._failure(e)
            return [({}, message) for _ in steps]
        return [
            ({}, problems[k])
            if k in problems
            else ({i: texts.get((k, i), self.base[i]) for i in ids}, None)
            for k, ids in enumerate(wanted)
        ]
