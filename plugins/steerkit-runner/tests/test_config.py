"""The config: every error names the key path and its line; the hash is of the parsed config;
every shipped config resolves through the registries."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from steerkit_runner import commands
from steerkit_runner._toml_lines import KeyLines, format_path
from steerkit_runner.config import (
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    load_config,
    parse_config,
    resolve_config,
    shipped_configs,
)

import steerkit

from .conftest import TINY_CONFIG


def line_number(text: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle` (an independent line finder)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def error_of(text: str, path: str = "bad.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path=path)
    return info.value


def test_the_tiny_config_parses_with_defaults() -> None:
    config = parse_config(TINY_CONFIG)
    assert config.run.name == "tiny" and config.run.seed == 0 and config.run.output_dir == "runs"
    assert config.dataset.name == "tiny-sentiment" and config.dataset.n_per_class == 16
    assert dict(config.dataset.params) == {"n_test": 6}
    assert config.probe.margin == 1.0 and isinstance(config.probe.margin, float)
    assert config.steering.alphas == (0.5, 1.0) and config.steering.split == "test"
    assert config.steering.on_failure == "record" and config.steering.max_inputs is None
    toy, shared, qp = config.methods
    assert toy.settings() == [("boost", 1.0), ("boost", 2.0)] and toy.label == "toy_direction"
    assert shared.settings() == [(None, None)]
    assert qp.solver == "path" and qp.params_for(1.0) == {"lam": 1.0}
    assert config.evaluation.metrics == ("toy_probe_shift", "toy_generation")
    assert config.sweep is not None and config.sweep.lam == (0.5, 2.0)
    assert config.sweep.mode == "per_input" and config.sweep.alphas == (1.0,)


def test_an_unknown_key_names_its_path_and_line() -> None:
    text = TINY_CONFIG.replace("alphas = [0.5, 1.0]", "alphas = [0.5, 1.0]\nalpha = 2.0")
    error = error_of(text)
    assert error.key == "steering.alpha"
    assert error.line == line_number(text, "alpha = 2.0")
    assert str(error).startswith(f"bad.toml:{error.line}: steering.alpha: unknown key 'alpha'")
    assert "alphas" in str(error)  # the keys that exist are listed


def test_an_unknown_table_names_its_line() -> None:
    text = TINY_CONFIG + "\n[evaluaton]\nmetrics = []\n"
    error = error_of(text)
    assert (error.key, error.line) == ("evaluaton", line_number(text, "[evaluaton]"))


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "reason"),
    [
        ("seed = 0", 'seed = "zero"', "run.seed", 'seed = "zero"', "expected an integer"),
        ("n_generate = 2", "n_generate = 2.5", "steering.n_generate", "n_generate", "integer"),
        ("alphas = [0.5, 1.0]", 'alphas = [0.5, "x"]', "steering.alphas[1]", "alphas", "number"),
        ("margin = 1.0", "margin = true", "probe.margin", "margin", "expected a number"),
        ("target_class = 1", 'target_class = "1"', "probe.target_class", "target_class", "int"),
        ("[steering]\n", '[steering]\nsplit = "dev"\n', "steering.split", "dev", "'test', 'train'"),
        ("lam = [1.0]", 'lam = [1.0, "big"]', "methods[2].lam[1]", "lam = [1.0,", "a number"),
        ("boost = [1.0, 2.0]", "boost = [1.0, 1.0]", "methods[0].boost", "boost", "distinct"),
    ],
)
def test_a_wrong_type_names_the_key_path_and_line(
    old: str, new: str, key: str, needle: str, reason: str
) -> None:
    text = TINY_CONFIG.replace(old, new, 1)
    assert text != TINY_CONFIG
    error = error_of(text)
    assert error.key == key
    assert error.line == line_number(text, needle)
    assert reason in str(error) and str(error).startswith(f"bad.toml:{error.line}: {key}: ")


def test_a_missing_required_key_names_its_table_line() -> None:
    text = TINY_CONFIG.replace('name = "tiny"\n', "")
    error = error_of(text)
    assert error.key == "run" and "missing required key 'name'" in str(error)
    assert error.line == line_number(text, "[run]")


def test_a_missing_table_is_named() -> None:
    text = TINY_CONFIG.replace("[probe]", "[probe_]")
    error = error_of(text)
    assert "probe_" in str(error) or "[probe]" in str(error)


def test_two_grids_in_one_method_table_are_rejected() -> None:
    text = TINY_CONFIG.replace("lam = [1.0]", "lam = [1.0]\neps = [2.0, 3.0]")
    error = error_of(text)
    assert error.key == "methods[2].eps" and "one grid per" in str(error)
    assert error.line == line_number(text, "eps = [2.0, 3.0]")


def test_the_same_unit_twice_is_rejected_and_a_label_fixes_it() -> None:
    text = TINY_CONFIG + '\n[[methods]]\nname = "toy_shared"\n'
    error = error_of(text)
    assert error.key == "methods[3].name" and "already in methods[1]" in str(error)
    assert error.line == len(text.splitlines())
    parse_config(text + 'label = "toy_shared_again"\n')


def test_bad_toml_syntax_is_a_config_error_with_file_and_line(tmp_path: Path) -> None:
    text = TINY_CONFIG.replace("margin = 1.0", "margin = = 1.0")
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.line == line_number(text, "margin = = 1.0")
    assert str(error).startswith(f"{path}:{error.line}: invalid TOML")
    assert isinstance(error, steerkit.SteerkitError)


def test_an_unknown_plugin_name_uses_the_registry_error_with_key_and_line(
    toy_host: steerkit.PluginHost,
) -> None:
    text = TINY_CONFIG.replace('name = "qp"', 'name = "qpp"')
    config = parse_config(text, path="bad.toml")
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    error = info.value
    assert error.key == "methods[2].name" and error.line == line_number(text, '"qpp"')
    message = str(error)
    assert message.startswith(f"bad.toml:{error.line}: methods[2].name: unknown steering method")
    assert "'qpp'" in message and "toy_direction" in message  # the registry lists what exists
    assert isinstance(error.__cause__, steerkit.UnknownPluginError)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        (
            'name = "toy_shared"',
            'name = "toy_shared"\nstrength = 2',
            "methods[1].strength",
            "strength",
        ),
        ('solver = "path"', 'solver = "pathh"', "methods[2].solver", '"pathh"'),
        ('"toy_generation"]', '"toy_generation", "bleu"]', "evaluation.metrics[2]", "bleu"),
        ("n_test = 6", "n_tests = 6", "dataset.n_tests", "n_tests"),
        ('name = "logistic"', 'name = "logistic"\nCC = 1.0', "probe.CC", "CC = 1.0"),
    ],
)
def test_unknown_names_and_params_are_found_at_resolution(
    toy_host: steerkit.PluginHost, old: str, new: str, key: str, needle: str
) -> None:
    text = TINY_CONFIG.replace(old, new, 1)
    assert text != TINY_CONFIG
    with pytest.raises(ConfigError) as info:
        resolve_config(parse_config(text, path="c.toml"))
    assert info.value.key == key
    assert info.value.line == line_number(text, needle)


def test_resolution_checks_a_grid_parameter_too(toy_host: steerkit.PluginHost) -> None:
    text = TINY_CONFIG.replace("lam = [1.0]", "lamda = [1.0]")
    with pytest.raises(ConfigError, match=r"methods\[2\]\.lamda: method 'qp' does not take"):
        resolve_config(parse_config(text))


@pytest.fixture
def host_with_baselines(steerkit_host_factory: Any) -> steerkit.PluginHost:
    import steerkit_baselines.plugin

    from .conftest import toy_plugins

    return steerkit_host_factory(*toy_plugins(), ("baselines", steerkit_baselines.plugin))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "expected"),
    [
        # a grid's bad value: the key names its index, the line is the grid's
        ("lam = [1.0]", "lam = [1.0, -0.5]", "methods[2].lam[1]", "lam = [1.0, -0.5]", "positive"),
        ("lam = [1.0]", "lam = [0.0]", "methods[2].lam[0]", "lam = [0.0]", "positive"),
        ("lam = [1.0]", "lam = -2", "methods[2].lam", "lam = -2", "positive"),
        (
            'name = "qp"\nsolver = "path"\nlam = [1.0]',
            'name = "socp"\neps = [1.0, 0.0]',
            "methods[2].eps[1]",
            "eps = [1.0, 0.0]",
            "positive",
        ),
        (
            'name = "qp"\nsolver = "path"\nlam = [1.0]',
            'name = "shared"\nkind = "socp"\neps = [-1.0]',
            "methods[2].eps[0]",
            "eps = [-1.0]",
            "positive",
        ),
        (
            'name = "qp"\nsolver = "path"\nlam = [1.0]',
            'name = "topk_features"\nk = 0',
            "methods[2].k",
            "k = 0",
            "an integer ≥ 1",
        ),
        (
            'name = "qp"\nsolver = "path"\nlam = [1.0]',
            'name = "single_feature"\nnormalize = "margins"',
            "methods[2].normalize",
            'normalize = "margins"',
            "one of 'margin', 'unit', 'none'",
        ),
        (
            'name = "qp"\nsolver = "path"\nlam = [1.0]',
            'name = "socp"',
            "methods[2]",
            'name = "socp"',
            "missing a required argument: 'eps'",
        ),
    ],
)
def test_method_values_are_checked_with_key_and_line(
    host_with_baselines: steerkit.PluginHost,
    old: str,
    new: str,
    key: str,
    needle: str,
    expected: str,
) -> None:
    """Non-positive λ or ε, k = 0 and the like used to pass validation (the run exited 0 with
    error rows); the method's own constructor now refuses them when the config is resolved."""
    text = TINY_CONFIG.replace(old, new, 1)
    assert text != TINY_CONFIG
    with pytest.raises(ConfigError) as info:
        resolve_config(parse_config(text, path="c.toml"))
    error = info.value
    assert (error.key, error.file) == (key, "c.toml")
    # a table's line is its [[methods]] header, just above its `name`
    assert error.line == line_number(text, needle) - (key == "methods[2]")
    assert expected in str(error)
    assert str(error).startswith(f"c.toml:{error.line}: {key}: method ")


