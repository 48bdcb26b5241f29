"""The CLI commands: `steerkit run`, `sweep`, `report`, `steer`, `features`, `export` and `configs`.

Nothing heavy is imported here: the runner, models and plotting load inside `run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from steerkit.command import Command

__all__ = [
    "ConfigsCommand",
    "ExportCommand",
    "FeaturesCommand",
    "ReportCommand",
    "RunCommand",
    "SteerCommand",
    "SweepCommand",
]

#: A copy of config.DEFAULT_CONFIG (a test checks they agree): configuring the CLI stays light.
DEFAULT_CONFIG = "gemma-3-270m-offline-sentiment"


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where run directories go (default: the config's run.output_dir, './runs')",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start a fresh run directory even if this config already has one",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--no-report", action="store_true", help="do not write the report")
    parser.add_argument(
        "--executor",
        default=None,
        help="where the units run: 'local' (this process) or 'ray' (a Ray cluster), or another "
        "registered executor (default: the config's [execution] executor, 'local')",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="the executor's cluster: for Ray, 'auto' (the cluster `ray start` runs here), "
        "HOST:PORT or ray://HOST:10001 (default: the config's, else a local Ray)",
    )


def _run_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `run` and `sweep` that `_run_options` adds to a command."""
    return {
        "resume": not args.no_resume,
        "progress": not args.no_progress,
        "output_dir": args.output_dir,
        "report": not args.no_report,
        "executor": args.executor,
        "address": args.address,
    }


def _layers(text: str) -> list[int]:
    """`--layers 3,6,9` as [3, 6, 9]."""
    try:
        layers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected block indices separated by commas (e.g. 3,6,9), received {text!r}"
        ) from None
    if not layers or min(layers) < 0:
        raise argparse.ArgumentTypeError(f"expected block indices ≥ 0, received {text!r}")
    return layers


def time_line(seconds: float, timings: Mapping[str, float], *, top: int = 5) -> str:
    """'time: 514 s (generation 232 s, metric fluency 113 s, …)': the wall-clock time and the
    stages that took most of it."""
    largest = sorted(timings.items(), key=lambda item: -item[1])[:top]
    parts = [f"{name.replace('.', ' ')} {value:.0f} s" for name, value in largest if value >= 0.5]
    return f"time: {seconds:.0f} s" + (f" ({', '.join(parts)})" if parts else "")


def _print_result(result: Any) -> None:
    from steerkit_runner.report import run_table

    print(f"run directory: {result.run_dir}")
    if result.units_skipped:
        print(
            f"resumed: {result.units_skipped} units were already done, {result.units_run} "
            "computed now"
        )
    for line in result.skipped_lines:
        print(f"note: results.jsonl line {line.line} ignored ({line.reason})")
    for note in result.notes:
        print(f"note: {note}")
    print()
    print(run_table(result.run_dir))
    print()
    if result.failed_units:
        print(f"{len(result.failed_units)} units failed (recorded in results.jsonl):")
        for failure in result.failed_units[:20]:
            print(f"  {failure}")
        if len(result.failed_units) > 20:
            print(f"  ... and {len(result.failed_units) - 20} more")
    print(time_line(result.seconds, result.timings))
    if result.report is not None:
        print(f"report: {result.report}")


