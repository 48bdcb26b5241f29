"""The plugin host: discovery through entry points, guarded loading, allow- and block-lists."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from typing import Any

import pytest

from steerkit import PluginHost, UnknownPluginError, list_plugins
from steerkit.plugins import ALLOW_ENV, BLOCK_ENV

from . import toy_plugins
from .toy_plugins import (
    MisspeltPlugin,
    NotASolverPlugin,
    RaisingPlugin,
    ReferenceSolver,
    SameNamePlugin,
    SolverPlugin,
)


class FakeDistribution:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    """What importlib.metadata yields for one entry point of an installed distribution."""

    def __init__(self, name: str, plugin: Any, dist: str, version: str = "1.0") -> None:
        self.name = name
        self.value = f"{dist.replace('-', '_')}.plugin"
        self.dist = FakeDistribution(dist, version)
        self.group = "steerkit"
        self._plugin = plugin

    def load(self) -> Any:
        if isinstance(self._plugin, BaseException):
            raise self._plugin
        return self._plugin


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    """Entry points the host will find, as if these distributions were installed."""
    points: list[FakeEntryPoint] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == "steerkit"
        return points

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delenv(BLOCK_ENV, raising=False)
    return points


def rows_by_name(host: PluginHost) -> dict[str, Any]:
    return {row.name: row for row in host.rows()}


def test_entry_point_plugins_register_with_their_distribution(installed: list) -> None:
    installed.append(FakeEntryPoint("toys", SolverPlugin(), "steerkit-toys", "0.3"))
    host = PluginHost()
    assert host.solvers.names() == [
        "toy-missing",
        "toy-one-constraint",
        "toy-qp-only",
        "toy-reference",
    ]
    row = rows_by_name(host)["toy-reference"]
    assert (row.kind, row.distribution, row.version, row.status, row.error) == (
        "solver",
        "steerkit-toys",
        "0.3",
        "loaded",
        None,
    )


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(installed: list) -> None:
    installed.append(
        FakeEntryPoint("broken", ImportError("No module named 'torch'"), "steerkit-broken", "0.1")
    )
    installed.append(FakeEntryPoint("exits", SystemExit(3), "steerkit-exits"))
    installed.append(FakeEntryPoint("toys", SolverPlugin(), "steerkit-toys"))
    host = PluginHost()
    assert "toy-reference" in host.solvers
    failures = {row.name: row for row in host.failures}
    assert set(failures) == {"broken", "exits"}
    assert failures["broken"].distribution == "steerkit-broken"
    assert "ImportError: No module named 'torch'" in (failures["broken"].error or "")


def test_a_hook_that_raises_is_reported_and_others_still_load(installed: list) -> None:
    installed.append(FakeEntryPoint("raising", RaisingPlugin(), "steerkit-raising"))
    installed.append(FakeEntryPoint("toys", SolverPlugin(), "steerkit-toys"))
    host = PluginHost()
    assert "toy-reference" in host.solvers
    (failure,) = host.failures
    assert failure.name == "raising" and failure.kind == "solver"
    assert failure.error == "register_solvers: RuntimeError: this plugin is broken"


def test_a_misspelt_hook_fails_its_plugin(installed: list) -> None:
    installed.append(FakeEntryPoint("misspelt", MisspeltPlugin(), "steerkit-misspelt"))
    host = PluginHost()
    (failure,) = host.failures
    assert failure.name == "misspelt" and "register_solver" in (failure.error or "")
    assert len(host.solvers) == 0


def test_registering_a_non_solver_is_reported(installed: list) -> None:
    installed.append(FakeEntryPoint("bad", NotASolverPlugin(), "steerkit-bad"))
    (failure,) = PluginHost().failures
    assert "expected a subclass of steerkit.Solver" in (failure.error or "")


def test_duplicate_names_are_reported_and_refused_at_use(installed: list) -> None:
    installed.append(FakeEntryPoint("one", SameNamePlugin(), "steerkit-one", "1.0"))
    installed.append(FakeEntryPoint("two", SameNamePlugin(), "steerkit-two", "2.0"))
    host = PluginHost()
    (failure,) = host.failures
    assert "steerkit-one 1.0" in (failure.error or "") and "steerkit-two 2.0" in (
        failure.error or ""
    )
    with pytest.raises(Exception, match="registered by both steerkit-one 1.0 and steerkit-two"):
        host.solvers.get("toy-reference")


def test_the_same_distribution_seen_twice_loads_once(installed: list) -> None:
    plugin = SolverPlugin()
    installed.extend([FakeEntryPoint("toys", plugin, "steerkit-toys")] * 2)
    host = PluginHost()
    assert host.failures == [] and len(host.solvers) == 4


@pytest.mark.parametrize(
    ("allow", "block", "loaded"),
    [
        (None, None, {"toy-reference", "toy-reference-b"}),
        ("steerkit-a", None, {"toy-reference"}),
        ("b", None, {"toy-reference-b"}),  # by entry-point name
        ("STEERKIT_A , steerkit.b", None, {"toy-reference", "toy-reference-b"}),  # normalised
        ("", None, set()),  # set but empty: no entry-point plugins
        (None, "steerkit-a", {"toy-reference-b"}),
        ("steerkit-a,steerkit-b", "b", {"toy-reference"}),
    ],
)
def test_allow_and_block_lists(
    installed: list,
    monkeypatch: pytest.MonkeyPatch,
    allow: str | None,
    block: str | None,
    loaded: set[str],
) -> None:
    class PluginB:
        @toy_plugins.hookimpl
        def register_solvers(self, register: Any) -> None:
            register(ReferenceSolver, name="toy-reference-b")

    installed.append(FakeEntryPoint("a", SameNamePlugin(), "steerkit-a"))
    installed.append(FakeEntryPoint("b", PluginB(), "steerkit-b"))
    if allow is not None:
        monkeypatch.setenv(ALLOW_ENV, allow)
    if block is not None:
        monkeypatch.setenv(BLOCK_ENV, block)
    host = PluginHost()
    assert set(host.solvers.names()) == loaded
    skipped = {row.plugin for row in host.rows() if row.status == "blocked"}
    assert skipped == {"a", "b"} - {row.plugin for row in host.rows() if row.status == "loaded"}
    assert host.failures == []


def test_inline_plugins_and_the_process_wide_host(steerkit_host_factory: Any) -> None:
    host = steerkit_host_factory(("toys", SolverPlugin()))
    assert [r.name for r in list_plugins()][:1] == ["toy-missing"]
    assert list_plugins(host=host) == list_plugins()
    with pytest.raises(UnknownPluginError, match="available: toy-missing, toy-one-constraint"):
        host.solvers.get("nope")


def test_loading_happens_once(installed: list) -> None:
    calls = []

    class Counting:
        @toy_plugins.hookimpl
        def register_solvers(self, register: Any) -> None:
            calls.append(1)
            register(ReferenceSolver)

    installed.append(FakeEntryPoint("counting", Counting(), "steerkit-counting"))
    host = PluginHost()
    host.load()
    host.rows()
    assert host.solvers.names() == ["toy-reference"]
    assert calls == [1]


def test_import_steerkit_is_light_and_loads_no_plugin() -> None:
    code = (
        "import sys, steerkit\n"
        "heavy = [m for m in ('torch', 'cvxpy', 'scipy', 'sklearn', 'clarabel', 'osqp',"
        " 'transformer_lens', 'sae_lens') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert steerkit.plugins._host is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_override_given_to_the_host_chooses_between_two_plugins(installed: list) -> None:
    """Two third parties register `toy-reference`: refused until one is chosen, by the
    host's `override` (a list, or the variable's comma-separated form)."""
    installed.append(FakeEntryPoint("one", SameNamePlugin(), "steerkit-one"))
    installed.append(FakeEntryPoint("two", SameNamePlugin(), "steerkit-two"))
    assert "toy-reference" not in PluginHost().solvers
    for override in (["solver:toy-reference=steerkit-two"], "solver:toy-reference=two"):
        host = PluginHost(override=override)
        assert host.solvers.entry("toy-reference").origin.distribution == "steerkit-two"
        (row,) = [r for r in host.rows() if r.status == "replaced"]
        assert (row.distribution, row.name) == ("steerkit-one", "toy-reference")
        assert host.failures == []


def test_a_host_pickles_as_how_it_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """An executor's worker gets the driver's plugins and choices, not its own environment's."""
    import pickle

    monkeypatch.setenv(ALLOW_ENV, "only-this")
    host = PluginHost(
        entry_points=False,
        plugins=[("toy", toy_plugins.SolverPlugin())],
        block=["blocked-one"],
        override=["solver:toy-reference=toy"],
    )
    monkeypatch.setenv(ALLOW_ENV, "something-else")
    monkeypatch.setenv(BLOCK_ENV, "toy")
    copy = pickle.loads(pickle.dumps(host))
    assert copy.solvers.names() == host.solvers.names()
    assert "toy-reference" in copy.solvers
    assert copy._allow == frozenset({"only-this"}) and copy._block == frozenset({"blocked-one"})
    assert copy._chosen == {("solver", "toy-reference"): "toy"}
