"""Points found by pivoting (`steerkit_path.jump`) against the walked path and Clarabel.

The decoders here have correlated rows (a few shared directions plus noise, like a trained
SAE's), so that the paths are long and a point far along is found by pivoting, not by walking.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import steerkit_path.jump as jump_module
import steerkit_path.path as path_module
from steerkit_path import Path, PathSolver

from steerkit import SteeringProblem
from steerkit.testing.oracle import reference_solve


@pytest.fixture(autouse=True)
def pivot_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No short walk first: these paths are short, and the pivoting is what is tested."""
    monkeypatch.setattr(path_module, "WALK_FIRST", 0)


def correlated(seed: int, d_sae: int = 300, d_model: int = 24) -> tuple[Any, Any]:
    """Rows = a mix of 4 shared directions + noise (unit norm), and a probe direction."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(4, d_model))
    decoder = rng.normal(size=(d_sae, 4)) @ shared + 0.6 * rng.normal(size=(d_sae, d_model))
    decoder /= np.linalg.norm(decoder, axis=1, keepdims=True)
    return decoder.astype(np.float32), rng.normal(size=d_model) * 2.0


def counting(decoder: Any, fetched: list[int]) -> Any:
    """`decoder` as a view that appends to `fetched` how many rows each index reads."""

    class Counting(np.ndarray):  # type: ignore[type-arg]
        def __getitem__(self, index: Any) -> Any:
            fetched.append(np.asarray(index).size)
            return np.asarray(self)[index]

    return decoder.view(Counting)


def walked(problem: SteeringProblem, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same problem solved by walking the path (pivoting switched off)."""
    with monkeypatch.context() as patch:
        patch.setattr(path_module, "JUMP_TARGETS", 0)
        return PathSolver().solve(problem, cache=False)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "setting", [("qp", 10.0), ("qp", 30.0), ("socp", 1.05), ("socp", 1.2), ("socp", 1.5)]
)
def test_a_point_far_along_equals_the_walked_path_and_clarabel(
    seed: int, setting: tuple[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """QP at λ and SOCP at a multiple of the smallest feasible ε, one input from scratch: the
    pivoted answer is the walked path's (δ to 1e-7) and Clarabel's (objective to 1e-6). Close
    to the smallest ε (1.05×) the pivoting may give up and walk: the answer must not change."""
    decoder, w = correlated(seed)
    kind, value = setting
    r = 2.0
    if kind == "qp":
        problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=r, lam=value)
    else:
        with monkeypatch.context() as patch:
            patch.setattr(path_module, "JUMP_TARGETS", 0)
            smallest = float(Path(decoder, w).min_eps(r)[0])
        problem = SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=value * smallest)
    solution = PathSolver().solve(problem, cache=False)
    assert solution.ok, solution.message
    if value != 1.05:
        assert solution.info.get("jump", 0) > 0, "the answer was walked to, not pivoted to"
    assert solution.dual_infeasibility <= 1e-9 and solution.gap <= 1e-9
    walk = walked(problem, monkeypatch)
    assert walk.info.get("jump", 0) == 0 and walk.ok
    scale = float(np.abs(walk.delta).max())
    assert np.abs(solution.delta - walk.delta).max() <= 1e-7 * scale
    reference = reference_solve(problem)
    assert solution.objective <= reference.objective * (1 + 1e-6)
    assert solution.objective >= reference.objective * (1 - 1e-6)


