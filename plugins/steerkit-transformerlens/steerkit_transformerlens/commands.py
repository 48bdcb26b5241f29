"""`steerkit train-sae`: train (or show) the SAE of the offline Gemma-3-270M.

Nothing heavy is imported here: torch, TransformerLens and sae-lens load inside `run`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, ClassVar

from steerkit.command import Command

__all__ = ["TrainSAECommand"]

# Copies of sae_training's defaults, so that `steerkit --help` imports nothing heavy; a test
# checks that they agree.
DEFAULT_LAYER = 6
DEFAULT_HOOK = "resid_post"
DEFAULT_D_SAE = 4096
DEFAULT_K = 32
DEFAULT_TOKENS = 150_000
DEFAULT_EPOCHS = 5
HOOKS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


class TrainSAECommand(Command):
    """Train the offline model's SAE at one hook point and cache it (or show the cached one)."""

    name: ClassVar[str] = "train-sae"
    help: ClassVar[str] = (
        "train the SAE of the offline Gemma-3-270M at a layer (cached; --force retrains)"
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--layer", type=int, default=DEFAULT_LAYER, help="block index, 0–17 (default: 6)"
        )
        parser.add_argument(
            "--hook", choices=HOOKS, default=DEFAULT_HOOK, help="hook point (default: resid_post)"
        )
        parser.add_argument(
            "--d-sae", type=int, default=DEFAULT_D_SAE, help="number of features (default: 4096)"
        )
        parser.add_argument(
            "--k", type=int, default=DEFAULT_K, help="active features per token (default: 32)"
        )
        parser.add_argument(
            "--tokens",
            type=int,
            default=DEFAULT_TOKENS,
            help="tokens of text whose activations are extracted (default: 150000)",
        )
        parser.add_argument(
            "--epochs", type=int, default=DEFAULT_EPOCHS, help="passes over them (default: 5)"
        )
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        parser.add_argument(
            "--force", action="store_true", help="train again even if the SAE is cached"
        )
        parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")

    def run(self, args: argparse.Namespace) -> int:
        from steerkit_transformerlens.sae_training import offline_sae_with_report

        start = time.perf_counter()
        _, report = offline_sae_with_report(
            layer=args.layer,
            hook=args.hook,
            device=args.device,
            force=args.force,
            d_sae=args.d_sae,
            k=args.k,
            n_tokens=args.tokens,
            epochs=args.epochs,
            seed=args.seed,
        )
        wall = time.perf_counter() - start
        stats: dict[str, Any] = report.stats.get("report", {})
        if report.trained:
            print(f"trained the SAE for blocks.{args.layer}.hook_{args.hook}")
        else:
            print(
                f"the SAE for blocks.{args.layer}.hook_{args.hook} is already trained "
                "(--force trains it again); its training figures:"
            )
        print(f"  saved in            {report.path}")
        print(f"  features            {stats.get('d_sae')} (k = {stats.get('k')})")
        print(
            f"  tokens              {stats.get('train_tokens')} training, "
            f"{stats.get('heldout_tokens')} held out, {stats.get('epochs')} epochs"
        )
        print(f"  explained variance  {stats.get('explained_variance', float('nan')):.4f}")
        print(f"  mean L0             {stats.get('mean_l0', float('nan')):.2f}")
        print(f"  dead fraction       {stats.get('dead_fraction', float('nan')):.4f}")
        if report.trained:
            print(f"  model conversion    {report.seconds_conversion:.1f} s")
            print(f"  model loading       {report.seconds_model - report.seconds_conversion:.1f} s")
            print(f"  activations         {stats.get('seconds_extract', 0.0):.1f} s")
            print(f"  SAE training        {stats.get('seconds_train', 0.0):.1f} s")
            print(f"  evaluation          {stats.get('seconds_evaluate', 0.0):.1f} s")
        print(f"  wall time           {wall:.1f} s")
        return 0
