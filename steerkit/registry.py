"""Typed registries: one per kind of plugin, recording which distribution registered each name.

Two registrations of one name are a conflict, and load order never settles one. Each
registration has a rank, which the plugin host gives (see `Rank`): the one registration of the
highest rank holds the name; when several share that rank the name is refused at use, and
`DuplicatePluginError` names every distribution. A name reserved for steerkit itself (a built-in
command) cannot be registered at all. `conflicts()` lists every collision, for `steerkit plugins`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import attrs

from steerkit.errors import DuplicatePluginError, PluginError, UnknownPluginError

__all__ = ["Conflict", "Entry", "Origin", "Rank", "Register", "Registry"]

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@attrs.frozen
class Origin:
    """Where a registration came from: the plugin (entry point or module) and its distribution."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution is None:
            return f"plugin {self.plugin!r}"
        return f"{self.distribution} {self.version or ''}".strip()


class Rank(enum.IntEnum):
    """How strongly a registration holds its name when another one claims it too."""

    PLAIN = 0  #: a third-party plugin, or one registered inline
    FIRST_PARTY = 1  #: a plugin distributed with steerkit (steerkit-path, steerkit-runner, …)
    CHOSEN = 2  #: the registration the user chose for this name (STEERKIT_OVERRIDE_PLUGINS)


@attrs.frozen(eq=False)
class Entry(Generic[T]):
    """One registered thing."""

    kind: str
    name: str
    obj: type[T]
    origin: Origin


@attrs.frozen(eq=False)
class Conflict:
    """Several registrations of one name. `kept` holds the name (None: nobody does, the name is
    refused at use); `builtin` is set when the name belongs to steerkit itself; `losers` are the
    registrations that do not hold the name; `error` says what happened and how to choose."""

    kind: str
    name: str
    claims: tuple[Entry[Any], ...]
    kept: Entry[Any] | None
    kept_rank: Rank | None
    builtin: Origin | None
    error: DuplicatePluginError

    @property
    def losers(self) -> tuple[Entry[Any], ...]:
        return tuple(e for e in self.claims if e is not self.kept)


class Register(Protocol):
    """The callable a `register_<things>` hook receives."""

    def __call__(self, obj: Any, *, name: str | None = None) -> None: ...


class Registry(Generic[T]):
    """Names → plugin classes of one kind (a subclass of `base`).

    rank(name, origin) says how strongly each registration holds its name (default: all
    PLAIN, so any second registration of a name makes it ambiguous).
    """

    def __init__(
        self,
        kind: str,
        base: type[T],
        *,
        rank: Callable[[str, Origin], Rank] | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self._rank = rank if rank is not None else (lambda name, origin: Rank.PLAIN)
        self._claims: dict[str, list[Entry[T]]] = {}  # every registration of a name, in order
        self._reserved: dict[str, Origin] = {}

    def reserve(self, name: str, origin: Origin) -> None:
        """Keep `name` for steerkit itself: a plugin registering it is refused."""
        self._reserved[name] = origin

    def add(self, obj: Any, *, origin: Origin, name: str | None = None) -> Entry[T]:
        """Register `obj` (a subclass of the base) under `name` or its `name` attribute.

        Raises DuplicatePluginError when the name is already claimed and this registration does
        not hold it afterwards (another one outranks it, or several tie); the registration is
        still recorded, for `conflicts()`.
        """
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise PluginError(
                f"{origin}: register_{self.kind}s expected a subclass of "
                f"steerkit.{self.base.__name__}, received {obj!r}"
            )
        name = name if name is not None else getattr(obj, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(
                f"{origin}: {obj.__name__} needs a `name` (letters, digits, '.', '_', '-'), "
                f"received {name!r}"
            )
        entry: Entry[T] = Entry(self.kind, name, obj, origin)
        self._claims.setdefault(name, []).append(entry)
        if self._holder(name)[0] is not entry:
            raise self._conflict(name).error
        return entry

    def bind(self, origin: Origin, *, raise_conflicts: bool = True) -> Register:
        """The `register` callable handed to one plugin's hook. With raise_conflicts=False a
        name collision does not interrupt the hook (its other names still register); the host
        reports it from `conflicts()`."""

        def register(obj: Any, *, name: str | None = None) -> None:
            try:
                self.add(obj, origin=origin, name=name)
            except DuplicatePluginError:
                if raise_conflicts:
                    raise

        return register

    def _holder(self, name: str) -> tuple[Entry[T] | None, Rank | None]:
        """The registration that holds `name` and its rank; None when nobody does."""
        claims = self._claims.get(name, [])
        if name in self._reserved or not claims:
            return None, None
        ranks = [self._rank(name, e.origin) for e in claims]
        top = max(ranks)
        best = [e for e, r in zip(claims, ranks) if r == top]
        return (best[0], top) if len(best) == 1 else (None, None)

    def _conflict(self, name: str) -> Conflict:
        claims = self.claims(name)
        builtin = self._reserved.get(name)
        kept, rank = self._holder(name)
        holders = [str(e.origin) for e in claims]
        keeper: str | None = None
        why: str | None = None
        if builtin is not None:
            holders.insert(0, f"{builtin} (built in)")
            keeper, why = str(builtin), "it is built in and cannot be replaced"
        elif kept is not None:
            keeper = str(kept.origin)
            why = (
                "as STEERKIT_OVERRIDE_PLUGINS chose"
                if rank is Rank.CHOSEN
                else "first-party plugins keep their names; to use another's, set "
                f"STEERKIT_OVERRIDE_PLUGINS={self.kind}:{name}=<its distribution>"
            )
        first, second, *others = holders if len(holders) > 1 else [*holders, *holders]
        error = DuplicatePluginError(
            self.kind, name, first, second, *others, kept=keeper, reason=why
        )
        return Conflict(self.kind, name, claims, kept, rank, builtin, error)

    def claims(self, name: str) -> tuple[Entry[T], ...]:
        """Every registration of `name`, in the order they were made (used or not)."""
        return tuple(self._claims.get(name, ()))

    def conflicts(self) -> list[Conflict]:
        """Every name claimed more than once (or claimed while reserved), by name."""
        return [
            self._conflict(name)
            for name in sorted(self._claims)
            if len(self._claims[name]) > 1 or name in self._reserved
        ]

    def entry(self, name: str) -> Entry[T]:
        """The entry for `name`; raises UnknownPluginError (listing names) or
        DuplicatePluginError (naming every distribution that registered it)."""
        holder, _ = self._holder(name)
        if holder is not None:
            return holder
        if name in self._claims:
            raise self._conflict(name).error
        raise UnknownPluginError(self.kind.replace("_", " "), name, self.names()) from None

    def get(self, name: str) -> type[T]:
        """The class registered as `name`."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        """The names that resolve to one registration (a refused conflict is not listed)."""
        return sorted(n for n in self._claims if self._holder(n)[0] is not None)

    def entries(self) -> list[Entry[T]]:
        return [self.entry(n) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._holder(name)[0] is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
