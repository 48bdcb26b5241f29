"""Store a HookedTransformer's projection weights in the layout its forward pass reads them in.

TransformerLens 3.9 keeps each weight in its own reading order (W_in: d_model × d_mlp, W_Q:
head × d_model × d_head, …) and, on every forward pass, makes a contiguous copy of the transposed
weight before multiplying (`F.linear(x, W.T.contiguous())`, and `einops.rearrange` of the
attention weights into a matrix): for Gemma-3-270M that is about 1 GB copied per forward pass, a
third of a batched generation step on a CPU. `contiguous_forward_weights` stores each of those
weights transposed in memory and exposes it through the same parameter as a strided view, so the
forward pass's transpose is already contiguous and `.contiguous()` / `reshape` copy nothing.

The parameters keep their shapes and values; the matrix each multiplication receives is laid out
exactly as the copy was, so every output is bitwise the same as before (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

__all__ = ["contiguous_forward_weights"]

#: (parameter name, storage order): the permutation of the parameter's axes the forward pass
#: reads contiguously. Linear maps read W.T (2-D); Q/K/V read (head, d_head, d_model); W_O reads
#: (d_model, head, d_head).
_MATRIX = (1, 0)
_QKV = (0, 2, 1)
_OUT = (2, 0, 1)
_LAYOUTS: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {
    "GatedMLP": (("W_gate", _MATRIX), ("W_in", _MATRIX), ("W_out", _MATRIX)),
    "Unembed": (("W_U", _MATRIX),),
    "Attention": (("W_Q", _QKV), ("W_K", _QKV), ("W_V", _QKV), ("W_O", _OUT)),
    "GroupedQueryAttention": (("W_Q", _QKV), ("_W_K", _QKV), ("_W_V", _QKV), ("W_O", _OUT)),
}


def _inverse(order: Sequence[int]) -> tuple[int, ...]:
    out = [0] * len(order)
    for i, axis in enumerate(order):
        out[axis] = i
    return tuple(out)


def _relayout(param: torch.Tensor, order: tuple[int, ...]) -> bool:
    """Store `param` so that `param.permute(order)` is contiguous; False if it already was."""
    if param.ndim != len(order) or param.permute(order).is_contiguous():
        return False
    storage = param.data.permute(order).contiguous()
    param.data = storage.permute(_inverse(order))
    return True


def contiguous_forward_weights(model: HookedTransformer) -> int:
    """Re-lay `model`'s MLP, attention and unembedding weights (see the module docstring), in
    place; returns how many tensors moved (0 on a second call). A 4-bit model is left alone."""
    import torch

    if getattr(model.cfg, "load_in_4bit", False):
        return 0
    moved = 0
    with torch.no_grad():
        for module in model.modules():
            for name, order in _LAYOUTS.get(type(module).__name__, ()):
                param = module._parameters.get(name)
                if param is not None and _relayout(param, order):
                    moved += 1
    return moved
