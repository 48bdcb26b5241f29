"""`TransformerLensSource.output_scores` (what costs="output_score" calls): chunked, it equals
one call of `features.output_scores`, which is checked against hand computation elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from steerkit_transformerlens.features import output_scores
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"


def test_chunked_source_scores_equal_one_call() -> None:
    model = tiny_model(seed=2)
    sae = tiny_sae(hook_name=HOOK, seed=5)
    source = TransformerLensSource(
        model=model, sae=sae, hook_point=HOOK, cache=False, progress=False
    )
    source.output_score_chunk = 3  # several chunks, the last one short
    ids = [0, 5, 11, 17, 40, 63, 2]
    got = source.output_scores(ids, k=4, prompt="the cat sat on the mat")
    whole = output_scores(source, ids, k=4, prompt="the cat sat on the mat")
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-8)  # float32 batches
    assert got.shape == (7,) and len(set(np.round(got, 6))) > 1
