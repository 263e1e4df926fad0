"""The free clock's timer threads: the budget (:class:`Watchdog`, stops the CPU when host
time runs out) and the timer interrupt (:class:`Kick`).

unicorn's own ``emu_start(timeout=...)`` does the same but was measured to slow
64-bit guests by about half; a plain timer calling ``emu_stop`` costs nothing
while it waits.

Both call ``emu_stop`` holding a lock the engine may hold too: unicorn may notice
a stop after an instruction's store and report that instruction's pc, so an
engine that must run an instruction that reads and writes back memory exactly
once holds the lock around it (see dbt/translator/rmw.py).
"""

from __future__ import annotations

import threading
import time

FREE_CLOCK_MIPS = 20  # the free clock turns an instruction budget into host time at this rate


class Watchdog:
    def __init__(self, uc, seconds: float, lock: threading.Lock | None = None):
        self.uc = uc
        self.seconds = seconds
        self.lock = lock or threading.Lock()
        self.fired = False
        self.at: float | None = None  # host time it stopped the CPU
        self._timer: threading.Timer | None = None

    @classmethod
    def for_budget(cls, uc, max_insns: int, lock: threading.Lock | None = None) -> Watchdog:
        """The watchdog for an instruction budget in the free clock."""
        return cls(uc, max_insns / FREE_CLOCK_MIPS / 1e6, lock)

    def _fire(self) -> None:
        with self.lock:
            self.fired = True
            self.at = time.perf_counter()
            self.uc.emu_stop()

    def __enter__(self) -> Watchdog:
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer:
            self._timer.cancel()


class Kick:
    """The free clock's timer interrupt: a thread that stops the CPU once host time passes
    the deadline the monitor armed (the virtual timer's next expiry), as a host timer
    kicks a vCPU out of guest mode, so that the engine looks for an interrupt at its next
    instruction boundary. Until the monitor arms it again it stops the CPU every
    :data:`RETRY` seconds: a stop that lands while the engine is outside ``emu_start``
    (in a handler) is lost, the next one is not.

    ``uc=None``: only raise :attr:`due` (an engine that looks between every two
    instructions anyway). ``lock``: held while it stops the CPU (see the module's
    docstring).
    """

    RETRY = 0.001

    def __init__(self, uc=None, lock: threading.Lock | None = None):
        self.uc = uc
        self.lock = lock or threading.Lock()
        self.due = False
        self.at: float | None = None  # host time it last stopped the CPU
        self._deadline: float | None = None
        self._closed = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="dbt-kick", daemon=True)
        self._thread.start()

    def arm(self, deadline: float | None) -> None:
        """Be due at host time ``deadline`` (``time.perf_counter()``; None: never)."""
        with self._cv:
            self.due = False
            self._deadline = deadline
            self._cv.notify()

    def stopped(self, since: float, until: float) -> bool:
        """Did it stop the CPU between host times ``since`` and ``until`` (one emu_start)?"""
        return self.due and self.at is not None and since <= self.at <= until

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                if self._deadline is None:
                    self._cv.wait()
                    continue
                left = self._deadline - time.perf_counter()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self.due = True
                if self.uc is not None:
                    with self.lock:
                        self.at = time.perf_counter()
                        self.uc.emu_stop()
                self._cv.wait(self.RETRY)
