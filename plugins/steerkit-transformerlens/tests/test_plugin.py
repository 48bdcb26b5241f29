"""Discovery: the source is found through the `steerkit` entry point, and finding it imports
neither torch nor transformer_lens nor sae_lens."""

from __future__ import annotations

import subprocess
import sys

from steerkit_transformerlens import plugin
from steerkit_transformerlens.commands import TrainSAECommand
from steerkit_transformerlens.source import TransformerLensSource

import steerkit


def test_registered_through_the_entry_point() -> None:
    host = steerkit.PluginHost()  # a fresh host reading the installed entry points
    entry = host.registry("activation_source").entry("transformerlens")
    assert entry.obj is TransformerLensSource
    assert entry.origin.distribution == "steerkit-transformerlens"
    command = host.registry("command").entry("train-sae")
    assert command.obj is TrainSAECommand
    assert command.origin.distribution == "steerkit-transformerlens"
    assert not [r for r in host.failures if r.distribution == "steerkit-transformerlens"]


def test_registered_by_the_plugin_module_alone() -> None:
    host = steerkit.PluginHost(entry_points=False, plugins=[("transformerlens", plugin)])
    assert host.registry("activation_source").get("transformerlens") is TransformerLensSource
    assert host.registry("command").names() == ["train-sae"]
    assert issubclass(TransformerLensSource, steerkit.ActivationSource)


def test_discovery_imports_nothing_heavy() -> None:
    code = (
        "import sys, steerkit; steerkit.get_host().registry('activation_source'); "
        "steerkit.get_host().registry('command'); "
        "import steerkit_transformerlens.plugin; "
        "print(sorted(m for m in ('torch', 'transformer_lens', 'sae_lens', 'transformers', "
        "'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
