"""steerkit.checks: the public checks plugins validate their inputs with. Each failure is a
ValidationError carrying owner, field, expected and received; no plugin imports a private core
module instead."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import steerkit
from steerkit import ValidationError, checks

REPO = Path(__file__).resolve().parent.parent


def refused(call: Any, *args: Any, **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call("Owner", "field", *args, **kwargs)
    assert str(info.value).startswith("Owner.field: expected ")
    return info.value


def test_the_module_is_public() -> None:
    assert "checks" in steerkit.__all__ and steerkit.checks is checks
    for name in checks.__all__:
        assert getattr(checks, name) is not None


@pytest.mark.parametrize(
    ("value", "minimum", "expected"),
    [(3, 1, 3), (np.int64(0), 0, 0), (-5, None, -5)],
)
def test_integer_accepts(value: Any, minimum: int | None, expected: int) -> None:
    result = checks.integer("Owner", "k", value, minimum=minimum)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "2", None])
def test_integer_refuses(value: Any) -> None:
    error = refused(checks.integer, value, minimum=1)
    assert (error.owner, error.field, error.expected, error.received) == (
        "Owner",
        "field",
        "an integer ≥ 1",
        repr(value),
    )


def test_optional_integer_and_its_wording() -> None:
    assert checks.optional_integer("O", "seed", None, minimum=0) is None
    assert checks.optional_integer("O", "seed", 4, minimum=0) == 4
    assert refused(checks.optional_integer, -1, minimum=0).expected == "an integer ≥ 0 or None"
    assert refused(checks.integer, 0, minimum=1, expected="a positive count").expected == (
        "a positive count"
    )


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "big", None])
def test_positive_scalar_refuses(value: Any) -> None:
    assert refused(checks.positive_scalar, value).expected == "a positive finite number"


def test_finite_number() -> None:
    assert checks.finite_number("O", "margin", -2) == -2.0
    assert checks.finite_number("O", "C", np.float32(0.5), positive=True) == 0.5
    assert refused(checks.finite_number, 2.0, at_most=1.0).expected == "a finite number ≤ 1.0"
    for value in [True, "1", float("nan"), None]:
        refused(checks.finite_number, value)
    assert refused(checks.finite_number, 0, positive=True).expected == "a positive finite number"


def test_fraction() -> None:
    assert checks.fraction("O", "test_size", 0.25) == 0.25
    assert checks.fraction("O", "threshold", 1, include_one=True) == 1.0
    for value in [0, 1, 1.5, -0.1, True, "0.5"]:
        assert refused(checks.fraction, value).expected == "a number in (0, 1)"
    assert refused(checks.fraction, 0.0, include_one=True).expected == "a number in (0, 1]"


def test_choice_and_string() -> None:
    assert checks.choice("O", "mode", "unit", ("margin", "unit")) == "unit"
    error = refused(checks.choice, "Unit", ("margin", "unit"))
    assert (error.expected, error.received) == ("one of 'margin', 'unit'", "'Unit'")
    refused(checks.choice, 1, ("margin",))
    assert checks.string("O", "sep", " ") == " "
    assert refused(checks.string, 3).expected == "a string"


def test_arrays() -> None:
    array = checks.float_array("O", "x", [[1, 2], [3, 4]], ndim=2)
    assert array.dtype == np.float64 and not array.flags.writeable
    error = refused(checks.float_array, [[1.0, np.nan]], ndim=2)
    assert "1 NaN or infinite entry (first at index (0, 1)" in error.received
    assert refused(checks.float_array, [1.0, 2.0], ndim=2).expected == "a 2-d array"
    assert refused(checks.to_numpy, ["a", "b"]).expected == "an array of numbers"
    assert checks.describe(np.zeros((2, 3))) == "ndarray of shape (2, 3) and dtype float64"


def _private_core_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [m for m in modules if m.startswith("steerkit._")]
    return found


def test_no_plugin_imports_a_private_core_module() -> None:
    sources = sorted(REPO.glob("plugins/*/steerkit_*/**/*.py"))
    assert len(sources) > 40
    offenders = {str(p.relative_to(REPO)): m for p in sources if (m := _private_core_imports(p))}
    assert offenders == {}
