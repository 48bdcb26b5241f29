"""The `transformerlens` activation source: a HookedTransformer, a hook point and a sae-lens SAE.

Build it from a preset (`TransformerLensSource("gpt2-small", layer=6)`, loaded on first use) or
from objects you already hold (`TransformerLensSource(model=model, sae=sae,
hook_point="blocks.1.hook_resid_pre")`). Activations are read at the last real token of each
text, whatever the padding; the forward pass stops after the hook's block; results are cached on
disk under `cache_root("activations")`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from steerkit import (
    Activations,
    ActivationSource,
    Intervention,
    RowVectors,
    SourceInfo,
    SteeringVector,
)
from steerkit.checks import FloatArray, readonly, to_numpy
from steerkit.errors import SteerkitError, ValidationError
from steerkit_transformerlens.activation_cache import (
    ActivationDiskCache,
    module_fingerprint,
    texts_digest,
)
from steerkit_transformerlens.generation import (
    PaddingSide,
    SamplingOptions,
    final_positions,
    generate_tokens,
    pad_batch,
)
from steerkit_transformerlens.layout import contiguous_forward_weights
from steerkit_transformerlens.paths import cache_root
from steerkit_transformerlens.presets import Preset, get_preset, hook_name, layer_of
from steerkit_transformerlens.steering import PositionWindow, steering_hooks

if TYPE_CHECKING:
    import torch
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

__all__ = ["TransformerLensSource", "default_device"]

logger = logging.getLogger(__name__)

_OWNER = "TransformerLensSource"
_DTYPES = ("float32", "float16", "bfloat16", "float64")
#: At most this many bytes of float32 logits per continuation-scoring pass (a 262k vocabulary:
#: 32 rows of 32 scored tokens), whatever the batch size.
_SCORE_BYTES = 1 << 30


def default_device() -> str:
    """ "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformerLensSource(ActivationSource):
    """A TransformerLens model read (and steered) at one hook, with an optional sae-lens SAE.

    preset: a name from `steerkit_transformerlens.presets.PRESETS`, with `layer` and `hook`
        (defaults: the preset's); `sae_id` picks another SAE of the preset's release.
    model, sae, hook_point: objects already loaded (tests use tiny ones); `sae` may be None,
        then `features` are None and `decoder()` raises.
    device, dtype: for presets only; default "cuda" if available else "cpu", and "float32".
    batch_size: texts per forward pass; padding_side: how batches are padded (activations are
        the same either way); cache: read and write the on-disk activation cache.
    """

    #: Features scored per call of `features.output_scores` (bounds the logit lens's memory).
    output_score_chunk = 256

    name = "transformerlens"

    def __init__(
        self,
        preset: str | None = None,
        *,
        layer: int | None = None,
        hook: str | None = None,
        sae_id: str | None = None,
        model: HookedTransformer | None = None,
        sae: SAE[Any] | None = None,
        hook_point: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        padding_side: PaddingSide = "right",
        cache: bool = True,
        progress: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(_OWNER, "batch_size", "a positive integer", repr(batch_size))
        if padding_side not in ("left", "right"):
            raise ValidationError(_OWNER, "padding_side", "'left' or 'right'", repr(padding_side))
        if dtype is not None and dtype not in _DTYPES:
            raise ValidationError(_OWNER, "dtype", f"one of {', '.join(_DTYPES)}", repr(dtype))
        self.batch_size = batch_size
        self.padding_side: PaddingSide = padding_side
        self.cache = cache
        self.progress = progress
        self._window = PositionWindow()
        self._decoder: FloatArray | None = None
        self._fingerprint: str | None = None
        self._disk = ActivationDiskCache()
        self._last_pass: (
            tuple[Any, Intervention, tuple[FloatArray, dict[str, FloatArray]]] | None
        ) = None

        if preset is not None:
            if model is not None or sae is not None or hook_point is not None:
                raise ValidationError(
                    _OWNER,
                    "preset",
                    "either a preset (with layer, hook) or model= / sae= / hook_point=, not both",
                    repr(preset),
                )
            self.preset: Preset | None = get_preset(preset)
            layer = self.preset.default_layer if layer is None else layer
            hook = self.preset.hook if hook is None else hook
            self.preset.check(layer, hook)
            self._hook_point = hook_name(layer, hook)
            self._sae_id: str | None = (
                sae_id if sae_id is not None else self.preset.sae_id_for(layer)
            )
            self._device: str | None = device
            self._dtype: str | None = dtype or "float32"
            self._model: HookedTransformer | None = None
            self._sae: SAE[Any] | None = None
            return

        if model is None:
            raise ValidationError(
                _OWNER,
                "model",
                "a preset name (e.g. 'gpt2-small') or a HookedTransformer passed as model=",
                "neither",
            )
        if device is not None or dtype is not None or sae_id is not None:
            raise ValidationError(
                _OWNER,
                "device",
                "device=, dtype= and sae_id= only with a preset (move a model you pass yourself)",
                repr({"device": device, "dtype": dtype, "sae_id": sae_id}),
            )
        if hook_point is None:
            if layer is None or hook is None:
                raise ValidationError(
                    _OWNER,
                    "hook_point",
                    "hook_point='blocks.L.hook_…', or layer= and hook=",
                    "none of them",
                )
            hook_point = hook_name(layer, hook)
        elif layer is not None or hook is not None:
            raise ValidationError(
                _OWNER, "hook_point", "hook_point= or layer= and hook=, not both", repr(hook_point)
            )
        self.preset = None
        self._hook_point = hook_point
        self._sae_id = None
        self._device = None
        self._dtype = None
        self._model = model
        self._sae = sae
        self._check_model(model, sae)
        contiguous_forward_weights(model)

    # -- what it is ----------------------------------------------------------------------------

    @property
    def hook_point(self) -> str:
        return self._hook_point

    @property
    def layer(self) -> int | None:
        """The block index of the hook point (None for hooks outside the blocks)."""
        return layer_of(self._hook_point)

    @property
    def model(self) -> HookedTransformer:
        """The HookedTransformer (a preset's is loaded here, on first use)."""
        if self._model is None:
            self._load()
        assert self._model is not None
        return self._model

    @property
    def sae(self) -> SAE[Any] | None:
        if self._model is None and self.preset is not None:
            self._load()
        return self._sae

    @property
    def d_model(self) -> int:
        return int(self.model.cfg.d_model)

    @property
    def d_sae(self) -> int:
        return int(self._require_sae().cfg.d_sae)

    def describe(self) -> SourceInfo:
        """What this source is: preset, model, the weights that run, hook point, SAE; a preset
        source records the parameters that rebuild it (a model passed in code cannot be)."""
        layer = self.layer
        if self.preset is not None:
            hook = self.hook_point.split(".hook_", 1)[1]
            params: dict[str, Any] = {"preset": self.preset.name, "layer": layer, "hook": hook}
            if self._sae_id != self.preset.sae_id_for(layer if layer is not None else 0):
                params["sae_id"] = self._sae_id
            if self._dtype not in (None, "float32"):
                params["dtype"] = self._dtype
            d_sae = self._sae.cfg.d_sae if self._sae is not None else None
            return SourceInfo(
                name=self.name,
                hook_point=self.hook_point,
                layer=layer,
                n_layers=self.preset.n_layers,
                d_model=self.preset.d_model,
                model=self.preset.model,
                preset=self.preset.name,
                weights=self.preset.weights,
                sae_release=self.preset.sae_release
                or ("trained by steerkit" if self.preset.offline else None),
                sae_id=self._sae_id,
                d_sae=None if d_sae is None else int(d_sae),
                params=params,
            )
        sae = self._sae
        return SourceInfo(
            name=self.name,
            hook_point=self.hook_point,
            layer=layer,
            n_layers=int(self.model.cfg.n_layers),
            d_model=int(self.model.cfg.d_model),
            model=self.model.cfg.model_name,
            d_sae=None if sae is None else int(sae.cfg.d_sae),
        )

    def at_hook(self, hook_point: str) -> TransformerLensSource:
        """The same model (loaded once, shared) read at `hook_point`, without an SAE; with this
        source's batching, padding and cache settings."""
        return TransformerLensSource(
            model=self.model,
            hook_point=hook_point,
            batch_size=self.batch_size,
            padding_side=self.padding_side,
            cache=self.cache,
            progress=self.progress,
        )

    def __repr__(self) -> str:
        what = (
            f"preset={self.preset.name!r}"
            if self.preset
            else f"model={self.model.cfg.model_name!r}"
        )
        return f"{type(self).__name__}({what}, hook_point={self.hook_point!r})"

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        preset = self.preset
        assert preset is not None
        device = self._device or default_device()
        dtype = self._dtype or "float32"
        layer = layer_of(self._hook_point)
        assert layer is not None
        hook = self._hook_point.split(".hook_", 1)[1]
        if preset.offline:
            from steerkit_transformerlens.offline import load_offline_model
            from steerkit_transformerlens.sae_training import offline_sae

            model = load_offline_model(device=device, dtype=dtype)
            sae = offline_sae(layer=layer, hook=hook, device=device)
        else:
            model, sae = _load_from_hub(preset, self._sae_id, device=device, dtype=dtype)
        self._check_model(model, sae)
        contiguous_forward_weights(model)
        self._model, self._sae = model, sae

    def _check_model(self, model: Any, sae: Any) -> None:
        from transformer_lens import HookedTransformer

        if not isinstance(model, HookedTransformer):
            raise ValidationError(
                _OWNER, "model", "a transformer_lens.HookedTransformer", type(model).__name__
            )
        if model.tokenizer is None:
            raise ValidationError(_OWNER, "model", "a HookedTransformer with a tokenizer", "none")
        if self._hook_point not in model.hook_dict:
            examples = [n for n in model.hook_dict if n.startswith("blocks.0.")][:6]
            raise ValidationError(
                _OWNER,
                "hook_point",
                f"a hook of this {model.cfg.n_layers}-layer model, e.g. {', '.join(examples)}",
                repr(self._hook_point),
            )
        if sae is None:
            return
        from sae_lens import SAE

        if not isinstance(sae, SAE):
            raise ValidationError(_OWNER, "sae", "a sae_lens.SAE or None", type(sae).__name__)
        d_model = int(model.cfg.d_model)
        if self._hook_point.rsplit(".", 1)[-1].startswith("hook_resid") and (
            int(sae.cfg.d_in) != d_model
        ):
            raise ValidationError(
                _OWNER, "sae", f"an SAE with d_in = {d_model} (d_model)", f"d_in = {sae.cfg.d_in}"
            )
        sae_hook = sae.cfg.metadata.hook_name
        if sae_hook is not None and sae_hook != self._hook_point:
            raise ValidationError(
                _OWNER,
                "sae",
                f"an SAE trained at {self._hook_point}",
                f"an SAE trained at {sae_hook} (pass hook_point={sae_hook!r} to read it there)",
            )

    def _require_sae(self) -> SAE[Any]:
        sae = self.sae
        if sae is None:
            raise SteerkitError(
                f"{self!r} has no SAE: pass sae= (a sae_lens.SAE) to get features and a decoder"
            )
        return sae

    # -- tokens --------------------------------------------------------------------------------

    def _token_rows(self, texts: Sequence[str], field: str) -> list[list[int]]:
        model = self.model
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise ValidationError(
                _OWNER,
                field,
                "a sequence of strings (a list, not one string)",
                type(texts).__name__,
            )
        if len(texts) == 0:
            raise ValidationError(_OWNER, field, "at least one text", "an empty sequence")
        rows = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValidationError(_OWNER, f"{field}[{i}]", "a string", type(text).__name__)
            row = model.to_tokens(text, truncate=False, move_to_device=False)[0].tolist()
            if not row:
                raise ValidationError(
                    _OWNER, f"{field}[{i}]", "a text with at least one token", repr(text)
                )
            if len(row) > model.cfg.n_ctx:
                raise ValidationError(
                    _OWNER,
                    f"{field}[{i}]",
                    f"at most {model.cfg.n_ctx} tokens (the model's context)",
                    f"{len(row)} tokens",
                )
            rows.append(row)
        return rows

    def _batches(
        self, rows: Sequence[Sequence[int]], desc: str, *, by_length: bool = True
    ) -> Iterator[list[int]]:
        """Indices of `rows` in batches, of similar lengths (longest first: less padding) when
        `by_length`, else in order (generation: hooks see the prompts in the order given)."""
        from tqdm.auto import tqdm

        order = list(range(len(rows)))
        if by_length:
            order.sort(key=lambda i: -len(rows[i]))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        show = self.progress and len(chunks) > 1
        yield from tqdm(chunks, desc=desc, unit="batch", disable=not show, leave=False)

    @property
    def _pad_id(self) -> int:
        tokenizer = self.model.tokenizer
        assert tokenizer is not None
        return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0

    # -- activations ---------------------------------------------------------------------------

    def activations(self, texts: Sequence[str]) -> Activations:
        hidden = self.hidden_states(texts)
        features = self.encode(hidden) if self.sae is not None else None
        return Activations(hidden=hidden, hook_point=self.hook_point, features=features)

    def hidden_states(self, texts: Sequence[str]) -> FloatArray:
        """(n, d_model) float32 activations at the hook point, at each text's last real token."""
        rows = self._token_rows(texts, "texts")
        key = None
        if self.cache:
            key = self._disk.key(self._cache_parts(texts))
            cached = self._disk.load(key, n=len(rows))
            if cached is not None:
                return readonly(cached)
        hidden = self._extract(rows)
        if key is not None:
            self._disk.save(key, hidden, {"hook_point": self.hook_point, "n": len(rows)})
        return readonly(hidden)

    def _extract(
        self, rows: Sequence[Sequence[int]], hook_point: str | None = None
    ) -> np.ndarray[Any, Any]:
        """(n, d_model) float32 activations at `hook_point` (default: the source's) at each
        row's last token; steered rows when called inside `_steering` (the batch's texts are
        set in the window for the steering hook)."""
        import torch

        model = self.model
        hook_point = self.hook_point if hook_point is None else hook_point
        layer = layer_of(hook_point)
        stop_at_layer = None if layer is None else layer + 1
        if stop_at_layer is not None and stop_at_layer >= model.cfg.n_layers:
            stop_at_layer = None
        out = np.empty((len(rows), int(model.cfg.d_model)), dtype=np.float32)
        captured: list[torch.Tensor] = []

        for idx in self._batches(rows, "activations"):
            self._window.rows = idx
            batch = pad_batch(
                [rows[i] for i in idx],
                pad_id=self._pad_id,
                side=self.padding_side,
                device=model.cfg.device or "cpu",
            )

            def capture(activation: torch.Tensor, hook: Any, batch: Any = batch) -> None:
                rows_at = torch.arange(activation.shape[0], device=activation.device)
                captured.append(activation[rows_at, batch.last.to(activation.device)])

            with torch.inference_mode(), model.hooks(fwd_hooks=[(hook_point, capture)]):
                model(batch.tokens, attention_mask=batch.mask, stop_at_layer=stop_at_layer)
            value = captured.pop()
            if value.ndim != 2:
                raise SteerkitError(
                    f"{hook_point} gives activations of shape {tuple(value.shape)} per token; "
                    "the source reads hooks with one vector per token (residual, mlp_out, attn_out)"
                )
            out[idx] = value.to(device="cpu", dtype=torch.float32).numpy()
        return out

    def _steered_hidden(
        self, texts: list[str], steering: Intervention, hook_point: str
    ) -> FloatArray:
        """Activations at `hook_point` with each text's vector added in the same batched pass
        (a plain forward pass, as in `logits`); not cached."""
        if hook_point not in self.model.hook_dict:
            raise ValidationError(
                _OWNER,
                "hook_point",
                "a hook point of the model (model.hook_dict)",
                repr(hook_point),
            )
        if steering.steered and hook_point.endswith(".hook_resid_post"):
            hidden = self._steered_pass(texts, steering)[1]
            if hook_point in hidden:
                return hidden[hook_point]
        rows = self._token_rows(texts, "texts")
        with self._steering(steering):
            return readonly(self._extract(rows, hook_point))

    def _cache_parts(self, texts: Sequence[str]) -> dict[str, Any]:
        model = self.model
        if self._fingerprint is None:
            self._fingerprint = module_fingerprint(model.named_parameters())
        tokenizer = model.tokenizer
        return {
            "model": model.cfg.model_name,
            "preset": self.preset.name if self.preset else None,
            "n_layers": model.cfg.n_layers,
            "d_model": model.cfg.d_model,
            "dtype": str(model.cfg.dtype),
            "weights": self._fingerprint,
            "tokenizer": [getattr(tokenizer, "name_or_path", None), len(tokenizer or ())],
            "prepend_bos": model.cfg.default_prepend_bos,
            "hook_point": self.hook_point,
            "texts": texts_digest(texts),
            "n": len(texts),
        }

    # -- the SAE -------------------------------------------------------------------------------

    def encode(self, hidden: Any) -> FloatArray:
        """SAE feature activations (n, d_sae) float32 of residual activations (n, d_model)."""
        import torch

        sae = self._require_sae()
        array = to_numpy(_OWNER, "hidden", hidden)
        if array.ndim != 2 or array.shape[1] != int(sae.cfg.d_in):
            raise ValidationError(
                _OWNER, "hidden", f"an (n, {sae.cfg.d_in}) array", f"shape {array.shape}"
            )
        out = np.empty((array.shape[0], int(sae.cfg.d_sae)), dtype=np.float32)
        chunk = 256
        with torch.inference_mode():
            for start in range(0, array.shape[0], chunk):
                x = torch.tensor(np.asarray(array[start : start + chunk]))  # a copy: writable
                x = x.to(device=sae.device, dtype=sae.dtype)
                out[start : start + chunk] = sae.encode(x).float().cpu().numpy()
        return readonly(out)

    def decode(self, features: Any) -> FloatArray:
        """The SAE's reconstruction (n, d_model) float32 of features (n, d_sae)."""
        import torch

        sae = self._require_sae()
        array = to_numpy(_OWNER, "features", features)
        if array.ndim != 2 or array.shape[1] != int(sae.cfg.d_sae):
            raise ValidationError(
                _OWNER, "features", f"an (n, {sae.cfg.d_sae}) array", f"shape {array.shape}"
            )
        with torch.inference_mode():
            x = torch.tensor(np.asarray(array)).to(device=sae.device, dtype=sae.dtype)
            return readonly(sae.decode(x).float().cpu().numpy())

    def decoder(self) -> FloatArray:
        """W_dec, (d_sae, d_model) float32: row i is feature i's direction."""
        if self._decoder is None:
            sae = self._require_sae()
            if sae.cfg.normalize_activations not in ("none", None):
                logger.warning(
                    "SAE normalises activations (%s): W_dec rows are directions in the "
                    "normalised space",
                    sae.cfg.normalize_activations,
                )
            self._decoder = readonly(sae.W_dec.detach().float().cpu().numpy().copy())
        return self._decoder

    def feature_cards(
        self, feature_ids: Sequence[int], texts: Sequence[str], **options: Any
    ) -> dict[str, Any]:
        """Feature cards (logit-lens tokens, output score, top contexts in `texts`, dead flag)
        of the SAE's features `feature_ids`: see `steerkit_transformerlens.features`."""
        from steerkit_transformerlens.features import feature_cards

        return feature_cards(self, feature_ids, texts, **options)

    def output_scores(self, feature_ids: Sequence[int], **options: Any) -> FloatArray:
        """The output score (Arad et al. 2025) of each feature: see
        `steerkit_transformerlens.features.output_scores` for the options. Scored
        `output_score_chunk` features at a time, so the logit lens of the whole dictionary
        (d_sae × d_vocab) never sits in memory at once. With `cache` (the default) the scores
        are kept on disk per model weights, SAE weights and options, and a feature scored once
        is never scored again (scoring a 4096-feature dictionary takes minutes on a CPU)."""
        from steerkit_transformerlens.features import _feature_ids, output_scores

        ids = _feature_ids(feature_ids, self.d_sae)
        path = self._scores_path(options) if self.cache else None
        known = _read_scores(path, self.d_sae)
        missing = sorted({i for i in ids if np.isnan(known[i])})
        step = self.output_score_chunk
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            known[chunk] = output_scores(self, chunk, **options)
            if path is not None:  # saved chunk by chunk: an interrupted scoring resumes
                _write_scores(path, known)
        return readonly(known[ids])

    def _scores_path(self, options: Mapping[str, Any]) -> Path:
        sae = self._require_sae()
        if self._fingerprint is None:
            self._fingerprint = module_fingerprint(self.model.named_parameters())
        parts = {
            "format": _SCORES_FORMAT,
            "weights": self._fingerprint,
            "sae": module_fingerprint(sae.named_parameters()),
            "hook_point": self.hook_point,
            "d_sae": self.d_sae,
            "options": {key: repr(value) for key, value in sorted(options.items())},
        }
        payload = json.dumps(parts, sort_keys=True).encode()
        return cache_root("scores") / f"{hashlib.sha256(payload).hexdigest()[:40]}.npy"

    # -- steered passes --------------------------------------------------------------------

    def steer(self, vector: SteeringVector) -> AbstractContextManager[None]:
        """For your own TransformerLens calls (`model(...)`, `model.generate`, `run_with_cache`):
        inside the block the model runs with `vector.scale · vector.vector` added at
        `vector.hook_point`, at `vector.positions` — the same hook `logits` and `generate` add
        (steerkit's own passes take `vector=` instead); removed on exit, also on error."""
        if not isinstance(vector, SteeringVector):
            raise ValidationError(
                _OWNER, "vector", "a steerkit.SteeringVector", type(vector).__name__
            )
        return self._steering(Intervention((vector,)))

    @contextmanager
    def _steering(self, steering: Intervention) -> Iterator[None]:
        """The hook adding each text's row of `steering` (none when no row is steered); the
        loops set `self._window.rows` to the texts of each batch; always removed on exit."""
        try:
            with steering_hooks(self.model, steering, self._window):
                yield None
        finally:
            self._window.rows = None

    def _logits(self, texts: list[str], steering: Intervention) -> FloatArray:
        """Next-token logits (n, d_vocab) float32 at each text's last real token, each text
        steered by its row in the same batched pass (a plain forward pass: `generated` positions
        are not steered). Only the last real positions are unembedded."""
        if steering.steered:
            return self._steered_pass(texts, steering)[0]
        logits, _ = self._last_positions(self._token_rows(texts, "texts"), steering, ())
        return readonly(logits)

    def _steered_pass(
        self, texts: list[str], steering: Intervention
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        """The logits and every block's `hook_resid_post` at each text's last token, steered:
        one pass serves a steered `logits` call and the `steered_hidden` calls at those hooks
        with the same texts and vectors (the KL and held-out probe metrics ask both, in turn).
        The last pass is remembered: the model is fixed for a source's life, as for the
        activation cache."""
        key = (tuple(texts), _steering_digest(steering))
        if self._last_pass is not None and self._last_pass[0] == key:
            return self._last_pass[2]
        hooks = tuple(f"blocks.{layer}.hook_resid_post" for layer in range(self.model.cfg.n_layers))
        logits, hidden = self._last_positions(self._token_rows(texts, "texts"), steering, hooks)
        answer = readonly(logits), {hook: readonly(value) for hook, value in hidden.items()}
        # the steering is kept with the key: its functions stay alive, so their ids in the
        # digest cannot be reused by other functions while the pass is remembered
        self._last_pass = (key, steering, answer)
        return answer

    def _last_positions(
        self, rows: list[list[int]], steering: Intervention, hooks: Sequence[str]
    ) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
        """Logits (n, d_vocab) and the activations (n, d_model) at `hooks`, float32, at each
        row's last token, each row steered by its row of `steering`."""
        import torch

        model = self.model
        out = np.empty((len(rows), int(model.cfg.d_vocab_out)), dtype=np.float32)
        hidden = {hook: np.empty((len(rows), int(model.cfg.d_model)), np.float32) for hook in hooks}
        with self._steering(steering), torch.inference_mode():
            for idx in self._batches(rows, "logits"):
                self._window.rows = idx
                batch = pad_batch(
                    [rows[i] for i in idx],
                    pad_id=self._pad_id,
                    side=self.padding_side,
                    device=model.cfg.device or "cpu",
                )
                last = batch.last

                def capture(
                    activation: torch.Tensor, hook: Any, idx: Any = idx, last: Any = last
                ) -> None:
                    at = torch.arange(activation.shape[0], device=activation.device)
                    picked = activation[at, last.to(activation.device)]
                    hidden[hook.name][idx] = picked.to("cpu", torch.float32).numpy()

                with (
                    model.hooks(fwd_hooks=[(hook, capture) for hook in hooks]),
                    final_positions(model, last) as picked,
                ):
                    logits = model(batch.tokens, attention_mask=batch.mask)
                if picked:
                    at_last = logits[:, 0]
                else:
                    at = torch.arange(logits.shape[0], device=logits.device)
                    at_last = logits[at, last.to(logits.device)]
                out[idx] = at_last.to(device="cpu", dtype=torch.float32).numpy()
        return out, hidden

    def _continuation_logprobs(
        self,
        prompts: list[str],
        continuations: Sequence[str],
        steering: Intervention,
    ) -> list[FloatArray]:
        """For each (prompt, continuation): (m,) float64 natural-log probabilities of the
        continuation's m tokens, each given the prompt and the continuation's earlier tokens;
        one padded forward pass per batch. Each pair steered by its row, as in `logits` (a plain
        forward pass: every position counts as prompt, so a `generated` vector adds nothing).

        Tokens: the prompt is tokenised as everywhere else (with BOS when the model prepends one);
        the continuation's tokens are those of prompt + continuation that follow the prompt's, so
        the continuation never gets a BOS of its own and its first token is scored at the
        prompt's last position. Where the tokens of prompt + continuation do not begin with the
        prompt's (a token merged across the join, or a tokenizer that needs a space there), the
        continuation is tokenised alone, without BOS, and appended to the prompt's tokens. A
        continuation of no tokens (e.g. "") gives an empty array.
        """
        import torch

        prompt_rows = self._token_rows(prompts, "prompts")
        if isinstance(continuations, str) or not isinstance(continuations, Sequence):
            raise ValidationError(
                _OWNER,
                "continuations",
                "a sequence of strings (a list, not one string)",
                type(continuations).__name__,
            )
        if len(continuations) != len(prompt_rows):
            raise ValidationError(
                _OWNER,
                "continuations",
                f"{len(prompt_rows)} continuations, one per prompt",
                f"{len(continuations)}",
            )
        model = self.model
        rows: list[list[int]] = []
        for i, (prompt, prompt_row, text) in enumerate(zip(prompts, prompt_rows, continuations)):
            row = prompt_row + self._continuation_tokens(prompt, prompt_row, text, i)
            if len(row) > model.cfg.n_ctx:
                raise ValidationError(
                    _OWNER,
                    f"continuations[{i}]",
                    f"prompt and continuation of at most {model.cfg.n_ctx} tokens together "
                    "(the model's context)",
                    f"{len(prompt_row)} + {len(row) - len(prompt_row)} tokens",
                )
            rows.append(row)

        out: list[FloatArray] = [readonly(np.empty(0, dtype=np.float64)) for _ in rows]
        todo = [i for i, row in enumerate(rows) if len(row) > len(prompt_rows[i])]
        if not todo:
            return out
        with self._steering(steering), torch.inference_mode():
            for chunk in self._batches([rows[i] for i in todo], "continuation log-probs"):
                batch = [todo[j] for j in chunk]
                # the scored logits (rows × positions × d_vocab) stay under _SCORE_BYTES
                width = max(len(rows[i]) - len(prompt_rows[i]) for i in batch)
                per = max(1, _SCORE_BYTES // (4 * width * int(model.cfg.d_vocab_out)))
                for start in range(0, len(batch), per):
                    idx = batch[start : start + per]
                    self._window.rows = idx
                    scored = self._score_batch(
                        [rows[i] for i in idx], [len(prompt_rows[i]) for i in idx]
                    )
                    for i, values in zip(idx, scored):
                        out[i] = values
        return out

    def _score_batch(self, rows: list[list[int]], n_prompts: list[int]) -> list[FloatArray]:
        """log p(row[t] | row[:t]) for t ≥ n_prompt of each row, in one padded forward pass that
        unembeds only the positions scored; log-softmax in float64."""
        import torch

        model = self.model
        batch = pad_batch(
            rows, pad_id=self._pad_id, side=self.padding_side, device=model.cfg.device or "cpu"
        )
        # row b's real tokens start at last - (len - 1); token t is scored at position t - 1
        starts = [int(batch.last[b]) - (len(row) - 1) for b, row in enumerate(rows)]
        spans = [
            list(range(start + n - 1, start + len(row) - 1))
            for start, n, row in zip(starts, n_prompts, rows)
        ]
        width = max(len(span) for span in spans)
        positions = torch.as_tensor(
            [span + [span[-1]] * (width - len(span)) for span in spans], dtype=torch.long
        )
        with final_positions(model, positions) as picked:
            logits = model(batch.tokens, attention_mask=batch.mask)
        out = []
        for b, (row, n, span) in enumerate(zip(rows, n_prompts, spans)):
            selected = logits[b, : len(span)] if picked else logits[b, span]
            selected = selected.to(torch.float64)
            targets = torch.as_tensor(row[n:], dtype=torch.long, device=selected.device)
            values = selected.gather(-1, targets[:, None])[:, 0] - torch.logsumexp(selected, -1)
            out.append(readonly(values.cpu().numpy()))
        return out

    def _continuation_tokens(
        self, prompt: str, prompt_row: list[int], continuation: Any, index: int
    ) -> list[int]:
        """The continuation's token ids after `prompt_row` (see `continuation_logprobs`)."""
        if not isinstance(continuation, str):
            raise ValidationError(
                _OWNER, f"continuations[{index}]", "a string", type(continuation).__name__
            )
        if not continuation:
            return []
        model = self.model
        joined = model.to_tokens(prompt + continuation, truncate=False, move_to_device=False)
        joined_row: list[int] = joined[0].tolist()
        if joined_row[: len(prompt_row)] == prompt_row:
            return joined_row[len(prompt_row) :]
        alone = model.to_tokens(
            continuation, prepend_bos=False, truncate=False, move_to_device=False
        )
        alone_row: list[int] = alone[0].tolist()
        return alone_row

    # -- generation ----------------------------------------------------------------------------

    def _generate(
        self,
        prompts: list[str],
        steering: Intervention,
        *,
        max_new_tokens: int,
        seed: int,
        **options: Any,
    ) -> list[str]:
        """The continuation (new text only) of each prompt; greedy unless `do_sample`. Options:
        do_sample, temperature, top_k, stop_at_eos, use_kv_cache (see `generate_tokens`)."""
        tokenizer = self.model.tokenizer
        assert tokenizer is not None
        ids = self.generate_tokens(
            prompts, max_new_tokens=max_new_tokens, vector=steering, seed=seed, **options
        )
        return [str(tokenizer.decode(row, skip_special_tokens=True)) for row in ids]

    def generate_tokens(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 32,
        vector: RowVectors = None,
        seed: int = 0,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        stop_at_eos: bool = True,
        use_kv_cache: bool = True,
    ) -> list[list[int]]:
        """The new token ids of each prompt (EOS and what follows it removed), each prompt
        steered by its row of `vector` (one vector, None, or one per prompt), in one batched
        pass; greedy unless `do_sample`."""
        rows = self._token_rows(prompts, "prompts")
        steering = Intervention.of(vector, len(rows))
        SamplingOptions(do_sample=do_sample, temperature=temperature, top_k=top_k)  # validate
        out: list[list[int]] = [[] for _ in rows]
        with self._steering(steering):
            for n_batch, idx in enumerate(self._batches(rows, "generate", by_length=False)):
                self._window.rows = idx
                new = generate_tokens(
                    self.model,
                    [rows[i] for i in idx],
                    max_new_tokens=max_new_tokens,
                    window=self._window,
                    options=SamplingOptions(
                        do_sample=do_sample,
                        temperature=temperature,
                        top_k=top_k,
                        seed=seed + n_batch,
                    ),
                    stop_at_eos=stop_at_eos,
                    use_kv_cache=use_kv_cache,
                )
                for i, row in zip(idx, new):
                    out[i] = row
        return out


def _load_from_hub(
    preset: Preset, sae_id: str | None, *, device: str, dtype: str
) -> tuple[HookedTransformer, SAE[Any]]:
    """A preset's SAE (sae-lens) and model (TransformerLens, with the SAE's loading options)."""
    import torch
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

    assert preset.sae_release is not None and sae_id is not None
    hint = (
        "without access to the Hugging Face hub, use the preset 'gemma-3-270m-offline', which "
        "needs none"
    )
    try:
        sae = SAE.from_pretrained(preset.sae_release, sae_id, device=device, dtype=dtype)
    except Exception as e:
        raise SteerkitError(
            f"could not load the SAE {preset.sae_release} / {sae_id}: {e}; {hint}"
        ) from e
    kwargs = dict(sae.cfg.metadata.model_from_pretrained_kwargs or {})
    try:
        # sae-lens's advice: no weight processing, plus the options the SAE was trained with
        # (e.g. center_writing_weights for gpt2-small-res-jb)
        model = HookedTransformer.from_pretrained_no_processing(
            preset.model, device=device, dtype=getattr(torch, dtype), **kwargs
        )
    except Exception as e:
        raise SteerkitError(f"could not load the model {preset.model}: {e}; {hint}") from e
    return model, sae


def _steering_digest(steering: Intervention) -> str:
    """What a plain forward pass's steering depends on, row by row: each vector's values, scale,
    hook point and positions (an adaptive vector's steering function by identity)."""
    h = hashlib.sha256()
    for row in steering:
        if row is None:
            h.update(b"-")
            continue
        h.update(f"{row.hook_point}|{row.positions.value}|{float(row.scale)!r}|".encode())
        h.update(np.ascontiguousarray(row.vector).tobytes())
        h.update(f"|{id(row.function) if row.function is not None else ''};".encode())
    return h.hexdigest()


#: The output scores' cache entries: bump when the score's definition or defaults change.
_SCORES_FORMAT = 1


def _read_scores(path: Path | None, d_sae: int) -> np.ndarray[Any, Any]:
    """The cached (d_sae,) scores (NaN: not scored yet); all NaN when there is no usable entry
    (a damaged one is reported and scored again)."""
    empty = np.full(d_sae, np.nan)
    if path is None or not path.exists():
        return empty
    try:
        scores = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        logger.warning("output scores cache %s is unreadable (%s): scoring again", path, e)
        return empty
    valid = scores.shape == (d_sae,) and scores.dtype == np.float64
    if not valid or np.any(scores[~np.isnan(scores)] < 0) or np.any(scores > 1):
        logger.warning("output scores cache %s does not hold scores in [0, 1]: scoring again", path)
        return empty
    return np.array(scores)


def _write_scores(path: Path, scores: np.ndarray[Any, Any]) -> None:
    """Write atomically: a temporary file in the same folder, renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.asarray(scores, dtype=np.float64))
    os.replace(tmp, path)
