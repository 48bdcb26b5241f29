"""Adding α·v at a hook through TransformerLens's `model.hooks(...)`, at chosen positions only.

Positions are absolute token positions in the sequence the model is run on. A `PositionWindow`
says which of those positions hold prompt tokens and where the current forward pass starts:

- a plain forward pass (`model(tokens)`, `source.logits(...)`): every position is a prompt
  position, so `prompt` and `all` steer every position and `generated` steers none;
- generation (`TransformerLensSource.generate`): the prompt is left-padded to a common length P;
  positions < P hold prompt tokens, positions ≥ P hold generated tokens. With a KV cache each
  step runs one new position, at offset P + step − 1; the window tracks it.

`generated` therefore means "positions whose input token the model generated": the first new
token is predicted at the last prompt position, which `prompt` and `all` steer and `generated`
does not. The three sets partition the sequence: all = prompt ∪ generated.

`adaptive` steers every position too, each with its own vector: the hook reads the position's
activation h_t, computes its margin r_t = t − w·h_t from the vector's steering function, and adds
scale · v*(r_t), zero where r_t ≤ 0 (`adaptive.TorchSteeringFunction`). Reading and adding happen
at the same hook, so the activation it reads is the unsteered one (it has no effect on itself;
only later layers see the change), and a cached generation step reads each new position once.

Per-row vectors (an `Intervention`: one per text, None for an unsteered text) are added in the
same batched forward pass: the window also says which texts the current batch holds (`rows`), and
row b of the batch gets its own text's vector (the Intervention checked that they share a hook
point, positions and width).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from steerkit import Intervention, Positions, SteeringVector, ValidationError

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

__all__ = ["PositionWindow", "RowSteeringHook", "SteeringHook", "steering_hooks"]


@attrs.define
class PositionWindow:
    """prompt_length: the number of prompt positions (None: all positions are prompt);
    offset: the absolute position of the first position in the current forward pass;
    rows: which texts (indices into the per-row vectors) the current batch holds, in batch order
    (None: the batch is every text, in order)."""

    prompt_length: int | None = None
    offset: int = 0
    rows: Sequence[int] | None = None


class SteeringHook:
    """A forward hook adding `scale · vector` at the positions `positions` selects."""

    def __init__(self, vector: SteeringVector, window: PositionWindow) -> None:
        self.vector = vector
        self.window = window
        self._tensor: torch.Tensor | None = None
        self._table: Any = None

    def _delta(self, like: torch.Tensor) -> torch.Tensor:
        import torch

        cached = self._tensor
        if cached is None or cached.dtype != like.dtype or cached.device != like.device:
            values = torch.as_tensor(self.vector.vector * self.vector.scale, dtype=torch.float32)
            cached = values.to(device=like.device, dtype=like.dtype)
            self._tensor = cached
        return cached

    def __call__(self, activation: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        if activation.ndim != 3 or activation.shape[-1] != self.vector.d_model:
            raise ValidationError(
                "SteeringVector",
                "vector",
                f"a vector of the width of {hook.name} (activation shape "
                f"{tuple(activation.shape)}: batch, position, d_model)",
                f"length {self.vector.d_model}",
            )
        positions = self.vector.positions
        if positions is Positions.ADAPTIVE:
            return activation + self._row_scales(activation) * self._function(activation)
        delta = self._delta(activation)
        if positions is Positions.ALL:
            return activation + delta
        n_pos = activation.shape[1]
        prompt_length = self.window.prompt_length
        if prompt_length is None:  # a plain forward pass: every position holds a prompt token
            return activation + delta if positions is Positions.PROMPT else activation
        start = self.window.offset
        # absolute positions start .. start + n_pos − 1; the prompt ends before prompt_length
        n_prompt = min(max(prompt_length - start, 0), n_pos)
        out = activation.clone()
        if positions is Positions.PROMPT:
            out[:, :n_prompt] += delta
        else:
            out[:, n_prompt:] += delta
        return out

    def _function(self, activation: torch.Tensor) -> torch.Tensor:
        """v*(r_t) at every position, from the activation the hook reads (adaptive mode)."""
        if self._table is None:
            from steerkit_transformerlens.adaptive import TorchSteeringFunction

            assert self.vector.function is not None
            self._table = TorchSteeringFunction(self.vector.function)
        return self._table(activation)

    def _row_scales(self, like: torch.Tensor) -> torch.Tensor | float:
        """The scale α of each row of the batch, (batch, 1, 1), or one number for all."""
        return float(self.vector.scale)


class RowSteeringHook(SteeringHook):
    """A forward hook adding to row b of the batch the vector of text `window.rows[b]`
    (`scale · vector`, or nothing where that text's entry is None), at the shared positions."""

    def __init__(self, vectors: Sequence[SteeringVector | None], window: PositionWindow) -> None:
        reference = next(v for v in vectors if v is not None)
        super().__init__(reference, window)
        self.vectors = list(vectors)
        self._rows: tuple[Sequence[int] | None, torch.Tensor] | None = None
        self._scales: tuple[Sequence[int] | None, torch.Tensor] | None = None

    def _matrix(self, like: torch.Tensor) -> torch.Tensor:
        import numpy as np
        import torch

        cached = self._tensor
        if cached is None or cached.dtype != like.dtype or cached.device != like.device:
            values = np.zeros((len(self.vectors), self.vector.d_model), dtype=np.float32)
            for i, v in enumerate(self.vectors):
                if v is not None:
                    values[i] = v.vector * v.scale
            cached = torch.as_tensor(values).to(device=like.device, dtype=like.dtype)
            self._tensor = cached
            self._rows = None
        return cached

    def _delta(self, like: torch.Tensor) -> torch.Tensor:
        import torch

        matrix = self._matrix(like)
        rows = self.window.rows
        if rows is None:
            delta = matrix[:, None, :]
        else:
            if self._rows is None or self._rows[0] is not rows:
                index = torch.as_tensor(list(rows), dtype=torch.long, device=matrix.device)
                self._rows = (rows, matrix[index][:, None, :])
            delta = self._rows[1]
        _check_batch(delta.shape[0], like)
        return delta

    def _row_scales(self, like: torch.Tensor) -> torch.Tensor:
        """Each text's scale (0 for an unsteered text), for the texts of the batch."""
        import torch

        rows = self.window.rows
        cached = self._scales
        if cached is None or cached[0] is not rows or cached[1].device != like.device:
            scales = torch.tensor(
                [0.0 if v is None else float(v.scale) for v in self.vectors], device=like.device
            )
            if rows is not None:
                scales = scales[torch.as_tensor(list(rows), dtype=torch.long, device=like.device)]
            cached = self._scales = (rows, scales[:, None, None])
        _check_batch(cached[1].shape[0], like)
        return cached[1].to(like.dtype)


def _check_batch(n_texts: int, like: torch.Tensor) -> None:
    if n_texts != like.shape[0]:
        raise ValidationError(
            "PositionWindow",
            "rows",
            f"one text per row of the batch ({like.shape[0]} rows)",
            f"{n_texts} texts (set window.rows to the texts of the batch)",
        )


def _check_vector(model: HookedTransformer, vector: SteeringVector) -> None:
    if vector.hook_point not in model.hook_dict:
        raise ValidationError(
            "SteeringVector",
            "hook_point",
            f"a hook of this model, e.g. {_examples(model)}",
            repr(vector.hook_point),
        )
    d_model = int(model.cfg.d_model)
    if vector.d_model != d_model and vector.hook_point.split(".")[-1].startswith("hook_resid"):
        raise ValidationError(
            "SteeringVector",
            "vector",
            f"length {d_model} (the model's d_model)",
            str(vector.d_model),
        )


@contextmanager
def steering_hooks(
    model: HookedTransformer,
    steering: Intervention | SteeringVector,
    window: PositionWindow | None = None,
) -> Iterator[PositionWindow]:
    """Inside the block, `model` runs with `steering` added at its hook point; the hook is
    removed on exit, also when the block raises (TransformerLens removes hooks at its context
    level).

    `steering`: one vector for every text, or an `Intervention` with one row per text (None:
    that text unsteered); `window.rows` then says which texts each batch holds. No steered row:
    no hook."""
    window = window if window is not None else PositionWindow()
    if isinstance(steering, SteeringVector):
        hook: SteeringHook = SteeringHook(steering, window)
    elif isinstance(steering, Intervention):
        first = steering.first
        if first is None:
            yield window
            return
        if all(row is first for row in steering.rows):
            hook = SteeringHook(first, window)
        else:
            hook = RowSteeringHook(steering.rows, window)
    else:
        raise ValidationError(
            "steering_hooks",
            "steering",
            "a steerkit.SteeringVector or a steerkit.Intervention",
            type(steering).__name__,
        )
    _check_vector(model, hook.vector)
    with model.hooks(fwd_hooks=[(hook.vector.hook_point, hook)]):
        yield window


def _examples(model: Any) -> str:
    names = [n for n in model.hook_dict if n.endswith(("hook_resid_pre", "hook_resid_post"))]
    return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
