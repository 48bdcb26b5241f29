"""The exceptions steerkit raises: one base, and a class for each thing a user can act on."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DuplicatePluginError",
    "ExecutorNotInstalledError",
    "InfeasibleError",
    "PluginError",
    "SolverCapabilityError",
    "SolverError",
    "SolverNotInstalledError",
    "SteerkitError",
    "UnknownPluginError",
    "ValidationError",
]


class SteerkitError(Exception):
    """Base class of every error steerkit raises on purpose."""


class ValidationError(SteerkitError, ValueError):
    """A value handed to steerkit has the wrong shape, type or range.

    The message names the field, what was expected and what was received.
    """

    def __init__(self, owner: str, field: str, expected: str, received: str) -> None:
        self.owner = owner
        self.field = field
        self.expected = expected
        self.received = received
        super().__init__(f"{owner}.{field}: expected {expected}, received {received}")


class UnknownPluginError(SteerkitError, KeyError):
    """A name that no loaded plugin registered; the message lists the names that exist."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        listed = ", ".join(self.available) if self.available else "none"
        super().__init__(
            f"unknown {kind} {name!r}; available: {listed} "
            f"(`steerkit plugins` shows what was loaded and what failed)"
        )

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class DuplicatePluginError(SteerkitError):
    """Two or more distributions registered the same name for the same kind of plugin.

    `kept` is the one whose registration holds the name (None: nobody's does, the name is
    refused until the user chooses), `reason` why it does.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        first: str,
        second: str,
        *others: str,
        kept: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.distributions = (first, second, *others)
        self.kept = kept
        if others:
            who = f"{', '.join((first, second, *others[:-1]))} and {others[-1]}"
        else:
            who = f"both {first} and {second}"
        if kept is None:
            fix = (
                "neither is used: uninstall one, block one with STEERKIT_BLOCK_PLUGINS, or "
                f"choose one with STEERKIT_OVERRIDE_PLUGINS={kind}:{name}=<distribution>"
            )
        else:
            fix = f"{kept} keeps it" + (f" ({reason})" if reason else "")
        super().__init__(f"{kind} {name!r} is registered by {who}; {fix}")


class PluginError(SteerkitError):
    """A plugin is malformed: it failed to import, or registered something that is not a plugin."""


class SolverNotInstalledError(SteerkitError):
    """A solver backend whose optional package is missing; the message names what to install."""

    def __init__(self, solver: str, missing: str, install: str) -> None:
        self.solver = solver
        self.missing = missing
        self.install = install
        super().__init__(
            f"solver {solver!r} is not installed: {missing}; "
            f"install it with `pip install {install}`"
        )


class ExecutorNotInstalledError(SteerkitError):
    """An executor whose engine is missing (e.g. Ray); the message names what to install."""

    def __init__(self, executor: str, missing: str, install: str) -> None:
        self.executor = executor
        self.missing = missing
        self.install = install
        super().__init__(
            f"executor {executor!r} is not installed: {missing}; "
            f"install it with `pip install {install}`"
        )


class SolverCapabilityError(SteerkitError):
    """No solver (or not the one asked for) can solve this kind of problem."""


class SolverError(SteerkitError):
    """A solver failed: a numerical error, an iteration limit, or a backend exception."""


class InfeasibleError(SolverError):
    """The steering problem has no solution; the message says which setting would make one."""
