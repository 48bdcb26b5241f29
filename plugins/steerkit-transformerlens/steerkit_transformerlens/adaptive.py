"""A `steerkit.SteeringFunction` evaluated in torch, on the model's device: v*(r_t) at every token.

The hook of positions mode `adaptive` reads each position's activation h_t at the hook point,
computes its margin r_t = t − w·h_t, and adds v*(r_t) (zero where r_t ≤ 0): a sorted search in
the table's margins and one interpolation per position, no solver call. Arithmetic runs in the
activation's dtype, or float32 for half-precision activations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from steerkit import SteeringFunction

if TYPE_CHECKING:
    import torch

__all__ = ["TorchSteeringFunction"]


class TorchSteeringFunction:
    """The table of `function` as tensors, moved to a device and dtype on first use there."""

    def __init__(self, function: SteeringFunction) -> None:
        self.function = function
        self._key: tuple[Any, Any] | None = None
        self._tensors: dict[str, torch.Tensor] = {}

    def _on(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
        key = (like.device, dtype)
        if self._key != key:
            f = self.function
            arrays: dict[str, np.ndarray[Any, Any]] = {
                "w": f.direction,
                "margins": f.margins,
                "vectors": f.vectors,
                "slope": f.slope,
            }
            if f.kind == "socp":
                arrays.update(f.segment_terms())
            self._tensors = {
                name: torch.from_numpy(np.array(a)).to(device=like.device, dtype=dtype)
                for name, a in arrays.items()
            }
            self._key = key
        return self._tensors

    def margins(self, activation: torch.Tensor) -> torch.Tensor:
        """r_t = t − w·h_t for an activation (..., d_model): shape (...)."""
        tensors = self._on(activation)
        w = tensors["w"]
        return self.function.threshold - activation.to(w.dtype) @ w

    def __call__(self, activation: torch.Tensor) -> torch.Tensor:
        """v*(r_t) at every position of `activation` (..., d_model), in its dtype; exact zeros
        where r_t ≤ 0."""
        import torch

        t = self._on(activation)
        r = self.margins(activation)
        margins, vectors = t["margins"], t["vectors"]
        n = margins.shape[0]
        k = (torch.searchsorted(margins, r.contiguous(), right=True) - 1).clamp(0, n - 2)
        m0, m1 = margins[k], margins[k + 1]
        weight = ((r - m0) / (m1 - m0)).unsqueeze(-1)
        v = torch.lerp(vectors[k], vectors[k + 1], weight)
        if self.function.kind == "socp":
            sphere = self._sphere(t, k, r)
            v = torch.where((k > 0).unsqueeze(-1), sphere, v)
        past = (r >= margins[-1]).unsqueeze(-1)
        v = torch.where(past, vectors[-1] + (r - margins[-1]).unsqueeze(-1) * t["slope"], v)
        v = torch.where((r > 0).unsqueeze(-1), v, torch.zeros((), dtype=v.dtype, device=v.device))
        return v.to(activation.dtype)

    def _sphere(self, t: dict[str, torch.Tensor], k: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """An SOCP row segment: r · ((1 − θ) u_k + θ u_{k+1}) with ‖·‖ = ε."""
        import torch

        s = self.function.parameter / r.clamp_min(torch.finfo(r.dtype).tiny)
        aa, ab, bb = t["AA"][k], t["AB"][k], t["BB"][k]
        c = (aa - s * s).clamp_min(0.0)
        denom = -ab + (ab * ab - bb * c).clamp_min(0.0).sqrt()
        theta = torch.where(denom > 0, c / denom.clamp_min(torch.finfo(r.dtype).tiny), 0.0)
        theta = theta.clamp(0.0, 1.0).unsqueeze(-1)
        units = t["units"]
        return r.unsqueeze(-1) * torch.lerp(units[k], units[k + 1], theta)
