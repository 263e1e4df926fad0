"""The free clock's timer thread (dbt/monitor/watchdog.py: Kick).

What could go wrong: a deadline that never fires (a computing guest never sees its
ticks), a stop that is lost while the engine is outside emu_start and never repeated,
a thread that keeps stopping the CPU after the monitor armed it again, or one that
outlives its run.
"""

from __future__ import annotations

import time

from dbt.monitor.watchdog import Kick


class FakeUc:
    def __init__(self):
        self.stops = 0

    def emu_stop(self):
        self.stops += 1


def wait_for(cond, seconds: float = 2.0) -> bool:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if cond():
            return True
        time.sleep(0.001)
    return False


def test_a_passed_deadline_stops_the_cpu_and_keeps_stopping_it_until_rearmed():
    uc = FakeUc()
    kick = Kick(uc)
    try:
        assert not kick.due and uc.stops == 0
        kick.arm(time.perf_counter() + 0.01)
        assert wait_for(lambda: kick.due)
        began = time.perf_counter()
        assert wait_for(lambda: uc.stops >= 3)  # repeated every RETRY: a lost stop is redone
        assert kick.stopped(began - 1, time.perf_counter())
        kick.arm(None)  # the monitor took the event, nothing else due
        assert not kick.due
        time.sleep(0.02)
        settled = uc.stops
        time.sleep(0.02)
        assert uc.stops <= settled + 1 and not kick.due
    finally:
        kick.close()
    kick._thread.join(1.0)
    assert not kick._thread.is_alive()


def test_without_a_cpu_it_only_says_due():
    kick = Kick(None)
    try:
        kick.arm(time.perf_counter())
        assert wait_for(lambda: kick.due)
        assert kick.at is None  # it never stopped anything
    finally:
        kick.close()
