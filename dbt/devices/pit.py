"""An 8254 programmable interval timer: channel 0, wired to IRQ 0 (ports 0x40-0x43).

Time is the monitor's virtual time (:meth:`Pit8254.advance`), never the host's,
so a run is deterministic. The input clock is the PC's 1.193182 MHz.

Modelled (Intel 8254 data sheet, 1993): the control word (port 0x43: channel,
access mode lobyte / hibyte / lobyte-then-hibyte, operating mode; BCD counting is
not modelled), the counter-latch command, reading the count, and modes 0
(interrupt on terminal count, one shot), 2 (rate generator) and 3 (square wave),
each raising IRQ 0 once per period (a count of 0 means 65536). Channels 1 and 2
accept their programming but count nothing (no DRAM refresh, no speaker).
"""

from __future__ import annotations

PIT_HZ = 1_193_182
PIT_BASE = 0x40


class Channel:
    def __init__(self) -> None:
        self.mode = 0
        self.access = 3
        self.reload = 0  # 0 until programmed
        self.start = 0  # tick at which the count was loaded
        self.armed = False
        self.latch: list[int] = []  # bytes of a latched count, read first
        self.write_low: int | None = None  # lobyte written, hibyte awaited (access 3)
        self.read_high = False
        self.fired = 0  # periods already turned into IRQs

    @property
    def period(self) -> int:
        return self.reload or 0x10000

    def count(self, tick: int) -> int:
        if not self.armed:
            return self.reload
        elapsed = tick - self.start
        if self.mode == 0:
            return max(0, self.period - elapsed) & 0xFFFF
        return (self.period - elapsed % self.period) & 0xFFFF


class Pit8254:
    """Channel 0 drives ``raise_irq0`` at each expiry, as virtual time advances."""

    def __init__(self, raise_irq0) -> None:
        self.channels = [Channel(), Channel(), Channel()]
        self.raise_irq0 = raise_irq0
        self.tick = 0  # virtual time, in PIT input-clock ticks

    # --- time -----------------------------------------------------------------------------
    def advance(self, tick: int) -> None:
        """Virtual time is now ``tick``: raise IRQ 0 if channel 0 expired since."""
        self.tick = max(self.tick, tick)
        ch = self.channels[0]
        if not ch.armed:
            return
        periods = (self.tick - ch.start) // ch.period
        if ch.mode == 0:
            periods = min(periods, 1)
        if periods > ch.fired:
            ch.fired = periods
            self.raise_irq0()  # edge-triggered: several missed periods are one request

    def next_expiry(self) -> int | None:
        """The tick of channel 0's next IRQ, or None if it will raise none."""
        ch = self.channels[0]
        if not ch.armed or (ch.mode == 0 and ch.fired):
            return None
        return ch.start + (ch.fired + 1) * ch.period

    # --- the port device ------------------------------------------------------------------
    def io_read(self, port: int, size: int) -> int:
        if port == PIT_BASE + 3:
            return 0xFF
        ch = self.channels[port - PIT_BASE]
        if ch.latch:
            return ch.latch.pop(0)
        value = ch.count(self.tick)
        if ch.access == 1:
            return value & 0xFF
        if ch.access == 2:
            return value >> 8
        ch.read_high = not ch.read_high
        return value >> 8 if not ch.read_high else value & 0xFF

    def io_write(self, port: int, size: int, value: int) -> None:
        value &= 0xFF
        if port == PIT_BASE + 3:
            self._control(value)
            return
        ch = self.channels[port - PIT_BASE]
        if ch.access == 3:
            if ch.write_low is None:
                ch.write_low = value
                return
            value, ch.write_low = ch.write_low | value << 8, None
        elif ch.access == 2:
            value <<= 8
        self._load(ch, value)

    def _control(self, value: int) -> None:
        sel = value >> 6
        if sel == 3:
            return  # read-back command: not modelled
        ch = self.channels[sel]
        access = (value >> 4) & 3
        if access == 0:  # counter latch
            if not ch.latch:
                c = ch.count(self.tick)
                ch.latch = [c & 0xFF, c >> 8] if ch.access == 3 else \
                    [c & 0xFF] if ch.access == 1 else [c >> 8]
            return
        mode = (value >> 1) & 7
        ch.mode = mode & 3 if mode >= 6 else mode  # modes 6 and 7 are 2 and 3
        ch.access, ch.armed, ch.write_low, ch.read_high, ch.latch = access, False, None, False, []

    def _load(self, ch: Channel, value: int) -> None:
        ch.reload, ch.start, ch.armed, ch.fired = value, self.tick, True, 0
