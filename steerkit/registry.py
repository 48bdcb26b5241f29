"""Typed registries: one per kind of plugin, recording which distribution registered each name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

import attrs

from steerkit.errors import DuplicatePluginError, PluginError, UnknownPluginError

__all__ = ["Entry", "Origin", "Register", "Registry"]

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


@attrs.frozen(eq=False)
class Entry(Generic[T]):
    """One registered thing."""

    kind: str
    name: str
    obj: type[T]
    origin: Origin


class Register(Protocol):
    """The callable a `register_<things>` hook receives."""

    def __call__(self, obj: Any, *, name: str | None = None) -> None: ...


class Registry(Generic[T]):
    """Names → plugin classes of one kind (a subclass of `base`)."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry[T]] = {}
        self._conflicts: dict[str, list[Entry[T]]] = {}

    def add(self, obj: Any, *, origin: Origin, name: str | None = None) -> Entry[T]:
        """Register `obj` (a subclass of the base) under `name` or its `name` attribute."""
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
        if name in self._entries:
            first = self._entries[name]
            self._conflicts.setdefault(name, [first]).append(entry)
            raise DuplicatePluginError(self.kind, name, str(first.origin), str(origin))
        self._entries[name] = entry
        return entry

    def bind(self, origin: Origin) -> Register:
        """The `register` callable handed to one plugin's hook."""

        def register(obj: Any, *, name: str | None = None) -> None:
            self.add(obj, origin=origin, name=name)

        return register

    def entry(self, name: str) -> Entry[T]:
        """The entry for `name`; raises UnknownPluginError (listing names) or
        DuplicatePluginError (naming both distributions)."""
        if name in self._conflicts:
            first, second = self._conflicts[name][:2]
            raise DuplicatePluginError(self.kind, name, str(first.origin), str(second.origin))
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPluginError(self.kind.replace("_", " "), name, self._entries) from None

    def get(self, name: str) -> type[T]:
        """The class registered as `name`."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
