"""BLAS threading for the core's own products (certificates): one thread while every core is busy.

A batch's certificates are many mid-sized products (a chunk's gathered rows by its dual points).
With numpy's BLAS threads free on a machine whose cores are all taken, every product waits for
a descheduled thread: measured on 2 cores at load 1.5–2.2, the GPT-2-scale certified grid's
acceptance took 2.0–4.6 s with two threads against 0.84–1.1 s with one. Busy is
`steerkit.cores.busy`, the rule the path solver's walks follow. threadpoolctl is not a dependency
of the core: where it is missing, nothing is limited.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from steerkit import cores

_blas: Any = None
#: Nested or concurrent limits (threads solving at once) share one: the first sets it, the last
#: restores the original thread counts — a limit restored by one thread while another still
#: runs under it (or one restoring "one thread" as the original) would be wrong.
_lock = threading.Lock()
_holders = 0
_limiter: Any = None


def busy() -> bool:
    """Whether other processes leave this one no core to spare (`steerkit.cores.busy`: measured
    from /proc/stat less this process's own CPU time; the load average only as a fallback),
    with the spare core every BLAS choice of steerkit's uses (`steerkit.cores.SPARE_CORE`)."""
    return cores.busy()


def _controller() -> Any:
    """Every BLAS library loaded, as one threadpoolctl selection (found once); False when
    threadpoolctl is not installed or no BLAS is seen."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas = False
        else:
            _blas = ThreadpoolController().select(user_api="blas") or False
    return _blas


def one_thread_when_busy() -> contextlib.AbstractContextManager[Any]:
    """Inside, every BLAS library runs one thread while the machine is `busy`; else unchanged."""
    if not busy():
        return contextlib.nullcontext()
    blas = _controller()
    return _one_thread(blas) if blas else contextlib.nullcontext()


@contextlib.contextmanager
def _one_thread(blas: Any) -> Iterator[None]:
    global _holders, _limiter
    with _lock:
        if _holders == 0:
            _limiter = blas.limit(limits=1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limiter.restore_original_limits()
                _limiter = None
