"""The core's BLAS threading for certificates (`steerkit._blas`): one thread while busy."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import steerkit
from steerkit import SteeringProblem, _blas

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def _two_threads() -> Iterator[None]:
    """Two BLAS threads to start from (on a one-core machine too): one is then a change."""
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        yield


def _numpy_threads() -> int:
    """numpy's own BLAS's threads (other BLAS libraries loaded by other tests, e.g. a
    single-threaded build, may not take two)."""
    info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    ours = [i for i in info if "numpy" in i["filepath"]] or info
    return int(ours[0]["num_threads"])


def test_one_thread_while_busy_and_restored_after(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _numpy_threads()
    assert before == 2
    monkeypatch.setattr(_blas, "busy", lambda: True)
    with _blas.one_thread_when_busy():
        assert _numpy_threads() == 1
    assert _numpy_threads() == before


def test_threads_untouched_while_a_core_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _numpy_threads()
    monkeypatch.setattr(_blas, "busy", lambda: False)
    with _blas.one_thread_when_busy():
        assert _numpy_threads() == before


def test_busy_is_the_cores_measure_with_half_a_core_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's rule is `steerkit.cores.busy` with its own spare core, half a core (the
    path solver's too; tests/test_cores.py tests the measure)."""
    from steerkit import cores

    asked: list[float] = []

    def busy(spare: float = cores.SPARE_CORE) -> bool:
        asked.append(spare)
        return True

    monkeypatch.setattr(cores, "busy", busy)
    assert _blas.busy()
    assert asked == [cores.SPARE_CORE] == [0.5]


def _threads_seen_by(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """numpy's BLAS threads at every call of `module.name` (spied on), with the machine busy."""
    seen: list[int] = []
    original = getattr(module, name)

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(_numpy_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    monkeypatch.setattr(_blas, "busy", lambda: True)
    return seen


def _small_problem(seed: int) -> SteeringProblem:
    rng = np.random.default_rng(seed)
    decoder = rng.standard_normal((40, 6))
    w = rng.standard_normal(6)
    return SteeringProblem.qp(decoder=decoder, directions=w, rhs=1.0, lam=1.0)


def test_a_chunk_is_accepted_with_one_thread_while_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's acceptance runs inside the limit: the thread count seen by the core's
    `accept_many` is 1 when busy."""
    import steerkit.solver as solver_module

    seen = _threads_seen_by(monkeypatch, solver_module, "accept_many")
    solution = steerkit.solve(_small_problem(0), "path")
    assert solution.ok
    assert seen == [1]


def test_overlapping_limits_restore_the_original_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two limits that overlap without nesting (two threads solving at once) leave the original
    thread count once both are done, and one thread while either is held."""
    before = _numpy_threads()
    assert before == 2
    monkeypatch.setattr(_blas, "busy", lambda: True)
    first, second = _blas.one_thread_when_busy(), _blas.one_thread_when_busy()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert _numpy_threads() == 1  # the second still runs under the limit
    second.__exit__(None, None, None)
    assert _numpy_threads() == before


def test_accept_many_called_by_a_backend_certifies_with_one_thread_while_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend that certifies through `steerkit.answer.accept_many` itself, outside the
    template's acceptance (the path solver's batches do), gets the same rule: its certificates'
    products see one thread while busy, and the threads are back after."""
    import steerkit.answer as answer_module
    from steerkit import Answer, Duals, Outcome

    seen = _threads_seen_by(monkeypatch, answer_module, "certify_many")
    problem = _small_problem(1)
    exact = steerkit.solve(problem, "path")
    assert exact.ok and exact.delta is not None and exact.duals is not None
    index = np.flatnonzero(exact.delta)
    claim = Answer(
        Outcome.OPTIMAL, support=(index, exact.delta[index]), duals=Duals(exact.duals.linear)
    )
    seen.clear()  # the solve above was accepted through the template (with one thread too)
    before = _numpy_threads()
    (solution,) = answer_module.accept_many([problem], [claim], solver="toy", seconds=[0.0])
    assert solution.ok
    assert seen == [1]
    assert _numpy_threads() == before