def test_a_bad_method_value_stops_the_run_before_it_starts(
    toy_host: steerkit.PluginHost, write_config: Any, tmp_path: Path, tiny_source: Any
) -> None:
    from steerkit_runner.runner import run

    path = write_config(TINY_CONFIG.replace("lam = [1.0]", "lam = [1.0, -1.0]"))
    with pytest.raises(
        ConfigError, match=r"methods\[2\]\.lam\[1\]: method 'qp': expected a positive"
    ):
        run(path, progress=False, source=tiny_source, host=toy_host)
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_the_hash_is_of_the_parsed_config_not_the_bytes() -> None:
    base = parse_config(TINY_CONFIG)
    reordered = textwrap.dedent(
        """\
        # the same config: tables, keys and number spellings in another order
        [probe]
        margin = 1
        target_class = 1
        name = "logistic"

        [run]
        seed = 0
        name = "tiny"
        output_dir = "elsewhere"

        [source]
        name = "transformerlens"

        [dataset]
        n_test = 6
        n_per_class = 16
        name = "tiny-sentiment"

        [steering]
        max_new_tokens = 3
        n_generate = 2
        alphas = [0.5, 1]
        split = "test"

        [[methods]]
        boost = [1.0, 2.0]
        name = "toy_direction"

        [[methods]]
        name = "toy_shared"

        [[methods]]
        lam = [1.0]
        solver = "path"
        name = "qp"

        [evaluation]
        metrics = ["toy_probe_shift", "toy_generation"]
        """
    )
    assert parse_config(reordered).hash == base.hash
    assert re.fullmatch(r"[0-9a-f]{64}", base.hash)
    changed = parse_config(TINY_CONFIG.replace("margin = 1.0", "margin = 1.5"))
    assert changed.hash != base.hash
    method_order = parse_config(
        TINY_CONFIG.replace('name = "toy_shared"', 'name = "toy_shared"\nlabel = "x"')
    )
    assert method_order.hash != base.hash


