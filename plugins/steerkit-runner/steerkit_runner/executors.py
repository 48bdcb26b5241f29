"""The executors steerkit-runner registers: "local" (in this process, the default) and "ray"
(a Ray cluster; Ray is imported only when a run uses it)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from steerkit import Executor, Resources, SteerkitError, ValidationError

__all__ = ["LocalExecutor", "RayExecutor"]

logger = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """Every item in this process, in order: `shared` is used as it is, never copied."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = "in this process, one batch after another (the default)"

    def map(
        self,
        task: Callable[[Any, Any], Any],
        shared: Any,
        items: Sequence[Any],
        *,
        resources: Resources,
    ) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            yield index, task(shared, item)


#: On a Ray worker: the shared value of the current run, fetched from the object store once
#: per worker process (keyed by its object id), not once per task.
_SHARED: dict[str, Any] = {}


def _call(task: Callable[[Any, Any], Any], box: list[Any], item: Any) -> Any:
    """A Ray task: `task(shared, item)`, with `shared` (an ObjectRef in `box`, so that Ray does
    not resolve it per task) taken from this process's memory after the first time."""
    import ray

    key = box[0].hex()
    if key not in _SHARED:
        _SHARED.clear()  # a new run: drop the last one's model
        _SHARED[key] = ray.get(box[0])
    return task(_SHARED[key], item)


class RayExecutor(Executor):
    """Each item as a Ray task with its resources, retried up to `max_retries` times when its
    worker dies; `shared` goes to the object store once (`ray.put`) and to each worker once.

    address: None (the default) joins the Ray instance this process or machine already runs,
    or starts a local one; "auto" joins the cluster `ray start` runs on this machine (an error if
    none); "ray://HOST:10001" a remote cluster through Ray Client. A Ray this executor started is
    shut down when the run ends; one that was running is left running."""

    name: ClassVar[str] = "ray"
    requires: ClassVar[tuple[str, ...]] = ("ray",)
    install: ClassVar[str] = "ray"
    description: ClassVar[str] = "tasks on a Ray cluster (`pip install ray`)"

    def __init__(self, *, address: str | None = None, max_retries: int = 3) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValidationError(
                "RayExecutor",
                "address",
                "'auto', 'ray://HOST:PORT', HOST:PORT or None",
                repr(address),
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValidationError("RayExecutor", "max_retries", "an integer ≥ 0", repr(max_retries))
        self.address = address
        self.max_retries = max_retries
        self._started = False

    def _ray(self) -> Any:
        self.require()
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
            self._started = True
        return ray

    def map(
        self,
        task: Callable[[Any, Any], Any],
        shared: Any,
        items: Sequence[Any],
        *,
        resources: Resources,
    ) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        ray = self._ray()
        remote = ray.remote(_call).options(
            num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=self.max_retries
        )
        box = [ray.put(shared)]
        # at most `window` tasks submitted at a time: enough to keep every CPU busy, few enough
        # that a driver which stops leaves little running behind it
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        window = max(2, int(2 * cpus / resources.cpus)) if resources.cpus > 0 else 64
        # A driver that stops early (an error, Ctrl-C) cancels nothing: the tasks in flight
        # finish and their results are dropped (Ray ends them all when the driver's process
        # exits). Cancelling would interrupt a worker that may be importing torch while it
        # unpickles the shared value, leaving it half-imported for its next task; force-killing
        # it races with tasks completing at that moment.
        todo = iter(enumerate(items))
        pending: dict[Any, int] = {}
        while True:
            for index, item in itertools.islice(todo, window - len(pending)):
                pending[remote.remote(task, box, item)] = index
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                yield index, self._get(ray, ref, index)

    def _get(self, ray: Any, ref: Any, index: int) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the task raised: raise what it raised
            raise e.as_instanceof_cause() from None
        except ray.exceptions.RayError as e:  # the worker died more than max_retries times
            raise SteerkitError(
                f"item {index} failed on Ray after {self.max_retries} retries: "
                f"{type(e).__name__}: {e}"
            ) from e

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