def test_pivoting_that_does_not_settle_falls_back_to_the_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One round allowed: the pivoting gives up, the path is walked, the answer is the same."""
    decoder, w = correlated(5)
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=2.0, lam=3.0)
    expected = PathSolver().solve(problem, cache=False)
    assert expected.info["jump"] > 1
    monkeypatch.setattr(jump_module, "MAX_ROUNDS", 1)
    path = Path(decoder, w)
    points = path.qp(3.0, 2.0)
    assert path.steps > 0 and points.breakpoints[int(points.segment[0])].jump == 0
    assert np.abs(points.dense(0) - expected.delta).max() <= 1e-7 * expected.delta.max()


@pytest.mark.parametrize(("seed", "pivoted"), [(1, True), (7, False)])
def test_the_end_found_by_pivoting_is_the_walked_end(
    seed: int, pivoted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The smallest feasible ε equals the walked path's whether the end was found by pivoting
    (seed 1: without a step) or the pivoting gave up there (seed 7: near the end |A| nears
    d_model and the rounds circle; the path is walked), and an SOCP below it is infeasible with
    that ε in the reason."""
    decoder, w = correlated(seed, d_sae=120, d_model=16)
    path = Path(decoder, w)
    smallest = float(path.min_eps(1.0)[0])
    assert (path._end is not None) is pivoted
    assert (path.steps == 0) is pivoted
    with monkeypatch.context() as patch:
        patch.setattr(path_module, "JUMP_TARGETS", 0)
        walked_end = Path(decoder, w)
        assert float(walked_end.min_eps(1.0)[0]) == pytest.approx(smallest, rel=1e-9)
        assert walked_end.complete
    problem = SteeringProblem.socp(decoder=decoder, directions=w, rhs=2.0, eps=1.9 * smallest)
    solution = PathSolver().solve(problem, cache=False)
    assert solution.status.value == "infeasible"
    assert f"{2 * smallest:.6g}" in solution.message


def test_many_answers_past_the_end_walk_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """More than JUMP_TARGETS answers past the walked path's end: one walk serves them all, and
    the answers equal those found one by one by pivoting."""
    decoder, w = correlated(11)
    lams = np.linspace(0.5, 3.0, path_module.JUMP_TARGETS + 2)
    batch = Path(decoder, w).qp(lams, 2.0)
    assert all(batch.breakpoints[int(k)].jump == 0 for k in batch.segment)
    for i, lam in enumerate(lams):
        one = Path(decoder, w).qp(lam, 2.0)
        assert one.breakpoints[int(one.segment[0])].jump > 0
        assert np.allclose(one.dense(0), batch.dense(i), rtol=1e-7, atol=1e-12)


def test_pricing_on_a_small_pool_grows_it_and_still_finds_the_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Priced on the pool (as for a large decoder) from a pool of 8 features: the rounds settle
    on the pool, the check over every feature finds violators outside it, they join the pool,
    and the point found equals the walked path's."""
    decoder, w = correlated(3)
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=2.0, lam=30.0)
    walk = walked(problem, monkeypatch)
    assert walk.l0 > 8  # the answer needs features outside the first pool
    monkeypatch.setattr(jump_module, "WHOLE_PRICING", 0)
    path = Path(decoder, w, pool_size=8)
    points = path.qp(30.0, 2.0)
    assert points.breakpoints[int(points.segment[0])].jump > 0 and path.steps == 1
    assert path.pool_size > 8
    assert np.abs(points.dense(0) - walk.delta).max() <= 1e-7 * walk.delta.max()


@pytest.mark.parametrize(
    ("factor", "pivots"), [(1.00005, False), (1.003, True), (1.02, True), (1.3, True)]
)
def test_an_socp_answer_near_the_smallest_eps_is_walked_to(
    factor: float, pivots: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When w lies in the cone of the rows, the smallest feasible ε/r is 1/‖w‖ (the bound every
    point meets); an answer within NEAR_END of it is walked to without a round of pivoting,
    one further along (even where |A| nears d_model) is pivoted to, and both equal Clarabel's."""
    decoder, w = correlated(3)
    r = 2.0
    with monkeypatch.context() as patch:
        patch.setattr(path_module, "JUMP_TARGETS", 0)
        smallest = float(Path(decoder, w).min_eps(r)[0])
    assert smallest == pytest.approx(r / np.linalg.norm(w), rel=1e-9)  # w is in the cone
    problem = SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=factor * smallest)
    path = Path(decoder, w)
    points = path.socp(problem.eps, r)
    assert (path.jump_rounds > 0) is pivots
    assert points.breakpoints[int(points.segment[0])].jump > 0 or not pivots
    solution = PathSolver().solve(problem, cache=False)
    assert solution.ok and solution.gap <= 1e-9 and solution.dual_infeasibility <= 1e-9
    reference = reference_solve(problem)
    assert solution.objective == pytest.approx(reference.objective, rel=1e-6)


def assert_factor_of(gram: Any, rows: Any) -> None:
    """The Gram's factor R (upper triangle) satisfies RᵀR = rows rowsᵀ, to float32 rounding of
    the largest entry."""
    R = np.triu(gram.R).astype(np.float64)
    scale = float(np.abs(rows @ rows.T).max())
    np.testing.assert_allclose(R.T @ R, rows @ rows.T, rtol=0, atol=1e-5 * scale)


