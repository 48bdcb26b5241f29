"""Stages 4-8 on an executor: the run's units, in batches, as tasks; their rows back to the driver.

The driver (the process that runs `steerkit run`) prepares once — dataset, activations, probe,
decoder — and hands the executor one shared value, `Work` (the plan and the `Prepared`), and one
item per batch of `[steering] units_per_batch` units that still has something missing, with the
rows the table already holds for those units. A task (`run_batch`) runs the batch exactly as a
run in one process would, into tables held in memory, and returns what it computed: the new rows,
the generation rows, the vectors to save and the units whose saved vectors need checking. The
driver alone writes: vectors first, then each batch's rows in one append per table, through the
tables' keys — a batch computed twice (a retried task, a resumed run) never writes a row twice,
and a batch lost with its worker is computed again. Per process, `Work` keeps one `_Units` across
tasks, so a worker remembers the model's unsteered answers and continuations from one batch to the
next (the local executor's one process remembers them for the whole run, as before).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

import steerkit
from steerkit import Executor, MethodResult, Metric, Needs, Resources
from steerkit_runner.config import Config
from steerkit_runner.results import GENERATION_KEY, RESULT_KEY, JsonlTable, MemoryTable
from steerkit_runner.rundir import Stopwatch
from steerkit_runner.runner import Prepared, Unit, _Counts, _Units

__all__ = ["Batch", "BatchResult", "Plan", "Work", "run_batch", "run_on_executor"]


@attrs.frozen(eq=False)
class Plan:
    """What a task needs to know of the run besides `Prepared` (picklable: it travels)."""

    config: Config
    run_dir: Path
    host: steerkit.PluginHost
    metrics: tuple[tuple[str, Metric], ...]
    needs: Needs
    progress: bool = False


class Work:
    """The value an executor shares with every task: the plan and the prepared run. The
    `_Units` a process runs its tasks in is made on first use and never pickled."""

    def __init__(self, plan: Plan, prepared: Prepared) -> None:
        self.plan = plan
        self.prepared = prepared
        self._units: _TaskUnits | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"plan": self.plan, "prepared": self.prepared}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.plan = state["plan"]
        self.prepared = state["prepared"]
        self._units = None

    def units(self) -> _TaskUnits:
        if self._units is None:
            self._units = _TaskUnits(
                self.plan, self.prepared, MemoryTable(), MemoryTable(), Stopwatch().stage
            )
        return self._units


@attrs.frozen
class Batch:
    """One task: units run together (their generations share calls), with the rows of those
    units the tables already hold (results and generations, as written)."""

    units: tuple[Unit, ...]
    rows: tuple[Mapping[str, Any], ...] = ()
    generations: tuple[Mapping[str, Any], ...] = ()


@attrs.define
class BatchResult:
    """What a task computed: rows and generation rows to append (as the file would hold them),
    the vectors to save (unit, its result), the units whose saved vectors the driver must check,
    the evaluations done and skipped, failures, seconds per stage."""

    rows: list[dict[str, Any]]
    generations: list[dict[str, Any]]
    saves: list[tuple[Unit, MethodResult]]
    checks: list[Unit]
    counts: _Counts
    timings: dict[str, float]


class _TaskUnits(_Units):
    """`_Units` on a worker: it writes nothing — vectors to save and vectors to check are
    recorded for the driver, which alone touches the run directory."""

    saves: list[tuple[Unit, MethodResult]]
    checks: list[Unit]

    def save(self, unit: Unit, result: MethodResult) -> None:
        self.saves.append((unit, result))

    def check_vectors(self, unit: Unit) -> list[str]:
        self.checks.append(unit)
        return []

    def use(self, batch: Batch, clock: Stopwatch) -> None:
        """Run the next batch against its own rows, timed by `clock`."""
        self.results = MemoryTable(batch.rows, key=RESULT_KEY)
        self.generations = MemoryTable(batch.generations, key=GENERATION_KEY)
        self.stage = self.generator.stage = clock.stage
        self.saves, self.checks = [], []


class _NoBar:
    """The progress bar inside a task: the driver's bar moves as tasks complete."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass


def run_batch(work: Work, batch: Batch) -> BatchResult:
    """The task: run `batch`'s units as one process would, and return what they computed. An
    exception (on_failure = "raise") carries what was computed before it, for the driver."""
    units = work.units()
    clock = Stopwatch()
    units.use(batch, clock)
    counts = _Counts()

    def result() -> BatchResult:
        assert isinstance(units.results, MemoryTable)
        assert isinstance(units.generations, MemoryTable)
        return BatchResult(
            rows=units.results.added,
            generations=units.generations.added,
            saves=units.saves,
            checks=units.checks,
            counts=counts,
            timings=dict(clock.timings),
        )

    try:
        units.run_units(batch.units, _NoBar(), counts)
    except Exception as e:
        e.steerkit_partial = result()  # type: ignore[attr-defined]
        raise
    return result()


