"""Batches, the path cache, twins and the Pareto frontier: one path answers every input, λ and ε.

Each batch answer is compared with a solve of the same problem alone on a fresh, uncached path;
the Pareto figures with single solves checked against the reference solve.
"""

from __future__ import annotations

import numpy as np
import pytest
from steerkit_path import Path, PathSolver, cache_info, clear_cache, pareto, path_for

import steerkit
from steerkit import ProblemKind, SolverCapabilityError, Status, SteeringProblem
from steerkit.solution import L0_RELATIVE_THRESHOLD
from steerkit.testing import random_decoder, random_problem
from steerkit.testing.oracle import min_feasible_norm, reference_solve


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    clear_cache()


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_batch_of_50_equals_one_at_a_time_and_builds_one_path(kind: str) -> None:
    rng = np.random.default_rng(20)
    problem = random_problem(rng, kind, d_sae=300, d_model=24)
    if kind == "socp":
        problem = SteeringProblem.socp(
            decoder=problem.decoder,
            directions=problem.directions,
            rhs=problem.rhs,
            eps=1.5 * min_feasible_norm(problem),
        )
    factors = np.concatenate([[-1.0, 0.0], rng.uniform(0.05, 1.6, size=48)])
    problems = [problem.with_rhs(problem.rhs * f) for f in factors]

    batch = steerkit.solve_batch(problems, "path")
    assert cache_info()["misses"] == 1  # one path for the 50 inputs
    steps = {s.info["path_steps"] for s in batch}
    assert len(steps) == 1  # every answer reports the same, single path

    statuses = set()
    for one, p in zip(batch, problems):
        alone = PathSolver().solve(p, cache=False)
        statuses.add(alone.status)
        assert one.status is alone.status
        if alone.delta is None:
            assert one.delta is None and one.message == alone.message
            continue
        assert one.delta is not None
        np.testing.assert_allclose(one.delta, alone.delta, rtol=1e-10, atol=1e-14)
        assert one.objective == pytest.approx(alone.objective, rel=1e-12, abs=1e-15)
    assert cache_info()["misses"] == 1  # the uncached solves did not touch the cache
    if kind == "socp":  # 1.5 × the smallest ε at the base r: the larger inputs are infeasible
        assert statuses == {Status.OPTIMAL, Status.INFEASIBLE}


def test_mixed_batch_of_qps_and_socps_with_different_parameters() -> None:
    """QPs with several λ and SOCPs with several ε over one decoder and direction: one path."""
    rng = np.random.default_rng(21)
    base = random_problem(rng, "qp", d_sae=150, d_model=16)
    smallest = min_feasible_norm(base)
    problems = []
    for i, f in enumerate(rng.uniform(0.2, 1.0, size=12)):
        rhs = base.rhs * f
        if i % 2:
            problems.append(base.with_rhs(rhs))
            problems.append(
                SteeringProblem.qp(
                    decoder=base.decoder, directions=base.directions, rhs=rhs, lam=10.0**i
                )
            )
        else:
            eps = smallest * f * (1.05 + i)
            problems.append(
                SteeringProblem.socp(
                    decoder=base.decoder, directions=base.directions, rhs=rhs, eps=eps
                )
            )
    batch = PathSolver().solve_batch(problems)
    assert cache_info()["misses"] == 1
    for one, p in zip(batch, problems):
        reference = reference_solve(p)
        assert one.status is Status.OPTIMAL
        assert one.objective == pytest.approx(reference.objective, rel=1e-6)


def test_cache_is_keyed_by_the_decoders_memory_and_the_direction() -> None:
    rng = np.random.default_rng(22)
    decoder = random_decoder(rng, 100, 12)
    w = rng.normal(size=12)
    first = SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.0, lam=1.0)
    again = SteeringProblem.qp(decoder=decoder, directions=w.copy(), rhs=2.0, lam=3.0)
    PathSolver().solve(first)
    PathSolver().solve(again)  # a new problem over the same arrays: the same path
    assert cache_info() == {"hits": 1, "misses": 1, "size": 1}
    other = SteeringProblem.qp(decoder=decoder, directions=-w, rhs=1.0, lam=1.0)
    PathSolver().solve(other)
    assert cache_info()["misses"] == 2

    path = path_for(decoder, w)
    decoder[::7] *= 2.0  # changed in place, behind the cached path: noticed, path rebuilt
    assert path_for(decoder, w) is not path
    changed = SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.0, lam=1.0)
    solution = PathSolver().solve(changed)
    assert solution.objective == pytest.approx(reference_solve(changed).objective, rel=1e-6)


