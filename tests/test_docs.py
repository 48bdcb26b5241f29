"""The documentation says what the code does: every hook with its exact signature, every
interface's abstract methods, every public name, the CLI's JSON fields, the backends table; its
runnable examples run; and the set-up files agree with the README.

Signatures are rendered from the real functions with `inspect.signature`, so renaming a hook or
changing its parameters fails here until docs/plugins.md says the same.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import steerkit
from steerkit import PluginHost, hookspecs
from steerkit.plugins import KINDS, PluginRow
from steerkit.solve import SolverInfo

from .fixtures import REPO, steerkit_env

DOCS = REPO / "docs"
EXAMPLE = DOCS / "examples" / "steerkit-tinyqp"
METRIC_EXAMPLE = DOCS / "examples" / "steerkit-textstats"
MARKDOWN = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
RUN_MARKER = "# test: run"


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def annotation_text(annotation: Any) -> str:
    """An annotation as it is written in the source: `Register`, `int | None`, `Splits`."""
    if isinstance(annotation, str):  # `from __future__ import annotations`
        return annotation
    if isinstance(annotation, type):
        return annotation.__qualname__
    return inspect.formatannotation(annotation)


class _Written(str):
    def __repr__(self) -> str:
        return str(self)


def signature_text(name: str, function: Callable[..., Any]) -> str:
    """`name(params) -> return`, as the source spells it."""
    signature = inspect.signature(function)
    parameters = [
        p
        if p.annotation is inspect.Parameter.empty
        else p.replace(annotation=_Written(annotation_text(p.annotation)))
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    if returns is not inspect.Signature.empty:
        returns = _Written(annotation_text(returns))
    return name + str(signature.replace(parameters=parameters, return_annotation=returns))


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    """The functions pluggy knows as hook specifications of the `steerkit` project."""
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if callable(function) and hasattr(function, "steerkit_spec")
    }


# -- hooks and interfaces ---------------------------------------------------------------------


def test_signature_text_renders_what_the_source_says() -> None:
    def example(self: Any, *, seed: int = 0, n: int | None = None) -> list[str]:
        raise AssertionError

    assert signature_text("example", example) == (
        "example(self: Any, *, seed: int = 0, n: int | None = None) -> list[str]"
    )


def test_every_hookspec_is_documented_with_its_exact_signature() -> None:
    specs = hookspec_functions()
    assert set(specs) == {hook for hook, _ in KINDS.values()}, "one hook per interface"
    plugins_md = text(DOCS / "plugins.md")
    for name, function in specs.items():
        signature = signature_text(name, function)
        assert f"\n{signature}\n" in plugins_md, f"docs/plugins.md lacks the line `{signature}`"
        assert f"### `{name}`" in plugins_md, f"docs/plugins.md has no section for {name}"


def test_plugins_md_documents_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `(register_\w+)`$", text(DOCS / "plugins.md"), re.M))
    assert documented == set(hookspec_functions())


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_interface_and_its_abstract_methods_are_documented(kind: str) -> None:
    hook, interface = KINDS[kind]
    plugins_md = text(DOCS / "plugins.md")
    section = plugins_md.split(f"### `{hook}`", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    assert f"`steerkit.{interface.__name__}`" in section
    assert interface.__abstractmethods__, f"{interface.__name__} has no abstract method"
    for name in sorted(interface.__abstractmethods__):
        member = inspect.getattr_static(interface, name)
        function = member.fget if isinstance(member, property) else member
        signature = signature_text(name, function)
        assert f"`{signature}`" in section, f"the {hook} section lacks `{signature}`"


def test_every_public_class_and_function_appears_in_the_docs() -> None:
    docs = "\n".join(text(p) for p in [*DOCS.rglob("*.md"), *DOCS.rglob("*.py")])
    public = [
        name
        for name in steerkit.__all__
        if inspect.isclass(getattr(steerkit, name)) or inspect.isfunction(getattr(steerkit, name))
    ]
    assert len(public) > 30
    missing = [name for name in public if not re.search(rf"\b{re.escape(name)}\b", docs)]
    assert not missing, f"public names never mentioned in docs/: {missing}"


def test_cli_md_documents_every_json_field() -> None:
    cli_md = text(DOCS / "cli.md")
    for cls in (PluginRow, SolverInfo):
        for field in attrs.fields(cls):
            assert f"`{field.name}`" in cli_md, f"docs/cli.md lacks {cls.__name__}.{field.name}"
    capabilities = steerkit.Solver.capabilities()
    for key in capabilities:
        assert f"`{key}`" in cli_md, f"docs/cli.md lacks the capability {key}"


def test_relative_links_resolve() -> None:
    for path in MARKDOWN:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text(path)):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


# -- runnable examples --------------------------------------------------------------------------


def runnable_blocks() -> list[Any]:
    blocks = []
    for path in MARKDOWN:
        source = text(path)
        for match in re.finditer(r"^```python\n(.*?)^```", source, re.M | re.S):
            code = match.group(1)
            first = code.splitlines()[0]
            if not first.startswith(RUN_MARKER):
                continue
            line = source.count("\n", 0, match.start()) + 1
            marks = [pytest.mark.needs_plugins] if "needs_plugins" in first else []
            blocks.append(pytest.param(code, id=f"{path.relative_to(REPO)}:{line}", marks=marks))
    return blocks


def test_there_are_runnable_examples() -> None:
    ids = [b.id for b in runnable_blocks()]
    assert any(i.startswith("README.md") for i in ids)
    assert any(i.startswith("docs/plugins.md") for i in ids)
    assert len(ids) >= 4


@pytest.mark.parametrize("code", runnable_blocks())
def test_runnable_example(code: str, tmp_path: Path) -> None:
    """Each `# test: run` block runs in a fresh interpreter, the example plugin importable."""
    assert "assert " in code, "a runnable example must check what it shows"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=examples_env(),
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def examples_env() -> dict[str, str]:
    """The environment with both documented example plugins importable."""
    env = steerkit_env(EXAMPLE)
    env["PYTHONPATH"] = os.pathsep.join([str(METRIC_EXAMPLE), env["PYTHONPATH"]])
    return env


# -- the example plugin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        (EXAMPLE, "steerkit_tinyqp.py"),
        (EXAMPLE, "pyproject.toml"),
        (EXAMPLE, "test_steerkit_tinyqp.py"),
        (METRIC_EXAMPLE, "steerkit_textstats.py"),
        (METRIC_EXAMPLE, "pyproject.toml"),
        (METRIC_EXAMPLE, "test_steerkit_textstats.py"),
    ],
)
def test_example_plugin_is_in_the_docs_verbatim(folder: Path, name: str) -> None:
    fence = "toml" if name.endswith(".toml") else "python"
    assert f"```{fence}\n{text(folder / name)}```" in text(DOCS / "plugins.md")


def run_example_tests(folder: Path, tests: str, tmp_path: Path) -> str:
    """pytest on an example plugin's test module in a fresh interpreter; its summary line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={tmp_path}",
            str(folder / tests),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=steerkit_env(folder),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "skipped" not in summary and "error" not in summary
    return summary


