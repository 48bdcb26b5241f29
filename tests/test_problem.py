"""SteeringProblem: validation on construction, and the quantities derived from it."""

from __future__ import annotations

import numpy as np
import pytest

import steerkit
from steerkit import ProblemKind, SteeringProblem, ValidationError


def _decoder(rng: np.random.Generator, d_sae: int = 20, d_model: int = 6) -> np.ndarray:
    return rng.normal(size=(d_sae, d_model))


def test_qp_accepts_vector_direction_and_scalar_rhs(steerkit_rng: np.random.Generator) -> None:
    decoder = _decoder(steerkit_rng)
    w = steerkit_rng.normal(size=6)
    problem = SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.5, lam=2.0)
    assert problem.kind is ProblemKind.QP
    assert problem.directions.shape == (1, 6)
    assert problem.rhs.shape == (1,) and problem.rhs[0] == 1.5
    assert (problem.d_sae, problem.d_model, problem.n_constraints) == (20, 6, 1)
    np.testing.assert_allclose(problem.constraint_matrix, (decoder @ w)[None, :])
    assert problem.lam == 2.0 and problem.eps is None


def test_socp_with_k_directions(steerkit_rng: np.random.Generator) -> None:
    decoder = _decoder(steerkit_rng)
    w = steerkit_rng.normal(size=(3, 6))
    problem = SteeringProblem.socp(decoder=decoder, directions=w, rhs=[1.0, 2.0, 3.0], eps=4.0)
    assert problem.kind is ProblemKind.SOCP and problem.n_constraints == 3
    np.testing.assert_allclose(problem.constraint_matrix, w @ decoder.T)


def test_objective_and_violation_by_hand() -> None:
    decoder = np.eye(3)
    problem = SteeringProblem.qp(decoder=decoder, directions=[1.0, 0, 0], rhs=2.0, lam=0.5)
    delta = np.array([1.0, 2.0, 0.0])
    # 1ᵀδ = 3, ‖Dᵀδ‖² = 5 → 3 + 0.25 · 5
    assert problem.objective(delta) == pytest.approx(4.25)
    assert problem.violation(delta) == pytest.approx(1.0)  # a·δ = 1 < r = 2
    assert problem.violation(np.array([2.0, 0, 0])) == 0.0
    assert problem.violation(np.array([2.0, -0.5, 0])) == pytest.approx(0.5)

    socp = SteeringProblem.socp(decoder=decoder, directions=[1.0, 0, 0], rhs=2.0, eps=1.0)
    assert socp.objective(delta) == pytest.approx(3.0)
    assert socp.violation(np.array([2.0, 0, 0])) == pytest.approx(1.0)  # ‖v‖ = 2 > ε = 1


def test_arrays_are_read_only_and_float32_decoder_is_kept(
    steerkit_rng: np.random.Generator,
) -> None:
    decoder = _decoder(steerkit_rng).astype(np.float32)
    problem = SteeringProblem.qp(decoder=decoder, directions=np.ones(6), rhs=1.0, lam=1.0)
    assert problem.decoder.dtype == np.float32
    # the problem's own copy (once per array, shared by later problems built from it), so that a
    # change of the caller's array cannot change the problem under its feet
    assert not np.shares_memory(problem.decoder, decoder), "the decoder must be the problem's own"
    again = SteeringProblem.qp(decoder=decoder, directions=np.ones(6), rhs=2.0, lam=1.0)
    assert again.decoder is problem.decoder, "one copy per unchanged array, not one per problem"
    with pytest.raises(ValueError):
        problem.decoder[0, 0] = 1.0
    with pytest.raises(ValueError):
        problem.rhs[0] = 1.0
    assert problem.constraint_matrix.dtype == np.float64


def test_with_rhs_shares_the_decoder_and_cache(steerkit_rng: np.random.Generator) -> None:
    problem = SteeringProblem.qp(
        decoder=_decoder(steerkit_rng), directions=np.ones(6), rhs=1.0, lam=1.0
    )
    a = problem.constraint_matrix
    other = problem.with_rhs(-3.0)
    assert other.decoder is problem.decoder
    assert other.constraint_matrix is a
    assert other.rhs[0] == -3.0 and problem.rhs[0] == 1.0
    assert other.already_satisfied and not problem.already_satisfied


