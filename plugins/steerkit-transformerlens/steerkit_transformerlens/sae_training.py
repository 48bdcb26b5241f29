"""The SAE steerkit trains itself for the offline model, with sae-lens's training runner.

`train_sae` tokenises English text into fixed-length sequences, runs the model once up to the
hook (a forward pass is the expensive part on a CPU), keeps a held-out share of the sequences
aside, writes the other activations where sae-lens's `LanguageModelSAETrainingRunner` reads
cached activations, and trains a BatchTopK SAE on them for several epochs (sae-lens saves it as a
JumpReLU SAE, the architecture of Gemma Scope). It then loads the saved SAE back with
`SAE.load_from_disk` and measures it on the held-out activations by hand: explained variance,
mean L0 and the fraction of features that never fire.

`offline_sae` is the cached entry point the offline preset uses: the SAE for (model, layer,
hook) is trained on first use and loaded from the steerkit cache afterwards.

BOS positions are left out of training and evaluation: Gemma's residual stream at the first
position is an outlier of a far larger norm than any text token, and steering never acts there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from steerkit.checks import integer
from steerkit.errors import SteerkitError, ValidationError
from steerkit_transformerlens.integrity import damage, manifest
from steerkit_transformerlens.paths import cache_root

if TYPE_CHECKING:
    import torch
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

__all__ = [
    "DEFAULT_BATCH_SIZE_TOKENS",
    "DEFAULT_CONTEXT_SIZE",
    "DEFAULT_D_SAE",
    "DEFAULT_EPOCHS",
    "DEFAULT_HOOK",
    "DEFAULT_K",
    "DEFAULT_LAYER",
    "DEFAULT_TOKENS",
    "HOOKS",
    "STATS_FILE",
    "OfflineSAEReport",
    "SAEMetrics",
    "TrainReport",
    "evaluate_sae",
    "extract_activations",
    "hook_name",
    "offline_sae",
    "offline_sae_folder",
    "offline_sae_for_source",
    "offline_sae_with_report",
    "sae_metrics",
    "token_sequences",
    "train_on_activations",
    "train_sae",
    "train_sae_from_source",
]

logger = logging.getLogger(__name__)

#: Layer 6 of 18, a third of the way in: past the layers that mostly hold token identity, where
#: linear directions for properties such as sentiment are commonly found in small models, and a
#: forward pass up to it runs 7 of the 18 blocks, so twice as many tokens fit the CPU budget as
#: at the layers Gemma Scope 2 covers (12, 15).
DEFAULT_LAYER = 6
DEFAULT_HOOK = "resid_post"
DEFAULT_D_SAE = 4096
#: Average number of active features per token (BatchTopK's k).
DEFAULT_K = 32
#: Distinct text tokens whose activations are extracted (training plus held-out).
DEFAULT_TOKENS = 150_000
DEFAULT_EPOCHS = 5
DEFAULT_CONTEXT_SIZE = 128
#: 512 tokens per step: as fast per token as 1024 on 2 cores, twice the steps, and far fewer
#: dead features at the end (2.6 % against 11.6 % held out, 150k tokens × 5 epochs).
DEFAULT_BATCH_SIZE_TOKENS = 512
#: Learning rate of BatchTopK's threshold EMA (sae-lens's default, 0.01, needs ~500 steps).
THRESHOLD_LR = 0.05
#: Written last into an SAE folder: its presence means training finished.
STATS_FILE = "training_stats.json"
#: Hook points of a block that an SAE can be trained on.
HOOKS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


def hook_name(layer: int, hook: str) -> str:
    """The TransformerLens hook name, e.g. `blocks.6.hook_resid_post`."""
    if hook not in HOOKS:
        raise ValidationError("train_sae", "hook", f"one of {HOOKS}", repr(hook))
    layer = integer("train_sae", "layer", layer, minimum=0, expected="a non-negative integer")
    return f"blocks.{layer}.hook_{hook}"


@attrs.frozen
class SAEMetrics:
    """How well an SAE reconstructs a set of activations (all computed by hand).

    `explained_variance` is 1 − ‖x − x̂‖² / ‖x − x̄‖² over all tokens (x̄ the per-dimension mean);
    `mean_l0` the mean number of non-zero features per token; `dead_fraction` the share of
    features that are zero on every token of the set.
    """

    explained_variance: float
    mean_l0: float
    dead_fraction: float
    n_tokens: int


@attrs.frozen
class TrainReport:
    """The outcome of `train_sae`: the SAE's held-out quality, the data it saw, the times."""

    path: Path
    hook_name: str
    d_in: int
    d_sae: int
    k: int
    explained_variance: float
    mean_l0: float
    dead_fraction: float
    train_tokens: int
    heldout_tokens: int
    epochs: int
    seconds_extract: float
    seconds_train: float
    seconds_evaluate: float

    @property
    def tokens(self) -> int:
        """Distinct tokens whose activations were extracted (training plus held-out)."""
        return self.train_tokens + self.heldout_tokens

    @property
    def seconds(self) -> float:
        return self.seconds_extract + self.seconds_train + self.seconds_evaluate

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["path"] = str(self.path)
        out["tokens"] = self.tokens
        out["seconds"] = self.seconds
        return out