def test_key_lines_handle_multiline_values_strings_and_arrays_of_tables() -> None:
    text = textwrap.dedent(
        """\
        [run]
        name = "x"   # a comment with = and [brackets]
        description = '''
        lam = 3
        [not.a.table]
        '''
        [steering]
        alphas = [
          0.5,   # [ not a bracket
          "]",
        ]
        "quoted key" = 1
        dotted.key = 2

        [[methods]]
        name = "a"
        [[methods]]
        name = "b"
        inline = { lam = 1, eps = [2, 3] }
        """
    )
    lines = KeyLines(text)
    assert lines.line_of(("run", "name")) == 2
    assert lines.line_of(("run", "description")) == 3
    assert ("run", "lam") not in lines.lines and ("not", "a", "table") not in lines.lines
    assert lines.line_of(("steering", "alphas", 1)) == 8
    assert lines.line_of(("steering", "quoted key")) == 12
    assert lines.line_of(("steering", "dotted", "key")) == 13
    assert lines.line_of(("methods", 0, "name")) == 16
    assert lines.line_of(("methods", 1, "name")) == 18
    assert lines.line_of(("methods", 1, "inline", "eps", 0)) == 19
    assert lines.line_of(("methods", 1, "missing")) == 17
    assert lines.line_of(("absent",)) is None
    assert format_path(("methods", 1, "inline", "eps", 0)) == "methods[1].inline.eps[0]"
    assert format_path(("a b",)) == '"a b"'


