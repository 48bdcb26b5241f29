"""Real third-party distributions, pip-installed into a temporary folder, seen by a fresh
`steerkit` process: discovered with their distribution name and version, a broken one reported
while everything else keeps working, and the allow- and block-lists honoured.

The distributions are in tests/fixtures/ (and docs/examples/steerkit-tinyqp, the documented
example plugin); see tests/fixtures/__init__.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from steerkit.plugins import ALLOW_ENV, BLOCK_ENV

from .fixtures import REPO, installed_site, run_steerkit, steerkit_env, steerkit_json

pytestmark = pytest.mark.venv


@pytest.fixture(scope="module")
def site() -> Path:
    return installed_site()


def rows_of(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def test_fixtures_are_real_installed_distributions(site: Path) -> None:
    """pip wrote .dist-info folders whose entry points name the `steerkit` group."""
    for dist, version in [
        ("steerkit_fixture_good", "1.2.3"),
        ("steerkit_fixture_broken", "0.0.1"),
        ("steerkit_tinyqp", "0.1.0"),
    ]:
        info = site / f"{dist}-{version}.dist-info"
        assert (info / "METADATA").is_file(), sorted(p.name for p in site.iterdir())
        assert "[steerkit]" in (info / "entry_points.txt").read_text()


def test_installed_plugin_is_listed_with_its_distribution(site: Path) -> None:
    rows = steerkit_json("plugins", site=site)
    solvers = rows_of(rows, kind="solver", distribution="steerkit-fixture-good")
    assert {r["name"] for r in solvers} == {"fixture-reference", "fixture-missing"}
    for row in solvers:
        assert row["version"] == "1.2.3"
        assert row["plugin"] == "fixture-good"  # the entry point's name
        assert row["status"] == "loaded"
        assert row["error"] is None
    (tiny,) = rows_of(rows, kind="solver", name="tinyqp")
    assert (tiny["distribution"], tiny["version"], tiny["status"]) == (
        "steerkit-tinyqp",
        "0.1.0",
        "loaded",
    )


def test_broken_plugin_is_reported_and_nothing_else_changes(site: Path) -> None:
    result = run_steerkit("plugins", "--json", site=site)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    (broken,) = rows_of(rows, distribution="steerkit-fixture-broken")
    assert broken["status"] == "failed"
    assert broken["name"] == "fixture-broken"
    assert broken["version"] == "0.0.1"
    assert "RuntimeError" in broken["error"]
    assert "fails on import on purpose" in broken["error"]
    assert "steerkit_fixture_broken" in broken["error"]  # names the module that failed
    # the failure is logged as a warning, on stderr, never on stdout (which stays JSON)
    assert "fixture-broken" in result.stderr

    # every other row is exactly what it is with the broken plugin blocked
    without = steerkit_json("plugins", env=steerkit_env(site, **{BLOCK_ENV: "fixture-broken"}))
    others = [r for r in rows if r["distribution"] != "steerkit-fixture-broken"]
    assert others == [r for r in without if r["distribution"] != "steerkit-fixture-broken"]
    assert rows_of(others, status="failed") == []
    assert len(rows_of(others, status="loaded")) >= 3


def test_solvers_and_import_still_work_beside_a_broken_plugin(site: Path) -> None:
    infos = {i["name"]: i for i in steerkit_json("solvers", site=site)}
    assert infos["fixture-reference"]["installed"] is True
    assert infos["fixture-reference"]["distribution"] == "steerkit-fixture-good"
    assert infos["fixture-reference"]["version"] == "1.2.3"
    missing = infos["fixture-missing"]
    assert missing["installed"] is False
    assert "steerkit_fixture_module_that_is_not_installed" in missing["reason"]
    assert missing["install"] == "steerkit-fixture-extra"
    assert infos["tinyqp"]["capabilities"]["kinds"] == ["qp"]

    table = run_steerkit("solvers", site=site)
    assert table.returncode == 0, table.stderr
    assert "fixture-reference" in table.stdout
    assert "pip install steerkit-fixture-extra" in table.stdout


def test_installed_solver_solves_through_the_registry(site: Path) -> None:
    """In a fresh interpreter: import steerkit beside the broken plugin, pick the third-party
    backends by name, and check a QP whose optimum is known by hand.

    D = I (2 features, d_model 2), w = (1, 0), r = 1, λ = 1: min δ₁ + δ₂ + ½(δ₁² + δ₂²)
    s.t. δ₁ ≥ 1 gives δ = (1, 0), objective 1.5.
    """
    code = textwrap.dedent(
        """
        import json, numpy as np, steerkit
        failed = [r.name for r in steerkit.list_plugins() if r.status == "failed"]
        problem = steerkit.SteeringProblem.qp(
            decoder=np.eye(2), directions=[1.0, 0.0], rhs=1.0, lam=1.0
        )
        out = {"failed": failed}
        for name in ("fixture-reference", "tinyqp"):
            s = steerkit.solve(problem, name)
            out[name] = [s.status.value, s.solver, list(s.delta), s.objective]
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=steerkit_env(site),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["failed"] == ["fixture-broken"]
    for name in ("fixture-reference", "tinyqp"):
        status, solver, delta, objective = out[name]
        assert (status, solver) == ("optimal", name)
        assert delta == pytest.approx([1.0, 0.0], abs=1e-7)
        assert objective == pytest.approx(1.5, abs=1e-7)