@pytest.mark.parametrize("scalar", [2.5, 3, np.float64(-1.25), np.float32(0.1), True])
def test_a_scalar_rhs_is_what_the_same_value_in_an_array_gives(
    steerkit_rng: np.random.Generator, scalar: object
) -> None:
    """A plain number takes a shorter way than an array (a sweep's `with_rhs(r)`): the same
    float64 values, broadcast to every direction, read-only."""
    problem = SteeringProblem.socp(
        decoder=_decoder(steerkit_rng), directions=np.ones((2, 6)), rhs=[0.0, 0.0], eps=1.0
    )
    from_scalar = problem.with_rhs(scalar).rhs
    from_array = problem.with_rhs(np.full(2, scalar)).rhs
    assert from_scalar.dtype == np.float64 and from_scalar.shape == (2,)
    np.testing.assert_array_equal(from_scalar, from_array)
    assert from_scalar[0] == float(scalar)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        from_scalar[0] = 1.0


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), np.float64("-inf"), 10**400, 10**30, 2**64, -(2**63) - 1]
)
def test_a_scalar_rhs_that_is_no_finite_float_is_refused_naming_rhs(
    steerkit_rng: np.random.Generator, bad: object
) -> None:
    problem = SteeringProblem.qp(
        decoder=_decoder(steerkit_rng), directions=np.ones(6), rhs=1.0, lam=1.0
    )
    with pytest.raises(ValidationError, match="rhs"):
        problem.with_rhs(bad)


def test_accepts_tensor_like_objects(steerkit_rng: np.random.Generator) -> None:
    class FakeTensor:  # the duck type a torch tensor presents, without importing torch
        def __init__(self, array: np.ndarray) -> None:
            self.array = array
            self.dtype = "torch.float32"

        def detach(self) -> FakeTensor:
            return self

        def cpu(self) -> FakeTensor:
            return self

        def numpy(self) -> np.ndarray:
            return self.array

    decoder = _decoder(steerkit_rng)
    problem = SteeringProblem.qp(
        decoder=FakeTensor(decoder), directions=FakeTensor(np.ones(6)), rhs=1.0, lam=1.0
    )
    np.testing.assert_array_equal(problem.decoder, decoder)


@pytest.mark.needs_torch
def test_accepts_torch_tensors(steerkit_rng: np.random.Generator) -> None:
    import torch

    decoder = torch.tensor(_decoder(steerkit_rng), dtype=torch.bfloat16)
    problem = SteeringProblem.socp(decoder=decoder, directions=torch.ones(6), rhs=1.0, eps=3.0)
    assert problem.decoder.dtype == np.float32
    np.testing.assert_allclose(problem.decoder, decoder.float().numpy())


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"decoder": np.ones(5)}, "decoder", "a 2-d array"),
        ({"directions": np.ones(5)}, "directions", "shape (k, 6) or (6,)"),
        ({"directions": np.ones((2, 3, 6))}, "directions", "shape (k, 6) or (6,)"),
        ({"rhs": [1.0, 2.0]}, "rhs", "a scalar or shape (1,)"),
        ({"rhs": np.nan}, "rhs", "finite"),
        ({"lam": 0.0}, "lam", "positive finite number"),
        ({"lam": -1.0}, "lam", "positive finite number"),
        ({"lam": float("inf")}, "lam", "positive finite number"),
        ({"lam": "big"}, "lam", "positive finite number"),
        ({"directions": ["a"] * 6}, "directions", "an array of numbers"),
    ],
)
def test_bad_qp_input_names_the_field(
    steerkit_rng: np.random.Generator, changes: dict, field: str, fragment: str
) -> None:
    arguments = {
        "decoder": _decoder(steerkit_rng),
        "directions": np.ones(6),
        "rhs": 1.0,
        "lam": 1.0,
    }
    arguments.update(changes)
    with pytest.raises(ValidationError) as info:
        SteeringProblem.qp(**arguments)
    assert info.value.field == field
    assert f"SteeringProblem.{field}: expected" in str(info.value)
    assert fragment in str(info.value)


def test_nan_and_inf_in_decoder_are_located(steerkit_rng: np.random.Generator) -> None:
    decoder = _decoder(steerkit_rng)
    decoder[3, 2] = np.inf
    decoder[7, 1] = np.nan
    with pytest.raises(
        ValidationError, match=r"2 NaN or infinite entries \(first at index \(3, 2\)"
    ):
        SteeringProblem.qp(decoder=decoder, directions=np.ones(6), rhs=1.0, lam=1.0)


