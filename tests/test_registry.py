"""Registries: names, provenance, unknown and duplicate names."""

from __future__ import annotations

import pytest

from steerkit import DuplicatePluginError, PluginError, Solver, UnknownPluginError
from steerkit.registry import Origin, Rank, Registry

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


def _ranked(kind: str = "solver") -> Registry[Solver]:
    """A registry whose ranks mark distributions starting with 'first-' as first-party, and
    'chosen' as the user's choice, the way the plugin host ranks them."""

    def rank(name: str, origin: Origin) -> Rank:
        distribution = origin.distribution or ""
        if distribution == "chosen":
            return Rank.CHOSEN
        return Rank.FIRST_PARTY if distribution.startswith("first-") else Rank.PLAIN

    return Registry(kind, Solver, rank=rank)


@pytest.mark.parametrize("first_party_first", [True, False])
def test_a_first_party_name_is_kept_whatever_the_order(first_party_first: bool) -> None:
    registry = _ranked()
    first_party, impostor = Origin("p", "first-path", "1.0"), Origin("x", "impostor", "6.6")
    order = [first_party, impostor] if first_party_first else [impostor, first_party]
    for origin in order:
        registry.bind(origin, raise_conflicts=False)(ReferenceSolver)
        registry.bind(origin, raise_conflicts=False)(
            OneConstraintSolver, name=f"own-{origin.plugin}"
        )
    assert registry.entry("toy-reference").origin == first_party
    assert registry.names() == ["own-p", "own-x", "toy-reference"]
    (conflict,) = registry.conflicts()
    assert conflict.kept is not None and conflict.kept.origin == first_party
    assert [e.origin for e in conflict.losers] == [impostor]
    assert "first-path 1.0 keeps it" in str(conflict.error)
    assert "STEERKIT_OVERRIDE_PLUGINS=solver:toy-reference=" in str(conflict.error)


def test_a_losing_registration_raises_and_the_chosen_one_wins() -> None:
    registry = _ranked()
    registry.add(ReferenceSolver, origin=Origin("p", "first-path"))
    with pytest.raises(DuplicatePluginError, match="first-path keeps it"):
        registry.add(ReferenceSolver, origin=Origin("x", "impostor"))
    registry.add(ReferenceSolver, origin=Origin("c", "chosen"))  # outranks both: no error
    assert registry.entry("toy-reference").origin.distribution == "chosen"
    assert len(registry.conflicts()[0].losers) == 2


def test_ties_are_refused_at_use_and_left_out_of_the_listing() -> None:
    registry = _ranked()
    registry.add(OneConstraintSolver, origin=Origin("a", "steerkit-a"))
    registry.add(ReferenceSolver, origin=Origin("a", "steerkit-a"))
    with pytest.raises(DuplicatePluginError):
        registry.add(ReferenceSolver, origin=Origin("b", "steerkit-b"))
    with pytest.raises(DuplicatePluginError):
        registry.add(ReferenceSolver, origin=Origin("c", "steerkit-c"))
    assert registry.names() == ["toy-one-constraint"] and "toy-reference" not in registry
    assert len(registry) == 1 and [e.name for e in registry.entries()] == ["toy-one-constraint"]
    with pytest.raises(DuplicatePluginError, match="steerkit-a, steerkit-b and steerkit-c"):
        registry.get("toy-reference")


def test_a_reserved_name_cannot_be_registered() -> None:
    registry = _ranked()
    registry.reserve("toy-reference", Origin("steerkit", "steerkit"))
    with pytest.raises(DuplicatePluginError, match="steerkit keeps it .it is built in"):
        registry.add(ReferenceSolver, origin=Origin("c", "chosen"))
    assert "toy-reference" not in registry
    (conflict,) = registry.conflicts()
    assert conflict.builtin is not None and [e.origin.plugin for e in conflict.losers] == ["c"]
