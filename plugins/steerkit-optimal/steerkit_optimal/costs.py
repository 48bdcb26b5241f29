"""Per-feature costs for cost-weighted sparsity: min cᵀδ (+ (λ/2)‖Dᵀδ‖²).

A method's `costs` option is one of
- None: every feature costs 1 (the unweighted problem);
- a list or array of d_sae positive numbers, or the path of a `.npy` file holding one;
- "output_score": c_i = 1 / (floor + s_i), s_i the output score of Arad, Mueller & Belinkov (2025,
  "SAEs are good for steering — if you select the right features") computed by the activation
  source, in [0, 1]: a feature whose amplification promotes its own logit-lens tokens costs down
  to 1 / (floor + 1), an inert one 1 / floor (10× more at the default floor 0.1).
`exclude` (feature ids) sets those features' cost to inf: they are never used.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from typing import Any

import numpy as np

from steerkit import MethodContext, ValidationError

__all__ = ["OUTPUT_SCORE", "SCORE_FLOOR", "check_costs", "check_exclude", "resolve_costs"]

OUTPUT_SCORE = "output_score"
#: The floor of c_i = 1 / (floor + s_i): bounds the cost ratio at (1 + floor) / floor.
SCORE_FLOOR = 0.1

#: Output scores per source (one computation serves every method of a run).
_scores: weakref.WeakKeyDictionary[Any, np.ndarray[Any, Any]] = weakref.WeakKeyDictionary()


def check_costs(method: str, value: Any) -> Any:
    """The `costs` option as given, checked for its type (its size is checked against d_sae when
    the method runs): None, "output_score", a `.npy` path, or a sequence of numbers."""
    if value is None or (isinstance(value, str) and value == OUTPUT_SCORE):
        return value
    if isinstance(value, (str, os.PathLike)):
        if not str(value).endswith(".npy"):
            raise ValidationError(
                method,
                "costs",
                f'None, "{OUTPUT_SCORE}", a .npy file of d_sae costs, or a list of d_sae costs',
                repr(value),
            )
        return str(value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(method, "costs", "a list of d_sae positive costs", repr(value)) from e
    if array.ndim != 1:
        raise ValidationError(method, "costs", "a 1-D list of d_sae costs", f"shape {array.shape}")
    return array


def check_exclude(method: str, value: Any) -> tuple[int, ...]:
    """Feature ids to exclude (infinite cost): a list of non-negative integers."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValidationError(method, "exclude", "a list of feature ids", repr(value))
    ids = []
    for i, f in enumerate(value):
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 0:
            raise ValidationError(method, f"exclude[{i}]", "a feature id ≥ 0", repr(f))
        ids.append(int(f))
    return tuple(ids)


def output_score_costs(context: MethodContext, d_sae: int, method: str) -> np.ndarray[Any, Any]:
    """c_i = 1 / (SCORE_FLOOR + s_i) from the source's output scores of all d_sae features."""
    source = context.source
    if source is None:
        raise ValidationError(
            method,
            "costs",
            f'a source that computes output scores for costs="{OUTPUT_SCORE}" (the method got '
            "no activation source: pass MethodContext(source=...) or give the costs as an array)",
            "no source",
        )
    scores = _scores.get(source)
    if scores is None:
        try:
            scores = np.asarray(source.output_scores(range(d_sae)), dtype=np.float64)
        except NotImplementedError as e:
            raise ValidationError(
                method,
                "costs",
                f'a source that computes output scores for costs="{OUTPUT_SCORE}" (e.g. '
                "transformerlens), or the costs as an array",
                f"{type(source).__name__}: {e}",
            ) from e
        # a source that cannot be weakly referenced is scored every time
        with contextlib.suppress(TypeError):
            _scores[source] = scores
    return 1.0 / (SCORE_FLOOR + scores)


def resolve_costs(
    method: str, costs: Any, exclude: tuple[int, ...], context: MethodContext, d_sae: int
) -> np.ndarray[Any, Any] | None:
    """The cost vector (d_sae,) for `SteeringProblem(costs=...)`, or None for all ones."""
    if costs is None:
        resolved = None
    elif isinstance(costs, str) and costs == OUTPUT_SCORE:
        resolved = output_score_costs(context, d_sae, method)
    elif isinstance(costs, str):
        try:
            resolved = np.load(costs)
        except OSError as e:
            raise ValidationError(method, "costs", "a readable .npy file", repr(costs)) from e
    else:
        resolved = np.asarray(costs, dtype=np.float64)
    if resolved is not None and resolved.shape != (d_sae,):
        raise ValidationError(
            method, "costs", f"shape ({d_sae},), one cost per SAE feature", str(resolved.shape)
        )
    if exclude:
        bad = [f for f in exclude if f >= d_sae]
        if bad:
            raise ValidationError(method, "exclude", f"feature ids in [0, {d_sae})", repr(bad))
        resolved = np.ones(d_sae) if resolved is None else np.array(resolved, dtype=np.float64)
        resolved[list(exclude)] = math.inf
    return resolved