def sae_metrics(x: torch.Tensor, x_hat: torch.Tensor, features: torch.Tensor) -> SAEMetrics:
    """Explained variance, mean L0 and dead fraction of x (n × d) → features (n × d_sae) → x̂."""
    if x.ndim != 2 or x.shape != x_hat.shape or features.shape[0] != x.shape[0]:
        raise ValidationError(
            "sae_metrics",
            "shapes",
            "x and x_hat (n, d), features (n, d_sae)",
            f"{tuple(x.shape)}, {tuple(x_hat.shape)}, {tuple(features.shape)}",
        )
    x64, x_hat64 = x.double(), x_hat.double()
    residual = ((x64 - x_hat64) ** 2).sum()
    total = ((x64 - x64.mean(dim=0)) ** 2).sum()
    active = features != 0
    return SAEMetrics(
        explained_variance=float(1.0 - residual / total),
        mean_l0=float(active.sum(dim=1).double().mean()),
        dead_fraction=float((~active.any(dim=0)).double().mean()),
        n_tokens=int(x.shape[0]),
    )


def evaluate_sae(sae: SAE[Any], activations: torch.Tensor, *, batch_size: int = 4096) -> SAEMetrics:
    """`sae_metrics` of `sae` on activations (n × d_in), encoded and decoded in batches."""
    import torch

    x_hat, active = [], []
    with torch.no_grad():
        for start in range(0, activations.shape[0], batch_size):
            x = activations[start : start + batch_size].to(sae.device, sae.dtype)
            f = sae.encode(x)
            x_hat.append(sae.decode(f).float().cpu())
            active.append((f != 0).cpu())
    features = torch.cat(active)
    return sae_metrics(activations.float(), torch.cat(x_hat), features)


def token_sequences(
    tokenizer: Any, texts: Sequence[str], *, context_size: int, n_tokens: int
) -> torch.Tensor:
    """Texts joined by blank lines and cut into rows of BOS + (context_size − 1) tokens.

    Returns a LongTensor (n_rows, context_size) with ceil(n_tokens / (context_size − 1)) rows;
    fails if the texts hold fewer tokens.
    """
    import torch

    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise ValidationError(
            "token_sequences", "tokenizer", "a tokenizer with a BOS token", "none"
        )
    if context_size < 2:
        raise ValidationError("token_sequences", "context_size", ">= 2", str(context_size))
    per_row = context_size - 1
    n_rows = math.ceil(n_tokens / per_row)
    needed = n_rows * per_row
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for start in range(0, len(texts), 256):
        batch = tokenizer(list(texts[start : start + 256]), add_special_tokens=False)
        for ids in batch["input_ids"]:
            stream.extend(ids)
            stream.extend(separator)
        if len(stream) >= needed:
            break
    if len(stream) < needed:
        raise ValidationError(
            "token_sequences", "n_tokens", f"at most {len(stream)} (all the texts)", str(n_tokens)
        )
    body = torch.tensor(stream[:needed], dtype=torch.long).reshape(n_rows, per_row)
    return torch.cat([torch.full((n_rows, 1), bos, dtype=torch.long), body], dim=1)


