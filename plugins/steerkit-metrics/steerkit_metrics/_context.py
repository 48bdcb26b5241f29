"""What every metric reads from an EvalContext: one vector per input, the added vectors α·v as a
matrix, and the things a metric needs that may be missing (a source, a probe, generations)."""

from __future__ import annotations

from typing import Any

import numpy as np

from steerkit import EvalContext, LabelledTexts, SteeringVector, ValidationError

__all__ = [
    "FloatVector",
    "added_vectors",
    "generation_rows",
    "generations_to_score",
    "nan_column",
    "per_input_vectors",
    "require_source",
    "require_texts",
    "training_split",
]

FloatVector = np.ndarray[Any, np.dtype[np.float64]]


def nan_column(n: int) -> FloatVector:
    """(n,) NaN: "does not apply" until filled."""
    return np.full(n, np.nan, dtype=np.float64)


def per_input_vectors(context: EvalContext) -> tuple[SteeringVector | None, ...]:
    """The vector steering each input: the shared one for every input, or vectors[i] (None where
    the method failed on input i)."""
    return context.result.per_input(len(context.inputs))


def added_vectors(context: EvalContext) -> tuple[FloatVector, np.ndarray[Any, Any]]:
    """(n, d_model) float64 rows scale · vector added to each input (0 where none), and the
    (n,) mask of inputs that have a vector. Vectors must be as wide as the activations and added
    where they were read."""
    vectors = per_input_vectors(context)
    hidden = context.inputs.hidden
    n, d_model = hidden.shape
    matrix = np.zeros((n, d_model), dtype=np.float64)
    valid = np.zeros(n, dtype=bool)
    for i, vector in enumerate(vectors):
        if vector is None:
            continue
        if vector.d_model != d_model:
            raise ValidationError(
                "SteeringVector",
                "vector",
                f"length {d_model} (the width of the activations)",
                f"length {vector.d_model} (input {i})",
            )
        if vector.hook_point != context.inputs.hook_point:
            raise ValidationError(
                "SteeringVector",
                "hook_point",
                f"{context.inputs.hook_point!r}, where the activations were read",
                f"{vector.hook_point!r} (input {i})",
            )
        matrix[i] = vector.scale * np.asarray(vector.vector, dtype=np.float64)
        valid[i] = True
    return matrix, valid


def require_source(context: EvalContext, metric: str, needs: str) -> Any:
    """context.source, or a ValidationError that says what to pass."""
    if context.source is None:
        raise ValidationError(
            "EvalContext",
            "source",
            f"an ActivationSource that gives {needs}: the {metric!r} metric runs the model "
            "(pass EvalContext(source=...); the runner does when requires() asks for a source)",
            "None",
        )
    return context.source


def require_texts(context: EvalContext, metric: str) -> tuple[str, ...]:
    """context.texts, one per input."""
    n = len(context.inputs)
    if len(context.texts) != n:
        raise ValidationError(
            "EvalContext",
            "texts",
            f"{n} texts, the inputs' (the {metric!r} metric runs the model on them)",
            f"{len(context.texts)}",
        )
    return context.texts


def generation_rows(context: EvalContext, metric: str) -> int:
    """The number m of prompts with generations (rows 0..m−1), after checking that generations
    and base_generations match the prompts."""
    n = len(context.inputs)
    m = len(context.prompts)
    if m == 0 or len(context.generations) == 0:
        raise ValidationError(
            "EvalContext",
            "generations",
            f"prompts and their steered generations: the {metric!r} metric scores generated "
            "text (pass EvalContext(prompts=..., generations=..., base_generations=...); the "
            "runner does when requires() asks for generations)",
            f"{m} prompts and {len(context.generations)} generations",
        )
    if m > n:
        raise ValidationError(
            "EvalContext",
            "prompts",
            f"at most {n} prompts (prompt i belongs to input i)",
            f"{m}",
        )
    if len(context.generations) != m:
        raise ValidationError(
            "EvalContext",
            "generations",
            f"{m} generations, one per prompt",
            f"{len(context.generations)}",
        )
    if len(context.base_generations) not in (0, m):
        raise ValidationError(
            "EvalContext",
            "base_generations",
            f"{m} unsteered generations, one per prompt (or none)",
            f"{len(context.base_generations)}",
        )
    return m


def generations_to_score(
    context: EvalContext, metric: str, *, base: bool = True, blank: bool = False
) -> list[tuple[str, int, str]]:
    """(which, i, text) for every generation a judge scores: the steered generation of prompt i
    ("steered") and, with `base`, the unsteered one ("base"), for rows i < len(prompts) that have
    a vector and a generation that is not blank (with `blank`: not empty)."""
    m = generation_rows(context, metric)
    vectors = per_input_vectors(context)
    named = {"steered": context.generations, "base": context.base_generations if base else ()}
    return [
        (which, i, text)
        for which, generations in named.items()
        for i, text in enumerate(generations)
        if i < m and vectors[i] is not None and (text if blank else text.strip())
    ]


def training_split(context: EvalContext, metric: str, fits: str) -> LabelledTexts:
    """The task's training texts: EvalContext.train, or the training split of
    `dataset.load(seed=seed)` without it."""
    if context.train is not None:
        return context.train
    if context.dataset is not None:
        return context.dataset.load(seed=context.seed).train
    raise ValidationError(
        "EvalContext",
        "train",
        "the task's training split (EvalContext(train=LabelledTexts(...))) or its dataset: "
        f"the {metric!r} metric fits its {fits} on them",
        "None",
    )
