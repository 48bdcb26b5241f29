"""TransformerLens hook-point names on a Hugging Face causal LM's decoder layers.

`blocks.L.hook_resid_post` is the output of decoder layer L (`model.layers[L]`, which is
`output_hidden_states`' `hidden_states[L + 1]`); `blocks.L.hook_resid_pre` is the input of layer
L (`hidden_states[L]`; for L = 0 the embedding output, already scaled by √d_model in Gemma).
`hidden_states[-1]` is the exception: Hugging Face applies the final norm to it, so
`blocks.{n-1}.hook_resid_post` (the last layer's raw output) is not `hidden_states[n]`.

`ResidualHook` is one torch hook on that layer that reads (`capture`) or edits (`edit`) the
residual stream; `attached` removes it on exit, also on error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from steerkit.errors import ValidationError

if TYPE_CHECKING:
    import torch

__all__ = ["decoder_layers", "parse_hook_point", "residual_hook"]

_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")

#: Where causal LMs keep their decoder layers, relative to `model.base_model`.
_LAYER_LISTS = ("layers", "h", "blocks", "decoder.layers")


def parse_hook_point(hook_point: str, n_layers: int) -> tuple[int, str]:
    """(layer, "pre" | "post") of `blocks.L.hook_resid_pre|post` for a model of n_layers."""
    match = _HOOK.match(hook_point) if isinstance(hook_point, str) else None
    if match is None or int(match.group(1)) >= n_layers:
        raise ValidationError(
            "HuggingFaceSource",
            "hook_point",
            f"blocks.L.hook_resid_pre or blocks.L.hook_resid_post with 0 ≤ L < {n_layers} "
            "(the residual stream before or after decoder layer L)",
            repr(hook_point),
        )
    return int(match.group(1)), match.group(2)


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder layers (a torch ModuleList)."""
    base = getattr(model, "base_model", model)
    for path in _LAYER_LISTS:
        found: Any = base
        for part in path.split("."):
            found = getattr(found, part, None)
        if found is not None and hasattr(found, "__len__") and len(found) > 0:
            return found
    raise ValidationError(
        "HuggingFaceSource",
        "model",
        f"a causal LM whose base model keeps its decoder layers in one of {_LAYER_LISTS}",
        type(model).__name__,
    )


@contextmanager
def residual_hook(
    model: Any, hook_point: str, edit: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Inside the block, every forward pass through `model` replaces the residual stream at
    `hook_point` (batch, position, d_model) by `edit(residual)` (which may also just read it,
    or raise to stop the pass); the torch hook is removed on exit, also on error."""
    layers = decoder_layers(model)
    layer, side = parse_hook_point(hook_point, len(layers))
    module = layers[layer]
    if side == "post":

        def after(module: Any, args: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                return (edit(output[0]), *output[1:])
            return edit(output)

        handle = module.register_forward_hook(after)
    else:

        def before(module: Any, args: Any, kwargs: Any) -> Any:
            if args:
                return (edit(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}

        handle = module.register_forward_pre_hook(before, with_kwargs=True)
    try:
        yield None
    finally:
        handle.remove()
