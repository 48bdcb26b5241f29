"""Decoder: validated once, accepted wherever a decoder array is, and the screened certificate it
serves checked against the full pass (`_min_reduced_cost`) and a plain float64 product; a batch
of answers certified together (`Decoder.min_reduced_costs`, `steerkit.solution.certify_many`,
`steerkit.answer.accept_many`) checked against the one-answer figures and the same oracles, with
corrupted answers, multipliers and kept dual points caught."""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

import steerkit
import steerkit.decoder as decoder_module
import steerkit.solution as solution_module
from steerkit import Answer, Decoder, Duals, Outcome, Solution, SteeringProblem, ValidationError
from steerkit.answer import accept, accept_many
from steerkit.solution import _min_reduced_cost, certificate, certify_many


def _unit_rows(rng: np.random.Generator, n: int, d: int, dtype: type = np.float32) -> np.ndarray:
    decoder = rng.normal(size=(n, d)).astype(dtype)
    decoder /= np.linalg.norm(decoder, axis=1, keepdims=True)
    return decoder


def _oracle_floor(decoder: np.ndarray, u: np.ndarray) -> float:
    """max(0, −minᵢ (1 + dᵢ·u)) from a plain float64 product (hand computation)."""
    return max(0.0, -float((1.0 + decoder.astype(np.float64) @ u).min()))


# -- the value ------------------------------------------------------------------------------------


def test_decoder_keeps_the_dtype_and_owns_its_array() -> None:
    rng = np.random.default_rng(0)
    single = rng.normal(size=(40, 6)).astype(np.float32)
    dec = Decoder(single)
    assert dec.dtype == np.float32 and dec.shape == (40, 6) and dec.d_sae == 40
    assert not np.shares_memory(dec.array, single)
    assert not dec.array.flags.writeable
    single[0, 0] = 99.0  # the caller's array changes; the Decoder does not
    assert dec.array[0, 0] != 99.0
    assert np.asarray(dec) is dec.array
    assert Decoder(np.arange(12).reshape(4, 3)).dtype == np.float64
    # a read-only array that owns its memory is adopted, not copied
    frozen = rng.normal(size=(8, 3))
    frozen.flags.writeable = False
    assert np.shares_memory(Decoder(frozen).array, frozen)
    assert Decoder.of(dec) is dec
    norms = np.linalg.norm(dec.array.astype(np.float64), axis=1)
    assert np.all(dec.row_norm_bounds >= norms) and np.all(dec.row_norm_bounds <= norms * 1.001)