def test_duplicated_rows_share_the_weight_equally() -> None:
    """An exact duplicate never enters the path (its Gram matrix would be singular); the
    optimum is spread equally over each group of twins, as the reference's interior point does."""
    rng = np.random.default_rng(23)
    base = random_decoder(rng, 40, 8)
    decoder = np.concatenate([base, base, base[:10]])  # rows i, i + 40 (and i + 80) are twins
    problem = random_problem(rng, "qp", decoder=decoder, lam=0.3)
    solution = PathSolver().solve(problem, cache=False)
    reference = reference_solve(problem)
    assert solution.delta is not None and reference.delta is not None
    assert "twins_spread" in solution.flags
    delta = solution.delta
    np.testing.assert_allclose(delta[:40], delta[40:80], rtol=1e-12)
    np.testing.assert_allclose(delta[:10], delta[80:], rtol=1e-12)
    np.testing.assert_allclose(delta, reference.delta, rtol=1e-4, atol=1e-7 * delta.max())


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_pareto_matches_single_solves(kind: str) -> None:
    rng = np.random.default_rng(24)
    problem = random_problem(rng, "qp", d_sae=120, d_model=14)
    if kind == "qp":
        values = [0.01, 0.1, 1.0, 10.0, 100.0]
    else:
        smallest = min_feasible_norm(problem)
        values = [0.8 * smallest, 1.01 * smallest, 1.5 * smallest, 4 * smallest, 100 * smallest]
        problem = SteeringProblem.socp(
            decoder=problem.decoder, directions=problem.directions, rhs=problem.rhs, eps=1.0
        )
    front = pareto(problem, values)
    assert cache_info()["misses"] == 1
    r = float(problem.rhs[0])
    for i, value in enumerate(values):
        build = SteeringProblem.qp if kind == "qp" else SteeringProblem.socp
        parameter = {"lam": value} if kind == "qp" else {"eps": value}
        single = build(
            decoder=problem.decoder, directions=problem.directions, rhs=problem.rhs, **parameter
        )
        reference = reference_solve(single)
        if reference.status is Status.INFEASIBLE:
            assert front.status[i] == "infeasible" and front.l0[i] == -1
            continue
        assert front.status[i] == "optimal"
        assert front.objective[i] == pytest.approx(reference.objective, rel=1e-6)
        assert reference.delta is not None
        top = reference.delta.max()
        assert front.l0[i] == np.count_nonzero(reference.delta > L0_RELATIVE_THRESHOLD * top)
        assert front.l1[i] == pytest.approx(reference.delta.sum(), rel=1e-6)
        norm = np.linalg.norm(single.steering_vector(reference.delta))
        assert front.norm[i] == pytest.approx(norm, rel=1e-5)
        assert front.margin[i] == pytest.approx(r, rel=1e-9)  # the margin binds
    assert cache_info()["misses"] == 1  # the whole frontier came from one path
    if kind == "qp":  # larger λ: a shorter steering vector with more features
        assert np.all(np.diff(front.norm) < 0) and np.all(np.diff(front.l1) > 0)
    else:
        assert front.status[0] == "infeasible" and front.l0[-1] == 1
    assert [row["status"] for row in front.rows()] == list(front.status)


def test_pareto_rejects_bad_grids() -> None:
    problem = random_problem(np.random.default_rng(25), "qp")
    with pytest.raises(ValueError, match="positive"):
        pareto(problem, [1.0, -1.0])
    with pytest.raises(ValueError, match="positive"):
        pareto(problem, [])
    wide = random_problem(np.random.default_rng(25), "qp", k=2)
    with pytest.raises(SolverCapabilityError, match="at most 1"):
        pareto(wide, [1.0])
    with pytest.raises(SolverCapabilityError, match="at most 1"):
        PathSolver.path(wide)


def test_first_segment_regime_is_the_best_single_feature() -> None:
    """SOCP with ε/r at least ‖d_j‖/a_j for j = argmax a: δ = (r/a_j) e_j and ν = 0."""
    rng = np.random.default_rng(26)
    problem = random_problem(rng, "socp", d_sae=60, d_model=10, scale=3.0)
    a = problem.constraint_matrix[0]
    j = int(np.argmax(a))
    r = float(problem.rhs[0])
    row_norm = float(np.linalg.norm(problem.decoder[j]))
    for eps, single in ((r * row_norm / a[j] * 1.0001, True), (r * row_norm / a[j] * 0.98, False)):
        socp = SteeringProblem.socp(
            decoder=problem.decoder, directions=problem.directions, rhs=r, eps=eps
        )
        solution = PathSolver().solve(socp, cache=False)
        assert solution.status is Status.OPTIMAL and solution.delta is not None
        assert ("first_segment" in solution.flags) is single
        if single:
            expected = np.zeros(socp.d_sae)
            expected[j] = r / a[j]
            np.testing.assert_allclose(solution.delta, expected, rtol=1e-12)
            assert solution.duals is not None and solution.duals.norm == 0.0
        else:
            assert solution.l0 >= 2
        assert solution.objective == pytest.approx(reference_solve(socp).objective, rel=1e-6)


def test_problem_kind_values() -> None:
    assert {k.value for k in PathSolver.kinds} == {ProblemKind.QP.value, ProblemKind.SOCP.value}


