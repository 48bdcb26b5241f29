"""CLI subcommands contributed by plugins: `steerkit <name> ...` (e.g. `steerkit train-sae`).

The core's CLI adds one subparser per registered Command; the plugin's heavy imports belong in
`run`, so that `steerkit --help` stays fast.
"""

from __future__ import annotations

import abc
import argparse
from typing import ClassVar

__all__ = ["BUILTIN_COMMANDS", "Command"]

#: The commands of the core's CLI: no plugin can register these names.
BUILTIN_COMMANDS = ("plugins", "solvers")


class Command(abc.ABC):
    """A `steerkit` subcommand. Set `name` (the word after `steerkit`) and `help` (one line)."""

    name: ClassVar[str]
    help: ClassVar[str] = ""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments to its subparser (none by default)."""
        return None

    @abc.abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the work; print what the user should see; return the exit status (0: success).

        Raise an exception to fail: the CLI prints its first line and exits 1.
        """
