"""Name collisions between real installed distributions: `steerkit-fixture-impostor` registers a
solver `path` and a method `no_steering` (first-party names), a command `run` (steerkit-runner's)
and `plugins` (built into steerkit), and a solver `fixture-reference` that the third-party
`steerkit-fixture-good` registers too. Its entry point is even called `path`, like
steerkit-path's, and its folder comes first on the path, so it loads first.

What must hold: no plugin loses its other names; a first-party name stays first-party whatever
the load order; a name two third parties share is refused at use, never picked by order;
automatic solver selection never uses the impostor; `steerkit run` stays the runner's and the
runner's other commands stay; `steerkit plugins` shows each conflict; and the user can choose
the other registration, explicitly, with STEERKIT_OVERRIDE_PLUGINS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from steerkit.plugins import FIRST_PARTY, OVERRIDE_ENV

from .fixtures import DEFAULT_SITE, installed_site, run_steerkit, steerkit_env, steerkit_json

pytestmark = [pytest.mark.venv, pytest.mark.needs_plugins]

IMPOSTOR = "steerkit-fixture-impostor"


@pytest.fixture(scope="module")
def site() -> Path:
    return installed_site(*DEFAULT_SITE, IMPOSTOR)


@pytest.fixture(scope="module")
def rows(site: Path) -> list[dict[str, Any]]:
    return steerkit_json("plugins", site=site)  # type: ignore[no-any-return]


def first_party_loaded(rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (r["kind"], r["name"], r["distribution"])
        for r in rows
        if r["status"] == "loaded" and r["distribution"] in FIRST_PARTY
    }


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def test_first_party_plugins_lose_nothing(rows: list[dict[str, Any]]) -> None:
    """Every first-party name is loaded from its own distribution, exactly as without the
    impostor: all eight baselines, the path solver, the runner's five commands."""
    without = steerkit_json("plugins", site=installed_site())
    assert first_party_loaded(rows) == first_party_loaded(without)
    baselines = {r["name"] for r in rows if r["distribution"] == "steerkit-baselines"}
    assert len(baselines) == 8 and "no_steering" in baselines
    assert one(rows, kind="solver", name="path", status="loaded")["distribution"] == (
        "steerkit-path"
    )
    assert one(rows, kind="steering_method", name="no_steering", status="loaded")[
        "distribution"
    ] == ("steerkit-baselines")
    commands = {r["name"] for r in rows if r["distribution"] == "steerkit-runner"}
    assert {"run", "sweep", "report", "steer", "configs"} <= commands
    assert [r for r in rows if r["status"] == "failed"] == [
        one(rows, distribution="steerkit-fixture-broken")
    ]


def test_every_collision_is_shown_and_the_impostor_keeps_its_own_names(
    rows: list[dict[str, Any]],
) -> None:
    own = one(rows, kind="solver", name="fixture-impostor-own")
    assert (own["distribution"], own["version"], own["status"]) == (IMPOSTOR, "6.6.6", "loaded")
    for kind, name, keeper in [
        ("solver", "path", "steerkit-path"),
        ("steering_method", "no_steering", "steerkit-baselines"),
        ("command", "run", "steerkit-runner"),
    ]:
        row = one(rows, kind=kind, name=name, distribution=IMPOSTOR)
        assert row["status"] == "conflict"
        assert f"{keeper} " in row["error"] and "keeps it" in row["error"]
        assert f"{OVERRIDE_ENV}={kind}:{name}=" in row["error"]
    builtin = one(rows, kind="command", name="plugins")
    assert (builtin["distribution"], builtin["status"]) == (IMPOSTOR, "conflict")
    assert "built in and cannot be replaced" in builtin["error"]
    # two third parties: neither is loaded, one row names both
    refused = one(rows, kind="solver", name="fixture-reference")
    assert refused["status"] == "conflict"
    assert "steerkit-fixture-good 1.2.3" in refused["error"] and IMPOSTOR in refused["error"]
    assert "neither is used" in refused["error"]


