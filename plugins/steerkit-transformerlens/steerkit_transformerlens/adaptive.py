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
            self._tensors = {
                name: torch.from_numpy(np.array(a)).to(
                    device=like.device, dtype=torch.bool if a.dtype == bool else dtype
                )
                for name, a in _segments(self.function).items()
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
        r = self.margins(activation).clamp_min(0.0)  # r ≤ 0: segment 0 at r = 0, v = 0 exactly
        k = torch.searchsorted(t["bounds"], r.contiguous(), right=True)
        rows = t["table"][k]  # (..., 2, d_model): the segment's start v_k and slope
        v = torch.addcmul(rows[..., 0, :], (r - t["starts"][k]).unsqueeze(-1), rows[..., 1, :])
        if self.function.kind == "socp":
            v = torch.where(t["sphere"][k].unsqueeze(-1), self._sphere(t, k, r), v)
        return v.to(activation.dtype)

    def _sphere(self, t: dict[str, torch.Tensor], k: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """An SOCP row segment: r · (u_k + θ (u_{k+1} − u_k)) with ‖·‖ = ε."""
        import torch

        tiny = torch.finfo(r.dtype).tiny
        s = self.function.parameter / r.clamp_min(tiny)
        aa, ab, bb = t["AA"][k], t["AB"][k], t["BB"][k]
        c = (aa - s * s).clamp_min(0.0)
        denom = -ab + (ab * ab - bb * c).clamp_min(0.0).sqrt()
        theta = (c / denom.clamp_min(tiny)).clamp(0.0, 1.0).unsqueeze(-1)
        units = t["units"][k]
        return r.unsqueeze(-1) * torch.addcmul(units[..., 0, :], theta, units[..., 1, :])


def _segments(f: SteeringFunction) -> dict[str, np.ndarray[Any, Any]]:
    """The table as n segments, each a start (r_k, v_k) and a slope: segment k < n − 1 joins
    rows k and k + 1, segment n − 1 continues past the last row along `f.slope`. `bounds` are
    the margins where segments change, for `searchsorted`. For an SOCP also, per segment, the
    unit-margin vectors u_k and u_{k+1} − u_k, the terms of the norm-keeping weight, and
    `sphere`: whether it keeps ‖v‖ = ε (all but the first and the last)."""
    m, v = f.margins, f.vectors
    slopes = np.vstack([np.diff(v, axis=0) / np.diff(m)[:, None], f.slope])
    out: dict[str, np.ndarray[Any, Any]] = {
        "w": f.direction,
        "bounds": m[1:],
        "starts": m,
        "table": np.stack([v, slopes], axis=1),
    }
    if f.kind == "socp":
        terms = f.segment_terms()
        units = terms["units"]
        steps = np.vstack([np.diff(units, axis=0), np.zeros((1, f.d_model))])
        sphere = np.ones(m.size, dtype=bool)
        sphere[0] = sphere[-1] = False
        out.update(
            units=np.stack([units, steps], axis=1),
            sphere=sphere,
            **{name: np.append(terms[name], 1.0) for name in ("AA", "AB", "BB")},
        )
    return out
