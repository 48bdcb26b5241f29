"""The Executor interface of the core: resources are checked on construction, a missing engine
names what to install, and a registered executor is found by name like any plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import steerkit
from steerkit import Executor, ExecutorNotInstalledError, Resources, ValidationError


class InOrder(Executor):
    name = "in-order"

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


class NeedsEngine(InOrder):
    name = "needs-engine"
    requires = ("steerkit_no_such_engine",)
    install = "steerkit-no-such-engine"


class Plugin:
    @steerkit.hookimpl
    def register_executors(self, register: Any) -> None:
        register(InOrder)
        register(NeedsEngine)


@pytest.mark.parametrize(("cpus", "gpus"), [(-1.0, 0.0), (1.0, -0.5), (True, 0.0), ("1", 0.0)])
def test_resources_refuse_what_is_not_a_count(cpus: Any, gpus: Any) -> None:
    with pytest.raises(ValidationError, match=r"Resources\.(cpus|gpus): expected a number ≥ 0"):
        Resources(cpus=cpus, gpus=gpus)
    assert Resources(cpus=0.5, gpus=0.25) == Resources(0.5, 0.25)


def test_a_missing_engine_names_the_package_to_install() -> None:
    assert NeedsEngine.missing() == "module 'steerkit_no_such_engine' is not importable"
    with pytest.raises(ExecutorNotInstalledError) as error:
        NeedsEngine.require()
    assert str(error.value) == (
        "executor 'needs-engine' is not installed: module 'steerkit_no_such_engine' is not "
        "importable; install it with `pip install steerkit-no-such-engine`"
    )
    InOrder.require()  # nothing to install: no error


def test_executors_register_through_their_hook(
    steerkit_host_factory: Callable[..., steerkit.PluginHost],
) -> None:
    host = steerkit_host_factory(("exec", Plugin()))
    registry = host.registry("executor")
    assert registry.names() == ["in-order", "needs-engine"]
    executor = registry.get("in-order")()
    results = dict(executor.map(lambda shared, x: shared + x, 10, [1, 2], resources=Resources()))
    assert results == {0: 11, 1: 12}
    with pytest.raises(steerkit.UnknownPluginError, match="available: in-order, needs-engine"):
        registry.get("dask")
