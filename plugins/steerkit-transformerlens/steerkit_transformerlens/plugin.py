"""Entry point: registers the `transformerlens` activation source and the `train-sae` command.

Importing this module imports neither torch nor transformer_lens nor sae_lens: they load when a
source is first used (or a command runs).
"""

from __future__ import annotations

from steerkit import Register, hookimpl
from steerkit_transformerlens.commands import TrainSAECommand
from steerkit_transformerlens.source import TransformerLensSource


@hookimpl
def register_activation_sources(register: Register) -> None:
    register(TransformerLensSource)


@hookimpl
def register_commands(register: Register) -> None:
    register(TrainSAECommand)
