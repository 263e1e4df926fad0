"""The free clock's budget: a timer thread that stops the CPU when host time runs out.

unicorn's own ``emu_start(timeout=...)`` does the same but was measured to slow
64-bit guests by about half; a plain timer calling ``emu_stop`` costs nothing
while it waits.
"""

from __future__ import annotations

import threading

FREE_CLOCK_MIPS = 20  # the free clock turns an instruction budget into host time at this rate


class Watchdog:
    def __init__(self, uc, seconds: float):
        self.uc = uc
        self.seconds = seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    @classmethod
    def for_budget(cls, uc, max_insns: int) -> Watchdog:
        """The watchdog for an instruction budget in the free clock."""
        return cls(uc, max_insns / FREE_CLOCK_MIPS / 1e6)

    def _fire(self) -> None:
        self.fired = True
        self.uc.emu_stop()

    def __enter__(self) -> Watchdog:
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer:
            self._timer.cancel()