SPOIL = 0.05


def test_rounds_in_float32_are_settled_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rounds of a float32 decoder run on a float32 Gram; the answer is recomputed in
    float64 on its active set and priced again. With the float32 Gram spoiled (its entries
    off by up to SPOIL), the rounds settle on wrong active sets; the float64 check must catch
    that and go on in float64, to the walked path's answer."""
    decoder, w = correlated(5)
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=2.0, lam=30.0)
    original = jump_module._Gram._entries
    switched: list[bool] = []

    def spoiled(self: Any, new: Any, slots: Any) -> Any:
        block = original(self, new, slots)
        if not self.exact:  # each entry off by a few % (its diagonal exact)
            pair = new[:, None] + np.arange(block.shape[1])[None, :]
            block = block * (1 + SPOIL * np.cos(0.37 * pair)).astype(np.float32)
            rows = self.rows[slots]
            block[np.arange(new.size), slots] = np.einsum("ij,ij->i", rows, rows)
        return block

    def exactly(self: Any) -> None:
        switched.append(not self.exact)
        self._reset(np.float64)

    monkeypatch.setattr(jump_module._Gram, "_entries", spoiled)
    monkeypatch.setattr(jump_module._Gram, "exactly", exactly)
    solution = PathSolver().solve(problem, cache=False)
    assert solution.ok and solution.info.get("jump", 0) > 0
    assert any(switched), "the float64 check never disagreed with the spoiled rounds"
    walk = walked(problem, monkeypatch)
    assert np.abs(solution.delta - walk.delta).max() <= 1e-7 * float(np.abs(walk.delta).max())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("factor", [1.15, 1.3, 1.6])