def test_example_plugin_passes_its_own_tests(tmp_path: Path) -> None:
    """The documented plugin's test module (conformance suite and fixtures) passes."""
    summary = run_example_tests(EXAMPLE, "test_steerkit_tinyqp.py", tmp_path)
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 30, summary


def test_metric_example_passes_its_own_tests(tmp_path: Path) -> None:
    """The documented metric plugin's test module passes, against hand counts."""
    summary = run_example_tests(METRIC_EXAMPLE, "test_steerkit_textstats.py", tmp_path)
    assert re.search(r"\b2 passed\b", summary), summary


# -- the backends table ---------------------------------------------------------------------------


def backends_table() -> dict[str, dict[str, str]]:
    section = text(DOCS / "solvers.md").split("## The backends", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        row = dict(zip(header, cells))
        rows[row["backend"]] = row
    return rows


def first_party_distributions() -> set[str]:
    return {p.parent.name for p in (REPO / "plugins").glob("*/pyproject.toml")}


@pytest.mark.needs_plugins
def test_backends_table_matches_the_installed_first_party_backends() -> None:
    table = backends_table()
    first_party = first_party_distributions()
    infos = {
        i.name: i
        for i in steerkit.available_solvers(host=PluginHost(allow=None, block=()))
        if i.distribution in first_party
    }
    assert infos, "no first-party backend is installed"
    assert set(table) == set(infos), "docs/solvers.md: backends listed ≠ backends registered"
    for name, info in infos.items():
        row, caps = table[name], info.capabilities
        expected = {
            "distribution": info.distribution,
            "solves": ", ".join(k.upper() for k in caps["kinds"]),
            "max k": "any" if caps["max_constraints"] is None else str(caps["max_constraints"]),
            "priority": str(caps["priority"]),
            "batch": "yes" if caps["batch"] else "no",
            "install": info.install,
        }
        assert {k: row[k] for k in expected} == expected, f"docs/solvers.md row for {name}"
    # listed in the order automatic selection tries them
    assert list(table) == sorted(infos, key=lambda n: (-infos[n].capabilities["priority"], n))


# -- set-up files ---------------------------------------------------------------------------------


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = text(REPO / "README.md")
    assert "bash scripts/setup.sh" in readme
    assert "bash scripts/test.sh" in readme
    ci = [
        line.strip()
        for line in text(REPO / ".ci" / "run").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci[0] == "set -euo pipefail"
    assert ci[-1] == "bash scripts/test.sh"


def test_requirements_install_every_first_party_plugin() -> None:
    lines = {line.strip() for line in text(REPO / "requirements.txt").splitlines()}
    installed = {re.sub(r"\[.*\]$", "", line[3:]) for line in lines if line.startswith("-e ")}
    assert "." in installed
    expected = {f"./plugins/{name}" for name in first_party_distributions()}
    assert expected <= installed, f"requirements.txt lacks {sorted(expected - installed)}"
    assert "torch==2.13.0" in lines
