"""The `steerkit` command: version, help, usage errors (2), JSON fields, failures (1, one line;
the traceback only with --debug).

In-process tests call `steerkit.cli.main` under an isolated plugin host; the others run the
installed `steerkit` script or `python -m steerkit` in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import steerkit
from steerkit import PluginHost, hookimpl
from steerkit.cli import main
from steerkit.errors import SolverError
from steerkit.plugins import ALLOW_ENV
from steerkit.testing import ReferencePlugin, ReferenceSolver

from .fixtures import installed_site, run_steerkit, steerkit_env

PLUGIN_FIELDS = {"kind", "name", "distribution", "version", "plugin", "status", "error"}
SOLVER_FIELDS = {
    "name",
    "installed",
    "reason",
    "install",
    "description",
    "distribution",
    "version",
    "capabilities",
}


class AbsentSolver(ReferenceSolver):
    name = "absent"
    requires = ("steerkit_cli_test_module_that_does_not_exist",)
    install = "steerkit-absent-backend"


class AbsentPlugin:
    @hookimpl
    def register_solvers(self, register: Any) -> None:
        register(AbsentSolver)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) in-process: (exit status, stdout, stderr); argparse's exits included."""
    try:
        status = main(list(argv))
    except SystemExit as e:
        status = int(e.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


# -- version, help, usage ---------------------------------------------------------------------


def test_version_matches_the_package_and_its_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out.strip() == f"steerkit {steerkit.__version__}"
    assert steerkit.__version__ == importlib.metadata.version("steerkit")


def test_the_installed_script_runs() -> None:
    """The `steerkit` console script next to this interpreter (the project.scripts entry)."""
    script = Path(sys.executable).parent / "steerkit"
    assert script.is_file(), f"no steerkit script in {script.parent}"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, f"steerkit {steerkit.__version__}")


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert out.startswith("usage: steerkit")
    for word in ("plugins", "solvers", "--version", "--debug"):
        assert word in out
    status, out, _ = run(capsys, "plugins", "--help")
    assert status == 0 and "--json" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],  # a command is required
        ["no-such-command"],
        ["plugins", "--no-such-flag"],
        ["solvers", "extra-argument"],
        ["solvers", "--debug"],  # --debug belongs before the command
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.startswith("usage: steerkit")
    assert "error:" in err