@pytest.mark.parametrize("split", [False, True])
def test_the_copying_pass_gives_the_plain_pass_figures_of_an_exact_copy(
    split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A problem built from an array not seen before copies it in its validation pass — split
    between two threads on a large decoder while a core is spare. The copy is the array, C-ordered
    and read-only, and its row squares, fingerprint and D w equal the pass without a copy to the
    bit, whichever thread made which block (the fingerprints must match for a later problem on
    the unchanged array to share the Decoder). A NaN in either half is refused."""
    import steerkit.problem as problem_module

    monkeypatch.setattr(decoder_module, "_PARALLEL_FROM", 1 if split else 10**12)
    monkeypatch.setattr(steerkit.cores, "busy", lambda spare=0.5: False)
    halves: list[int] = []
    real_submit = decoder_module._helper().submit
    monkeypatch.setattr(
        decoder_module._helper(), "submit", lambda *a: halves.append(1) or real_submit(*a)
    )
    rng = np.random.default_rng(7)
    source = np.asfortranarray(_unit_rows(rng, 1500, 10))  # a strided source: copied C-ordered
    w = rng.normal(size=(2, 10))
    problem_module.forget_decoder_copies()
    problem = SteeringProblem.qp(decoder=source, directions=w, rhs=[1.0, 2.0], lam=1.0)
    assert halves == ([1] if split else [])
    own = problem.decoder
    assert own.flags.c_contiguous and not own.flags.writeable
    assert not np.shares_memory(own, source)
    np.testing.assert_array_equal(own, source)
    columns = np.ascontiguousarray(w.T, dtype=np.float32)
    # the oracle: a pass over a C-ordered copy made by numpy (the source is Fortran-ordered)
    plain = np.ascontiguousarray(source)
    squares, prints, products = decoder_module._validation_pass_with(plain, columns)
    np.testing.assert_array_equal(problem.dictionary.row_squares, squares)
    np.testing.assert_array_equal(problem.dictionary.fingerprint, prints)
    for i in range(2):
        np.testing.assert_array_equal(problem.alignment_estimate(i), products[i])
    # the unchanged array: the same Decoder; changed: a new one
    again = SteeringProblem.qp(decoder=source, directions=w, rhs=[1.0, 2.0], lam=1.0)
    assert again.dictionary is problem.dictionary
    source[1400, 3] = -source[1400, 3]
    changed = SteeringProblem.qp(decoder=source, directions=w, rhs=[1.0, 2.0], lam=1.0)
    assert changed.dictionary is not problem.dictionary
    np.testing.assert_array_equal(changed.decoder, source)  # copied as it is now
    assert not np.shares_memory(changed.decoder, source)
    _, prints, _ = decoder_module._validation_pass_with(source, columns)
    np.testing.assert_array_equal(changed.dictionary.fingerprint, prints)
    for row in (3, 1400):  # one in each half
        broken = source.copy()
        broken[row, 5] = np.nan
        with pytest.raises(ValidationError, match="decoder"):
            SteeringProblem.qp(decoder=broken, directions=w, rhs=[1.0, 2.0], lam=1.0)
        with pytest.raises(ValidationError, match="decoder"):
            Decoder(broken)


def test_a_split_pass_falls_back_to_one_thread_when_no_thread_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the interpreter shuts down, a thread pool refuses new work (RuntimeError): the
    pass then does every block itself, with the same copy and figures."""

    class Refusing:
        def submit(self, *args: Any) -> None:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(decoder_module, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(steerkit.cores, "busy", lambda spare=0.5: False)
    monkeypatch.setattr(decoder_module, "_helper", lambda: Refusing())
    source = _unit_rows(np.random.default_rng(9), 1300, 7)
    own, squares, prints, _ = decoder_module.private_copy(source)
    np.testing.assert_array_equal(own, source)
    plain_squares, plain_prints = decoder_module._validation_pass(source)
    np.testing.assert_array_equal(squares, plain_squares)
    np.testing.assert_array_equal(prints, plain_prints)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_copies_and_validates_with_its_own_helper_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process forked after the helper thread was made inherits the pool without its thread:
    the child's split pass must not wait for it for ever (it finishes, with the right copy)."""
    monkeypatch.setattr(decoder_module, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(steerkit.cores, "busy", lambda spare=0.5: False)
    rng = np.random.default_rng(8)
    source = _unit_rows(rng, 1200, 6)
    decoder_module.private_copy(source)  # the parent's helper thread exists now
    assert decoder_module._helper_pool is not None
    with warnings.catch_warnings():  # Python ≥ 3.12 warns of fork in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: exit 0 if the split pass finished with the right copy
        code = 1
        try:
            own = decoder_module.private_copy(source)[0]
            code = 0 if np.array_equal(own, source) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's validation pass never finished")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.ones(5), "2-d"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "finite"),
        (np.ones((0, 3)), "non-empty"),
    ],
)
def test_bad_decoders_are_refused_naming_the_field(value: np.ndarray, expected: str) -> None:
    with pytest.raises(ValidationError, match="decoder") as info:
        Decoder(value)
    assert expected in str(info.value)


def test_a_problem_on_a_decoder_makes_no_pass_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    dec = Decoder(_unit_rows(rng, 200, 8))
    w = rng.normal(size=8)
    passes: list[int] = []
    import steerkit.problem as problem_module

    for module in (problem_module, decoder_module):  # a pass with the copy, or one without
        real = module._validation_pass_with
        monkeypatch.setattr(
            module,
            "_validation_pass_with",
            lambda *args, real=real, **kwargs: passes.append(1) or real(*args, **kwargs),
        )
    first = SteeringProblem.qp(decoder=dec, directions=w, rhs=1.0, lam=1.0)
    second = SteeringProblem.socp(decoder=dec, directions=w, rhs=2.0, eps=3.0)
    assert passes == []  # built on a Decoder: validated once, when the Decoder was made
    assert first.decoder is dec.array and first.dictionary is dec and second.dictionary is dec
    # what derives from the decoder and the direction is shared by every problem on both
    assert first.max_alignment is second.max_alignment
    assert first.constraint_matrix is second.constraint_matrix
    np.testing.assert_allclose(
        first.constraint_matrix[0], dec.array.astype(np.float64) @ w, rtol=1e-13
    )
    SteeringProblem.qp(decoder=dec.array.copy(), directions=w, rhs=1.0, lam=1.0)
    assert passes == [1]  # an array still costs its validation pass


def test_an_array_problem_gets_d_w_from_its_validation_pass() -> None:
    """A problem built from a float32 array multiplies it by w in the pass that validates it:
    the estimate is there before anything asks for it, equals the plain float32 product, and
    the exact maximum and constraint matrix agree with a float64 product."""
    rng = np.random.default_rng(4)
    decoder = _unit_rows(rng, 700, 12)  # more rows than one block of the pass
    w = rng.normal(size=(2, 12))
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=[1.0, 0.5], lam=1.0)
    family = problem._cache["family"]
    for i in range(2):
        assert f"alignment_estimate_{i}" in family  # set by the pass, not computed on demand
        plain = (decoder @ w[i].astype(np.float32)).astype(np.float64)
        np.testing.assert_array_equal(problem.alignment_estimate(i), plain)
    exact = decoder.astype(np.float64) @ w.T
    np.testing.assert_allclose(problem.max_alignment, exact.max(axis=0), rtol=1e-13)
    np.testing.assert_allclose(problem.constraint_matrix, exact.T, rtol=1e-12)
    # directions of the wrong shape still get the usual error, not one from the pass
    with pytest.raises(steerkit.ValidationError, match="directions"):
        SteeringProblem.qp(decoder=decoder, directions=np.ones(5), rhs=1.0, lam=1.0)