def extract_activations(
    model: HookedTransformer, tokens: torch.Tensor, *, name: str, batch_size: int = 16
) -> torch.Tensor:
    """Activations at hook `name` for each row of tokens: (n_rows, context_size, d), float32.

    The forward pass stops after the hook's block.
    """
    import torch
    from tqdm.auto import tqdm

    layer = int(name.split(".")[1])
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for start in tqdm(
            range(0, tokens.shape[0], batch_size), desc=f"Activations {name}", unit="batch"
        ):
            batch = tokens[start : start + batch_size].to(model.cfg.device)
            _, cache = model.run_with_cache(batch, names_filter=name, stop_at_layer=layer + 1)
            out.append(cache[name].float().cpu())
    return torch.cat(out)


def _write_cached_activations(
    acts: torch.Tensor, *, name: str, context_size: int, folder: Path
) -> int:
    """Write tokens × d activations as sae-lens's cached-activation dataset (rows of
    context_size tokens); returns the number of tokens written (a multiple of context_size)."""
    from datasets import Array2D, Dataset, Features

    n_rows = acts.shape[0] // context_size
    d_in = acts.shape[1]
    rows = acts[: n_rows * context_size].reshape(n_rows, context_size, d_in).numpy()
    features = Features({name: Array2D(shape=(context_size, d_in), dtype="float32")})
    dataset = Dataset.from_dict({name: rows}, features=features)
    dataset.save_to_disk(str(folder))
    return n_rows * context_size


def train_sae(
    model: HookedTransformer,
    *,
    layer: int,
    hook: str = DEFAULT_HOOK,
    texts: Sequence[str],
    d_sae: int = DEFAULT_D_SAE,
    k: int = DEFAULT_K,
    n_tokens: int = DEFAULT_TOKENS,
    epochs: int = DEFAULT_EPOCHS,
    context_size: int = DEFAULT_CONTEXT_SIZE,
    heldout_fraction: float = 0.1,
    batch_size_tokens: int = DEFAULT_BATCH_SIZE_TOKENS,
    lr: float = 1e-3,
    model_batch_size: int = 16,
    out_dir: Path | str,
    model_name: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    extra_stats: dict[str, Any] | None = None,
) -> TrainReport:
    """Train a BatchTopK SAE (d_sae features, k active on average) on `model`'s activations at
    `blocks.{layer}.hook_{hook}` over `n_tokens` tokens of `texts`, and save it in sae-lens's
    format in `out_dir` (`SAE.load_from_disk(out_dir)` loads it) with `training_stats.json`.

    A `heldout_fraction` of the token rows is never trained on; the report's explained
    variance, mean L0 and dead fraction are measured on it with the saved SAE.
    """
    name = hook_name(layer, hook)
    if layer >= model.cfg.n_layers:
        raise ValidationError(
            "train_sae", "layer", f"below the model's {model.cfg.n_layers} layers", str(layer)
        )

    def read(tokens: torch.Tensor) -> torch.Tensor:
        return extract_activations(model, tokens, name=name, batch_size=model_batch_size)

    return _train_from_reader(
        read,
        model.tokenizer,
        model=model,
        name=name,
        texts=texts,
        d_sae=d_sae,
        k=k,
        n_tokens=n_tokens,
        epochs=epochs,
        context_size=context_size,
        heldout_fraction=heldout_fraction,
        batch_size_tokens=batch_size_tokens,
        lr=lr,
        out_dir=Path(out_dir),
        model_name=model_name or model.cfg.model_name,
        seed=seed,
        device=device,
        extra_stats={"layer": layer, "hook": hook, **(extra_stats or {})},
    )