def test_the_finiteness_check_of_a_float32_decoder_is_exact(
    steerkit_rng: np.random.Generator,
) -> None:
    # the check reads the row sums of squares: a NaN anywhere is found and located ...
    decoder = _decoder(steerkit_rng).astype(np.float32)
    decoder[5, 0] = np.nan
    with pytest.raises(ValidationError, match=r"1 NaN or infinite entry \(first at index \(5, 0\)"):
        SteeringProblem.qp(decoder=decoder, directions=np.ones(6), rhs=1.0, lam=1.0)
    # ... and finite entries whose squares overflow float32 are not mistaken for infinite ones
    decoder[5, 0] = 3e25
    problem = SteeringProblem.qp(decoder=decoder, directions=np.ones(6), rhs=1.0, lam=1.0)
    assert problem.decoder[5, 0] == np.float32(3e25)


@pytest.mark.parametrize("eps", [0.0, -2.0, float("nan")])
def test_bad_eps(steerkit_rng: np.random.Generator, eps: float) -> None:
    with pytest.raises(ValidationError, match="SteeringProblem.eps: expected a positive finite"):
        SteeringProblem.socp(decoder=_decoder(steerkit_rng), directions=np.ones(6), rhs=1, eps=eps)


def test_parameter_of_the_other_kind_is_rejected(steerkit_rng: np.random.Generator) -> None:
    decoder = _decoder(steerkit_rng)
    with pytest.raises(ValidationError, match="SteeringProblem.eps: expected None for a QP"):
        SteeringProblem("qp", decoder, np.ones(6), 1.0, lam=1.0, eps=2.0)
    with pytest.raises(ValidationError, match="SteeringProblem.kind: expected 'qp' or 'socp'"):
        SteeringProblem("lp", decoder, np.ones(6), 1.0, lam=1.0)


def test_describe_and_repr_are_short(steerkit_rng: np.random.Generator) -> None:
    problem = SteeringProblem.socp(
        decoder=_decoder(steerkit_rng), directions=np.ones((2, 6)), rhs=1.0, eps=2.5
    )
    assert repr(problem) == (
        "SteeringProblem(SOCP over 20 features (d_model 6), 2 constraints, ε = 2.5)"
    )
    np.testing.assert_array_equal(problem.rhs, [1.0, 1.0])


def test_same_structure_means_only_r_differs() -> None:
    decoder = np.eye(3)
    base = SteeringProblem.qp(decoder=decoder, directions=[1.0, 0, 0], rhs=1.0, lam=1.0)
    assert base.same_structure(base.with_rhs([2.0]))
    assert base.same_structure(
        SteeringProblem.qp(decoder=decoder.copy(), directions=[1.0, 0, 0], rhs=5.0, lam=1.0)
    )
    assert not base.same_structure(
        SteeringProblem.qp(decoder=decoder, directions=[1.0, 0, 0], rhs=1.0, lam=2.0)
    )
    assert not base.same_structure(
        SteeringProblem.qp(decoder=decoder, directions=[0, 1.0, 0], rhs=1.0, lam=1.0)
    )
    assert not base.same_structure(
        SteeringProblem.socp(decoder=decoder, directions=[1.0, 0, 0], rhs=1.0, eps=1.0)
    )


def test_a_float32_decoder_is_multiplied_in_float64_without_a_copy() -> None:
    rng = np.random.default_rng(3)
    decoder = rng.normal(size=(5000, 6)).astype(np.float32)  # more rows than one block
    first = SteeringProblem.qp(decoder=decoder, directions=rng.normal(size=6), rhs=1.0, lam=1.0)
    second = first.with_rhs([2.0])
    assert first.decoder.dtype == np.float32
    d64 = decoder.astype(np.float64)
    x = rng.normal(size=(6, 3))
    np.testing.assert_allclose(first.decoder_times(x), d64 @ x, rtol=1e-13)
    np.testing.assert_allclose(first.decoder_times(x[:, 0]), d64 @ x[:, 0], rtol=1e-13)
    np.testing.assert_allclose(first.constraint_matrix, first.directions @ d64.T, rtol=1e-13)
    assert first.constraint_matrix is second.constraint_matrix  # shared, computed once
    norms = np.linalg.norm(d64, axis=1)
    assert np.all(first.row_norm_bounds >= norms) and np.all(first.row_norm_bounds <= norms * 1.001)
    # the sparse product over the support equals the dense float64 product (hand: D64ᵀδ)
    for delta in (np.eye(5000)[3] * 2.5 + np.eye(5000)[17], rng.uniform(size=5000)):
        np.testing.assert_allclose(
            second.steering_vector(delta), decoder.astype(np.float64).T @ delta, rtol=1e-13
        )


