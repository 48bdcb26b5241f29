"""The runner: config → dataset → source → probe → methods × settings × α → metrics → results.

Everything is found through the plugin registries by name; nothing here imports a plugin. A unit
is one (method, setting, α): its rows (one per steered input) are appended to the run's
results.jsonl in one write, so a run that is interrupted resumes where it stopped (`run` skips
every unit already in the table) and never rewrites or duplicates a row. The same config resumes
in the same run directory (`<name>-<config hash[:10]>` under the output folder); a changed config
gets a new one.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import steerkit
from steerkit import (
    Activations,
    ActivationSource,
    Dataset,
    EvalContext,
    InfeasibleError,
    MethodContext,
    MethodResult,
    RowVectors,
    SteeringVector,
    steered_generate,
)
from steerkit.errors import SteerkitError
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
from steerkit_runner.results import GENERATION_KEY, JsonlTable, ResultsTable, SkippedLine, to_json
from steerkit_runner.vectors import save_vector, save_vectors

__all__ = ["RunResult", "run", "run_dir_for", "sweep", "sweep_config"]

logger = logging.getLogger(__name__)

RESULTS = "results.jsonl"
GENERATIONS = "generations.jsonl"
RUN_JSON = "run.json"


@attrs.frozen
class RunResult:
    """What a run did. rows: rows in the table now; new_rows: written by this call; units_run /
    units_skipped: (method, setting, α) units computed now / already in the table; failed_units:
    "method setting α: message" of units recorded as failed; timings: seconds per stage."""

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
) -> RunResult:
    """Run a config (a Config, a TOML path or a shipped config's name) end to end and write the
    report. `source` / `dataset` replace the ones [source] / [dataset] would build (tests, or
    a model already in memory); `host` replaces the process-wide plugin host."""
    if not isinstance(config, Config):
        config = load_config(config)
    runner = _Runner(
        config,
        resume=resume,
        progress=progress,
        output_dir=output_dir,
        source=source,
        dataset=dataset,
        host=host,
    )
    return runner.execute(report=report)


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
        if mode == PER_INPUT_MODE:
            entry = MethodEntry(
                name=kind, label=kind, solver=spec.solver, grid_param=param, grid=grid
            )
        else:
            entry = MethodEntry(
                name="shared",
                label="shared",
                solver=spec.solver,
                params={"kind": kind},
                grid_param=param,
                grid=grid,
            )
        methods.append(entry)
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
    resume: bool = True,
    progress: bool = True,
    output_dir: str | Path | None = None,
    report: bool = True,
    source: ActivationSource | None = None,
    dataset: Dataset | None = None,
    host: steerkit.PluginHost | None = None,
) -> RunResult:
    """The Pareto sweep over [sweep]'s λ and ε grids (mode: "per_input" or "shared", default
    [sweep].mode): the same results table, vectors and report as `run`."""
    if not isinstance(config, Config):
        config = load_config(config)
    return run(
        sweep_config(config, mode=mode),
        resume=resume,
        progress=progress,
        output_dir=output_dir,
        report=report,
        source=source,
        dataset=dataset,
        host=host,
    )


# -- the run ----------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _layer_of(hook_point: str) -> int | None:
    match = re.match(r"^blocks\.(\d+)\.", hook_point)
    return int(match.group(1)) if match else None


def _format_value(value: float) -> str:
    return repr(float(value))


def _describe_failure(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _RunLock:
    """An exclusive lock on the run directory (released when the process dies)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self._handle: Any = None

    def __enter__(self) -> _RunLock:
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