def train_sae_from_source(
    source: Any,
    *,
    texts: Sequence[str],
    d_sae: int = DEFAULT_D_SAE,
    k: int = DEFAULT_K,
    n_tokens: int = DEFAULT_TOKENS,
    epochs: int = DEFAULT_EPOCHS,
    context_size: int = DEFAULT_CONTEXT_SIZE,
    heldout_fraction: float = 0.1,
    batch_size_tokens: int = DEFAULT_BATCH_SIZE_TOKENS,
    lr: float = 1e-3,
    model_batch_size: int = 16,
    out_dir: Path | str,
    model_name: str,
    seed: int = 0,
    device: str = "cpu",
    extra_stats: dict[str, Any] | None = None,
) -> TrainReport:
    """`train_sae` for any activation source that reads every position of token rows: the SAE
    is trained at `source.hook_point` on the activations `source.token_activations(rows)`
    returns ((rows, context_size) token ids in, (rows, context_size, d_model) float out; the
    Hugging Face source has it), with the texts tokenised by `source.tokenizer`. Same data
    preparation, trainer, held-out measurement and saved layout as `train_sae`; no
    TransformerLens model is involved (sae-lens reads the cached activations only)."""
    reader = getattr(source, "token_activations", None)
    tokenizer = getattr(source, "tokenizer", None)
    if not callable(reader) or tokenizer is None:
        raise ValidationError(
            "train_sae_from_source",
            "source",
            "a source with `tokenizer` and `token_activations(token_rows)` (every position's "
            "activation at its hook point), e.g. steerkit_huggingface.HuggingFaceSource",
            type(source).__name__,
        )
    name = str(source.hook_point)
    layer, hook = _layer_and_hook("train_sae_from_source", name)
    model_batch_size = integer(
        "train_sae_from_source", "model_batch_size", model_batch_size, minimum=1
    )

    def read(tokens: torch.Tensor) -> torch.Tensor:
        import torch
        from tqdm.auto import tqdm

        out = []
        for start in tqdm(
            range(0, tokens.shape[0], model_batch_size), desc=f"Activations {name}", unit="batch"
        ):
            acts = reader(tokens[start : start + model_batch_size])
            out.append(torch.as_tensor(acts).float().cpu())
        return torch.cat(out)

    return _train_from_reader(
        read,
        tokenizer,
        model=_CachedActivationsOnly(device),
        name=name,
        texts=texts,
        d_sae=d_sae,
        k=k,
        n_tokens=n_tokens,
        epochs=epochs,
        context_size=context_size,
        heldout_fraction=heldout_fraction,
        batch_size_tokens=batch_size_tokens,
        lr=lr,
        out_dir=Path(out_dir),
        model_name=model_name,
        seed=seed,
        device=device,
        extra_stats={
            "layer": layer,
            "hook": hook,
            "source": getattr(source, "name", type(source).__name__),
            **(extra_stats or {}),
        },
    )


def _layer_and_hook(owner: str, hook_point: str) -> tuple[int, str]:
    """(L, NAME) of a hook point `blocks.L.hook_NAME`."""
    parts = hook_point.split(".")
    if len(parts) != 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValidationError(owner, "source.hook_point", "blocks.L.hook_NAME", repr(hook_point))
    if not parts[2].startswith("hook_"):
        raise ValidationError(owner, "source.hook_point", "blocks.L.hook_NAME", repr(hook_point))
    return int(parts[1]), parts[2].removeprefix("hook_")


class _CachedActivationsOnly:
    """What sae-lens's runner is handed as its model when the activations come from elsewhere:
    it reads cached activations only, and asks the model for nothing but its device."""

    tokenizer = None

    def __init__(self, device: str) -> None:
        self.cfg = type("Cfg", (), {"device": device})()