def test_a_read_only_array_that_owns_its_memory_is_adopted_not_copied() -> None:
    """As `Decoder` does: a read-only array that owns its memory (what an SAE source's
    `decoder()` gives) cannot change in place, so problems use it as it is — validated, its
    figures the plain pass's, one Decoder shared by the problems built on it — while a read-only
    view of a writeable array is still copied."""
    from steerkit.decoder import _validation_pass
    from steerkit.problem import forget_decoder_copies

    forget_decoder_copies()
    rng = np.random.default_rng(6)
    frozen = rng.normal(size=(40, 6)).astype(np.float32)
    frozen.flags.writeable = False
    w = rng.normal(size=6)
    first = SteeringProblem.qp(decoder=frozen, directions=w, rhs=1.0, lam=1.0)
    second = SteeringProblem.socp(decoder=frozen, directions=w, rhs=2.0, eps=3.0)
    assert np.shares_memory(first.decoder, frozen) and not first.decoder.flags.writeable
    assert second.dictionary is first.dictionary
    squares, prints = _validation_pass(frozen)
    np.testing.assert_array_equal(first.dictionary.row_squares, squares)
    np.testing.assert_array_equal(first.dictionary.fingerprint, prints)
    assert np.shares_memory(steerkit.Decoder(frozen).array, frozen)  # the same rule
    writeable = rng.normal(size=(40, 6))
    view = writeable.view()
    view.flags.writeable = False  # read-only, but its owner can still change it
    third = SteeringProblem.qp(decoder=view, directions=w, rhs=1.0, lam=1.0)
    assert not np.shares_memory(third.decoder, writeable)
    bad = np.array(frozen)
    bad[4, 2] = np.nan
    bad.flags.writeable = False
    with pytest.raises(ValidationError, match="decoder"):
        SteeringProblem.qp(decoder=bad, directions=w, rhs=1.0, lam=1.0)


def test_the_decoder_is_the_problems_own_and_shared_across_problems() -> None:
    from steerkit.problem import forget_decoder_copies

    forget_decoder_copies()
    rng = np.random.default_rng(4)
    decoder = rng.normal(size=(30, 5))
    w = rng.normal(size=5)
    first = SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.0, lam=1.0)
    second = SteeringProblem.socp(decoder=decoder, directions=w, rhs=2.0, eps=3.0)
    assert not np.shares_memory(first.decoder, decoder)  # a private copy ...
    assert second.decoder is first.decoder  # ... shared by problems built from the same array
    a = first.constraint_matrix.copy()
    decoder *= -1.0  # the caller's array changes in place: the problems do not
    np.testing.assert_array_equal(first.decoder, -decoder)
    np.testing.assert_array_equal(first.constraint_matrix, a)
    changed = SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.0, lam=1.0)
    assert changed.decoder is not first.decoder  # the fingerprint saw the change
    np.testing.assert_array_equal(changed.decoder, decoder)
    np.testing.assert_allclose(changed.constraint_matrix, -a, rtol=1e-15)
    # a sign flip keeps every row's norm: the fingerprint's D g still tells it apart
    decoder[3, 1] *= -1.0
    assert (
        SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.0, lam=1.0).decoder[3, 1]
        == (decoder[3, 1])
    )
    # directions and r are the problem's own too
    rhs = np.array([1.0])
    third = SteeringProblem.qp(decoder=decoder, directions=w, rhs=rhs, lam=1.0)
    w[:] = 0.0
    rhs[:] = -5.0
    assert third.directions.any() and third.rhs[0] == 1.0
    # a decoder converted to float64 is already the core's own array: no second copy
    ints = np.arange(12).reshape(4, 3)
    assert not np.shares_memory(
        SteeringProblem.qp(decoder=ints, directions=[1, 0, 0], rhs=1.0, lam=1.0).decoder, ints
    )
