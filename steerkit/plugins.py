"""Plugin discovery: entry points in the `steerkit` group, loaded once, lazily, each one guarded.

A plugin that fails to import, registers a hook with no spec, or raises while registering is
recorded as a failure and skipped; everything else keeps working. Two environment variables
choose what loads, by entry-point name or distribution name (comma-separated):

- ``STEERKIT_PLUGINS``: load only these (set but empty: load no entry-point plugins);
- ``STEERKIT_BLOCK_PLUGINS``: never load these.

Two plugins registering one name never break each other's other names, and load order never
decides which is used: a first-party plugin (`FIRST_PARTY`) keeps its names, a name two
third-party plugins share is refused at use, and a built-in command cannot be registered. The
user opts in to another choice, name by name, with

- ``STEERKIT_OVERRIDE_PLUGINS``: ``kind:name=plugin`` items (comma-separated), e.g.
  ``solver:path=steerkit-fastpath``: that plugin's registration of that name is used.

`steerkit plugins` lists every collision (status "conflict", or "replaced" where an override
chose).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import pluggy

from steerkit import hookspecs
from steerkit.command import BUILTIN_COMMANDS, Command
from steerkit.dataset import Dataset
from steerkit.executor import Executor
from steerkit.method import SteeringMethod
from steerkit.metric import Metric
from steerkit.probe import Probe
from steerkit.registry import Conflict, Origin, Rank, Registry
from steerkit.solver import Solver
from steerkit.source import ActivationSource

__all__ = [
    "ALLOW_ENV",
    "BLOCK_ENV",
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY",
    "KINDS",
    "OVERRIDE_ENV",
    "PluginHost",
    "PluginRow",
    "get_host",
    "use_host",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "steerkit"
ALLOW_ENV = "STEERKIT_PLUGINS"
BLOCK_ENV = "STEERKIT_BLOCK_PLUGINS"
OVERRIDE_ENV = "STEERKIT_OVERRIDE_PLUGINS"

#: The distributions shipped with steerkit (its plugins/ folder): their names are not replaced by
#: another plugin's registration unless STEERKIT_OVERRIDE_PLUGINS says so.
FIRST_PARTY = frozenset(
    {
        "steerkit",
        "steerkit-baselines",
        "steerkit-cvxpy",
        "steerkit-datasets",
        "steerkit-direct",
        "steerkit-metrics",
        "steerkit-optimal",
        "steerkit-path",
        "steerkit-probes",
        "steerkit-runner",
        "steerkit-transformerlens",
    }
)

#: kind → (hook name, interface). The order is the data flow's.
KINDS: Mapping[str, tuple[str, type]] = {
    "dataset": ("register_datasets", Dataset),
    "activation_source": ("register_activation_sources", ActivationSource),
    "probe": ("register_probes", Probe),
    "steering_method": ("register_steering_methods", SteeringMethod),
    "solver": ("register_solvers", Solver),
    "metric": ("register_metrics", Metric),
    "command": ("register_commands", Command),
    "executor": ("register_executors", Executor),
}


@attrs.frozen
class PluginRow:
    """One line of `steerkit plugins`: a registered thing, or a plugin that failed or was blocked.

    status is "loaded", "failed", "blocked", "conflict" (the name is registered by another plugin
    too, and this registration is not used) or "replaced" (not used, because the user chose
    another with STEERKIT_OVERRIDE_PLUGINS); error is None when loaded.
    """

    kind: str
    name: str
    distribution: str | None
    version: str | None
    plugin: str
    status: str = "loaded"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).strip().lower()


def _names_from(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(_normalise(n) for n in value.split(",") if n.strip())


def _overrides_from(items: Iterable[str]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """{(kind, name): normalised plugin} from `kind:name=plugin` items; and the malformed items."""
    chosen: dict[tuple[str, str], str] = {}
    bad: list[str] = []
    for item in items:
        if not item.strip():
            continue
        match = re.fullmatch(r"\s*([a-z_]+):([^=\s]+)\s*=\s*(\S+)\s*", item)
        if match is None or match.group(1) not in KINDS:
            bad.append(item.strip())
            continue
        chosen[(match.group(1), match.group(2))] = _normalise(match.group(3))
    return chosen, bad


def _names_of(origin: Origin) -> set[str]:
    """The names a user may call a plugin by: its entry point's and its distribution's."""
    names = {_normalise(origin.plugin)}
    if origin.distribution:
        names.add(_normalise(origin.distribution))
    return names


def _matches(origin: Origin, plugin: str) -> bool:
    """Whether `origin` is the plugin called `plugin` (normalised)."""
    return plugin in _names_of(origin)


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class PluginHost:
    """A pluggy manager plus one registry per kind. Load happens once, on first use.

    entry_points: discover installed plugins; plugins: extra (name, module-or-object) pairs
    registered first, as tests and scripts do; allow / block / override: replace the
    environment variables (override: `kind:name=plugin` items).
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        plugins: Iterable[tuple[str, object]] = (),
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
        override: Iterable[str] | None = None,
    ) -> None:
        self._use_entry_points = entry_points
        self._inline = list(plugins)
        self._allow = (
            frozenset(_normalise(n) for n in allow)
            if allow is not None
            else _names_from(os.environ.get(ALLOW_ENV))
        )
        self._block = (
            frozenset(_normalise(n) for n in block)
            if block is not None
            else _names_from(os.environ.get(BLOCK_ENV)) or frozenset()
        )
        if override is None:
            override = os.environ.get(OVERRIDE_ENV) or ""
        if isinstance(override, str):  # the variable's form: comma-separated items
            override = override.split(",")
        self._chosen, bad = _overrides_from(override)
        self.pm = pluggy.PluginManager("steerkit")
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry[Any]] = {
            kind: Registry(kind, base, rank=functools.partial(self._rank, kind))
            for kind, (_, base) in KINDS.items()
        }
        builtin = Origin("steerkit", "steerkit")
        for name in BUILTIN_COMMANDS:
            self.registries["command"].reserve(name, builtin)
        self._origins: dict[str, Origin] = {}
        self._problems: list[PluginRow] = []
        for item in bad:
            self._record(
                Origin(OVERRIDE_ENV),
                "failed",
                f"{OVERRIDE_ENV} item {item!r} is not kind:name=plugin with a kind among "
                f"{', '.join(KINDS)} (ignored)",
                kind="setting",
            )
        self._loaded = False
        self._lock = threading.RLock()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A host travels to another process (an executor's worker) as how it was made — its
        inline plugins, and the allow, block and override choices in force here — and loads
        there again on first use."""
        chosen = [f"{kind}:{name}={plugin}" for (kind, name), plugin in self._chosen.items()]
        arguments = (self._use_entry_points, tuple(self._inline), self._allow, self._block, chosen)
        return _rebuilt_host, arguments

    def _rank(self, kind: str, name: str, origin: Origin) -> Rank:
        """How strongly `origin`'s registration of `name` holds it (see steerkit.registry)."""
        chosen = self._chosen.get((kind, name))
        if chosen is not None and _matches(origin, chosen):
            return Rank.CHOSEN
        if origin.distribution is not None and _normalise(origin.distribution) in FIRST_PARTY:
            return Rank.FIRST_PARTY
        return Rank.PLAIN

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> PluginHost:
        """Discover and register every plugin (once); returns self."""
        with self._lock:
            if self._loaded:
                return self
            self._loaded = True
            for name, plugin in self._inline:
                self._register(plugin, Origin(plugin=name))
            if self._use_entry_points:
                self._load_entry_points()
            self._check_pending()
            self._collect()
            self._report_conflicts()
        return self

    def _record(self, origin: Origin, status: str, error: str, kind: str = "plugin") -> None:
        if status == "failed":
            logger.warning("steerkit plugin %s failed: %s", origin.plugin, error)
        self._problems.append(
            PluginRow(
                kind,
                origin.plugin,
                origin.distribution,
                origin.version,
                origin.plugin,
                status,
                error,
            )
        )

    def _register(self, plugin: object, origin: Origin, key: str | None = None) -> None:
        """Register with pluggy under `key` (default: the plugin's name; unique per host)."""
        key = origin.plugin if key is None else key
        try:
            self.pm.register(plugin, name=key)
        except Exception as e:  # a hookimpl with bad arguments, a name registered twice
            self._record(origin, "failed", _describe(e))
            return
        self._origins[key] = origin

    def _entry_points(self) -> Iterator[tuple[importlib.metadata.EntryPoint, Origin]]:
        seen: set[tuple[str, str, str | None]] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            key = (ep.name, ep.value, dist_name)
            if key in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add(key)
            yield ep, Origin(ep.name, dist_name, dist.version if dist is not None else None)

    def _selected(self, origin: Origin) -> str | None:
        """None if the plugin may load; else why not."""
        names = _names_of(origin)
        if names & self._block:
            return f"blocked by {BLOCK_ENV}"
        if self._allow is not None and not names & self._allow:
            return f"not listed in {ALLOW_ENV}"
        return None

    def _load_entry_points(self) -> None:
        for ep, origin in self._entry_points():
            # two distributions may name their entry points alike: both load, under a key
            # qualified by the distribution (pluggy needs one name per plugin)
            key = origin.plugin
            if key in self._origins:
                key = f"{origin.distribution}:{origin.plugin}"
                if key in self._origins:
                    self._record(
                        origin,
                        "failed",
                        f"the plugin name {origin.plugin!r} is already taken by "
                        f"{self._origins[origin.plugin]}",
                    )
                    continue
            reason = self._selected(origin)
            if reason is not None:
                self._record(origin, "blocked", reason)
                continue
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as e:  # a plugin must never break steerkit
                self._record(origin, "failed", f"import of {ep.value!r} failed: {_describe(e)}")
                continue
            self._register(plugin, origin, key)

    def _check_pending(self) -> None:
        """Hook implementations with no spec (a misspelt hook) fail their plugin."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as e:
                name = self.pm.get_name(e.plugin) or repr(e.plugin)
                origin = self._origins.pop(name, Origin(name))
                self.pm.unregister(e.plugin)
                self._record(origin, "failed", _describe(e))

    def _collect(self) -> None:
        for kind, (hook_name, _) in KINDS.items():
            registry = self.registries[kind]
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                origin = self._origins.get(impl.plugin_name, Origin(impl.plugin_name))
                # a name collision is recorded by the registry, and the hook goes on
                arguments = {"register": registry.bind(origin, raise_conflicts=False)}
                try:
                    impl.function(*(arguments[a] for a in impl.argnames))
                except Exception as e:
                    self._record(origin, "failed", f"{hook_name}: {_describe(e)}", kind=kind)

    def _conflicts(self) -> list[Conflict]:
        return [c for registry in self.registries.values() for c in registry.conflicts()]

    def _report_conflicts(self) -> None:
        """Log every collision, and every override that chose a registration nobody made."""
        for conflict in self._conflicts():
            log = logger.info if conflict.kept_rank is Rank.CHOSEN else logger.warning
            log("steerkit plugin conflict: %s", conflict.error)
        for (kind, name), plugin in self._chosen.items():
            if not any(_matches(e.origin, plugin) for e in self.registries[kind].claims(name)):
                self._record(
                    Origin(OVERRIDE_ENV),
                    "failed",
                    f"{OVERRIDE_ENV} chooses {kind} {name!r} from {plugin!r}, which registers "
                    f"no {kind} of that name",
                    kind="setting",
                )

    def _conflict_rows(self) -> list[PluginRow]:
        """One row per registration a collision leaves unused; one per refused name."""
        rows = []
        for c in self._conflicts():
            # a refused name: one row (its error names everyone); else one per unused claim
            unused = c.claims[-1:] if c.kept is None and c.builtin is None else c.losers
            status = "replaced" if c.kept_rank is Rank.CHOSEN else "conflict"
            for e in unused:
                o = e.origin
                rows.append(
                    PluginRow(
                        c.kind, c.name, o.distribution, o.version, o.plugin, status, str(c.error)
                    )
                )
        return rows

    # -- queries ------------------------------------------------------------------------------

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of one kind: dataset, activation_source, probe, steering_method,
        solver, metric, command or executor."""
        self.load()
        return self.registries[kind]

    @property
    def solvers(self) -> Registry[Solver]:
        return self.registry("solver")

    def rows(self) -> list[PluginRow]:
        """Every registered thing, then every name collision, then every failed or blocked
        plugin."""
        self.load()
        rows = [
            PluginRow(kind, e.name, e.origin.distribution, e.origin.version, e.origin.plugin)
            for kind, registry in self.registries.items()
            for e in registry.entries()
        ]
        return rows + self._conflict_rows() + list(self._problems)

    @property
    def failures(self) -> list[PluginRow]:
        """The plugins that failed, and the name collisions that need the user's choice."""
        self.load()
        return [r for r in self._conflict_rows() + self._problems if r.status in _FAILED]


_FAILED = ("failed", "conflict")


def _rebuilt_host(
    entry_points: bool,
    plugins: tuple[tuple[str, object], ...],
    allow: frozenset[str] | None,
    block: frozenset[str],
    override: list[str],
) -> PluginHost:
    """The host `PluginHost.__reduce__` describes (not loaded yet)."""
    host = PluginHost(
        entry_points=entry_points, plugins=plugins, allow=(), block=block, override=override
    )
    host._allow = allow  # None: no allow-list (not this process's environment variable)
    return host


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
    return _host.load()


@contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Make `host` the process-wide host inside the block (for tests and embedding)."""
    global _host
    with _host_lock:
        previous, _host = _host, host
    try:
        yield host.load()
    finally:
        with _host_lock:
            _host = previous
