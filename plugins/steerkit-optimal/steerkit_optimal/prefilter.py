"""The research code's optional pre-filter: solve over a pool of likely features only.

Pool = top K features by |SAE activation| of the input ∪ top K by |cos(Dᵢ, w)| over the concept
directions. Off by default: the methods solve over the full dictionary unless asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from steerkit.checks import integer

__all__ = ["prefilter_pool"]


def prefilter_pool(
    decoder: npt.NDArray[Any],
    directions: npt.NDArray[Any],
    top_k: int,
    features: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.int64]:
    """Sorted feature indices: top_k by |cos(Dᵢ, w)| (best over the k directions), united with
    top_k by |features| when the input's SAE activations (d_sae,) are given."""
    d_sae = decoder.shape[0]
    top_k = integer("prefilter_pool", "top_k", top_k, minimum=1)
    if top_k >= d_sae:
        return np.arange(d_sae)
    row_norms = np.linalg.norm(decoder, axis=1)
    row_norms[row_norms == 0] = 1.0
    w = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    cosine = np.abs((decoder @ w.T) / row_norms[:, None]).max(axis=1)
    pool = [np.argpartition(-cosine, top_k - 1)[:top_k]]
    if features is not None:
        activation = np.abs(np.asarray(features, dtype=np.float64).reshape(-1))
        pool.append(np.argpartition(-activation, top_k - 1)[:top_k])
    return np.unique(np.concatenate(pool)).astype(np.int64)