def select(site: Path, **env: str) -> dict[str, Any]:
    """In a fresh interpreter: which class automatic selection picks for a README-sized QP, what
    it answers, and what asking for `fixture-reference` by name says."""
    code = textwrap.dedent(
        """
        import json, numpy as np, steerkit
        rng = np.random.default_rng(0)
        problem = steerkit.SteeringProblem.qp(
            decoder=np.abs(rng.standard_normal((64, 16))),
            directions=rng.standard_normal(16), rhs=1.0, lam=1.0,
        )
        cls = steerkit.select_solver(problem)
        solution = steerkit.solve(problem)
        try:
            steerkit.select_solver(problem, "fixture-reference")
            named = "selected"
        except steerkit.DuplicatePluginError as e:
            named = str(e)
        print(json.dumps({
            "module": cls.__module__, "status": solution.status.value,
            "l1": None if solution.delta is None else float(np.abs(solution.delta).sum()),
            "violation": solution.violation, "named": named,
        }))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=steerkit_env(site, **env),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_automatic_selection_never_uses_the_impostor(site: Path) -> None:
    out = select(site)
    assert out["module"].startswith("steerkit_path"), out
    assert out["l1"] > 0 and out["violation"] <= 1e-6
    assert "registered by both" in out["named"] and "neither is used" in out["named"]


def test_the_cli_keeps_its_commands(site: Path) -> None:
    help_text = run_steerkit("--help", site=site)
    assert help_text.returncode == 0, help_text.stderr
    for command in ("run", "sweep", "report", "steer", "configs", "plugins", "solvers"):
        assert f"    {command} " in help_text.stdout or f"    {command}\n" in help_text.stdout
    run_help = run_steerkit("run", "--help", site=site)
    assert run_help.returncode == 0 and "impostor" not in run_help.stdout
    assert "--output-dir" in run_help.stdout or "config" in run_help.stdout
    table = run_steerkit("plugins", site=site)
    assert table.returncode == 0 and "impostor run" not in table.stdout
    assert "conflict" in table.stdout and "name conflicts" in table.stdout
    assert "steerkit plugin conflict" in table.stderr  # logged as a warning too


def test_an_explicit_override_chooses_the_other_registration(site: Path) -> None:
    choose = f"solver:path={IMPOSTOR}, command:run={IMPOSTOR},solver:fixture-reference=fixture-good"
    env = steerkit_env(site, **{OVERRIDE_ENV: choose})
    rows = steerkit_json("plugins", env=env)
    assert one(rows, kind="solver", name="path", status="loaded")["distribution"] == IMPOSTOR
    replaced = one(rows, kind="solver", name="path", distribution="steerkit-path")
    assert replaced["status"] == "replaced" and OVERRIDE_ENV in replaced["error"]
    chosen = one(rows, kind="solver", name="fixture-reference", status="loaded")
    assert chosen["distribution"] == "steerkit-fixture-good"
    # what was not chosen stays as it was
    assert one(rows, kind="steering_method", name="no_steering", status="loaded")[
        "distribution"
    ] == ("steerkit-baselines")
    out = select(site, **{OVERRIDE_ENV: choose})
    assert out["module"] == "steerkit_fixture_impostor" and out["named"] == "selected"
    # chosen explicitly, its zero vector still is not accepted as optimal (the core's check)
    assert out["status"] == "error" and out["l1"] is None
    result = run_steerkit("run", env=env)
    assert (result.returncode, result.stdout) == (0, "impostor run\n")


def test_a_malformed_or_unused_override_is_reported(site: Path) -> None:
    env = steerkit_env(site, **{OVERRIDE_ENV: "path=steerkit-x,solver:nope=steerkit-path"})
    rows = steerkit_json("plugins", env=env)
    settings = [r for r in rows if r["kind"] == "setting"]
    assert len(settings) == 2 and all(r["status"] == "failed" for r in settings)
    errors = " ".join(r["error"] for r in settings)
    assert "'path=steerkit-x' is not kind:name=plugin" in errors
    assert "registers no solver of that name" in errors