def test_an_socp_point_from_the_predicted_alpha(
    seed: int, factor: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a short walk, an SOCP's pivoting starts at the α that h(α)‖w‖ − 1 ∝ α predicts
    from the walked path's last point, and moves to its own root as soon as the active set
    has one: the answer is the walked path's and Clarabel's, whatever the guess was worth."""
    monkeypatch.setattr(path_module, "WALK_FIRST", 3)
    guesses: list[float] = []
    original = jump_module._predicted_alpha

    def spy(*args: Any) -> float:
        guesses.append(original(*args))
        return guesses[-1]

    monkeypatch.setattr(jump_module, "_predicted_alpha", spy)
    through_qp: list[float] = []
    qp = jump_module.Target.qp
    monkeypatch.setattr(jump_module.Target, "qp", lambda g: through_qp.append(g) or qp(g))
    decoder, w = correlated(seed, d_sae=500, d_model=48)
    r = 2.0
    with monkeypatch.context() as patch:
        patch.setattr(path_module, "JUMP_TARGETS", 0)
        smallest = float(Path(decoder, w).min_eps(r)[0])
    problem = SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=factor * smallest)
    solution = PathSolver().solve(problem, cache=False)
    assert solution.ok and solution.info.get("jump", 0) > 0
    assert guesses and guesses[0] > 0, "the pivoting did not start from a predicted α"
    assert not through_qp, "the predicted α did not lead to the point: QP points were needed"
    walk = walked(problem, monkeypatch)
    assert np.abs(solution.delta - walk.delta).max() <= 1e-7 * float(np.abs(walk.delta).max())
    reference = reference_solve(problem)
    assert solution.objective == pytest.approx(reference.objective, rel=1e-6)


def test_a_float32_round_is_settled_by_refinement_to_the_float64_solution() -> None:
    """`_Round.refined` settles a float32 round's answer in float64 by iterative refinement
    (float64 residuals, the float32 factor): x = G_AA⁻¹a_A and v = G_AA⁻¹1 equal a plain
    float64 solve with G_AA formed in float64, to 1e-12; with a factor of another matrix (3 G:
    each step then shrinks the error by only 2/3) it gives up, and the caller factors G_AA."""
    from steerkit_path.homotopy import Homotopy

    decoder, w = correlated(3, d_sae=300, d_model=40)
    h = Homotopy(decoder, w, decoder.astype(np.float64) @ w)
    A = np.sort(np.random.default_rng(0).choice(300, 30, replace=False))
    rows = decoder[A].astype(np.float64)
    target = jump_module.Target.qp(5.0)
    rough = jump_module._Round.factored(h, decoder[A] @ decoder[A].T, decoder[A], A, target)
    settled = jump_module._Round.refined(h, rough, rows, A, target)
    assert settled is not None
    G = rows @ rows.T
    x = np.linalg.solve(G, h.a[A])
    v = np.linalg.solve(G, np.ones(A.size))
    assert np.abs(settled.x - x).max() <= 1e-12 * np.abs(x).max()
    assert np.abs(settled.v - v).max() <= 1e-12 * np.abs(v).max()
    assert np.abs(rough.x - x).max() > 1e-9 * np.abs(x).max()  # float32 alone is not that close
    wrong = jump_module._Round.factored(h, 3 * decoder[A] @ decoder[A].T, decoder[A], A, target)
    assert jump_module._Round.refined(h, wrong, rows, A, target) is None


def test_a_pivoting_rounds_estimate_prices_within_the_float32_rounding_bound() -> None:
    """The rounds price a float32 decoder by its float32 product alone (`estimate`): every
    feature it calls a violator or not that the exact (float64) prices disagree on lies within
    the product's rounding bound of the threshold; the exact pricing (what settles an answer)
    agrees with a float64 product everywhere."""
    from steerkit_path.homotopy import _U32, Homotopy

    decoder, w = correlated(4, d_sae=2000, d_model=64)
    d64 = decoder.astype(np.float64)
    h = Homotopy(decoder, w, d64 @ w)
    rng = np.random.default_rng(1)
    A = np.sort(rng.choice(2000, 10, replace=False))
    fitted = d64[A].T @ rng.uniform(0.0, 0.3, size=A.size)
    values = d64 @ (w - fitted)
    values[A] = -np.inf
    alpha = float(np.quantile(values[np.isfinite(values)], 0.9))  # a tenth of them above
    limit = alpha + h._tolerance(alpha)
    exact = set(np.flatnonzero(values > limit).tolist())
    estimated, _ = h.priced(fitted, alpha, A, estimate=True)
    priced, ratio = h.priced(fitted, alpha, A)
    assert set(priced.tolist()) == exact
    # (features far from the threshold keep their float32 value: it only ranks them)
    np.testing.assert_allclose(ratio, values[priced] / alpha, rtol=1e-5)
    reach = (64 + 4) * _U32 * 1.01 * np.linalg.norm(w - fitted) * np.linalg.norm(d64, axis=1)
    for j in exact.symmetric_difference(estimated.tolist()):
        assert abs(values[j] - limit) <= reach[j]
    assert len(exact) > 50 and len(estimated) > 50


def test_rounds_that_come_back_to_an_active_set_go_on_in_float64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round that returns to an active set already priced (same guess, same precision) is
    circling: the rounds switch to float64 and settle there. Here float32 rounds are made to
    circle on purpose — at the answer's active set A*, feature j (never in the answer) is
    priced as a violator, and at A* ∪ {j} it is made to leave (and nothing to enter) — so
    without the check they would swap j in and out until they gave up and walked."""
    from steerkit_path.homotopy import Homotopy

    decoder, w = correlated(6)
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=2.0, lam=3.0)
    walk = walked(problem, monkeypatch)
    answer = set(np.flatnonzero(walk.delta).tolist())
    j = int(np.argmin(decoder.astype(np.float64) @ w))  # least correlated: not in the answer
    assert j not in answer
    priced = Homotopy.priced

    def lying_prices(self: Any, fitted: Any, alpha: float, active: Any, **kwargs: Any) -> Any:
        over, ratio = priced(self, fitted, alpha, active, **kwargs)
        if kwargs.get("estimate") and set(active.tolist()) == answer:
            over, ratio = np.append(over, j), np.append(ratio, 10.0)
        if kwargs.get("estimate") and set(active.tolist()) == answer | {j}:
            over, ratio = over[:0], ratio[:0]  # only j moves: straight back to A*
        return over, ratio

    made = jump_module._Round.__init__

    def lying_signs(self: Any, h: Any, xv: Any, DA: Any, A: Any, *args: Any) -> None:
        made(self, h, xv, DA, A, *args)
        if xv.dtype == np.float32 and set(A.tolist()) == answer | {j}:
            self.leave = np.array([j])

    circles: list[bool] = []
    exactly = jump_module._Gram.exactly

    def switched(self: Any) -> None:
        circles.append(self.exact)
        exactly(self)

    monkeypatch.setattr(Homotopy, "priced", lying_prices)
    monkeypatch.setattr(jump_module._Round, "__init__", lying_signs)
    monkeypatch.setattr(jump_module._Gram, "exactly", switched)
    solution = PathSolver().solve(problem, cache=False)
    assert solution.ok and solution.info.get("jump", 0) > 0, "the rounds gave up and walked"
    assert circles == [False], "the rounds did not go on in float64 once"
    assert np.abs(solution.delta - walk.delta).max() <= 1e-7 * float(np.abs(walk.delta).max())