def _source_params(items: list[str] | None) -> dict[str, Any]:
    """`--source-param KEY=VALUE` items as a dict; VALUE is read as JSON when it parses (numbers,
    true/false), else kept as a string."""
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--source-param expects KEY=VALUE, received {item!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        out[key.strip()] = value
    return out


class RunCommand(Command):
    """Run a config end to end: results, vectors, generations and the report."""

    name: ClassVar[str] = "run"
    help: ClassVar[str] = (
        "run a config (a TOML file or a shipped config's name; default: the offline "
        "Gemma-3-270M sentiment config) and write its report"
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "config",
            nargs="?",
            default=DEFAULT_CONFIG,
            help=f"a TOML file or a shipped config (`steerkit configs`); default: {DEFAULT_CONFIG}",
        )
        _run_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_runner.runner import run

        result = run(args.config, **_run_arguments(args))
        _print_result(result)
        return 0


class SweepCommand(Command):
    """The Pareto sweep over a config's [sweep] λ and ε grids (and layers)."""

    name: ClassVar[str] = "sweep"
    help: ClassVar[str] = (
        "sweep λ (QP) and ε (SOCP) from a config's [sweep] table, per input or shared, and "
        "report the Pareto frontiers"
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", help="a TOML file or a shipped config's name")
        parser.add_argument(
            "--mode",
            choices=("per_input", "shared"),
            default=None,
            help="per-input QP/SOCP or one shared vector (default: the config's sweep.mode)",
        )
        parser.add_argument(
            "--layers",
            type=_layers,
            default=None,
            help="sweep these blocks, one run (probe, SAE, activations) each, e.g. 3,6,9 "
            "(default: the config's sweep.layers, else the [source]'s layer)",
        )
        _run_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_runner.runner import sweep_layers

        results = sweep_layers(args.config, args.layers, mode=args.mode, **_run_arguments(args))
        for result in results:
            _print_result(result)
        return 0


class ReportCommand(Command):
    """Write (again) the report of a run directory."""

    name: ClassVar[str] = "report"
    help: ClassVar[str] = "write the Markdown report (with plots) of a run directory"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run directory (it has results.jsonl)")

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_runner.report import write_report

        run_dir: Path = args.run_dir
        if not (run_dir / "results.jsonl").is_file():
            raise FileNotFoundError(f"{run_dir} is not a run directory: it has no results.jsonl")
        path = write_report(run_dir)
        print(f"report: {path}")
        return 0


class SteerCommand(Command):
    """Generate with a saved steering vector."""

    name: ClassVar[str] = "steer"
    help: ClassVar[str] = (
        "generate from prompts with a saved steering vector (.safetensors + .json sidecar), "
        "printing the unsteered and steered continuations"
    )
    #: Tests (and embedders) may supply the source instead of building it from the sidecar:
    #: called with the sidecar dict.
    source_factory: ClassVar[Callable[[dict[str, Any]], Any] | None] = None

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("vector_file", type=Path, help="NAME.safetensors (or NAME.json)")
        parser.add_argument(
            "--prompt", action="append", required=True, help="a prompt (repeat for several)"
        )
        parser.add_argument(
            "--alpha", type=float, default=None, help="scale α (default: the vector's own, 1)"
        )
        parser.add_argument("--max-new-tokens", type=int, default=32, help="default: 32")
        parser.add_argument(
            "--source-param",
            action="append",
            metavar="KEY=VALUE",
            help="a parameter of the vector's source, replacing the recorded one (repeat for "
            "several; e.g. preset=gemma-3-270m-offline)",
        )
        parser.add_argument(
            "--device", default=None, help="torch device for the source (default: its own)"
        )
        parser.add_argument(
            "--index",
            type=int,
            default=None,
            help="for a per-input stack (*_inputs.safetensors): the input id (default: first)",
        )
        parser.add_argument("--seed", type=int, default=0, help="default: 0")

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_runner.steer import steer_prompts
        from steerkit_runner.vectors import read_sidecar

        if args.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be ≥ 1, received {args.max_new_tokens}")
        sidecar = read_sidecar(args.vector_file)
        factory = type(self).source_factory
        source = factory(sidecar) if factory is not None else None
        continuations = steer_prompts(
            args.vector_file,
            args.prompt,
            alpha=args.alpha,
            max_new_tokens=args.max_new_tokens,
            index=args.index,
            source=source,
            params=_source_params(args.source_param),
            device=args.device,
            seed=args.seed,
        )
        what = sidecar.get("label") or sidecar.get("method")
        setting = f" {sidecar['param']}={sidecar['value']:g}" if sidecar.get("param") else ""
        print(f"vector: {what}{setting} at {sidecar.get('hook_point')}")
        for item in continuations:
            print()
            print(f"prompt:    {item.prompt}")
            print(f"unsteered: {item.unsteered}")
            print(f"steered (α={item.alpha:g}): {item.steered}")
        return 0


class FeaturesCommand(Command):
    """Print the feature cards of chosen SAE feature ids."""

    name: ClassVar[str] = "features"
    help: ClassVar[str] = (
        "print feature cards (logit-lens tokens, output score, top contexts, dead flag) of SAE "
        "feature ids, for a config's source and dataset or from a run directory"
    )
    #: Tests (and embedders) may supply the source and dataset instead of building them from
    #: the config: called with the Config, returning (source, dataset).
    factory: ClassVar[Callable[[Any], tuple[Any, Any]] | None] = None

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("feature_ids", type=int, nargs="+", metavar="FEATURE_ID")
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--config",
            default=None,
            help=f"a TOML file or a shipped config's name (default: {DEFAULT_CONFIG})",
        )
        where.add_argument(
            "--run-dir",
            type=Path,
            default=None,
            help="a run directory: its features.json cards, with each feature's share of inputs "
            "(features it lacks are computed from the run's config)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_runner.features import (
            card_lines,
            describe_features,
            method_supports,
            read_features,
        )

        ids = list(dict.fromkeys(args.feature_ids))
        cards: dict[int, Any] = {}
        supports: dict[str, Any] = {}
        n_texts = None
        config: Any = args.config or DEFAULT_CONFIG
        if args.run_dir is not None:
            from steerkit_runner.report import RunView

            view = RunView(args.run_dir)
            supports = method_supports(view.rows, view.optimal())
            saved = read_features(args.run_dir) or {}
            n_texts = saved.get("n_texts")
            cards = {c["feature"]: c for c in saved.get("cards", []) if c.get("feature") in ids}
            config = args.run_dir / "config.toml"
        missing = [f for f in ids if f not in cards]
        if missing:
            from steerkit_runner.config import load_config

            config = load_config(config)
            factory = type(self).factory
            source, dataset = factory(config) if factory is not None else (None, None)
            computed = describe_features(config, missing, source=source, dataset=dataset)
            n_texts = computed.get("n_texts")
            cards.update({c["feature"]: c for c in computed["cards"]})
        for f in ids:
            shares = {
                m: (sum(f in s for s in by_input.values()), len(by_input))
                for m, by_input in supports.items()
            }
            shares = {m: v for m, v in shares.items() if v[0]}
            print("\n".join(card_lines(cards[f], shares or None, n_texts)))
        return 0


class ExportCommand(Command):
    """Write a saved vector in a format another engine reads."""

    name: ClassVar[str] = "export"
    help: ClassVar[str] = (
        "write a saved steering vector as a llama.cpp control vector (gguf-control), a repeng "
        "GGUF, an lm-evaluation-harness steer file (lm-eval-csv, lm-eval-pt), or plain "
        "safetensors / numpy; exits 2 when the format cannot carry the vector"
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from steerkit_runner.export import FORMATS

        parser.add_argument("vector_file", type=Path, help="NAME.safetensors (or NAME.json)")
        parser.add_argument("--format", required=True, choices=list(FORMATS), dest="fmt")
        parser.add_argument(
            "--output", "-o", type=Path, default=None, help="default: NAME + the format's suffix"
        )
        parser.add_argument(
            "--index", type=int, default=None, help="for a per-input stack: the input id"
        )
        parser.add_argument(
            "--model-hint",
            default=None,
            help="GGUF controlvector.model_hint (default: the sidecar's model; repeng expects "
            "the Hugging Face model_type)",
        )
        parser.add_argument("--sae-release", default=None, help="lm-eval-csv: sparse_model")
        parser.add_argument("--sae-id", default=None, help="lm-eval-csv: sae_id")
        parser.add_argument("--force", action="store_true", help="overwrite the output file")

    def run(self, args: argparse.Namespace) -> int:
        import sys

        from steerkit_runner.export import ExportUnsupportedError, export_vector

        try:
            out = export_vector(
                args.vector_file,
                args.fmt,
                args.output,
                index=args.index,
                model_hint=args.model_hint,
                sae_release=args.sae_release,
                sae_id=args.sae_id,
                overwrite=args.force,
            )
        except ExportUnsupportedError as e:
            print(f"steerkit export: {args.fmt} cannot carry this vector: {e}", file=sys.stderr)
            return 2
        print(f"{args.fmt}: {out}")
        return 0


class ConfigsCommand(Command):
    """List the configs shipped with steerkit-runner."""

    name: ClassVar[str] = "configs"
    help: ClassVar[str] = "list the shipped configs (`steerkit run NAME` runs one)"

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_runner.config import ConfigError, load_config, shipped_configs

        configs = shipped_configs()
        width = max((len(n) for n in configs), default=0)
        for name, path in configs.items():
            try:
                description = load_config(path).run.description
            except ConfigError as e:
                description = f"(invalid: {e})"
            marker = " (default)" if name == DEFAULT_CONFIG else ""
            print(f"{name.ljust(width)}  {description}{marker}")
        return 0