def test_usage_error_from_a_fresh_process() -> None:
    result = run_steerkit("plugins", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr


# -- plugins ------------------------------------------------------------------------------------


def test_plugins_json_fields(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    steerkit_host_factory(("reference", ReferencePlugin()), ("absent", AbsentPlugin()))
    status, out, _ = run(capsys, "plugins", "--json")
    assert status == 0
    rows = json.loads(out)
    assert [(r["kind"], r["name"], r["plugin"]) for r in rows] == [
        ("solver", "absent", "absent"),
        ("solver", "reference", "reference"),
    ]
    for row in rows:
        assert set(row) == PLUGIN_FIELDS
        # registered inline, not from an installed distribution
        assert (row["distribution"], row["version"]) == (None, None)
        assert (row["status"], row["error"]) == ("loaded", None)


def test_plugins_json_reports_a_plugin_that_failed_to_register(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    class Raising:
        @hookimpl
        def register_solvers(self, register: Any) -> None:
            raise RuntimeError("cannot reach the licence server")

    steerkit_host_factory(("reference", ReferencePlugin()), ("raising", Raising()))
    status, out, _ = run(capsys, "plugins", "--json")
    assert status == 0
    failed = [r for r in json.loads(out) if r["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["name"] == "raising"
    assert "RuntimeError: cannot reach the licence server" in failed[0]["error"]


def test_plugins_table(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    steerkit_host_factory(("reference", ReferencePlugin()))
    status, out, _ = run(capsys, "plugins")
    assert status == 0
    header, rule, row = out.splitlines()
    assert header.split() == ["kind", "name", "distribution", "version", "status", "error"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert row.split() == ["solver", "reference", "-", "-", "loaded"]


def test_no_plugins_says_what_to_install(
    capsys: pytest.CaptureFixture[str], steerkit_host: PluginHost
) -> None:
    status, out, _ = run(capsys, "plugins")
    assert status == 0
    assert "no steerkit plugins found" in out
    status, out, _ = run(capsys, "plugins", "--json")
    assert (status, json.loads(out)) == (0, [])
    status, out, _ = run(capsys, "solvers")
    assert status == 0
    assert "no solver backends registered" in out


@pytest.mark.venv
def test_plugins_json_of_installed_distributions() -> None:
    """A fresh process sees pip-installed distributions with their names and versions."""
    env = steerkit_env(installed_site(), **{ALLOW_ENV: "fixture-good,fixture-broken"})
    result = run_steerkit("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(set(r) == PLUGIN_FIELDS for r in rows)
    summary = {(r["kind"], r["name"], r["distribution"], r["version"], r["status"]) for r in rows}
    assert summary >= {
        ("solver", "fixture-reference", "steerkit-fixture-good", "1.2.3", "loaded"),
        ("solver", "fixture-missing", "steerkit-fixture-good", "1.2.3", "loaded"),
        ("plugin", "fixture-broken", "steerkit-fixture-broken", "0.0.1", "failed"),
    }


# -- solvers -------------------------------------------------------------------------------------


def test_solvers_json_fields(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    steerkit_host_factory(("reference", ReferencePlugin()), ("absent", AbsentPlugin()))
    status, out, _ = run(capsys, "solvers", "--json")
    assert status == 0
    infos = {i["name"]: i for i in json.loads(out)}
    assert set(infos) == {"absent", "reference"}
    assert all(set(i) == SOLVER_FIELDS for i in infos.values())

    reference = infos["reference"]
    assert (reference["installed"], reference["reason"]) == (True, None)
    assert reference["install"] == ReferenceSolver.install
    assert reference["capabilities"] == {
        "kinds": ["qp", "socp"],
        "max_constraints": None,
        "max_features": None,
        "warm_start": False,
        "batch": False,
        "priority": 0,
    }

    absent = infos["absent"]
    assert absent["installed"] is False
    assert absent["reason"] == (
        "module 'steerkit_cli_test_module_that_does_not_exist' is not importable"
    )
    assert absent["install"] == "steerkit-absent-backend"


def test_solvers_table_says_what_to_install(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    steerkit_host_factory(("reference", ReferencePlugin()), ("absent", AbsentPlugin()))
    status, out, _ = run(capsys, "solvers")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["solver", "installed", "solves"]
    absent = next(line for line in lines if line.startswith("absent"))
    assert absent.split()[1:3] == ["no", "QP,SOCP"]
    assert "pip install steerkit-absent-backend" in absent
    reference = next(line for line in lines if line.startswith("reference"))
    assert reference.split()[1:3] == ["yes", "QP,SOCP"]


# -- failures ------------------------------------------------------------------------------------


@pytest.fixture
def failing_solvers(monkeypatch: pytest.MonkeyPatch, steerkit_host: PluginHost) -> None:
    def fail(**_: Any) -> Any:
        raise SolverError("backend table is corrupt\nsecond line of detail")

    # the module, not the function steerkit.solve that shadows it as a package attribute
    monkeypatch.setattr(importlib.import_module("steerkit.solve"), "available_solvers", fail)


@pytest.mark.usefixtures("failing_solvers")
def test_failure_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "solvers")
    assert status == 1
    assert out == ""
    assert err.splitlines() == [
        "steerkit: error: SolverError: backend table is corrupt "
        "(run with --debug for the traceback)"
    ]


@pytest.mark.usefixtures("failing_solvers")
def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "--debug", "solvers", "--json")
    assert status == 1
    assert err.startswith("Traceback (most recent call last):")
    assert "steerkit.errors.SolverError: backend table is corrupt" in err
    assert "second line of detail" in err


def test_failure_in_a_fresh_process() -> None:
    """The real entry point, end to end: a failure is one line on stderr and exit status 1."""
    code = (
        "import importlib, sys, steerkit.cli\n"
        "def boom(**_): raise RuntimeError('disk on fire')\n"
        "importlib.import_module('steerkit.solve').list_plugins = boom\n"
        "sys.exit(steerkit.cli.main(sys.argv[1:]))\n"
    )
    for debug in ([], ["--debug"]):
        result = subprocess.run(
            [sys.executable, "-c", code, *debug, "plugins"],
            capture_output=True,
            text=True,
            timeout=60,
            env=steerkit_env(None),
        )
        assert result.returncode == 1
        assert result.stdout == ""
        if debug:
            assert "Traceback" in result.stderr
            assert result.stderr.rstrip().endswith("RuntimeError: disk on fire")
        else:
            assert result.stderr == (
                "steerkit: error: RuntimeError: disk on fire (run with --debug for the traceback)\n"
            )


class Greet(steerkit.Command):
    name = "greet"
    help = "say hello"

    def configure(self, parser: Any) -> None:
        parser.add_argument("who")
        parser.add_argument("--times", type=int, default=1)

    def run(self, args: Any) -> int:
        print(" ".join([f"hello {args.who}"] * args.times))
        return 0 if args.who != "nobody" else 3


class Shadow(Greet):
    name = "solvers"


class Broken(Greet):
    name = "broken"

    def configure(self, parser: Any) -> None:
        raise RuntimeError("cannot configure")


class CommandPlugin:
    @hookimpl
    def register_commands(self, register: Any) -> None:
        register(Greet)
        register(Shadow)
        register(Broken)


def test_plugin_commands_run_with_their_arguments(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    steerkit_host_factory(("commands", CommandPlugin()), ("reference", ReferencePlugin()))
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "greet" in out and "say hello [plugin 'commands']" in out
    assert "broken" not in out  # its configure raised: left out, the CLI still works
    assert run(capsys, "greet", "world", "--times", "2") == (0, "hello world hello world\n", "")
    assert run(capsys, "greet", "nobody")[0] == 3
    status, _, err = run(capsys, "greet")
    assert status == 2 and "the following arguments are required: who" in err
    # a plugin command never replaces a built-in one
    status, out, _ = run(capsys, "solvers", "--json")
    assert status == 0 and json.loads(out)[0]["name"] == "reference"


class GreetAgain(Greet):
    help = "say hello, again"


class SecondCommandPlugin:
    @hookimpl
    def register_commands(self, register: Any) -> None:
        register(GreetAgain)


def test_a_command_two_plugins_register_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str], steerkit_host_factory: Callable[..., PluginHost]
) -> None:
    steerkit_host_factory(("commands", CommandPlugin()), ("again", SecondCommandPlugin()))
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "greet" in out and "refused" in out
    status, out, err = run(capsys, "greet", "world", "--times", "2")
    assert (status, out) == (1, "")
    assert "registered by both plugin 'commands' and plugin 'again'; neither is used" in err
    # the built-in `solvers` that CommandPlugin also registers is a conflict in the listing
    status, out, _ = run(capsys, "plugins", "--json")
    rows = {(r["name"], r["plugin"]): r for r in json.loads(out)}
    assert rows[("solvers", "commands")]["status"] == "conflict"
    assert rows[("greet", "again")]["status"] == "conflict"