# -- the screened certificate ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_screened_floor_equals_the_full_pass_and_the_float64_product(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoder_module, "_BLOCK_ROWS64", 5)  # the rows left gathered in blocks
    rng = np.random.default_rng(2)
    decoder = _unit_rows(rng, 3000, 16, dtype)
    decoder[2000:2050] = decoder[:50]  # duplicated rows: exact ties among reduced costs
    dec = Decoder(decoder)
    problem = SteeringProblem.qp(decoder=dec, directions=rng.normal(size=16), rhs=1.0, lam=1.0)
    # dual points along a line, as the answers on one path segment: some feasible, some not
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)
    screened = 0
    for t in np.linspace(0.5, 1.5, 41):
        u = t * direction + 1e-3 * rng.normal(size=16)
        kept = dec.kept_points
        got = max(0.0, -dec.min_reduced_cost(u))
        screened += dec.kept_points == kept
        full = max(0.0, -_min_reduced_cost(problem, u))
        assert got == pytest.approx(full, rel=1e-12, abs=1e-14)
        assert got == pytest.approx(_oracle_floor(decoder, u), rel=1e-9, abs=1e-13)
    assert screened >= 30, "most answers near a kept dual point must be screened, not full passes"
    assert dec.kept_points < 11


def _one_kept_point(seed: int) -> tuple[np.ndarray, Decoder, np.ndarray, int]:
    """(decoder, its Decoder, u, the feature best aligned against u): u's full pass kept, its
    minimum reduced cost 0.05."""
    rng = np.random.default_rng(seed)
    decoder = _unit_rows(rng, 2000, 12)
    dec = Decoder(decoder)
    u = rng.normal(size=12)
    u *= 0.95 / -float((decoder.astype(np.float64) @ u).min())
    assert dec.min_reduced_cost(u) > 0 and dec.kept_points == 1
    return decoder, dec, u, int(np.argmin(decoder @ u))


def test_a_corrupted_kept_dual_point_is_caught() -> None:
    decoder, dec, u, worst = _one_kept_point(3)
    # an answer nearby that is dual infeasible on the feature best aligned against u
    v = u - 0.2 * decoder[worst].astype(np.float64)
    want = _oracle_floor(decoder, v)
    assert want > 0
    # corrupt the kept D u' so that the screen would show every feature far from negative
    point = next(iter(dec._points.values()))
    point.values.base[:] = 100.0
    got = max(0.0, -dec.min_reduced_cost(v))
    assert got == pytest.approx(want, rel=1e-9)  # the checksum failed: a full pass exposed it
    assert all(p is not point for p in dec._points.values())  # the corrupted point is dropped
    # and through a Solution: the figure is the full pass's, not the corrupted screen's
    problem = SteeringProblem.qp(decoder=dec, directions=decoder[worst], rhs=1.0, lam=1.0)
    delta = np.zeros(2000)
    delta[worst] = 1.0 / float(decoder[worst].astype(np.float64) @ decoder[worst])
    for p in dec._points.values():
        p.values.base[:] = 100.0
    cert = certificate(problem, delta, Duals(linear=np.array([40.0])))
    mu_u = problem.lam * problem.steering_vector(delta) - 40.0 * problem.directions[0]
    assert cert.dual_infeasibility == pytest.approx(_oracle_floor(decoder, mu_u), rel=1e-9)
    assert cert.dual_infeasibility > 1.0