@pytest.mark.parametrize(("d_model", "joiners"), [(40, 8), (160, 30)])
def test_the_rounds_factor_equals_a_plain_product(d_model: int, joiners: int) -> None:
    """The rounds carry G_AA's entries and factor from one round to the next: the entries of
    the features that stay are kept, only the rows of those that joined since the last round
    (new, or back after leaving) are multiplied, and the factor's rows for the places before
    the first leaver's are kept too. Over a sequence of active sets that grows, loses members
    and takes them back, the factor R must satisfy RᵀR = D_A D_Aᵀ computed afresh in the
    order it gives: the places before the first leaver's kept, then the other stayers by the
    given β (largest first), then the joiners; the fits must equal D_Aᵀ(x, v), and the
    decoder is read only for the joiners' rows. (At d_model = 160, A outgrows the buffers'
    first 64 slots.)"""
    from steerkit_path.homotopy import Homotopy

    decoder, w = correlated(2, d_sae=300, d_model=d_model)
    h = Homotopy(decoder, w, decoder.astype(np.float64) @ w)
    fetched: list[int] = []
    h.decoder = counting(decoder, fetched)
    gram = jump_module._Gram(h)
    rng = np.random.default_rng(0)
    A = np.sort(rng.choice(300, 10, replace=False))
    before = np.empty(0, dtype=np.int64)
    beta = None
    kept_rows = []
    for _ in range(12):
        fetched.clear()
        order = gram.factored(A, beta)
        np.testing.assert_array_equal(np.sort(order), A)
        stays = np.isin(before, A)
        first = int(np.argmin(stays)) if not stays.all() else before.size
        np.testing.assert_array_equal(order[:first], before[:first])  # the prefix
        behind = before[first:][stays[first:]]
        if beta is not None:
            behind = behind[np.argsort(-beta[first:][stays[first:]], kind="stable")]
        np.testing.assert_array_equal(order[first : first + behind.size], behind)
        assert sum(fetched) == A.size - np.count_nonzero(stays)  # the joiners' rows only
        rows = decoder[order].astype(np.float64)
        assert_factor_of(gram, rows)
        xv = rng.standard_normal((order.size, 2)).astype(np.float32)
        np.testing.assert_allclose(gram.fits(xv), (rows.T @ xv).T, rtol=1e-4, atol=1e-4)
        kept_rows.append(first)
        before = order
        beta = rng.standard_normal(order.size)  # the next round's order behind the prefix
        keep = A[rng.random(A.size) < 0.7]  # some leave ...
        back = rng.choice(300, joiners, replace=False)  # ... some (new or former ones) join
        if len(kept_rows) % 3 == 0:
            keep = A[: A.size - 3]  # ... or only the last few leave (a long prefix)
        A = np.union1d(keep, back)
    assert max(kept_rows) > 10  # the prefix was used


