"""A `steerkit.SteeringFunction` evaluated in torch, on the model's device: v*(r_t) at every token.

The hook of positions mode `adaptive` reads each position's activation h_t at the hook point,
computes its margin r_t = t − w·h_t, and adds v*(r_t) (zero where r_t ≤ 0): a sorted search in
the table's margins and one interpolation per position, no solver call. Arithmetic runs in the
activation's dtype, or float32 for half-precision activations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
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
            self._tensors = {
                name: torch.from_numpy(np.array(a)).to(
                    device=like.device, dtype=torch.bool if a.dtype == bool else dtype
                )
                for name, a in _extended(self.function).items()
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
        k = (torch.searchsorted(margins, r.contiguous(), right=True) - 1).clamp(
            0, margins.shape[0] - 2
        )
        m0 = margins[k]
        weight = ((r - m0) / (margins[k + 1] - m0)).unsqueeze(-1)
        v = torch.lerp(vectors[k], vectors[k + 1], weight)  # past the end: the last line
        if self.function.kind == "socp":
            v = torch.where(t["sphere"][k].unsqueeze(-1), self._sphere(t, k, r), v)
        v = torch.where((r > 0).unsqueeze(-1), v, torch.zeros((), dtype=v.dtype, device=v.device))
        return v.to(activation.dtype)

    def _sphere(self, t: dict[str, torch.Tensor], k: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """An SOCP row segment: r · ((1 − θ) u_k + θ u_{k+1}) with ‖·‖ = ε."""
        import torch

        tiny = torch.finfo(r.dtype).tiny
        s = self.function.parameter / r.clamp_min(tiny)
        aa, ab, bb = t["AA"][k], t["AB"][k], t["BB"][k]
        c = (aa - s * s).clamp_min(0.0)
        denom = -ab + (ab * ab - bb * c).clamp_min(0.0).sqrt()
        theta = (c / denom.clamp_min(tiny)).clamp(0.0, 1.0).unsqueeze(-1)
        units = t["units"]
        return r.unsqueeze(-1) * torch.lerp(units[k], units[k + 1], theta)


def _extended(f: SteeringFunction) -> dict[str, np.ndarray[Any, Any]]:
    """The table with one more row at twice the last margin, on the line past the end
    (v_last + (r − r_last) · slope), so that extrapolating the last segment is the answer past
    the end and the evaluator needs no branch for it; for an SOCP, which segments keep ‖v‖ = ε
    (`sphere`: all but the first and the added one) and their terms."""
    last = float(f.margins[-1])
    margins = np.append(f.margins, 2.0 * last)
    vectors = np.vstack([f.vectors, f.vectors[-1] + last * f.slope])
    out: dict[str, np.ndarray[Any, Any]] = {
        "w": f.direction,
        "margins": margins,
        "vectors": vectors,
    }
    if f.kind == "socp":
        sphere = np.ones(margins.size - 1, dtype=bool)
        sphere[0] = sphere[-1] = False
        longer = attrs.evolve(f, margins=margins, vectors=vectors)
        out.update(longer.segment_terms(), sphere=sphere)
    return out