def _by_unit(table: JsonlTable) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """The table's rows (as written) grouped by unit: config hash, method, solver, param, value."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for _, row in table.numbered():
        groups.setdefault(table.key(row)[:5], []).append(row)
    return groups


def _wants_gpu(source: Any) -> bool:
    """Whether the source's model sits on a CUDA device (its `device`, or its torch model's
    parameters'); False when it cannot tell."""
    device = getattr(source, "device", None)
    if device is None:
        try:
            device = next(iter(source.model.parameters())).device
        except Exception:  # no torch model to ask
            return False
    return str(device).startswith("cuda")


def resources_of(units: _Units) -> Resources:
    """What a task asks for: [execution] num_cpus, and num_gpus (default: one GPU when the
    source runs on CUDA)."""
    execution = units.config.execution
    gpus = execution.num_gpus
    if gpus is None:
        gpus = 1.0 if _wants_gpu(units.prepared.source) else 0.0
    return Resources(cpus=execution.num_cpus, gpus=gpus)


def _batches(driver: _Units, units: Sequence[Unit]) -> tuple[list[Batch], list[Unit]]:
    """The batches with something missing, each with its units' rows; and the units of the
    batches with nothing missing (their vectors are checked, nothing is computed)."""
    size = driver.config.steering.units_per_batch
    done: list[Unit] = []
    batches: list[Batch] = []
    rows, generations = _by_unit(driver.results), _by_unit(driver.generations)
    checker = _TaskUnits(driver, driver.prepared, MemoryTable(), MemoryTable(), Stopwatch().stage)
    for start in range(0, len(units), size):
        group = tuple(units[start : start + size])
        keys = [unit.key(driver.hash, 0.0, 0)[:5] for unit in group]
        batch = Batch(
            units=group,
            rows=tuple(row for key in keys for row in rows.get(key, ())),
            generations=tuple(row for key in keys for row in generations.get(key, ())),
        )
        checker.use(batch, Stopwatch())
        if any(checker.pending(unit) for unit in group):
            batches.append(batch)
        else:
            done.extend(group)
    return batches, done


def _write(driver: _Units, result: BatchResult, counts: _Counts, clock: Any) -> None:
    """A task's result into the run directory: vectors, then generations, then rows."""
    for unit, method_result in result.saves:
        driver.save(unit, method_result)
    driver.generations.append(result.generations)
    counts.new_rows += driver.results.append(result.rows)
    counts.run += result.counts.run
    counts.skipped += result.counts.skipped
    counts.failed.extend(result.counts.failed)
    for unit in result.checks:
        counts.notes.extend(driver.check_vectors(unit))
    for name, seconds in result.timings.items():
        clock.timings[name] = clock.timings.get(name, 0.0) + seconds


def run_on_executor(driver: _Units, units: Sequence[Unit], executor: Executor) -> _Counts:
    """Every unit's missing evaluations on `executor`, with a progress bar that moves as
    batches complete; the driver (this process) writes every row. A batch with nothing missing
    is skipped here (its vectors checked)."""
    from tqdm.auto import tqdm

    counts = _Counts()
    steps = driver.steps_per_unit
    clock = _clock_of(driver)
    try:
        with tqdm(
            total=len(units) * steps, desc="steering", unit="unit", disable=not driver.progress
        ) as bar:
            batches, done = _batches(driver, units)
            for unit in done:
                counts.skipped += steps
                bar.update(steps)
                counts.notes.extend(driver.check_vectors(unit))
            plan = Plan(
                config=driver.config,
                run_dir=driver.run_dir,
                host=driver.host,
                metrics=tuple(driver.metrics),
                needs=driver.needs,
            )
            results: Iterator[tuple[int, BatchResult]] = executor.map(
                run_batch, Work(plan, driver.prepared), batches, resources=resources_of(driver)
            )
            try:
                for _, result in results:
                    _write(driver, result, counts, clock)
                    bar.update(result.counts.run + result.counts.skipped)
            except Exception as e:
                partial = getattr(e, "steerkit_partial", None)
                if isinstance(partial, BatchResult):
                    _write(driver, partial, counts, clock)
                raise
            finally:
                close = getattr(results, "close", None)
                if close is not None:  # stopped early: the executor stops submitting
                    close()
    finally:
        executor.close()
    return counts


def _clock_of(driver: _Units) -> Any:
    """The Stopwatch behind the driver's `stage` (its bound method's owner)."""
    owner = getattr(driver.stage, "__self__", None)
    return owner if isinstance(owner, Stopwatch) else Stopwatch()