def test_path_answers_on_a_decoder_are_certified_as_by_the_full_pass() -> None:
    pytest.importorskip("steerkit_path")
    rng = np.random.default_rng(4)
    decoder = _unit_rows(rng, 1500, 24)
    w = rng.normal(size=24)
    dec = Decoder(decoder)
    rhs = rng.uniform(0.5, 5.0, size=20)
    solutions = []
    for lam in (0.1, 1.0, 10.0):
        base = SteeringProblem.qp(decoder=dec, directions=w, rhs=rhs[0], lam=lam)
        solutions += steerkit.solve_batch([base.with_rhs(r) for r in rhs], "path")
    eps_base = SteeringProblem.socp(decoder=dec, directions=w, rhs=rhs[0], eps=1e6)
    solutions += [steerkit.solve(eps_base.with_rhs(r), "path") for r in rhs]
    assert all(s.ok for s in solutions)
    assert dec.kept_points < len(solutions) // 4  # screened, not a pass per answer
    # oracle: the same answers' certificates over a problem built from a plain float64 array
    for s, lam_r in zip(solutions, [*(lam for lam in (0.1, 1.0, 10.0) for _ in rhs), *[None] * 20]):
        assert s.duals is not None and s.delta is not None
        plain = np.asarray(decoder, dtype=np.float64)
        v = plain.T @ s.delta
        u = -(w * s.duals.linear[0])
        if lam_r is not None:
            u = u + lam_r * v
        elif s.duals.norm and np.linalg.norm(v) > 0:
            u = u + s.duals.norm / np.linalg.norm(v) * v
        assert s.dual_infeasibility == pytest.approx(_oracle_floor(decoder, u), abs=1e-12)


def test_cost_weighted_problems_on_a_decoder_stay_exact() -> None:
    pytest.importorskip("steerkit_path")
    from steerkit.testing.oracle import reference_solve

    rng = np.random.default_rng(5)
    decoder = _unit_rows(rng, 300, 10)
    w = rng.normal(size=10)
    costs = rng.uniform(0.5, 2.0, size=300)
    costs[:5] = 50.0  # expensive features
    dec = Decoder(decoder)
    problem = SteeringProblem.qp(decoder=dec, directions=w, rhs=2.0, lam=0.5, costs=costs)
    solution = steerkit.solve(problem, "path")
    # oracle: Clarabel on the unit-cost problem over the rows dᵢ / cᵢ (hand reformulation)
    plain = SteeringProblem.qp(
        decoder=decoder.astype(np.float64) / costs[:, None], directions=w, rhs=2.0, lam=0.5
    )
    reference = reference_solve(plain)
    assert solution.ok and reference.delta is not None
    assert solution.objective == pytest.approx(reference.objective, rel=1e-7)
    assert solution.dual_infeasibility <= 1e-12


def test_a_decoder_is_accepted_where_arrays_are() -> None:
    steerkit_path = pytest.importorskip("steerkit_path")

    rng = np.random.default_rng(6)
    decoder = _unit_rows(rng, 400, 12)
    w = rng.normal(size=12)
    dec = Decoder(decoder)
    steerkit_path.clear_cache()
    path = steerkit_path.path_for(dec, w)
    assert steerkit_path.path_for(dec.array, w) is path  # the same cached path
    # the path's answer equals Clarabel's on the plain float64 array (oracle)
    from steerkit.testing.oracle import reference_solve

    plain = SteeringProblem.qp(decoder=decoder.astype(np.float64), directions=w, rhs=2.0, lam=1.0)
    reference = reference_solve(plain)
    points = path.qp(np.array([1.0]), np.array([2.0]))
    idx, values = points.sparse(0)
    delta = np.zeros(400)
    delta[idx] = values
    assert plain.objective(delta) == pytest.approx(reference.objective, rel=1e-7)
    # a method's context takes it too: np.asarray gives the read-only array
    assert np.asarray(dec).flags.writeable is False


# -- a batch certified together ----------------------------------------------------------------


