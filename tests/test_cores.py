"""`steerkit.cores`: what other processes take of the machine's cores, for BLAS threading."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from steerkit import cores


def test_the_cores_other_processes_take_are_measured_without_this_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`others` is the machine's busy time less this process's own, over the wall time: a
    process spinning beside this one (which sleeps) is seen at once, where the load average
    lags a minute; and this process's own work is not counted as another's."""
    monkeypatch.setattr(cores, "_last_look", None)
    monkeypatch.setattr(cores, "_last_others", None)
    monkeypatch.setattr(cores, "WINDOW", 0.05)
    if cores.others() is None and cores._last_look is None:
        pytest.skip("no /proc/stat here: the load average is used instead")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        cores.others()  # a look with the spinner running
        time.sleep(0.6)
        seen = cores.others()
    finally:
        spinner.kill()
        spinner.wait()
    assert seen is not None and seen >= 0.5
    # this process's own work, alone: what the machine's other processes take meanwhile is not
    # known here, so only the spinner's absence is asserted, through the difference
    cores.others()
    start = time.monotonic()
    while time.monotonic() - start < 0.6:
        sum(range(10_000))
    own = cores.others()
    assert own is not None and own < seen


def test_busy_compares_the_others_cores_with_the_spare_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the others' cores measured, the load average is not read; on 2 cores, others
    taking more than 2 − 1 − 0.5 = 0.5 core leave none to spare (a hand computation from faked
    clock, /proc/stat and process time readings); within the window the last measure holds."""
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores, "_cpu_count", None)  # asked again
    monkeypatch.setattr(cores.os, "getloadavg", lambda: pytest.fail("load average read"))
    clock = iter([100.0, 101.0, 101.1, 102.0])
    machine = iter([50.0, 51.8, 52.9])  # busy seconds of every core
    own = iter([3.0, 3.9, 4.8])  # this process's CPU seconds
    monkeypatch.setattr(cores.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(cores, "_machine_busy_seconds", lambda: next(machine))
    monkeypatch.setattr(cores.time, "process_time", lambda: next(own))
    monkeypatch.setattr(cores, "_last_look", None)
    monkeypatch.setattr(cores, "_last_others", None)
    assert cores.others() is None  # the first look: nothing to compare with
    assert cores.busy(0.5) is True  # (1.8 − 0.9) / 1 = 0.9 core taken by others
    assert cores._last_others == pytest.approx(0.9)
    assert cores.busy(0.5) is True  # 0.1 s later: within the window, the same measure
    assert cores.busy(0.5) is False  # (1.1 − 0.9) / 1 = 0.2 core
    assert cores._last_others == pytest.approx(0.2)


def test_without_proc_stat_the_load_average_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc/stat cannot be read, `busy` falls back to the load average, which counts
    this process too: above cpu_count − 1 + spare."""
    monkeypatch.setattr(cores, "_machine_busy_seconds", lambda: None)
    monkeypatch.setattr(cores, "_last_look", None)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores, "_cpu_count", None)  # asked again
    for load, expected in [(1.4, False), (1.6, True)]:
        monkeypatch.setattr(cores.os, "getloadavg", lambda load=load: (load, load, load))
        assert cores.busy(0.5) is expected
