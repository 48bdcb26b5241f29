"""Where a run's units execute: the Executor interface.

A runner hands an executor one `task`, one `shared` value and many `items`; the executor calls
`task(shared, item)` for every item — in this process, or on the workers of a distributed
engine — and yields each `(index, result)` as it completes. `shared` is what every item needs and
is expensive to send (a model, activations, a decoder): an executor sends it to each worker once,
not once per item. Results come back to the caller, which alone writes them. Implementations live
in plugins (`register_executors`); the engine a backend needs is imported only when it runs.
"""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import attrs

from steerkit.errors import ExecutorNotInstalledError, ValidationError

__all__ = ["Executor", "Requirements", "Resources", "first_missing"]


def first_missing(modules: Sequence[str]) -> str | None:
    """Why a backend cannot run: the first of `modules` that is not importable (found with
    `importlib.util.find_spec`, without importing it), or None when all are."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"module {module!r} is not importable"
    return None


class Requirements:
    """What a plugin class needs installed, checked without importing it: `requires` (top-level
    modules), `install` (what to `pip install` when one is missing) and a one-line
    `description` for listings. Solver backends and executors share it."""

    #: Top-level modules that must be importable; checked without importing them.
    requires: ClassVar[tuple[str, ...]] = ()
    #: What to `pip install` when a required module is missing.
    install: ClassVar[str] = ""
    #: One line for listings (`steerkit solvers`, the executors).
    description: ClassVar[str] = ""

    @classmethod
    def missing(cls) -> str | None:
        """Why the class cannot run here (the first missing module), or None if it can."""
        return first_missing(cls.requires)


def _non_negative(owner: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValidationError(owner, attribute.name, "a number ≥ 0", repr(value))

    return check


@attrs.frozen
class Resources:
    """What one task asks of a worker: cpus (fractions allowed) and gpus."""

    cpus: float = attrs.field(default=1.0, validator=_non_negative("Resources"))
    gpus: float = attrs.field(default=0.0, validator=_non_negative("Resources"))


class Executor(Requirements, abc.ABC):
    """Runs `task(shared, item)` for many items and yields the results as they complete.

    Subclasses set `name` (what `[execution] executor` selects), `requires` (modules checked
    without importing them) and `install` (what to `pip install` when one is missing), take their
    settings as keyword arguments of `__init__`, and implement `map`.
    """

    #: The name a config selects the executor by, e.g. "ray".
    name: ClassVar[str]

    @classmethod
    def require(cls) -> None:
        """Raise ExecutorNotInstalledError (naming the package to install) when `missing()`."""
        missing = cls.missing()
        if missing is not None:
            raise ExecutorNotInstalledError(cls.name, missing, cls.install or cls.requires[0])

    @abc.abstractmethod
    def map(
        self,
        task: Callable[[Any, Any], Any],
        shared: Any,
        items: Sequence[Any],
        *,
        resources: Resources,
    ) -> Iterator[tuple[int, Any]]:
        """Call `task(shared, item)` for every item (each call may ask for `resources`) and yield
        `(index of the item, its result)` as each call completes, in any order, each index once.
        `task`, `shared`, the items and the results must pickle for an executor that runs them
        elsewhere; `shared` is sent to each worker once. An exception raised by a task is
        raised here (a worker that dies is the executor's to retry)."""

    def close(self) -> None:
        """Release what the executor started (a local cluster); the default holds nothing."""
        return None
