"""How busy the machine's other processes keep its cores: for choosing BLAS threads.

numpy's BLAS threads help a large product on an idle machine and hurt badly on a busy one:
each product waits for a thread the kernel has descheduled (on 2 cores, with another process
taking one, a pricing product of the default run's 4096 × 640 SAE took ~5 ms with two threads
against 0.25 ms with one). `busy(spare)` says which case holds, from what other processes took
lately: the machine's busy time in /proc/stat less this process's own CPU time, over the wall
time, measured at most every WINDOW seconds. The 1-minute load average is no guide: it lags a
minute behind and counts this process's own threads. It is the fallback where /proc/stat
cannot be read (and at the first look, before there is a window to measure over).

Used by the core's certificates and by solver plugins (steerkit-path) alike.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["SPARE_CORE", "WINDOW", "busy", "cpu_count", "others"]

#: Busy: other processes keep more than cpu_count − 1 − this many cores (the rule of the core's
#: certificates and of the path solver's walks). Measured on 2 cores: quiet, two threads walk
#: faster (the 1.01×-smallest-ε walk on the default run's SAE 0.92 s against 1.15 s with one;
#: the Gemma-2-2B-scale certified grid 9.4–10.1 s against 11.9–13.4 s); with another process
#: busy, numpy's spinning threads made that walk take 5–9 s instead of 0.8 s.
SPARE_CORE = 0.5
#: Seconds between two measures: /proc/stat counts in 10 ms ticks, so a window of 0.2 s
#: resolves a twentieth of a core.
WINDOW = 0.2

#: (monotonic time, the machine's busy CPU seconds, this process's CPU seconds) at the last
#: look, and the others' cores measured then
_last_look: tuple[float, float, float] | None = None
_last_others: float | None = None
_lock = threading.Lock()


def busy(spare: float = SPARE_CORE) -> bool:
    """Whether other processes leave this one no core to spare: the cores they kept busy
    lately (`others`) above cpu_count − 1 − `spare`. Where that cannot be measured, the
    1-minute load average (which counts this process too) above cpu_count − 1 + `spare`; False
    where neither is known."""
    cores = cpu_count()
    taken = others()
    if taken is not None:
        return taken > cores - 1 - spare
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - platforms without it
        return False
    return load > cores - 1 + spare


_cpu_count: int | None = None


def cpu_count() -> int:
    """os.cpu_count(), asked once: it reads sysfs (~9 µs a call), and `busy` is asked around
    every large product (~40 times in one solve at 1.01 × the smallest ε on the default run's
    SAE: 0.4 ms of its ~38). Solver plugins choosing BLAS threads ask it too."""
    global _cpu_count
    if _cpu_count is None:
        _cpu_count = os.cpu_count() or 1
    return _cpu_count


def others() -> float | None:
    """Cores that other processes kept busy since the last look, measured at most every WINDOW
    seconds (in between, the last measure): the machine's busy time from /proc/stat less this
    process's own CPU time, over the wall time. None where /proc/stat cannot be read, or before
    a second look."""
    global _last_look, _last_others
    with _lock:
        now = time.monotonic()
        if _last_look is not None and now - _last_look[0] < WINDOW:
            return _last_others
        machine = _machine_busy_seconds()
        if machine is None:
            return None
        own = time.process_time()
        if _last_look is not None:
            wall = now - _last_look[0]
            spent = (machine - _last_look[1]) - (own - _last_look[2])
            _last_others = max(0.0, spent) / wall
        _last_look = (now, machine, own)
        return _last_others


def _machine_busy_seconds() -> float | None:
    """CPU seconds every core spent busy since boot (user, nice, system, irq, softirq, steal in
    /proc/stat's first line); None where it cannot be read."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
        ticks = sum(int(fields[k]) for k in (1, 2, 3, 6, 7, 8))
    except (OSError, ValueError, IndexError):
        return None
    return ticks / _TICKS


try:
    _TICKS = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    _TICKS = 100.0