def test_shipped_configs_are_listed_and_the_default_is_there() -> None:
    configs = shipped_configs()
    expected = {
        f"{model}-{task}"
        for model in ("gpt2-small", "gemma-2-2b", "gemma-2-2b-it")
        for task in ("sst2", "civil_comments", "truthfulqa")
    } | {
        DEFAULT_CONFIG,
        "gemma-3-270m-offline-protocol",
        "smollm2-135m-instruct-offline-sentiment",
    }
    assert set(configs) == expected
    assert commands.DEFAULT_CONFIG == DEFAULT_CONFIG
    assert load_config(DEFAULT_CONFIG).run.name == DEFAULT_CONFIG
    with pytest.raises(ConfigError, match="no shipped config"):
        load_config("gemma-3-270m-online")


@pytest.mark.needs_plugins
@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_resolves_through_the_registries(name: str) -> None:
    host = steerkit.PluginHost()  # the installed plugins, through their entry points
    config = load_config(name)
    assert isinstance(config, Config) and config.path is not None
    classes = resolve_config(config, host)  # names and parameters; no model is loaded
    assert len(classes["methods"]) == len(config.methods) and classes["metrics"]
    assert config.sweep is not None
    names = {m.name for m in config.methods}
    assert {"qp", "socp", "shared", "no_steering", "caa_mean_diff"} <= names


def test_an_integer_grid_stays_integer() -> None:
    toy = parse_config(TINY_CONFIG.replace("boost = [1.0, 2.0]", "boost = [1, 2]")).methods[0]
    assert toy.grid == (1, 2) and all(type(v) is int for v in toy.grid)
    assert toy.params_for(2) == {"boost": 2}
    qp = parse_config(TINY_CONFIG.replace("lam = [1.0]", "lam = [1, 0.5]")).methods[2]
    assert qp.grid == (1.0, 0.5) and all(type(v) is float for v in qp.grid)