def _segment_points(rng: np.random.Generator, d: int, m: int) -> np.ndarray:
    """Dual points along a line with a little noise, as the answers on one path segment."""
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    return np.stack([t * direction + 1e-3 * rng.normal(size=d) for t in np.linspace(0.5, 1.5, m)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_screen_equals_the_full_pass_and_the_float64_product(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoder_module, "_BLOCK_ROWS64", 3)  # the near rows' product in blocks
    rng = np.random.default_rng(11)
    decoder = _unit_rows(rng, 3000, 16, dtype)
    decoder[2000:2050] = decoder[:50]  # duplicated rows: exact ties among reduced costs
    dec = Decoder(decoder)
    problem = SteeringProblem.qp(decoder=dec, directions=rng.normal(size=16), rhs=1.0, lam=1.0)
    us = _segment_points(rng, 16, 60)
    # the first chunk has no kept point: one by one (full passes, points kept); the second is
    # screened in groups against them
    for chunk in (us[::5], us):
        got = np.maximum(0.0, -dec.min_reduced_costs(chunk))
        for u, value in zip(chunk, got):
            full = max(0.0, -_min_reduced_cost(problem, u))
            assert value == pytest.approx(full, rel=1e-12, abs=1e-14)
            assert value == pytest.approx(_oracle_floor(decoder, u), rel=1e-9, abs=1e-13)
    assert (np.maximum(0.0, -dec.min_reduced_costs(us)) > 0).any()  # some are dual infeasible
    assert dec.kept_points <= 12, "the second chunk must be screened, not full passes"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_answers_left_to_their_own_screens_are_exact_together(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers no shared screen settles go one by one: each screened against the points kept
    by then, their rows multiplied together at the end — every figure equals the plain float64
    product's, the dual infeasible ones included, with and without known support costs."""
    rng = np.random.default_rng(17)
    decoder = _unit_rows(rng, 3000, 16, dtype)
    dec = Decoder(decoder)
    us = _segment_points(rng, 16, 40)
    dec.min_reduced_costs(us[::8])  # kept points along the segment
    monkeypatch.setattr(Decoder, "_pairs", lambda self, us: [])  # no shared screen at all
    calls: list[int] = []
    original = Decoder._rows_times
    monkeypatch.setattr(
        Decoder, "_rows_times", lambda self, i, x: calls.append(x.shape[1]) or original(self, i, x)
    )
    support = np.arange(5)
    known = [(support, 1.0 + decoder[support].astype(np.float64) @ u) for u in us[:20]]
    got = np.maximum(0.0, -dec.min_reduced_costs(us, known + [None] * 20))  # type: ignore[arg-type]
    want = [_oracle_floor(decoder, u) for u in us]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    assert max(want) > 0  # some answers are dual infeasible, and are caught
    assert max(calls) > 1  # their rows were multiplied together


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_group_screen_skips_only_the_rows_every_answer_knows(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared screen leaves the members' supports (reduced costs ~0); the rows every member's
    known costs cover are not multiplied again, and a row one member lacks is — its own most
    negative reduced cost, which skipping it would miss."""
    rng = np.random.default_rng(23)
    decoder = _unit_rows(rng, 3000, 16, dtype)
    dec = Decoder(decoder)
    us = _segment_points(rng, 16, 40)
    dec.min_reduced_costs(us[::8])  # kept points along the segment: the rest screened in groups
    exact = 1.0 + decoder.astype(np.float64) @ us.T  # (d_sae, answers)
    lowest = np.argmin(exact, axis=0)  # each answer's most negative row
    shared = np.unique(np.concatenate([lowest, np.argsort(exact.min(axis=1))[:8]]))
    known = []
    for j in range(len(us)):
        # the even answers know every shared row; the odd ones all but their own lowest
        index = shared if j % 2 == 0 else shared[shared != lowest[j]]
        if j % 2 == 0:  # rows given twice are still one member's knowledge
            index = np.sort(np.concatenate([index, lowest[1::2]]))
        known.append((index, exact[index, j]))
    odd = np.arange(1, len(us), 2)
    missed = [float(known[j][1].min()) for j in odd]
    assert any(m > exact[lowest[j], j] for m, j in zip(missed, odd))  # skipping it would show
    multiplied: list[np.ndarray] = []
    original = Decoder._rows_times
    monkeypatch.setattr(
        Decoder,
        "_rows_times",
        lambda self, i, x: multiplied.append(i.copy()) or original(self, i, x),
    )
    got = np.maximum(0.0, -dec.min_reduced_costs(us, known))  # type: ignore[arg-type]
    want = [_oracle_floor(decoder, u) for u in us]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    assert max(want[j] for j in odd) > 0  # odd answers dual infeasible on their lowest row
    everyone = np.setdiff1d(shared, lowest[odd])  # the rows every answer knows
    assert multiplied and not any(np.isin(everyone, rows).any() for rows in multiplied)


def test_a_corrupted_kept_point_is_caught_by_the_batch_screen() -> None:
    decoder, dec, u, worst = _one_kept_point(12)
    # answers nearby, some dual infeasible on the feature best aligned against u
    us = np.stack([u - s * decoder[worst].astype(np.float64) for s in np.linspace(0, 0.2, 9)])
    want = [_oracle_floor(decoder, x) for x in us]
    assert max(want) > 0
    point = next(iter(dec._points.values()))
    point.values.base[:] = 100.0  # the screen would show every feature far from negative
    got = np.maximum(0.0, -dec.min_reduced_costs(us))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-14)
    assert all(p is not point for p in dec._points.values())  # the corrupted point is dropped


def _sparse_answers(
    rng: np.random.Generator, dec: Decoder, w: np.ndarray, m: int
) -> tuple[list[SteeringProblem], list[tuple[np.ndarray, np.ndarray]], list[Duals]]:
    """m QPs and SOCPs on one Decoder with sparse δ ≥ 0 and multipliers near the true ones."""
    problems, supports, duals = [], [], []
    for j in range(m):
        index = np.sort(rng.choice(dec.d_sae, size=int(rng.integers(1, 30)), replace=False))
        values = rng.uniform(0.0, 0.3, size=index.size)
        if j % 5 == 0:
            values[0] = -0.05  # negative beyond rounding: reported in the violation
        if j % 2:
            problem = SteeringProblem.qp(decoder=dec, directions=w, rhs=1.0, lam=0.5 + j)
            duals.append(Duals(linear=np.array([rng.uniform(0.0, 2.0)])))
        else:
            problem = SteeringProblem.socp(decoder=dec, directions=w, rhs=1.0, eps=2.0)
            duals.append(Duals(linear=np.array([rng.uniform(0.0, 2.0)]), norm=float(j % 3)))
        problems.append(problem)
        supports.append((index, values))
    return problems, supports, duals


def test_certify_many_equals_the_one_answer_figures_and_the_plain_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(13)
    decoder = _unit_rows(rng, 2500, 20)
    w = rng.normal(size=20)
    dec = Decoder(decoder)
    problems, supports, duals = _sparse_answers(rng, dec, w, 40)
    # rows gathered and multiplied in small blocks: the figures must not change
    monkeypatch.setattr(solution_module, "_BLOCK_BYTES", 20 * 8 * 7)
    figures = certify_many(problems, supports, duals)
    plain = decoder.astype(np.float64)
    for problem, (index, values), dual, figure in zip(problems, supports, duals, figures):
        delta = np.zeros(dec.d_sae)
        delta[index] = values
        one = Solution.build(problem, delta, status="optimal", solver="t", seconds=0.0, duals=dual)
        assert figure.objective == pytest.approx(one.objective, rel=1e-12)
        assert figure.violation == pytest.approx(one.violation, rel=1e-12, abs=1e-15)
        assert figure.certificate.gap == pytest.approx(one.gap, rel=1e-9, abs=1e-13)
        # the dual infeasibility against a plain float64 product (hand computation)
        v = plain.T @ delta
        u = -(w * dual.linear[0])
        if problem.lam is not None:
            u = u + problem.lam * v
        elif dual.norm:
            u = u + dual.norm / np.linalg.norm(v) * v
        assert figure.certificate.dual_infeasibility == pytest.approx(
            _oracle_floor(decoder, u), rel=1e-9, abs=1e-13
        )
    assert max(f.certificate.dual_infeasibility for f in figures) > 1e-3  # not all feasible


def test_certify_many_never_gathers_every_support_row_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past _GATHER_BYTES, the supports' rows are gathered a block at a time: the batch's peak
    memory stays far below the gathered rows' size, and the figures match the one-answer ones."""
    import tracemalloc

    monkeypatch.setattr(solution_module, "_BLOCK_BYTES", 96 * 8 * 100)  # 100 rows a block
    monkeypatch.setattr(solution_module, "_GATHER_BYTES", 96 * 4 * 1000)  # 1,000 rows at once

    rng = np.random.default_rng(15)
    decoder = _unit_rows(rng, 6000, 96)  # float32: 2.3 MB
    w = rng.normal(size=96)
    dec = Decoder(decoder)
    lam = 1.0
    problems, supports, duals = [], [], []
    for j in range(3):
        index = np.arange(j, 6000, 2)[: 2800 + j]  # 2,800 rows each: 1.1 MB in float32
        values = rng.uniform(0.1, 1.0, index.size) * 1e-3
        v = decoder[index].astype(np.float64).T @ values
        rhs = float(w @ v) * 0.5
        problems.append(SteeringProblem.qp(decoder=dec, directions=w, rhs=rhs, lam=lam))
        supports.append((index, values))
        duals.append(Duals(linear=np.array([0.3])))
    certify_many(problems[:1], supports[:1], duals[:1])  # warm: kept points, caches
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    figures = certify_many(problems, supports, duals)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    union_rows = 6000 * 96 * 4 * (2801 + 2801) // 6000  # every other row and a few more
    assert peak < union_rows / 2, (peak, union_rows)
    for problem, (index, values), dual, figure in zip(problems, supports, duals, figures):
        delta = np.zeros(dec.d_sae)
        delta[index] = values
        one = Solution.build(problem, delta, status="optimal", solver="t", seconds=0.0, duals=dual)
        assert figure.objective == pytest.approx(one.objective, rel=1e-12)
        assert figure.certificate.gap == pytest.approx(one.gap, rel=1e-9, abs=1e-13)


class _Replay(steerkit.Solver):
    """A backend whose answers are given (sparse δ and multipliers), for the core to check."""

    name = "replay"
    answers: ClassVar[list[Answer]] = []

    def solve_group(self, problems: Sequence[SteeringProblem], settings: Any) -> Iterator[Answer]:
        return iter(self.answers[: len(problems)])


def test_accept_many_catches_corrupted_answers_and_multipliers_as_accept_does() -> None:
    steerkit_path = pytest.importorskip("steerkit_path")
    rng = np.random.default_rng(14)
    decoder = _unit_rows(rng, 1500, 24)
    w = rng.normal(size=24)
    dec = Decoder(decoder)
    steerkit_path.clear_cache()
    rhs = rng.uniform(0.5, 5.0, size=70)
    base = SteeringProblem.qp(decoder=dec, directions=w, rhs=rhs[0], lam=1.0)
    problems = [base.with_rhs(r) for r in rhs]
    true = steerkit.solve_batch(problems, "path")
    assert all(s.ok for s in true)
    answers = []
    for j, s in enumerate(true):
        assert s.delta is not None and s.duals is not None
        index = np.flatnonzero(s.delta)
        values = s.delta[index].copy()
        mu = s.duals.linear.copy()
        if j % 7 == 1:
            values *= 1.5  # a corrupted answer: feasible, not optimal
        if j % 7 == 3:
            mu *= 1.5  # a corrupted witness
        if j % 7 == 5:
            values *= 0.9  # infeasible
        answers.append(Answer(Outcome.OPTIMAL, support=(index, values), duals=Duals(linear=mu)))
    _Replay.answers = answers
    batch = _Replay().solve_batch(problems)
    for j, (problem, answer, got) in enumerate(zip(problems, answers, batch)):
        one = accept(problem, answer, solver="replay", seconds=0.0)
        assert got.status is one.status, j
        if j % 7 in (1, 5):
            assert not got.ok and "refuses" in got.message
        elif j % 7 == 3:  # the core's own multipliers certify the true answer
            assert got.ok and "duals_recomputed" in got.flags
        else:
            assert got.ok and got.gap <= 1e-9 and got.dual_infeasibility <= 1e-12
        if got.ok:
            assert got.objective == pytest.approx(one.objective, rel=1e-12)
            assert got.dual_infeasibility == pytest.approx(one.dual_infeasibility, abs=1e-12)
            np.testing.assert_array_equal(got.delta, one.delta)


def test_accept_many_takes_malformed_sparse_answers_one_by_one() -> None:
    rng = np.random.default_rng(15)
    dec = Decoder(_unit_rows(rng, 200, 8))
    problem = SteeringProblem.qp(decoder=dec, directions=rng.normal(size=8), rhs=1.0, lam=1.0)
    answers = [
        Answer(Outcome.OPTIMAL, support=(np.array([3, 3]), np.array([0.1, 0.2])), duals=None),
        Answer(Outcome.OPTIMAL, support=(np.array([3, 3]), np.ones(2)), duals=Duals(np.ones(1))),
        Answer(Outcome.INFEASIBLE, reason="no"),
    ]
    got = accept_many([problem] * 3, answers, solver="t", seconds=[0.0] * 3)
    assert got[2].status is steerkit.Status.INFEASIBLE and got[2].message == "no"
    for answer, solution in zip(answers, got):  # the same as one by one
        one = accept(problem, answer, solver="t", seconds=0.0)
        assert (solution.status, solution.message) == (one.status, one.message)
    # a support outside [0, d_sae) or of two lengths is refused, never wrapped around
    for support in ((np.array([-1]), np.ones(1)), (np.array([200]), np.ones(1)), ([1, 2], [1.0])):
        bad = Answer(Outcome.OPTIMAL, support=support, duals=Duals(np.ones(1)))
        for got_one in (
            accept_many([problem], [bad], solver="t", seconds=[0.0])[0],
            accept(problem, bad, solver="t", seconds=0.0),
        ):
            assert got_one.status is steerkit.Status.ERROR and "support" in got_one.message
    nan = Answer(
        Outcome.OPTIMAL, support=(np.array([1]), np.array([np.nan])), duals=Duals(np.ones(1))
    )
    with pytest.raises(steerkit.ValidationError, match="finite"):
        accept_many([problem], [nan], solver="t", seconds=[0.0])
    with pytest.raises(ValueError, match="one Decoder"):
        other = SteeringProblem.qp(decoder=dec.array.copy(), directions=np.ones(8), rhs=1, lam=1)
        certify_many([problem, other], [(np.array([0]), np.ones(1))] * 2, [Duals(np.ones(1))] * 2)


def test_a_chunks_claims_equal_the_one_by_one_checks() -> None:
    """`_claims` checks a chunk's sparse answers over their concatenated supports; each claim
    (or refusal) equals `_sparse`'s on that answer alone: sorted, unsorted, rounding and real
    negatives, indices outside the decoder, NaN, empty, ragged, dense and wrong multipliers."""
    from steerkit.answer import _claims, _sparse

    rng = np.random.default_rng(19)
    dec = Decoder(_unit_rows(rng, 500, 8))
    base = SteeringProblem.qp(decoder=dec, directions=rng.normal(size=8), rhs=1.0, lam=1.0)
    other = SteeringProblem.qp(decoder=dec, directions=rng.normal(size=(2, 8)), rhs=[1, 1], lam=1)
    duals = Duals(linear=np.array([0.5]))

    def sparse(index: Any, values: Any, dual: Duals = duals) -> Answer:
        return Answer(Outcome.OPTIMAL, support=(index, values), duals=dual)

    answers = [
        sparse([3, 7, 40], [0.5, 0.25, 1.0]),
        sparse([40, 3, 7], [1.0, 0.5, 0.25]),  # unsorted: sorted by `_sparse`
        sparse([1, 2, 3], [1.0, -1e-9, 0.5]),  # a rounding negative: set to 0, dropped
        sparse([1, 2, 3], [1.0, -0.5, 0.5]),  # a real negative: kept and reported
        sparse([1, 500], [1.0, 1.0]),  # outside the decoder
        sparse([-1, 2], [1.0, 1.0]),  # a negative index must not wrap around
        sparse([4, 5], [np.nan, 1.0]),
        sparse([], []),
        sparse([4, 5, 6], [1.0, 2.0]),  # ragged
        sparse([4, 4], [1.0, 2.0]),  # repeated
        sparse([9, 11], [0.0, 2.0]),  # an explicit zero: dropped
        sparse([6, 8], [1.0, 2.0], Duals(linear=np.array([0.5, 0.5]))),
        Answer(Outcome.OPTIMAL, delta=np.zeros(500), duals=duals),
        Answer(Outcome.INFEASIBLE),
        sparse(np.array([2.0, 3.0]), [1.0, 2.0]),  # float indices, as `_sparse` casts them
        sparse([10, 20], [3.0, 4.0]),
    ]
    problems = [base] * len(answers)
    problems[-1] = other  # another direction shape: left to `accept`
    got = _claims(problems, answers)
    for j, (problem, answer, claim) in enumerate(zip(problems, answers, got)):
        want = _sparse(problem, answer) if j != len(answers) - 1 else None
        if want is None:
            assert claim is None, j
            continue
        assert claim is not None, j
        np.testing.assert_array_equal(claim.rows, want.rows)
        np.testing.assert_array_equal(claim.values, want.values)
        assert claim.rows.dtype == np.int64 and claim.values.dtype == np.float64
        assert (claim.flags, claim.notes) == (want.flags, want.notes), j
    assert got[3] is not None and got[3].flags == {"negative_entries"}
    assert got[0] is not None and got[1] is not None
    np.testing.assert_array_equal(got[1].rows, [3, 7, 40])