def test_twins_are_equal_rows_not_rows_that_share_a_and_a_first_entry() -> None:
    """With w along the first axis, a = D w is the first column: rows 3, 5 (a copy of 3) and 7
    (the same first entry, other entries changed) share a, and only 3 and 5 are twins; looked
    up together (one vectorised screen, then rows compared) as one by one."""
    rng = np.random.default_rng(12)
    decoder = rng.normal(size=(60, 8)).astype(np.float32)
    decoder[:, 0] = np.abs(decoder[:, 0])
    decoder[5] = decoder[3]
    decoder[7, 0] = decoder[3, 0]
    w = np.zeros(8)
    w[0] = 1.0
    together = Path(decoder, w)
    together._look_up_missing_twins(np.array([3, 5, 7, 10, 11], dtype=np.int64))
    for path in (together, Path(decoder, w)):
        assert path.twins(3).tolist() == [3, 5]
        assert path.twins(5).tolist() == [3, 5]
        assert path.twins(7).tolist() == [7]
        assert path.twins(10).tolist() == [10]


def _batch(kind: str, rng: np.random.Generator) -> list[SteeringProblem]:
    """60 QPs (three λ, 20 inputs) or SOCPs (ε/r from 1.02 to 3 times the smallest feasible:
    60 of them, so that the path is walked, not pivoted to each), on one 400 × 40 decoder:
    answers spread along a long path."""
    decoder = random_decoder(rng, 400, 40)
    w = rng.normal(size=40) * 2
    rhs = rng.uniform(0.5, 4.0, size=20)
    if kind == "qp":
        return [
            SteeringProblem.qp(decoder=decoder, directions=w, rhs=r, lam=lam)
            for lam in (0.1, 1.0, 10.0)
            for r in rhs
        ]
    smallest = min_feasible_norm(
        SteeringProblem.socp(decoder=decoder, directions=w, rhs=1.0, eps=1.0)
    )
    factors = np.geomspace(1.02, 3.0, 60)
    return [
        SteeringProblem.socp(decoder=decoder, directions=w, rhs=r, eps=f * smallest * r)
        for f, r in zip(factors, np.tile(rhs, 3))
    ]


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_a_batch_rests_on_the_cores_certificate_not_a_second_check(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A batch's answers on segments the path has not checked are certified by the core (which
    verifies every answer anyway) instead of the path checking the segments' ends over every
    feature too. With the walk's own checkpoints switched off, no full product is made at all,
    and every answer stands with the core's dual infeasibility within the path's tolerance."""
    import steerkit_path.homotopy as homotopy

    monkeypatch.setattr(homotopy, "CHECK_EVERY", 10**6)
    problems = _batch(kind, np.random.default_rng(31))
    solutions = steerkit.solve_batch(problems, "path")
    path = path_for(problems[0].decoder, problems[0].directions[0])
    assert path.homotopy is not None
    assert path.homotopy.checked_columns == 0 and path.repairs == 0
    for problem, solution in zip(problems, solutions):
        assert solution.ok and solution.dual_infeasibility <= 1e-9
        assert solution.info["kkt_max_violation"] <= 1e-9
        reference = reference_solve(problem)
        assert solution.objective == pytest.approx(reference.objective, rel=1e-6)


@pytest.mark.parametrize("kind", ["qp", "socp"])
def test_answers_on_a_pool_that_misses_features_are_caught_and_repaired(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The corrupted case: a pool of 8 features and no checkpoints, so the walk goes on past
    features it never priced and the answers on those segments are optimal only over the pool
    (dual infeasible over the whole decoder). The core refuses them, the path looks them up
    again with the segments' ends checked — failing, it repairs the pool and walks again — and
    every answer is the reference's (CVXPY + Clarabel)."""
    import steerkit_path.homotopy as homotopy

    monkeypatch.setattr(homotopy, "CHECK_EVERY", 10**6)
    monkeypatch.setattr(homotopy, "ANTICIPATE_SHARE", 0.0)  # the pool grows only by repairs
    problems = _batch(kind, np.random.default_rng(32))
    solutions = steerkit.solve_batch(problems, "path", pool_size=8, cache=False)
    assert max(s.info["repairs"] for s in solutions) > 0  # the misses were caught
    for problem, solution in zip(problems, solutions):
        assert solution.ok, solution.message
        assert solution.dual_infeasibility <= 1e-9
        reference = reference_solve(problem)
        assert solution.objective == pytest.approx(reference.objective, rel=1e-6)


def test_a_repair_past_max_steps_is_an_iteration_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The look-up again of answers the core refused may walk the path further (a repair):
    past `max_steps` those answers are iteration limits with the advice, as when the first
    walk runs out, and the answers the core kept stand."""
    import steerkit_path.homotopy as homotopy

    monkeypatch.setattr(homotopy, "CHECK_EVERY", 10**6)
    monkeypatch.setattr(homotopy, "ANTICIPATE_SHARE", 0.0)
    problems = _batch("qp", np.random.default_rng(32))
    solutions = steerkit.solve_batch(problems, "path", pool_size=8, cache=False, max_steps=9)
    limited = [s for s in solutions if s.status is Status.ITERATION_LIMIT]
    assert limited and all("raise max_steps" in s.message for s in limited)
    kept = [(p, s) for p, s in zip(problems, solutions) if s.ok]
    assert kept and len(kept) + len(limited) == len(problems)
    for problem, solution in kept:
        assert solution.objective == pytest.approx(reference_solve(problem).objective, rel=1e-6)
