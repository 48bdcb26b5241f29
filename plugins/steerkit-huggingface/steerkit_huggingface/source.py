"""The `huggingface` activation source: a transformers causal LM, a hook point, an optional SAE.

Build it from a name or folder (`HuggingFaceSource("HuggingFaceTB/SmolLM2-135M", layer=6)`,
loaded on first use; `gguf_file=` reads a GGUF through transformers) or from objects you hold
(`HuggingFaceSource(model=model, tokenizer=tokenizer, hook_point="blocks.1.hook_resid_post")`).
Hook points carry TransformerLens names (see `steerkit_huggingface.hooks`); TransformerLens is
never imported. Batches are padded on either side with an attention mask and explicit position
ids, so padding changes no activation; activations are cached on disk like the TransformerLens
source's (same cache, keys that never collide with it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from steerkit import (
    Activations,
    ActivationSource,
    Intervention,
    Positions,
    RowVectors,
    SourceInfo,
    SteeringVector,
)
from steerkit.checks import FloatArray, readonly, to_numpy
from steerkit.errors import SteerkitError, ValidationError
from steerkit_huggingface.hooks import decoder_layers, parse_hook_point, residual_hook
from steerkit_huggingface.offline import OFFLINE_MODELS, OFFLINE_SAE, resolve_offline
from steerkit_huggingface.sae import PlainSAE, load_sae

if TYPE_CHECKING:
    import torch

__all__ = ["HuggingFaceSource"]

logger = logging.getLogger(__name__)

_OWNER = "HuggingFaceSource"
_DTYPES = ("float32", "float16", "bfloat16", "float64")


class _Stop(Exception):
    """Raised by the reading hook: the layers after the hook point need not run."""


@attrs.define
class _Window:
    """What the steering hook needs about the pass it runs in: delta, the (b, 1, d_model) rows
    added to this batch (None: none); prompt_length, the number of prompt positions (None: a
    plain forward pass, every position is prompt); seen, positions already run (KV cache)."""

    delta: Any = None
    prompt_length: int | None = None
    seen: int = 0
    rows_added: Any = None


class HuggingFaceSource(ActivationSource):
    """A transformers causal LM read (and steered) at one residual hook, with an optional SAE.

    pretrained: a hub name, a local folder (with `gguf_file`, a GGUF in it) or an offline model
        (`offline.OFFLINE_MODELS`: gemma-3-270m-offline, smollm2-135m-instruct-offline), loaded
        on first use with `layer` and `hook` ("resid_post" or "resid_pre"); or model=,
        tokenizer= and hook_point= for objects already loaded (tests use tiny random ones).
    sae: a sae_lens SAE, a sae-lens folder, a .safetensors file with W_dec (and W_enc, b_enc,
        b_dec to encode), "offline" (with an offline `pretrained`: the SAE steerkit trains for
        it at this hook point on the offline corpus on first use and caches, `steerkit_huggingface.
        offline_sae`), or None (then features are None and `decoder()` raises).
    chat_template: pass every text through the tokenizer's chat template (a user turn and the
        generation prompt); steering positions are counted in the templated tokens, so
        `generated` starts at the first token the model writes. Default: on for an
        instruction-tuned offline model, off otherwise.
    batch_size, padding_side ("right" or "left"; the same activations either way), cache (the
    on-disk activation cache), device and dtype (for `pretrained` only).
    """

    name = "huggingface"

    def __init__(
        self,
        pretrained: str | None = None,
        *,
        layer: int | None = None,
        hook: str = "resid_post",
        gguf_file: str | None = None,
        sae: Any = None,
        model: Any = None,
        tokenizer: Any = None,
        hook_point: str | None = None,
        chat_template: bool | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        padding_side: str = "right",
        cache: bool = True,
        progress: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(_OWNER, "batch_size", "a positive integer", repr(batch_size))
        if padding_side not in ("left", "right"):
            raise ValidationError(_OWNER, "padding_side", "'left' or 'right'", repr(padding_side))
        if dtype is not None and dtype not in _DTYPES:
            raise ValidationError(_OWNER, "dtype", f"one of {', '.join(_DTYPES)}", repr(dtype))
        if hook not in ("resid_post", "resid_pre"):
            raise ValidationError(_OWNER, "hook", "'resid_post' or 'resid_pre'", repr(hook))
        self.batch_size = batch_size
        self.padding_side = padding_side
        if chat_template is None:  # instruction-tuned offline models talk through their template
            chat_template = pretrained in OFFLINE_MODELS and OFFLINE_MODELS[pretrained][1]
        self.chat_template = bool(chat_template)
        self.cache = cache
        self.progress = progress
        self.pretrained = pretrained
        self.gguf_file = gguf_file
        self._sae_arg = sae if isinstance(sae, str) else None
        self._offline_sae = sae == OFFLINE_SAE
        if self._offline_sae and pretrained not in OFFLINE_MODELS:
            raise ValidationError(
                _OWNER,
                "sae",
                f"sae={OFFLINE_SAE!r} only with an offline model "
                f"(pretrained= one of {', '.join(OFFLINE_MODELS)})",
                repr(pretrained),
            )
        self._sae = None if self._offline_sae else load_sae(sae)
        self._device = device
        self._dtype = dtype
        self._decoder: FloatArray | None = None
        self._fingerprint: str | None = None
        self._window = _Window()
        if pretrained is not None:
            if model is not None or tokenizer is not None or hook_point is not None:
                raise ValidationError(
                    _OWNER,
                    "pretrained",
                    "either pretrained= (with layer=, hook=) or model=, tokenizer=, hook_point=",
                    repr(pretrained),
                )
            if layer is None:
                raise ValidationError(_OWNER, "layer", "the decoder layer to read", "None")
            self._hook_point = f"blocks.{layer}.hook_{hook}"
            self._model: Any = None
            self._tokenizer: Any = None
            return
        if model is None or tokenizer is None:
            raise ValidationError(
                _OWNER,
                "model",
                "pretrained='name or folder', or model= and tokenizer= (a transformers causal "
                "LM and its tokenizer)",
                "neither" if model is None else "no tokenizer",
            )
        if device is not None or dtype is not None or gguf_file is not None:
            raise ValidationError(
                _OWNER,
                "device",
                "device=, dtype= and gguf_file= only with pretrained= (move your model yourself)",
                repr({"device": device, "dtype": dtype, "gguf_file": gguf_file}),
            )
        if hook_point is None:
            if layer is None:
                raise ValidationError(_OWNER, "hook_point", "hook_point= or layer=", "neither")
            hook_point = f"blocks.{layer}.hook_{hook}"
        self._hook_point = hook_point
        self._model = model
        self._tokenizer = tokenizer
        self._check()

    # -- what it is ----------------------------------------------------------------------------

    @property
    def hook_point(self) -> str:
        return self._hook_point

    @property
    def model(self) -> Any:
        """The transformers model (loaded here on first use for `pretrained`)."""
        if self._model is None:
            self._load()
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    @property
    def n_layers(self) -> int:
        return len(decoder_layers(self.model))

    @property
    def d_model(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def layer(self) -> int:
        return parse_hook_point(self.hook_point, self.n_layers)[0]

    @property
    def sae(self) -> Any:
        if self._offline_sae and self._model is None:
            self._load()
        return self._sae

    def describe(self) -> SourceInfo:
        """Model, hook point, SAE; with `pretrained` (and an SAE given by path, or none), the
        parameters that rebuild the source through the registry."""
        model = self.model
        params: dict[str, Any] | None = None
        if self.pretrained is not None and (self._sae is None or self._sae_arg is not None):
            params = {
                "pretrained": self.pretrained,
                "layer": self.layer,
                "hook": self.hook_point.split(".hook_", 1)[1],
            }
            extra = {
                "gguf_file": self.gguf_file,
                "sae": self._sae_arg,
                "chat_template": self.chat_template or None,
                "dtype": self._dtype,
            }
            params.update({k: v for k, v in extra.items() if v is not None})
        sae = self._sae
        d_sae = None if sae is None else int(self.decoder().shape[0])
        return SourceInfo(
            name=self.name,
            hook_point=self.hook_point,
            layer=self.layer,
            n_layers=self.n_layers,
            d_model=self.d_model,
            model=self.pretrained or getattr(model.config, "_name_or_path", None) or None,
            weights=f"GGUF {self.gguf_file} (de-quantised by transformers)"
            if self.gguf_file
            else None,
            sae_release=self._sae_arg,
            d_sae=d_sae,
            params=params,
        )

    def at_hook(self, hook_point: str) -> HuggingFaceSource:
        """The same model and tokenizer (shared, not loaded again) read at `hook_point`, without
        an SAE; same batching, padding, template and cache settings."""
        return HuggingFaceSource(
            model=self.model,
            tokenizer=self.tokenizer,
            hook_point=hook_point,
            chat_template=self.chat_template,
            batch_size=self.batch_size,
            padding_side=self.padding_side,
            cache=self.cache,
            progress=self.progress,
        )

    def __repr__(self) -> str:
        what = self.pretrained or type(self._model).__name__
        return f"{type(self).__name__}({what!r}, hook_point={self.hook_point!r})"

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        assert self.pretrained is not None
        where, gguf_file = self.pretrained, self.gguf_file
        if where in OFFLINE_MODELS:
            where, gguf_file = resolve_offline(where)
        kwargs: dict[str, Any] = {}
        if gguf_file is not None:
            kwargs["gguf_file"] = gguf_file
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=getattr(torch, self._dtype or "float32"), **kwargs
            )
        except Exception as e:
            raise SteerkitError(
                f"could not load {self.pretrained}"
                f"{f' ({self.gguf_file})' if self.gguf_file else ''} with transformers: {e}"
            ) from e
        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        model.eval()
        self._model, self._tokenizer = model, tokenizer
        if self._offline_sae:
            from steerkit_huggingface.offline import offline_sae

            self._sae = offline_sae(self, device=str(model.device.type))
        self._check()

    def _check(self) -> None:
        layers = decoder_layers(self._model)
        parse_hook_point(self._hook_point, len(layers))
        if self._tokenizer is None or not callable(self._tokenizer):
            raise ValidationError(_OWNER, "tokenizer", "a transformers tokenizer", "none")
        if self.chat_template and not getattr(self._tokenizer, "chat_template", None):
            raise ValidationError(
                _OWNER, "chat_template", "a tokenizer with a chat template", "one without"
            )
        if self._sae is not None:
            d_in = self._sae.d_in if isinstance(self._sae, PlainSAE) else self._sae.cfg.d_in
            if int(d_in) != self.d_model:
                raise ValidationError(
                    _OWNER, "sae", f"an SAE with d_in = {self.d_model} (d_model)", f"{d_in}"
                )

    # -- tokens --------------------------------------------------------------------------------

    def _format(self, text: str) -> str:
        if not self.chat_template:
            return text
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
        )

    def _encode(self, text: str) -> list[int]:
        # a chat template writes its own BOS; a plain text gets the tokenizer's special tokens
        ids = self.tokenizer(text, add_special_tokens=not self.chat_template)["input_ids"]
        return [int(i) for i in ids]

    def _token_rows(self, texts: Sequence[str], field: str) -> list[list[int]]:
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
            raise ValidationError(_OWNER, field, "a non-empty list of strings", repr(texts)[:60])
        limit = getattr(self.model.config, "max_position_embeddings", None)
        rows = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValidationError(_OWNER, f"{field}[{i}]", "a string", type(text).__name__)
            row = self._encode(self._format(text))
            if not row:
                raise ValidationError(_OWNER, f"{field}[{i}]", "a text with a token", repr(text))
            if limit is not None and len(row) > limit:
                raise ValidationError(
                    _OWNER, f"{field}[{i}]", f"at most {limit} tokens", f"{len(row)} tokens"
                )
            rows.append(row)
        return rows

    def _batches(self, rows: Sequence[Sequence[int]], desc: str, by_length: bool = True) -> Any:
        from tqdm.auto import tqdm

        order = list(range(len(rows)))
        if by_length:
            order.sort(key=lambda i: -len(rows[i]))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        show = self.progress and len(chunks) > 1
        return tqdm(chunks, desc=desc, unit="batch", disable=not show, leave=False)

    def _pad(self, rows: Sequence[Sequence[int]], side: str) -> tuple[Any, Any, Any, Any]:
        """(tokens, mask, position ids, index of each row's last real token), on the model's
        device; positions count real tokens only, so left padding moves no position."""
        import torch

        pad_id = self.tokenizer.pad_token_id
        pad_id = int(pad_id) if pad_id is not None else 0
        width = max(len(r) for r in rows)
        tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            start = width - len(row) if side == "left" else 0
            tokens[i, start : start + len(row)] = torch.as_tensor(list(row))
            mask[i, start : start + len(row)] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        last = torch.tensor(
            [width - 1 if side == "left" else len(r) - 1 for r in rows], dtype=torch.long
        )
        device = self.model.device
        return tokens.to(device), mask.to(device), positions.to(device), last.to(device)

    # -- activations ---------------------------------------------------------------------------

    def activations(self, texts: Sequence[str]) -> Activations:
        hidden = self.hidden_states(texts)
        features = self.encode(hidden) if self._sae is not None else None
        return Activations(hidden=hidden, hook_point=self.hook_point, features=features)

    def hidden_states(self, texts: Sequence[str]) -> FloatArray:
        """(n, d_model) float32 residual activations at the hook point, each text's last real
        token; the pass stops at the hook's layer."""
        rows = self._token_rows(texts, "texts")
        key = disk = None
        if self.cache:
            from steerkit_transformerlens.activation_cache import ActivationDiskCache

            disk = ActivationDiskCache()
            key = disk.key(self._cache_parts(texts))
            cached = disk.load(key, n=len(rows))
            if cached is not None:
                return readonly(cached)
        hidden = self._extract(rows)
        if disk is not None and key is not None:
            disk.save(key, hidden, {"hook_point": self.hook_point, "n": len(rows)})
        return readonly(hidden)

    def _extract(self, rows: list[list[int]]) -> np.ndarray[Any, Any]:
        import torch

        out = np.empty((len(rows), self.d_model), dtype=np.float32)
        picked: list[torch.Tensor] = []
        last_at: list[torch.Tensor] = []

        def read(residual: torch.Tensor) -> torch.Tensor:
            at = torch.arange(residual.shape[0], device=residual.device)
            picked.append(residual[at, last_at[0]])
            raise _Stop

        with residual_hook(self.model, self.hook_point, read), torch.inference_mode():
            for idx in self._batches(rows, "activations"):
                tokens, mask, positions, last = self._pad([rows[i] for i in idx], self.padding_side)
                last_at[:] = [last]
                with contextlib.suppress(_Stop):
                    self.model(
                        input_ids=tokens, attention_mask=mask, position_ids=positions,
                        use_cache=False,
                    )  # fmt: skip
                out[idx] = picked.pop().to(device="cpu", dtype=torch.float32).numpy()
        return out

    def token_activations(self, tokens: Any) -> torch.Tensor:
        """Every position's residual activation at the hook point: token ids (rows, length), all
        real tokens (no padding, no chat template: the ids are used as given), in; (rows, length,
        d_model) float32 on the CPU out. The pass stops at the hook's layer. What
        `steerkit_transformerlens.sae_training.train_sae_from_source` trains an SAE on."""
        import torch

        ids = torch.as_tensor(tokens, dtype=torch.long)
        if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1:
            raise ValidationError(
                _OWNER, "tokens", "token ids of shape (rows, length)", str(tuple(ids.shape))
            )
        seen: list[torch.Tensor] = []

        def read(residual: torch.Tensor) -> torch.Tensor:
            seen.append(residual)
            raise _Stop

        model = self.model
        with (
            residual_hook(model, self.hook_point, read),
            torch.inference_mode(),
            contextlib.suppress(_Stop),
        ):
            model(input_ids=ids.to(model.device), use_cache=False)
        return seen[0].to(device="cpu", dtype=torch.float32)

    def _cache_parts(self, texts: Sequence[str]) -> dict[str, Any]:
        from steerkit_transformerlens.activation_cache import module_fingerprint, texts_digest

        model = self.model
        if self._fingerprint is None:
            self._fingerprint = module_fingerprint(model.named_parameters())
        tokenizer = self.tokenizer
        return {
            "source": self.name,
            "model": self.pretrained or getattr(model.config, "_name_or_path", None),
            "architecture": type(model).__name__,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "dtype": str(model.dtype),
            "weights": self._fingerprint,
            "tokenizer": [getattr(tokenizer, "name_or_path", None), len(tokenizer)],
            "chat_template": self.chat_template,
            "hook_point": self.hook_point,
            "texts": texts_digest(texts),
            "n": len(texts),
        }

    # -- the SAE -------------------------------------------------------------------------------

    def _require_sae(self) -> Any:
        if self._offline_sae and self._model is None:
            self._load()
        if self._sae is None:
            raise SteerkitError(f"{self!r} has no SAE: pass sae= to get features and a decoder")
        return self._sae

    def encode(self, hidden: Any) -> FloatArray:
        """SAE feature activations (n, d_sae) float32 of residual activations (n, d_model)."""
        import torch

        sae = self._require_sae()
        array = to_numpy(_OWNER, "hidden", hidden)
        if array.ndim != 2 or array.shape[1] != self.d_model:
            raise ValidationError(
                _OWNER, "hidden", f"an (n, {self.d_model}) array", f"shape {array.shape}"
            )
        if isinstance(sae, PlainSAE):
            return sae.encode(array)
        with torch.inference_mode():
            x = torch.tensor(np.asarray(array)).to(device=sae.device, dtype=sae.dtype)
            return readonly(sae.encode(x).float().cpu().numpy())

    def decoder(self) -> FloatArray:
        """W_dec (d_sae, d_model) float32: row i is feature i's direction."""
        if self._decoder is None:
            sae = self._require_sae()
            if isinstance(sae, PlainSAE):
                self._decoder = readonly(sae.W_dec.copy())
            else:
                self._decoder = readonly(sae.W_dec.detach().float().cpu().numpy().copy())
        return self._decoder

    # -- steered passes ------------------------------------------------------------------------

    def steer(self, vector: SteeringVector) -> Any:
        """For your own calls (`model(...)`, `model.generate`): inside the block the model runs
        with `scale · vector` added at its hook point on every position (and, for positions
        `prompt` or `generated`, as in a plain forward pass: every position counts as prompt);
        removed on exit, also on error."""
        if not isinstance(vector, SteeringVector):
            raise ValidationError(_OWNER, "vector", "a steerkit.SteeringVector", type(vector))
        return self._steering(Intervention((vector,)), [0], broadcast=True)

    @contextmanager
    def _steering(
        self, steering: Intervention, rows: Sequence[int] | None = None, broadcast: bool = False
    ) -> Iterator[_Window]:
        """The hook adding each text's row of `steering` (no hook when no row is steered); the
        loops set the window's delta to the rows of each batch (`batch_delta`)."""
        window = self._window = _Window()
        first = steering.first
        if first is None:
            yield window
            return
        layers = decoder_layers(self.model)
        if first.hook_point != self.hook_point:
            parse_hook_point(first.hook_point, len(layers))  # a hook of this model
        if first.d_model != self.d_model:
            raise ValidationError(
                "SteeringVector", "vector", f"length {self.d_model} (d_model)", str(first.d_model)
            )
        added = steering.added(np.float64)
        if broadcast:
            window.delta = added[:1]
        positions = first.positions

        def edit(residual: torch.Tensor) -> torch.Tensor:
            import torch

            delta = window.delta
            if delta is None:
                return residual
            if not isinstance(delta, torch.Tensor):
                delta = torch.as_tensor(np.asarray(delta), dtype=torch.float32)[:, None, :]
            if delta.dtype != residual.dtype or delta.device != residual.device:
                delta = delta.to(device=residual.device, dtype=residual.dtype)
            window.delta = delta
            n_pos = residual.shape[1]
            start, window.seen = window.seen, window.seen + n_pos
            if positions is Positions.ALL:
                return residual + delta
            if window.prompt_length is None:
                return residual + delta if positions is Positions.PROMPT else residual
            n_prompt = min(max(window.prompt_length - start, 0), n_pos)
            out = residual.clone()
            if positions is Positions.PROMPT:
                out[:, :n_prompt] += delta
            else:
                out[:, n_prompt:] += delta
            return out

        window.rows_added = added
        with residual_hook(self.model, first.hook_point, edit):
            yield window

    @staticmethod
    def _batch_delta(window: _Window, steering: Intervention, idx: Sequence[int]) -> None:
        """Point the window at the rows `idx` of the intervention (None when none is steered)."""
        window.seen = 0
        if not steering.steered:
            return
        rows = [steering[i] for i in idx]
        if all(r is None for r in rows):
            window.delta = None
            return
        window.delta = window.rows_added[list(idx)]

    @contextmanager
    def _final_positions(self, last: torch.Tensor) -> Iterator[bool]:
        """Only the last real position of each row reaches the unembedding (the final norm acts
        per position, so nothing changes but the cost: Gemma's vocabulary is 262,144 tokens)."""
        import torch

        norm = getattr(self.model.base_model, "norm", None)
        if norm is None:
            yield False
            return

        def pick(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
            at = torch.arange(output.shape[0], device=output.device)
            return output[at, last.to(output.device)][:, None, :]

        handle = norm.register_forward_hook(pick)
        try:
            yield True
        finally:
            handle.remove()

    def _logits(self, texts: list[str], steering: Intervention) -> FloatArray:
        """Next-token logits (n, d_vocab) float32 at each text's last real token, each text
        steered by its row in the same batched pass (every position counts as prompt)."""
        import torch

        rows = self._token_rows(texts, "texts")
        out: np.ndarray[Any, Any] | None = None
        with self._steering(steering) as window, torch.inference_mode():
            for idx in self._batches(rows, "logits"):
                self._batch_delta(window, steering, idx)
                tokens, mask, positions, last = self._pad([rows[i] for i in idx], self.padding_side)
                with self._final_positions(last) as picked:
                    logits = self.model(
                        input_ids=tokens, attention_mask=mask, position_ids=positions,
                        use_cache=False,
                    ).logits  # fmt: skip
                if picked:
                    chosen = logits[:, -1]
                else:
                    chosen = logits[torch.arange(len(idx), device=logits.device), last]
                if out is None:
                    out = np.empty((len(rows), chosen.shape[-1]), dtype=np.float32)
                out[idx] = chosen.to(device="cpu", dtype=torch.float32).numpy()
        assert out is not None
        return readonly(out)

    def _continuation_logprobs(
        self, prompts: list[str], continuations: Sequence[str], steering: Intervention
    ) -> list[FloatArray]:
        """(m,) float64 natural-log probabilities of each continuation's m tokens given the
        prompt (templated, with `chat_template`) and its earlier tokens; the continuation's
        tokens are those of prompt + continuation after the prompt's (or, when the join merges
        a token, the continuation tokenised alone)."""
        import torch

        prompt_rows = self._token_rows(prompts, "prompts")
        if isinstance(continuations, str) or len(continuations) != len(prompt_rows):
            raise ValidationError(
                _OWNER, "continuations", f"{len(prompt_rows)} strings, one per prompt",
                repr(continuations)[:60],
            )  # fmt: skip
        rows = []
        for i, (prompt, head, text) in enumerate(zip(prompts, prompt_rows, continuations)):
            if not isinstance(text, str):
                raise ValidationError(_OWNER, f"continuations[{i}]", "a string", type(text))
            joined = self._encode(self._format(prompt) + text) if text else head
            tail = joined[len(head) :] if joined[: len(head)] == head else None
            if tail is None:
                tail = [int(t) for t in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
            rows.append(head + tail)
        out: list[FloatArray] = [readonly(np.empty(0)) for _ in rows]
        todo = [i for i, row in enumerate(rows) if len(row) > len(prompt_rows[i])]
        if not todo:
            return out
        with self._steering(steering) as window, torch.inference_mode():
            for chunk in self._batches([rows[i] for i in todo], "continuation log-probs"):
                idx = [todo[j] for j in chunk]
                self._batch_delta(window, steering, idx)
                tokens, mask, positions, last = self._pad([rows[i] for i in idx], self.padding_side)
                logits = self.model(
                    input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=False
                ).logits
                for b, i in enumerate(idx):
                    first = int(last[b]) - (len(rows[i]) - 1)
                    n_prompt = len(prompt_rows[i])
                    at = torch.arange(first + n_prompt - 1, first + len(rows[i]) - 1)
                    selected = logits[b, at.to(logits.device)].to(torch.float64)
                    targets = torch.as_tensor(rows[i][n_prompt:], device=logits.device)
                    scores = selected.gather(-1, targets[:, None])[:, 0]
                    values = scores - torch.logsumexp(selected, dim=-1)
                    out[i] = readonly(values.cpu().numpy())
        return out

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
        """The continuation (new text only) of each prompt, through `model.generate` (batches
        left-padded, as it requires); greedy unless do_sample. Options: do_sample, temperature,
        top_k, top_p."""
        ids = self.generate_tokens(
            prompts, max_new_tokens=max_new_tokens, vector=steering, seed=seed, **options
        )
        return [str(self.tokenizer.decode(row, skip_special_tokens=True)) for row in ids]

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
        top_p: float | None = None,
    ) -> list[list[int]]:
        """The new token ids of each prompt (EOS and what follows removed), each steered by its
        row of `vector`; `generated` positions are those whose input token the model wrote."""
        import torch
        from transformers import GenerationConfig

        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ValidationError(_OWNER, "max_new_tokens", "a positive integer", max_new_tokens)
        rows = self._token_rows(prompts, "prompts")
        steering = Intervention.of(vector, len(rows))
        tokenizer = self.tokenizer
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_k=top_k if do_sample else None,
            top_p=top_p if do_sample else None,
            eos_token_id=eos,
            pad_token_id=pad,
            bos_token_id=tokenizer.bos_token_id,
        )
        out: list[list[int]] = [[] for _ in rows]
        with self._steering(steering) as window, torch.inference_mode():
            for n_batch, idx in enumerate(self._batches(rows, "generate", by_length=False)):
                self._batch_delta(window, steering, idx)
                tokens, mask, _, _ = self._pad([rows[i] for i in idx], "left")
                window.prompt_length = int(tokens.shape[1])
                torch.manual_seed(seed + n_batch)
                result = self.model.generate(
                    input_ids=tokens, attention_mask=mask, generation_config=config
                )
                for b, i in enumerate(idx):
                    new = [int(t) for t in result[b, tokens.shape[1] :].tolist()]
                    out[i] = new[: new.index(eos)] if eos is not None and eos in new else new
        return out
