"""The `steerkit` command. Exit status: 0 success, 1 failure (one line; --debug for the
traceback), 2 usage error."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from steerkit import __version__
from steerkit.plugins import get_host

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
        for line in [header, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(lines)


def _cmd_plugins(args: argparse.Namespace) -> int:
    from steerkit.solve import list_plugins

    rows = list_plugins()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    if not rows:
        print("no steerkit plugins found (install one, e.g. pip install ./plugins/steerkit-cvxpy)")
        return 0
    print(
        _table(
            [
                [r.kind, r.name, r.distribution or "-", r.version or "-", r.status, r.error or ""]
                for r in rows
            ],
            ["kind", "name", "distribution", "version", "status", "error"],
        )
    )
    conflicts = [r for r in rows if r.status == "conflict"]
    if conflicts:
        print(
            f"\n{len(conflicts)} name conflict{'s' if len(conflicts) > 1 else ''}: the error "
            "column says which registration is used; STEERKIT_OVERRIDE_PLUGINS=kind:name="
            "distribution chooses another (docs/plugins.md, 'Name collisions')"
        )
    return 0


def _cmd_solvers(args: argparse.Namespace) -> int:
    from steerkit.solve import available_solvers

    infos = available_solvers()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print("no solver backends registered (pip install ./plugins/steerkit-cvxpy)")
        return 0

    def limit(value: Any) -> str:
        return "any" if value is None else str(value)

    print(
        _table(
            [
                [
                    i.name,
                    "yes" if i.installed else "no",
                    ",".join(i.capabilities["kinds"]).upper(),
                    limit(i.capabilities["max_constraints"]),
                    limit(i.capabilities["max_features"]),
                    "yes" if i.capabilities["warm_start"] else "no",
                    "yes" if i.capabilities["batch"] else "no",
                    i.distribution or "-",
                    i.description if i.installed else f"{i.reason}; pip install {i.install}",
                ]
                for i in infos
            ],
            [
                "solver",
                "installed",
                "solves",
                "max k",
                "max features",
                "warm start",
                "batch",
                "distribution",
                "notes",
            ],
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steerkit",
        description="Optimal sparse steering of language models through SAE features.",
    )
    parser.add_argument("--version", action="version", version=f"steerkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    plugins = commands.add_parser(
        "plugins", help="list plugins: what loaded, from where, and what failed"
    )
    plugins.add_argument("--json", action="store_true", help="print a JSON list of objects")
    plugins.set_defaults(func=_cmd_plugins)

    solvers = commands.add_parser(
        "solvers", help="list solver backends: installed or not, and what each solves"
    )
    solvers.add_argument("--json", action="store_true", help="print a JSON list of objects")
    solvers.set_defaults(func=_cmd_solvers)

    registry = get_host().registry("command")
    for conflict in registry.conflicts():
        if conflict.kept is None and conflict.builtin is None:  # refused: say why when used
            _refused(commands, conflict.name, conflict.error)
    for entry in registry.entries():
        if entry.name in commands.choices:
            logger.warning(
                "command %r (%s) would shadow a built-in: left out", entry.name, entry.origin
            )
            continue
        try:
            command = entry.obj()
            sub = argparse.ArgumentParser(prog=f"steerkit {entry.name}", description=command.help)
            command.configure(sub)
        except Exception as e:  # a plugin's broken command must not break the CLI
            logger.warning(
                "command %r (%s) left out: %s: %s", entry.name, entry.origin, type(e).__name__, e
            )
            continue
        added = commands.add_parser(
            entry.name,
            help=f"{command.help} [{entry.origin}]",
            description=command.help,
            parents=[sub],
            add_help=False,
        )
        added.set_defaults(func=command.run)
    return parser


def _refused(commands: Any, name: str, error: Exception) -> None:
    """A command that several plugins register: running it fails with the conflict's error."""

    def refuse(args: argparse.Namespace) -> int:
        raise error

    refused = commands.add_parser(name, help=f"(refused: {error})", add_help=False)
    refused.add_argument("arguments", nargs=argparse.REMAINDER)
    refused.set_defaults(func=refuse)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    try:
        status: int = args.func(args)
        return status
    except KeyboardInterrupt:
        print("steerkit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        else:
            first = (str(e).strip().splitlines() or [""])[0]
            print(
                f"steerkit: error: {type(e).__name__}: {first} (run with --debug for the "
                "traceback)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