def _train_from_reader(
    read: Any,
    tokenizer: Any,
    *,
    model: Any,
    name: str,
    texts: Sequence[str],
    d_sae: int,
    k: int,
    n_tokens: int,
    epochs: int,
    context_size: int,
    heldout_fraction: float,
    batch_size_tokens: int,
    lr: float,
    out_dir: Path,
    model_name: str,
    seed: int,
    device: str,
    extra_stats: dict[str, Any],
) -> TrainReport:
    """Token rows from `texts`, their activations from `read` (rows in, (rows, ctx, d) out),
    BOS dropped, a held-out share set aside, the rest shuffled and trained on."""
    import torch

    for field, value, low in (("d_sae", d_sae, 1), ("k", k, 1), ("epochs", epochs, 1)):
        if value < low:
            raise ValidationError("train_sae", field, f">= {low}", str(value))
    if k > d_sae:
        raise ValidationError("train_sae", "k", f"<= d_sae ({d_sae})", str(k))
    if not 0.0 < heldout_fraction < 1.0:
        raise ValidationError("train_sae", "heldout_fraction", "in (0, 1)", str(heldout_fraction))

    start = time.perf_counter()
    tokens = token_sequences(tokenizer, texts, context_size=context_size, n_tokens=n_tokens)
    n_heldout = max(1, round(heldout_fraction * tokens.shape[0]))
    if n_heldout >= tokens.shape[0]:
        raise ValidationError(
            "train_sae",
            "n_tokens",
            "enough tokens for a training and a held-out row",
            str(n_tokens),
        )
    acts = read(tokens)
    if tuple(acts.shape[:2]) != tuple(tokens.shape) or acts.ndim != 3:
        raise ValidationError(
            "train_sae",
            "activations",
            f"(rows, context_size, d_model) with rows, context_size = {tuple(tokens.shape)}",
            str(tuple(acts.shape)),
        )
    acts = acts[:, 1:]  # drop BOS
    d_in = acts.shape[-1]
    heldout = acts[-n_heldout:].reshape(-1, d_in)
    train = acts[:-n_heldout].reshape(-1, d_in)
    generator = torch.Generator().manual_seed(seed)
    train = train[torch.randperm(train.shape[0], generator=generator)]
    del acts
    seconds_extract = time.perf_counter() - start

    return train_on_activations(
        train,
        heldout,
        tokens=tokens[:-n_heldout],
        model=model,
        name=name,
        d_sae=d_sae,
        k=k,
        epochs=epochs,
        context_size=context_size,
        batch_size_tokens=batch_size_tokens,
        lr=lr,
        out_dir=out_dir,
        model_name=model_name,
        seed=seed,
        device=device,
        seconds_extract=seconds_extract,
        extra_stats=extra_stats,
    )


