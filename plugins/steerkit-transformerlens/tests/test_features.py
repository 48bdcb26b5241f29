"""Feature readings (logit lens, output score, top contexts) against hand computations on a tiny
model: numpy for the norm and the unembedding, a plain hooked forward pass per feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from steerkit_transformerlens.features import feature_cards, logit_lens, output_scores, top_k
from steerkit_transformerlens.paths import CACHE_ENV
from steerkit_transformerlens.source import TransformerLensSource
from steerkit_transformerlens.testing import tiny_model, tiny_sae

from steerkit import ValidationError

pytestmark = pytest.mark.needs_torch

HOOK = "blocks.1.hook_resid_pre"
PROMPT = "the cat sat on the mat"
TEXTS = ["the cat sat on the mat", "a dog ran under the tree and is happy", "the red bird flew"]


def _source(positional: str = "standard", dead: int | None = None) -> TransformerLensSource:
    model = tiny_model(seed=2, positional=positional)  # type: ignore[arg-type]
    sae = tiny_sae(hook_name=HOOK, seed=5)
    if dead is not None:
        with torch.no_grad():
            sae.b_enc[dead] = -1e4  # never active
    return TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False, progress=False)


def _hand_lens(model: object, d: np.ndarray, positional: str) -> np.ndarray:
    ln = model.ln_final  # type: ignore[attr-defined]
    w = ln.w.detach().numpy().astype(np.float64)
    eps = float(model.cfg.eps)  # type: ignore[attr-defined]
    x = d.astype(np.float64)
    if positional == "standard":
        x = x - x.mean()
        x = x / np.sqrt((x**2).mean() + eps) * w
    else:
        x = x / np.sqrt((x**2).mean() + eps) * w
    return x @ model.W_U.detach().numpy().astype(np.float64)  # type: ignore[attr-defined]


@pytest.mark.parametrize("positional", ["standard", "rotary"])
def test_logit_lens_is_the_decoder_row_through_the_final_norm_and_unembedding(
    positional: str,
) -> None:
    source = _source(positional)
    decoder = source.decoder()
    ids, values = logit_lens(source.model, decoder[[3, 7]], k=5)
    for row, f in enumerate((3, 7)):
        hand = _hand_lens(source.model, decoder[f], positional)
        expected = np.argsort(-hand, kind="stable")[:5]
        np.testing.assert_array_equal(ids[row], expected)
        np.testing.assert_allclose(values[row], hand[expected], rtol=1e-4, atol=1e-4)


def _hand_output_score(source: TransformerLensSource, feature: int, k: int, amp: float) -> float:
    model, sae = source.model, source.sae
    assert sae is not None
    tokens = model.to_tokens(PROMPT)
    _, cache = model.run_with_cache(tokens, names_filter=HOOK)
    h = cache[HOOK][0, -1].detach().numpy().astype(np.float64)
    w_enc, b_enc = sae.W_enc.detach().numpy(), sae.b_enc.detach().numpy()
    b_dec, w_dec = sae.b_dec.detach().numpy(), sae.W_dec.detach().numpy()
    a_max = np.maximum((h - b_dec) @ w_enc + b_enc, 0.0).max()
    assert a_max > 0
    added = torch.tensor(amp * a_max * w_dec[feature], dtype=torch.float32)

    def hook(activation: torch.Tensor, hook: object) -> torch.Tensor:
        activation[0, -1] = activation[0, -1] + added
        return activation

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(HOOK, hook)])[0, -1].double()
    p = torch.softmax(logits, dim=-1).numpy()
    top = np.argsort(-_hand_lens(model, w_dec[feature], "standard"), kind="stable")[:k]
    order = np.argsort(-p, kind="stable")
    rank = {int(t): r for r, t in enumerate(order)}
    best = min(rank[int(t)] for t in top)
    return float(p[top].max() * (1 - best / len(p)))


def test_output_score_matches_a_hand_computed_amplified_forward_pass() -> None:
    source = _source()
    features = [0, 3, 11, 40, 63]
    scores = output_scores(source, features, k=4, prompt=PROMPT, amplification=10.0, batch_size=2)
    hand = [_hand_output_score(source, f, 4, 10.0) for f in features]
    np.testing.assert_allclose(scores, hand, rtol=1e-4, atol=1e-6)
    assert np.all((scores >= 0) & (scores <= 1))
    assert len(set(np.round(scores, 6))) > 1  # features differ: the score is not a constant


def test_top_contexts_and_dead_features_match_a_per_text_pass() -> None:
    source = _source(dead=9)
    result = feature_cards(source, [9, 4, 20], TEXTS, n_contexts=3, k=4, prompt=PROMPT)
    sae = source.sae
    assert sae is not None
    acts = []  # (value, text, position) for every real token but BOS, per feature
    model = source.model
    for i, text in enumerate(TEXTS):
        tokens = model.to_tokens(text)
        _, cache = model.run_with_cache(tokens, names_filter=HOOK)
        with torch.no_grad():
            f = sae.encode(cache[HOOK][0]).numpy()
        acts += [(f[t], i, t) for t in range(1, tokens.shape[1])]
    best = np.max([a for a, _, _ in acts], axis=0)
    assert result["n_dead"] == int(np.sum(best <= 0))
    assert result["d_sae"] == 64 and result["n_texts"] == 3
    dead, live, other = result["cards"]
    assert dead["feature"] == 9 and dead["dead"] and dead["contexts"] == []
    assert dead["max_activation"] == 0.0
    for card in (live, other):
        f = card["feature"]
        ranked = sorted(((a[f], i, t) for a, i, t in acts if a[f] > 0), key=lambda x: -x[0])
        assert not card["dead"]
        assert card["max_activation"] == pytest.approx(best[f], rel=1e-5)
        got = [(c["activation"], c["text"], c["position"]) for c in card["contexts"]]
        assert [(i, t) for _, i, t in got] == [(i, t) for _, i, t in ranked[:3]]
        np.testing.assert_allclose([a for a, _, _ in got], [a for a, _, _ in ranked[:3]], 1e-5)
        first = card["contexts"][0]
        words = TEXTS[first["text"]].split()
        assert first["token"] == words[first["position"] - 1]  # position 0 is BOS
        assert len(card["lens_tokens"]) == 10
    assert 0 <= live["output_score"] <= 1


def test_feature_ids_out_of_range_are_refused() -> None:
    source = _source()
    with pytest.raises(ValidationError, match="feature_ids"):
        feature_cards(source, [64], TEXTS)
    with pytest.raises(ValidationError, match="feature_ids"):
        output_scores(source, [-1])


def test_top_k_is_a_stable_argsort_cut_to_k() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(40, 300)).astype(np.float32)  # many ties, at the k-th too
    values[3] = 1.0  # a row of one value
    with_nan = values.copy()
    with_nan[5, :4] = np.nan
    for array in (values, with_nan):
        for k in (1, 7, 300):
            np.testing.assert_array_equal(
                top_k(array, k), np.argsort(-array, axis=1, kind="stable")[:, :k]
            )
    smooth = rng.normal(size=(8, 5000))
    np.testing.assert_array_equal(top_k(smooth, 20), np.argsort(-smooth, axis=1)[:, :20])


def test_output_scores_are_kept_on_disk_and_never_scored_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import steerkit_transformerlens.features as features_module

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    model = tiny_model(seed=2)
    sae = tiny_sae(hook_name=HOOK, seed=5)
    source = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, progress=False)
    options = {"k": 4, "prompt": PROMPT}
    first = source.output_scores([3, 40, 3], **options)
    hand = [_hand_output_score(source, f, 4, 10.0) for f in (3, 40, 3)]
    np.testing.assert_allclose(first, hand, rtol=1e-4, atol=1e-6)

    scored: list[list[int]] = []
    real = features_module.output_scores

    def counting(source: Any, ids: Any, **kwargs: Any) -> Any:
        scored.append(list(ids))
        return real(source, ids, **kwargs)

    monkeypatch.setattr(features_module, "output_scores", counting)
    # a new source of the same weights (a later run) reads them back; only feature 11 is new
    again = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, progress=False)
    both = again.output_scores([40, 11, 3], **options)
    assert scored == [[11]]
    np.testing.assert_array_equal(both[[0, 2]], first[[1, 0]])
    assert both[1] == pytest.approx(_hand_output_score(source, 11, 4, 10.0), rel=1e-4, abs=1e-6)
    # other options, or other SAE weights, are other entries
    again.output_scores([3], k=5, prompt=PROMPT)
    other = tiny_sae(hook_name=HOOK, seed=6)
    TransformerLensSource(model=model, sae=other, hook_point=HOOK).output_scores([3], **options)
    assert scored == [[11], [3], [3]]
    # a damaged entry is scored again, not trusted
    for entry in (tmp_path / "scores").glob("*.npy"):
        entry.write_bytes(b"not an array")
    np.testing.assert_allclose(again.output_scores([3], **options), first[:1], rtol=1e-6)
    assert scored[-1] == [3]
    uncached = TransformerLensSource(model=model, sae=sae, hook_point=HOOK, cache=False)
    uncached.output_scores([3], **options)
    assert scored[-1] == [3] and len(scored) == 5
