"""Registries: names, provenance, unknown and duplicate names."""

from __future__ import annotations

import pytest

from steerkit import DuplicatePluginError, PluginError, Solver, UnknownPluginError
from steerkit.registry import Origin, Registry

from .toy_plugins import OneConstraintSolver, ReferenceSolver


def test_records_the_origin_of_each_name() -> None:
    registry: Registry[Solver] = Registry("solver", Solver)
    origin = Origin("toy", "steerkit-toy", "1.2")
    registry.bind(origin)(ReferenceSolver)
    registry.bind(origin)(ReferenceSolver, name="alias")
    assert registry.names() == ["alias", "toy-reference"]
    entry = registry.entry("toy-reference")
    assert entry.obj is ReferenceSolver and entry.origin == origin and entry.kind == "solver"
    assert "alias" in registry and len(registry) == 2


def test_unknown_name_lists_the_available_ones() -> None:
    registry: Registry[Solver] = Registry("solver", Solver)
    registry.add(ReferenceSolver, origin=Origin("a"))
    registry.add(OneConstraintSolver, origin=Origin("a"))
    with pytest.raises(UnknownPluginError) as info:
        registry.get("clarabel")
    message = str(info.value)
    assert "unknown solver 'clarabel'" in message
    assert "available: toy-one-constraint, toy-reference" in message
    assert info.value.available == ["toy-one-constraint", "toy-reference"]


def test_duplicate_names_both_distributions_at_registration_and_at_use() -> None:
    registry: Registry[Solver] = Registry("solver", Solver)
    registry.add(ReferenceSolver, origin=Origin("one", "steerkit-one", "1.0"))
    with pytest.raises(DuplicatePluginError) as info:
        registry.add(ReferenceSolver, origin=Origin("two", "steerkit-two", "2.0"))
    assert "steerkit-one 1.0" in str(info.value) and "steerkit-two 2.0" in str(info.value)
    with pytest.raises(DuplicatePluginError, match="steerkit-one 1.0 and steerkit-two 2.0"):
        registry.get("toy-reference")


@pytest.mark.parametrize("obj", [object, ReferenceSolver(), "cvxpy"])
def test_only_subclasses_of_the_interface_register(obj: object) -> None:
    registry: Registry[Solver] = Registry("solver", Solver)
    with pytest.raises(PluginError, match="expected a subclass of steerkit.Solver"):
        registry.add(obj, origin=Origin("bad", "steerkit-bad", "0.1"))


@pytest.mark.parametrize("name", ["", "has space", "-leading", None])
def test_names_must_be_usable(name: object) -> None:
    class Nameless(ReferenceSolver):
        pass

    Nameless.name = name  # type: ignore[assignment]
    registry: Registry[Solver] = Registry("solver", Solver)
    with pytest.raises(PluginError, match="needs a `name`"):
        registry.add(Nameless, origin=Origin("bad"))