def train_on_activations(
    train: torch.Tensor,
    heldout: torch.Tensor,
    *,
    tokens: torch.Tensor,
    model: Any,
    name: str,
    d_sae: int,
    k: int,
    epochs: int,
    context_size: int,
    batch_size_tokens: int,
    lr: float,
    out_dir: Path,
    model_name: str,
    seed: int,
    device: str,
    seconds_extract: float = 0.0,
    extra_stats: dict[str, Any] | None = None,
) -> TrainReport:
    """The training half of `train_sae`: activations (tokens × d_in, already shuffled) in,
    trained and evaluated SAE saved in `out_dir`. `tokens` are the token rows the training
    activations came from (the runner's dataset; it reads only the cached activations)."""
    import signal

    import torch
    from sae_lens import (
        SAE,
        BatchTopKTrainingSAEConfig,
        LanguageModelSAERunnerConfig,
        LanguageModelSAETrainingRunner,
        LoggingConfig,
        TrainingSAE,
        TrainingSAEConfig,
    )

    d_in = train.shape[1]
    # the decoder bias starts at the data's mean (in the runner's scaled units): a residual
    # stream far from the origin otherwise hands the same few features every token, and the
    # rest die before they learn anything
    mean = train.double().mean(dim=0)
    scale = math.sqrt(d_in) / float(train.double().norm(dim=1).mean())
    start = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".train-sae-", dir=out_dir.parent) as tmp:
        cached = Path(tmp) / "activations"
        n_train = _write_cached_activations(
            train, name=name, context_size=context_size, folder=cached
        )
        total = n_train * epochs
        steps = total // batch_size_tokens
        if steps < 1:
            raise ValidationError(
                "train_sae", "n_tokens", f"at least one batch of {batch_size_tokens}", str(n_train)
            )
        sae_cfg = BatchTopKTrainingSAEConfig(
            d_in=d_in,
            d_sae=d_sae,
            k=float(k),
            dtype="float32",
            device=device,
            normalize_activations="expected_average_only_in",
            # the threshold saved for inference is an EMA of the batches' smallest kept
            # activation; a short run needs it to settle within a few dozen steps
            topk_threshold_lr=THRESHOLD_LR,
        )
        cfg = LanguageModelSAERunnerConfig(
            sae=sae_cfg,
            model_name=model_name,
            hook_name=name,
            dataset_path="",
            is_dataset_tokenized=True,
            streaming=False,
            context_size=context_size,
            use_cached_activations=True,
            cached_activations_path=str(cached),
            store_batch_size_prompts=8,
            # sae-lens sizes its mixing buffer as n_batches_in_buffer × context_size tokens
            n_batches_in_buffer=max(8, 4 * batch_size_tokens // context_size),
            training_tokens=total,
            train_batch_size_tokens=batch_size_tokens,
            device=device,
            act_store_device=device,
            seed=seed,
            dtype="float32",
            prepend_bos=True,
            lr=lr,
            lr_warm_up_steps=max(1, steps // 20),
            lr_decay_steps=max(1, steps // 5),
            dead_feature_window=max(10, steps // 10),
            feature_sampling_window=max(10, steps // 4),
            n_batches_for_norm_estimate=min(20, max(1, n_train // batch_size_tokens)),
            logger=LoggingConfig(log_to_wandb=False),
            # the SAE's metadata would otherwise ask every loader to pass
            # center_writing_weights=False, which is what from_pretrained_no_processing does
            model_from_pretrained_kwargs={},
            n_checkpoints=0,
            checkpoint_path=None,
            output_path=str(Path(tmp) / "sae"),
            verbose=False,
        )
        torch.manual_seed(seed)
        sae = TrainingSAE.from_dict(
            TrainingSAEConfig.from_dict(cfg.get_training_sae_cfg_dict()).to_dict()
        )
        with torch.no_grad():
            sae.b_dec.copy_((mean * scale).to(sae.b_dec.dtype))
        handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        with _expected_sae_lens_notices():
            runner = LanguageModelSAETrainingRunner(
                cfg,
                override_dataset=_token_dataset(tokens),
                override_model=model,
                override_sae=sae,
            )
            try:
                runner.run()
            finally:  # the runner installs handlers that checkpoint, which we have turned off
                signal.signal(signal.SIGINT, handlers[0])
                signal.signal(signal.SIGTERM, handlers[1])
        seconds_train = time.perf_counter() - start

        start = time.perf_counter()
        staged = Path(tmp) / "sae"
        metrics = evaluate_sae(SAE.load_from_disk(staged, device=device), heldout)
        seconds_evaluate = time.perf_counter() - start

        report = TrainReport(
            path=out_dir,
            hook_name=name,
            d_in=d_in,
            d_sae=d_sae,
            k=k,
            explained_variance=metrics.explained_variance,
            mean_l0=metrics.mean_l0,
            dead_fraction=metrics.dead_fraction,
            train_tokens=n_train,
            heldout_tokens=metrics.n_tokens,
            epochs=epochs,
            seconds_extract=seconds_extract,
            seconds_train=seconds_train,
            seconds_evaluate=seconds_evaluate,
        )
        stats = {
            "report": report.to_json(),
            "model": model_name,
            "context_size": context_size,
            "batch_size_tokens": batch_size_tokens,
            "lr": lr,
            "seed": seed,
            "architecture": "batchtopk, saved by sae-lens as jumprelu",
            **(extra_stats or {}),
            "files": manifest(staged),  # size and checksum of the SAE's files, checked at load
        }
        (staged / STATS_FILE).write_text(json.dumps(stats, indent=2), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staged.rename(out_dir)
    return report


@contextlib.contextmanager
def _expected_sae_lens_notices() -> Iterator[None]:
    """Silence what sae-lens says about choices made here on purpose: an overriding model and
    dataset (logged), and several epochs over a small activation set (warned)."""
    sae_lens_logger = logging.getLogger("sae_lens")
    level = sae_lens_logger.level
    sae_lens_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fewer samples.*", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*exhausted.*", category=UserWarning)
            yield
    finally:
        sae_lens_logger.setLevel(level)


def _token_dataset(tokens: torch.Tensor) -> Any:
    """The token rows the cached activations came from, as the runner's (unused) dataset."""
    from datasets import Dataset

    return Dataset.from_dict({"tokens": tokens.tolist()})


# --- the offline SAE, cached --------------------------------------------------------------------


@attrs.frozen
class OfflineSAEReport:
    """What `offline_sae_with_report` did: trained (with the report) or loaded from the cache."""

    path: Path
    trained: bool
    stats: dict[str, Any]
    train: TrainReport | None = None
    seconds_model: float = 0.0  # conversion and loading of the offline model, if it was needed
    seconds_conversion: float = 0.0


class OfflineSAEError(SteerkitError):
    """A cached offline SAE is unreadable (delete the folder or retrain with --force)."""


def offline_sae_folder(layer: int, hook: str = DEFAULT_HOOK, model_id: str | None = None) -> Path:
    """The cache folder of an offline model's SAE at (layer, hook): `saes/MODEL/HOOK_NAME` in the
    steerkit cache; the model is the TransformerLens offline model unless `model_id` names
    another (e.g. the Hugging Face source's `smollm2-135m-instruct-offline`)."""
    if model_id is None:
        from steerkit_transformerlens.offline import MODEL_ID

        model_id = MODEL_ID
    return cache_root("saes", model_id, hook_name(layer, hook))


def offline_sae_with_report(
    *,
    layer: int = DEFAULT_LAYER,
    hook: str = DEFAULT_HOOK,
    device: str = "cpu",
    force: bool = False,
    d_sae: int = DEFAULT_D_SAE,
    k: int = DEFAULT_K,
    n_tokens: int = DEFAULT_TOKENS,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    context_size: int = DEFAULT_CONTEXT_SIZE,
    batch_size_tokens: int = DEFAULT_BATCH_SIZE_TOKENS,
    model: HookedTransformer | None = None,
) -> tuple[SAE[Any], OfflineSAEReport]:
    """The offline model's SAE at (layer, hook): loaded from the cache, or trained on first use
    (or with `force`) on the offline corpus and cached. `model` skips loading the offline model."""
    from sae_lens import SAE

    folder = offline_sae_folder(layer, hook)
    stats_path = folder / STATS_FILE
    if stats_path.is_file() and not force:
        return _cached_sae(folder, layer, hook, device)

    from steerkit_transformerlens.corpus import offline_corpus
    from steerkit_transformerlens.offline import MODEL_ID, load_offline_model_timed

    seconds_model = seconds_conversion = 0.0
    if model is None:
        model, load = load_offline_model_timed(device=device)
        seconds_model, seconds_conversion = load.seconds, load.conversion.seconds
    corpus = offline_corpus()
    report = train_sae(
        model,
        layer=layer,
        hook=hook,
        texts=corpus.texts,
        d_sae=d_sae,
        k=k,
        n_tokens=n_tokens,
        epochs=epochs,
        context_size=context_size,
        batch_size_tokens=batch_size_tokens,
        out_dir=folder,
        model_name=MODEL_ID,
        seed=seed,
        device=device,
        extra_stats={"corpus": corpus.provenance()},
    )
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    sae = SAE.load_from_disk(folder, device=device)
    return sae, OfflineSAEReport(
        path=folder,
        trained=True,
        stats=stats,
        train=report,
        seconds_model=seconds_model,
        seconds_conversion=seconds_conversion,
    )


def _cached_sae(
    folder: Path, layer: int, hook: str, device: str, retrain: str | None = None
) -> tuple[SAE[Any], OfflineSAEReport]:
    """The SAE cached in `folder`, its files checked first against the sizes and checksums its
    stats recorded (or, for an SAE trained before they were, against their own framing).
    `retrain`: how the error tells the user to retrain it (default: `steerkit train-sae`)."""
    from sae_lens import SAE

    retrain = retrain or f"`steerkit train-sae --layer {layer} --hook {hook} --force`"
    fix = f"retrain it with {retrain}, or delete the folder {folder} (the next use trains it again)"
    try:
        stats = json.loads((folder / STATS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OfflineSAEError(
            f"the cached SAE in {folder} is unreadable ({STATS_FILE}: {e}); {fix}"
        ) from e
    record = stats.get("files") if isinstance(stats, dict) else None
    problem = damage(folder, record if isinstance(record, dict) else None)
    if problem is not None:
        raise OfflineSAEError(f"the cached SAE in {folder} is damaged ({problem}); {fix}")
    try:
        sae = SAE.load_from_disk(folder, device=device)
    except Exception as e:  # a damage the checks did not see: name the folder and the fix
        raise OfflineSAEError(
            f"the cached SAE in {folder} is unreadable ({type(e).__name__}: {e}); {fix}"
        ) from e
    return sae, OfflineSAEReport(path=folder, trained=False, stats=stats)


def offline_sae(*, layer: int, hook: str = DEFAULT_HOOK, device: str = "cpu") -> SAE[Any]:
    """The offline model's SAE at (layer, hook), trained and cached on first use."""
    sae, _ = offline_sae_with_report(layer=layer, hook=hook, device=device)
    return sae


def offline_sae_for_source(
    source: Any,
    *,
    model_id: str,
    device: str = "cpu",
    force: bool = False,
    d_sae: int = DEFAULT_D_SAE,
    k: int = DEFAULT_K,
    n_tokens: int = DEFAULT_TOKENS,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    context_size: int = DEFAULT_CONTEXT_SIZE,
    batch_size_tokens: int = DEFAULT_BATCH_SIZE_TOKENS,
    retrain: str | None = None,
) -> tuple[SAE[Any], OfflineSAEReport]:
    """`offline_sae_with_report` for any source `train_sae_from_source` can read: the SAE of
    offline model `model_id` at the source's hook point, loaded from the cache (the same folder
    layout, stats file and integrity checks), or trained on the offline corpus on first use (or
    with `force`) and cached. `retrain` is named in the error about a damaged cached SAE."""
    from sae_lens import SAE

    layer, hook = _layer_and_hook("offline_sae_for_source", str(source.hook_point))
    folder = offline_sae_folder(layer, hook, model_id=model_id)
    stats_path = folder / STATS_FILE
    if stats_path.is_file() and not force:
        return _cached_sae(folder, layer, hook, device, retrain=retrain)

    from steerkit_transformerlens.corpus import offline_corpus

    corpus = offline_corpus()
    report = train_sae_from_source(
        source,
        texts=corpus.texts,
        d_sae=d_sae,
        k=k,
        n_tokens=n_tokens,
        epochs=epochs,
        context_size=context_size,
        batch_size_tokens=batch_size_tokens,
        out_dir=folder,
        model_name=model_id,
        seed=seed,
        device=device,
        extra_stats={"corpus": corpus.provenance()},
    )
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    sae = SAE.load_from_disk(folder, device=device)
    return sae, OfflineSAEReport(path=folder, trained=True, stats=stats, train=report)