def test_allow_list_loads_only_the_named_plugins(site: Path) -> None:
    # by entry-point name
    rows = steerkit_json("plugins", env=steerkit_env(site, **{ALLOW_ENV: "fixture-good"}))
    loaded = rows_of(rows, status="loaded")
    assert {r["name"] for r in loaded} == {"fixture-reference", "fixture-missing"}
    # nothing else was imported: the broken plugin is blocked, not failed
    (broken,) = rows_of(rows, distribution="steerkit-fixture-broken")
    assert broken["status"] == "blocked"
    assert ALLOW_ENV in broken["error"]
    assert rows_of(rows, status="failed") == []

    # by distribution name, spelt with underscores and capitals (names are normalised)
    rows = steerkit_json(
        "plugins", env=steerkit_env(site, **{ALLOW_ENV: "Steerkit_TinyQP, fixture-good"})
    )
    assert {r["name"] for r in rows_of(rows, status="loaded")} == {
        "fixture-reference",
        "fixture-missing",
        "tinyqp",
    }

    # set but empty: no entry-point plugin loads, and `steerkit solvers` lists none
    env = steerkit_env(site, **{ALLOW_ENV: ""})
    assert rows_of(steerkit_json("plugins", env=env), status="loaded") == []
    assert steerkit_json("solvers", env=env) == []


def test_block_list_skips_the_named_plugins(site: Path) -> None:
    env = steerkit_env(site, **{BLOCK_ENV: "steerkit-fixture-good,fixture-broken"})
    rows = steerkit_json("plugins", env=env)
    for dist, name in [
        ("steerkit-fixture-good", "fixture-good"),
        ("steerkit-fixture-broken", "fixture-broken"),
    ]:
        (row,) = rows_of(rows, distribution=dist)
        assert (row["kind"], row["name"], row["status"]) == ("plugin", name, "blocked")
        assert BLOCK_ENV in row["error"]
    assert rows_of(rows, name="tinyqp", status="loaded")
    names = {i["name"] for i in steerkit_json("solvers", env=env)}
    assert "tinyqp" in names
    assert not names & {"fixture-reference", "fixture-missing"}


THIRD_PARTY_METRIC_RUN = """
import functools, sys
sys.path.insert(0, {tests!r})
import conftest
import steerkit
from steerkit.cli import main
from steerkit_runner import runner
from steerkit_transformerlens.source import TransformerLensSource

model, sae = conftest.tiny_model_and_sae()
source = TransformerLensSource(model=model, sae=sae, hook_point=conftest.HOOK, cache=False,
                               progress=False)
runner.run = functools.partial(runner.run, source=source)
# every installed plugin (entry points), and the runner tests' tiny dataset and toy methods
host = steerkit.PluginHost(plugins=[("toy", conftest.ToyPlugin())])
with steerkit.use_host(host):
    sys.exit(main(["run", {config!r}, "--no-progress"]))
"""


@pytest.mark.needs_plugins
@pytest.mark.needs_torch
def test_a_third_party_metric_shows_in_the_printed_table_and_the_report(
    site: Path, tmp_path: Path
) -> None:
    """The documented example metric (docs/examples/steerkit-textstats), pip-installed: a run
    that names it computes its columns, and both the printed comparison and report.md show them
    under the headers the metric declares — with no change to the runner."""
    tests = REPO / "plugins" / "steerkit-runner" / "tests"
    sys.path.insert(0, str(tests))
    try:
        import conftest  # the runner tests' tiny config
    finally:
        sys.path.remove(str(tests))
    text = conftest.TINY_CONFIG.replace(
        'metrics = ["toy_probe_shift", "toy_generation"]',
        'metrics = ["toy_probe_shift", "textstats"]',
    ).replace("seed = 0\n", f'seed = 0\noutput_dir = "{tmp_path / "runs"}"\n', 1)
    assert '"textstats"' in text
    config = tmp_path / "tiny.toml"
    config.write_text(text, encoding="utf-8")
    code = THIRD_PARTY_METRIC_RUN.format(tests=str(tests), config=str(config))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=steerkit_env(site, STEERKIT_CACHE_DIR=str(tmp_path / "cache")),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert re.search(r"\bwords +distinct\b", header)  # the headers the metric declares
    qp = next(line for line in lines if line.startswith("qp"))
    assert re.search(r" \d+\.\d%( |$)", qp)  # distinct words in the metric's own format, ".1%"

    run_dir = Path(lines[0].removeprefix("run directory: "))
    report = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    table_header = next(line for line in report.splitlines() if line.startswith("| method |"))
    assert "| words | distinct |" in table_header
    assert "**distinct**: share of the generation's words that are distinct" in report
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    with_text = [r for r in rows if r["words"] is not None]
    assert with_text and all(0 < r["distinct_words"] <= 1 for r in with_text if r["words"])