class _Runner:
    def __init__(
        self,
        config: Config,
        *,
        resume: bool,
        progress: bool,
        output_dir: str | Path | None,
        source: ActivationSource | None,
        dataset: Dataset | None,
        host: steerkit.PluginHost | None,
    ) -> None:
        self.config = config
        self.hash = config.hash
        self.progress = progress
        self.run_dir = run_dir_for(config, output_dir, resume=resume)
        self.source_override = source
        self.dataset_override = dataset
        self.host = host if host is not None else steerkit.get_host()
        self.timings: dict[str, float] = {}
        self.base_generations: dict[int, str] = {}
        self.generation_error: str | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def write_run_json(self, **updates: Any) -> None:
        path = self.run_dir / RUN_JSON
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                data = {}
        if data.get("config_hash") not in (None, self.hash):
            raise SteerkitError(
                f"{path} belongs to another config (hash {data.get('config_hash')}); "
                "choose another output folder"
            )
        data.setdefault("created", _now())
        data.update(updates)
        data["config_hash"] = self.hash
        data["updated"] = _now()
        data["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            json.dumps(to_json(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        os.replace(tmp, path)

    def write_config_copy(self) -> None:
        toml_path = self.run_dir / "config.toml"
        if not toml_path.exists():
            text = self.config.text if self.config.text is not None else _to_toml(self.config)
            toml_path.write_text(text, encoding="utf-8")
        json_path = self.run_dir / "config.json"
        if not json_path.exists():
            json_path.write_text(
                json.dumps(self.config.to_dict(), indent=2, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )

    # -- stages --------------------------------------------------------------------------------

    def execute(self, *, report: bool) -> RunResult:
        config = self.config
        skip = tuple(
            k
            for k, v in (("source", self.source_override), ("dataset", self.dataset_override))
            if v is not None
        )
        classes = resolve_config(config, self.host, skip=skip)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with _RunLock(self.run_dir):
            self.write_config_copy()
            self.results = ResultsTable(self.run_dir / RESULTS)
            self.generations = JsonlTable(self.run_dir / GENERATIONS, key=GENERATION_KEY)
            resumed_rows = len(self.results)
            self.write_run_json(
                name=config.run.name,
                steerkit_version=steerkit.__version__,
                dataset=config.dataset.name,
                target_class=config.probe.target_class,
                margin=config.probe.margin,
                status="running",
            )
            self.prepare(classes)
            new_rows, units_run, units_skipped, failed = self.compute_units(classes)
            self.write_run_json(status="complete", failed_units=failed)
            report_path = None
            if report:
                from steerkit_runner.report import write_report

                with self.stage("report"):
                    report_path = write_report(self.run_dir)
                self.write_run_json(report=str(report_path))
        if resumed_rows:
            logger.info("resumed %s: %d rows were already there", self.run_dir, resumed_rows)
        return RunResult(
            run_dir=self.run_dir,
            config_hash=self.hash,
            report=report_path,
            rows=len(self.results),
            new_rows=new_rows,
            units_run=units_run,
            units_skipped=units_skipped,
            failed_units=tuple(failed),
            timings=dict(self.timings),
            skipped_lines=tuple(self.results.skipped),
        )

    def prepare(self, classes: Mapping[str, Any]) -> None:
        config = self.config
        with self.stage("dataset"):
            dataset = self.dataset_override or classes["dataset"](**config.dataset.params)
            splits = dataset.load(seed=config.run.seed, n_per_class=config.dataset.n_per_class)
        with self.stage("source"):
            source = self.source_override or classes["source"](**config.source.params)
        with self.stage("activations"):
            train = source.activations(list(splits.train.texts))
            test = source.activations(list(splits.test.texts))
        split, split_acts = (
            (splits.test, test) if config.steering.split == "test" else (splits.train, train)
        )
        target = config.probe.target_class
        chosen = [
            i
            for i, label in enumerate(split.labels)
            if config.steering.inputs == "all" or int(label) != target
        ][: config.steering.max_inputs]
        if not chosen:
            raise SteerkitError(
                f"no inputs to steer: the {config.steering.split} split has no texts whose label "
                f"is not the target class {target} (set [steering] inputs = 'all')"
            )
        features = split_acts.features
        self.inputs = Activations(
            hidden=split_acts.hidden[chosen],
            hook_point=split_acts.hook_point,
            features=None if features is None else features[chosen],
        )
        self.texts = [split.texts[i] for i in chosen]
        self.labels = [int(split.labels[i]) for i in chosen]
        with self.stage("probe"):
            probe = classes["probe"](**config.probe.params).fit(
                train.hidden, splits.train.labels, seed=config.run.seed
            )
            accuracy_train = _score(probe, train.hidden, splits.train.labels)
            accuracy_test = _score(probe, test.hidden, splits.test.labels)
            concept = probe.concept(target_class=target, margin=config.probe.margin)
        with self.stage("decoder"):
            try:
                decoder = source.decoder()
            except (NotImplementedError, SteerkitError) as e:
                logger.info("the source has no SAE decoder (%s): SAE methods will fail", e)
                decoder = None
        self.dataset, self.splits, self.source = dataset, splits, source
        self.metric_source = UnsteeredMemo(source)  # unsteered logits are asked for every unit
        self.train, self.probe, self.concept, self.decoder = train, probe, concept, decoder
        describe = getattr(source, "describe", None)
        info: dict[str, Any] = dict(describe()) if callable(describe) else {}
        hook_point = source.hook_point
        layer = getattr(source, "layer", None)
        self.layer = layer if isinstance(layer, int) else _layer_of(hook_point)
        self.sae = {
            "release": info.get("sae_release"),
            "id": info.get("sae_id"),
            "d_sae": None if decoder is None else int(np.shape(decoder)[0]),
        }
        self.vector_metadata = {
            "model": info.get("model"),
            "preset": info.get("preset"),
            "hook_point": hook_point,
            "layer": self.layer,
            "sae": self.sae,
            "source": {"name": getattr(source, "name", None), "params": config.source.params},
            "dataset": config.dataset.name,
            "target_class": target,
            "config_hash": self.hash,
            "run": config.run.name,
        }
        self.write_run_json(
            model=info.get("model"),
            preset=info.get("preset"),
            layer=self.layer,
            hook_point=hook_point,
            sae=self.sae,
            probe={
                "name": config.probe.name,
                "accuracy_train": accuracy_train,
                "accuracy_test": accuracy_test,
            },
            n_inputs=len(self.texts),
            split=config.steering.split,
            n_train=len(splits.train),
            n_test=len(splits.test),
        )

    # -- units ---------------------------------------------------------------------------------

    def compute_units(self, classes: Mapping[str, Any]) -> tuple[int, int, int, list[str]]:
        from tqdm.auto import tqdm

        config = self.config
        alphas = config.steering.alphas
        n = len(self.texts)
        done = self.results.done_keys()
        self.metrics = [
            (name, cls(**config.evaluation.params.get(name, {})))
            for name, cls in zip(config.evaluation.metrics, classes["metrics"])
        ]
        solvers_per_label: dict[str, set[str | None]] = {}
        for entry in config.methods:
            solvers_per_label.setdefault(entry.label, set()).add(entry.solver)
        units = [
            (entry, cls, param, value)
            for entry, cls in zip(config.methods, classes["methods"])
            for param, value in entry.settings()
        ]
        new_rows = units_run = units_skipped = 0
        failed: list[str] = []
        bar = tqdm(
            total=len(units) * len(alphas),
            desc="steering",
            unit="unit",
            disable=not self.progress,
        )
        with bar:
            for entry, cls, param, value in units:
                key = (self.hash, entry.label, entry.solver, param, _key_float(value))
                todo = [
                    a
                    for a in alphas
                    if any((*key, float(a), float(i)) not in done for i in range(n))
                ]
                units_skipped += len(alphas) - len(todo)
                bar.update(len(alphas) - len(todo))
                if not todo:
                    continue
                setting = entry.label + (f" {param}={_format_value(value)}" if param else "")
                bar.set_postfix_str(setting, refresh=False)
                ambiguous = len(solvers_per_label[entry.label]) > 1
                written, unit_failures = self.unit(entry, cls, param, value, todo, ambiguous, bar)
                new_rows += written
                units_run += len(todo)
                failed.extend(f"{setting} α={a}: {m}" for a, m in unit_failures)
        return new_rows, units_run, units_skipped, failed

    def base_row(
        self, entry: MethodEntry, param: str | None, value: Any, alpha: float, i: int
    ) -> dict[str, Any]:
        return {
            "config_hash": self.hash,
            "method": entry.label,
            "solver": entry.solver,
            "param": param,
            "value": None if value is None else float(value),
            "alpha": float(alpha),
            "input_id": i,
            "text": self.texts[i],
            "label": self.labels[i],
        }

    def unit(
        self,
        entry: MethodEntry,
        cls: type,
        param: str | None,
        value: Any,
        alphas: Sequence[float],
        ambiguous: bool,
        bar: Any,
    ) -> tuple[int, list[tuple[float, str]]]:
        """Compute one (method, setting) and evaluate it at each α still missing."""
        config = self.config
        n = len(self.texts)
        params = entry.params_for(value)
        if config.steering.on_failure == "record" and "on_failure" not in params:
            accepted = accepted_params(cls)
            if accepted is not None and "on_failure" in accepted:
                params["on_failure"] = "keep"  # one infeasible input must not fail the unit
        start = time.perf_counter()
        try:
            with self.stage("methods"):
                method = cls(**params)
                start = time.perf_counter()
                result = method.compute(
                    MethodContext(
                        inputs=self.inputs,
                        concept=self.concept,
                        decoder=self.decoder,
                        solver=entry.solver,
                        source=self.source,
                        splits=self.splits,
                        train=self.train,
                        dataset=self.dataset,
                        target_class=config.probe.target_class,
                        seed=config.run.seed,
                    )
                )
                seconds = time.perf_counter() - start
                result = self.check_result(entry, result)
        except Exception as e:
            if config.steering.on_failure == "raise":
                raise
            message = _describe_failure(e)
            status = "infeasible" if isinstance(e, InfeasibleError) else "error"
            setting = entry.label + (f" {param}={_format_value(value)}" if param else "")
            logger.warning("%s failed: %s", setting, message)
            logger.debug("traceback", exc_info=True)
            written = 0
            for alpha in alphas:
                rows = [
                    {
                        **self.base_row(entry, param, value, alpha, i),
                        "shared": False,
                        "status": status,
                        "message": message,
                        "support": None,
                        "method_seconds": float("nan"),
                    }
                    for i in range(n)
                ]
                written += self.results.append(rows)
                bar.update(1)
            return written, [(a, message) for a in alphas]

        self.save(entry, param, value, result, alphas, ambiguous)
        written = 0
        failures: list[tuple[float, str]] = []
        for alpha in alphas:
            rows, generations, problems = self.evaluate(
                entry, param, value, result, alpha, seconds / n
            )
            self.generations.append(generations)
            written += self.results.append(rows)
            failures.extend((alpha, p) for p in problems)
            bar.update(1)
        return written, failures

    def check_result(self, entry: MethodEntry, result: Any) -> MethodResult:
        """The method's result, checked; vectors get the run's positions and layer."""
        n = len(self.texts)
        if not isinstance(result, MethodResult):
            raise SteerkitError(
                f"method {entry.name!r} returned {type(result).__name__}, not a MethodResult"
            )
        expected = 1 if result.shared else n
        if len(result.vectors) != expected:
            raise SteerkitError(
                f"method {entry.name!r} returned {len(result.vectors)} vectors for "
                f"{'a shared result' if result.shared else f'{n} inputs'} (expected {expected})"
            )
        positions = self.config.steering.positions
        vectors = []
        for vector in result.vectors:
            if vector is not None:
                if vector.hook_point != self.inputs.hook_point:
                    raise SteerkitError(
                        f"method {entry.name!r} returned a vector for {vector.hook_point}, but the "
                        f"run steers {self.inputs.hook_point}"
                    )
                vector = attrs.evolve(
                    vector,
                    positions=positions,
                    layer=vector.layer if vector.layer is not None else self.layer,
                )
            vectors.append(vector)
        return attrs.evolve(result, vectors=tuple(vectors))

    def input_vector(self, result: MethodResult, i: int) -> SteeringVector | None:
        return result.vectors[0] if result.shared else result.vectors[i]

    def input_status(self, result: MethodResult, i: int) -> tuple[str, str | None]:
        solutions = result.solutions
        if result.shared:
            solution = solutions[0] if solutions else None
        else:
            solution = solutions[i] if len(solutions) == len(self.texts) else None
        vector = self.input_vector(result, i)
        if solution is None:
            if vector is None:
                return "error", "the method returned no vector for this input"
            return "ok", None
        status = str(solution.status.value)
        if vector is None and status == "optimal":
            status = "error"
        return status, solution.message or None

    # -- saving and evaluating -----------------------------------------------------------------

    def save(
        self,
        entry: MethodEntry,
        param: str | None,
        value: Any,
        result: MethodResult,
        alphas: Sequence[float],
        ambiguous: bool,
    ) -> None:
        folder = self.run_dir / "vectors"
        name = entry.label
        if ambiguous and entry.solver:
            name += f"_{entry.solver}"
        if param is not None:
            name += f"_{param}{_format_value(value)}"
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
        metadata = {
            **self.vector_metadata,
            "method": entry.name,
            "label": entry.label,
            "solver": entry.solver,
            "param": param,
            "value": None if value is None else float(value),
            "params": entry.params_for(value),
            "alphas": list(self.config.steering.alphas),
            "shared": result.shared,
        }
        if param is not None:
            metadata[param] = float(value)
        ids = [i for i in range(len(result.vectors)) if result.vectors[i] is not None]
        if not ids:
            return
        with self.stage("save"):
            first = result.vectors[ids[0]]
            assert first is not None
            single = folder / name
            if not (folder / f"{name}.safetensors").exists():
                save_vector(first, single, metadata={**metadata, "input_id": ids[0]})
            if not result.shared and not (folder / f"{name}_inputs.safetensors").exists():
                save_vectors(
                    [v for v in result.vectors if v is not None],
                    folder / f"{name}_inputs",
                    input_ids=ids,
                    metadata=metadata,
                )

    def _generate(self, ids: Sequence[int], vector: RowVectors) -> list[str]:
        return list(
            steered_generate(
                self.source,
                [self.texts[i] for i in ids],
                vector,
                max_new_tokens=self.config.steering.max_new_tokens,
                seed=self.config.run.seed,
            )
        )

    def generate(
        self, prompt_ids: Sequence[int], result: MethodResult
    ) -> tuple[dict[int, str], str | None]:
        """Steered continuations of the inputs `prompt_ids`, each with its own vector (one batch
        for a source with `per_row_vectors`, else one per distinct vector). Base continuations
        are generated once per run, in one batch. Returns them and, if generation failed (and
        failures are recorded), why."""
        out: dict[int, str] = {}
        if self.generation_error is not None or not prompt_ids:
            return out, None
        try:
            with self.stage("generation"):
                missing = [i for i in prompt_ids if i not in self.base_generations]
                if missing:
                    self.base_generations.update(zip(missing, self._generate(missing, None)))
                if result.shared:
                    out.update(zip(prompt_ids, self._generate(prompt_ids, result.vectors[0])))
                else:
                    vectors = [result.vectors[i] for i in prompt_ids]
                    out.update(zip(prompt_ids, self._generate(prompt_ids, vectors)))
        except NotImplementedError as e:  # the source cannot generate: say so once
            self.generation_error = str(e)
            logger.warning("no generations: %s", e)
            return {}, None
        except Exception as e:
            if self.config.steering.on_failure == "raise":
                raise
            logger.warning("generation failed: %s", e)
            return {}, f"generation: {_describe_failure(e)}"
        return out, None

    def evaluate(
        self,
        entry: MethodEntry,
        param: str | None,
        value: Any,
        result: MethodResult,
        alpha: float,
        method_seconds: float,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        """The rows and generation rows of one α; problems: metric failures recorded."""
        config = self.config
        n = len(self.texts)
        scaled = attrs.evolve(
            result, vectors=tuple(None if v is None else v.scaled(alpha) for v in result.vectors)
        )
        ok = [i for i in range(n) if self.input_vector(scaled, i) is not None]
        columns: dict[str, np.ndarray[Any, Any]] = {}
        problems: list[str] = []
        generation_rows: list[dict[str, Any]] = []
        if ok:
            if len(ok) == n:
                inputs, sub = self.inputs, scaled
            else:
                features = self.inputs.features
                inputs = Activations(
                    hidden=self.inputs.hidden[ok],
                    hook_point=self.inputs.hook_point,
                    features=None if features is None else features[ok],
                )
                solutions = (
                    tuple(scaled.solutions[i] for i in ok)
                    if len(scaled.solutions) == n
                    else scaled.solutions
                )
                sub = attrs.evolve(
                    scaled, vectors=tuple(scaled.vectors[i] for i in ok), solutions=solutions
                )
            prompt_ids = [i for i in ok if i < config.steering.n_generate]
            steered, problem = self.generate(prompt_ids, scaled)
            if problem is not None:
                problems.append(problem)
            prompt_ids = [i for i in prompt_ids if i in steered]
            text_fields: dict[str, Any] = {
                "texts": tuple(self.texts[i] for i in ok),
                "prompts": tuple(self.texts[i] for i in prompt_ids),
                "generations": tuple(steered[i] for i in prompt_ids),
                "base_generations": tuple(self.base_generations[i] for i in prompt_ids),
            }
            context = EvalContext(
                inputs=inputs,
                result=sub,
                probe=self.probe,
                source=self.metric_source,
                target_class=config.probe.target_class,
                dataset=self.dataset,
                train=self.splits.train,
                seed=config.run.seed,
                **text_fields,
            )
            for name, metric in self.metrics:
                try:
                    with self.stage(f"metric.{name}"):
                        values = metric.compute(context)
                    for column, data in _metric_columns(name, values, len(ok)).items():
                        full = np.full(n, np.nan)
                        full[ok] = data
                        columns[column] = full
                except Exception as e:
                    if config.steering.on_failure == "raise":
                        raise
                    problems.append(f"metric {name!r}: {_describe_failure(e)}")
                    logger.warning("metric %r failed on %s: %s", name, entry.label, e)
            for i in prompt_ids:
                generation_rows.append(
                    {
                        **{
                            k: v
                            for k, v in self.base_row(entry, param, value, alpha, i).items()
                            if k not in ("text", "label")
                        },
                        "prompt": self.texts[i],
                        "steered": steered[i],
                        "base": self.base_generations[i],
                    }
                )
        rows = []
        for i in range(n):
            status, message = self.input_status(scaled, i)
            if problems:
                message = "; ".join([m for m in (message, *problems) if m])
            vector = self.input_vector(scaled, i)
            support = None if vector is None else vector.provenance.get("support")
            row = {
                **self.base_row(entry, param, value, alpha, i),
                "shared": bool(result.shared),
                "status": status,
                "message": message,
                "support": None if support is None else [int(s) for s in support],
                "method_seconds": method_seconds,
            }
            for column, data in columns.items():
                row[column] = float(data[i])
            rows.append(row)
        return rows, generation_rows, problems


def _key_float(value: Any) -> Any:
    return None if value is None else float(value)


def _score(probe: Any, hidden: Any, labels: Any) -> float:
    try:
        return float(probe.score(hidden, labels))
    except NotImplementedError:
        return float("nan")


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


def _to_toml(config: Config) -> str:
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
    parts.append(_toml_table("[evaluation]", {"metrics": list(config.evaluation.metrics)}))
    for metric, params in config.evaluation.params.items():
        parts.append(_toml_table(f"[evaluation.params.{json.dumps(metric)}]", params))
    if config.sweep is not None:
        parts.append(_toml_table("[sweep]", attrs.asdict(config.sweep)))
    return "\n".join(parts)