def test_the_rounds_learn_the_joiners_exact_alignment_from_their_rows() -> None:
    """On a float32 decoder a = D w is known exactly only where asked (`ProjectedRows`): the
    rounds learn the joiners' aᵢ from the rows they fetch for the Gram, so the round's a_A
    reads no decoder row again — and the values equal a plain float64 product."""
    from steerkit_path.homotopy import Homotopy
    from steerkit_path.projection import ProjectedRows

    decoder, w = correlated(3, d_sae=300, d_model=24)
    a = ProjectedRows(decoder, w)
    h = Homotopy(decoder, w, a)
    assert h.a is a
    fetched: list[int] = []
    a.decoder = counting(decoder, fetched)  # what `a[...]` would gather
    gram = jump_module._Gram(h)
    rng = np.random.default_rng(5)
    A = np.sort(rng.choice(300, 12, replace=False))
    for _ in range(4):
        unknown = A[~a._known[A]]
        order = gram.factored(A)
        assert unknown.size and a._known[A].all()  # learned in the round, not gathered
        exact = np.asarray(a[order])
        assert fetched == []
        np.testing.assert_allclose(exact, decoder[order].astype(np.float64) @ w, rtol=1e-14)
        A = np.union1d(A[rng.random(A.size) < 0.8], rng.choice(300, 5, replace=False))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_failed_factorisation_leaves_the_rounds_consistent(
    dtype: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a round's factorisation fails with a prefix kept (LinAlgError from the tail's
    Cholesky), the Gram keeps no half-made factor: the next call factors its A whole and
    right — `_socp` goes on pivoting with the same Gram after a float64 failure. More active
    rows than d_model are refused before anything changes."""
    from steerkit_path.homotopy import Homotopy

    decoder, w = correlated(4, d_sae=300, d_model=40)
    decoder = decoder.astype(dtype)
    h = Homotopy(decoder, w, decoder.astype(np.float64) @ w)
    gram = jump_module._Gram(h)
    rng = np.random.default_rng(1)
    A = np.sort(rng.choice(300, 20, replace=False))
    order = gram.factored(A)
    beta = np.linspace(1.0, 0.1, order.size)
    A = np.union1d(order[:-2], rng.choice(300, 6, replace=False))  # the last two leave
    real = jump_module.cho_factor

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise jump_module.LinAlgError("made to fail")

    monkeypatch.setattr(jump_module, "cho_factor", failing)
    with pytest.raises(jump_module.LinAlgError):
        gram.factored(A, beta)
    monkeypatch.setattr(jump_module, "cho_factor", real)
    A = np.union1d(gram.order[:-3], rng.choice(300, 5, replace=False))
    order = gram.factored(A, np.linspace(1.0, 0.1, gram.order.size))
    np.testing.assert_array_equal(np.sort(order), A)
    assert_factor_of(gram, decoder[order].astype(np.float64))
    before = gram.order.copy()
    with pytest.raises(jump_module.LinAlgError, match="active rows"):
        gram.factored(np.arange(41))
    np.testing.assert_array_equal(gram.order, before)


def test_the_rounds_start_afresh_when_a_shrinks_far() -> None:
    """Slots are reused, never given back: when A shrinks far below the slots in use (an SOCP's
    pivoting through QP points of very different sizes), the Gram starts afresh instead of
    multiplying the free slots' rows every round — and the factor is still right."""
    from steerkit_path.homotopy import Homotopy

    decoder, w = correlated(2, d_sae=600, d_model=300)
    h = Homotopy(decoder, w, decoder.astype(np.float64) @ w)
    gram = jump_module._Gram(h)
    rng = np.random.default_rng(2)
    gram.factored(np.sort(rng.choice(600, 280, replace=False)))
    assert gram.used == 280
    A = np.sort(rng.choice(600, 30, replace=False))
    order = gram.factored(A)
    assert gram.used == 30
    assert_factor_of(gram, decoder[order].astype(np.float64))


def test_the_final_check_over_every_feature_takes_the_spare_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A decoder priced on the pool while pivoting (above WHOLE_PRICING) has its settled answer
    checked over every feature: one pass over the whole decoder, which takes the machine's
    spare threads as `price`'s whole-decoder products do (1 thread: 2.4 ms of a 12 ms
    GPT-2-scale answer), not the rounds' one thread. The answer is the walked path's."""
    from steerkit_path.homotopy import Homotopy

    decoder, w = correlated(3)
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=2.0, lam=10.0)
    monkeypatch.setattr(jump_module, "WHOLE_PRICING", 0)
    spare: list[bool] = []
    inside = [False]

    class Spare:
        def __enter__(self) -> None:
            inside[0] = True

        def __exit__(self, *args: object) -> None:
            inside[0] = False

    priced = Homotopy.priced

    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("join_pool"):
            spare.append(inside[0])
        return priced(self, *args, **kwargs)

    monkeypatch.setattr(jump_module, "_spare_threads", Spare)
    monkeypatch.setattr(Homotopy, "priced", watched)
    solution = PathSolver().solve(problem, cache=False)
    assert solution.ok and solution.info.get("jump", 0) > 0
    assert spare and all(spare), spare
    walk = walked(problem, monkeypatch)
    assert np.abs(solution.delta - walk.delta).max() <= 1e-7 * float(np.abs(walk.delta).max())


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_the_same_target_gets_the_same_point_again(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pivoted and walked points agree to rounding, not bit for bit: a path answers a target it
    pivoted to with that very point again — asked again, and after a batch whose walk has passed
    it — so one process asking twice gets the same bits; a fresh path pivots to them again."""
    decoder, w = correlated(2, d_sae=600, d_model=32)
    r = 2.0
    path = Path(decoder, w)
    value = 3.0 if kind == "qp" else 1.2 * float(Path(decoder, w).min_eps(r)[0])

    def ask(target: Any) -> Any:
        return path.qp(target, r) if kind == "qp" else path.socp(target, r)

    first = ask(value)
    assert first.breakpoints[int(first.segment[0])].jump > 0  # pivoted to
    delta = first.dense(0)
    assert np.array_equal(ask(value).dense(0), delta)
    grid = value * (np.geomspace(0.02, 50.0, 9) if kind == "qp" else np.geomspace(0.9, 1.5, 9))
    everything = ask(np.append(grid, value))  # more than JUMP_TARGETS answers: the walk
    assert path.steps > 3 and everything.breakpoints[int(everything.segment[-1])].jump > 0
    assert np.array_equal(everything.dense(grid.size), delta)
    assert everything.breakpoints[int(everything.segment[0])].jump == 0  # the grid's: walked
    fresh = Path(decoder, w)
    assert np.array_equal(
        (fresh.qp(value, r) if kind == "qp" else fresh.socp(value, r)).dense(0), delta
    )
    monkeypatch.setattr(path_module, "JUMP_TARGETS", 0)  # pivoting off: the walk's answer
    walked_to = ask(value)
    assert walked_to.breakpoints[int(walked_to.segment[0])].jump == 0
    assert np.abs(walked_to.dense(0) - delta).max() <= 1e-9 * np.abs(delta).max()


def test_a_path_asked_again_walks_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A QP's first question walks the first segment only and pivots from there; every later
    one walks WALK_FIRST breakpoints further first (a stream of questions on one path ends up
    answered by the walk), and the answers are the walked path's."""
    monkeypatch.setattr(path_module, "WALK_FIRST", 5)
    decoder, w = correlated(3, d_sae=600, d_model=32)
    path = Path(decoder, w)
    first = path.qp(3.0, 2.0)
    assert path.steps == 1 and first.breakpoints[int(first.segment[0])].jump > 0
    second = path.qp(30.0, 2.0)
    assert path.steps == 6 and second.breakpoints[int(second.segment[0])].jump > 0
    for lam, points in ((3.0, first), (30.0, second)):
        expected = walked(
            SteeringProblem.qp(decoder=decoder, directions=w, rhs=2.0, lam=lam), monkeypatch
        )
        assert np.abs(points.dense(0) - expected.delta).max() <= 1e-7 * expected.delta.max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("c_order", [False, True])
def test_the_rounds_solves_equal_scipys(dtype: Any, lower: bool, c_order: bool) -> None:
    """`_cho_solve` (two triangular solves per column through BLAS) gives cho_solve's G⁻¹B for
    either triangle of the factor, stored in either memory order, and the factorisation of a
    symmetric G through its transpose is G's own."""
    from scipy.linalg import cho_factor, cho_solve

    rng = np.random.default_rng(4)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for m in (1, 7, 120):
        rows = rng.normal(size=(m, m + 9)).astype(dtype)
        G = rows @ rows.T
        G = (G + G.T) / 2  # exactly symmetric
        c, low = cho_factor(G.T.copy(order="F"), lower=lower, check_finite=False)
        factor = (np.ascontiguousarray(c) if c_order else c, low)
        assert factor[0].flags.c_contiguous == c_order or m == 1
        B = rng.normal(size=(m, 2)).astype(dtype)
        got = jump_module._cho_solve(factor, B)
        want = cho_solve((c, low), B, check_finite=False)
        assert got.dtype == dtype
        assert np.abs(got - want).max() <= tolerance * np.abs(want).max()
        assert np.abs(G.astype(np.float64) @ got - B).max() <= 1e3 * tolerance * np.abs(B).max()
