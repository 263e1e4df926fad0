"""A pair of 8259A programmable interrupt controllers (master at 0x20, slave at 0xA0).

What a PC kernel programs (Intel 8259A data sheet, 1988; the IBM PC/AT wiring):

- initialisation: ICW1 (command port, bit 4 set; bit 0: ICW4 follows), ICW2 (the
  vector of IRQ 0 of this chip, low 3 bits ignored), ICW3 (cascade wiring: the
  slave hangs on the master's IRQ 2), ICW4 (bit 1: automatic EOI);
- OCW1 (data port): the interrupt mask; OCW2 (command port, bits 4-3 = 00):
  non-specific EOI (0x20) and specific EOI (0x60 | level); OCW3 (bits 4-3 = 01):
  what the command port reads, IRR (0x0A) or ISR (0x0B).

Inputs are edge-triggered. Priorities are fixed (IRQ 0 highest, the slave's
IRQ 8-15 between the master's IRQ 1 and 3). Not modelled: rotating priorities,
special mask and poll modes, level-triggered mode, buffered mode.
"""

from __future__ import annotations

MASTER, SLAVE = 0x20, 0xA0
CASCADE_IRQ = 2


class Pic8259:
    """One 8259A chip."""

    def __init__(self) -> None:
        self.irr = 0  # interrupt requests waiting
        self.isr = 0  # in service (acknowledged, no EOI yet)
        self.imr = 0xFF  # all masked until the kernel programs the mask
        self.base = 0  # vector of IRQ 0 of this chip (ICW2)
        self.init_step = 0  # 0: operational; 2, 3, 4: the ICW expected next
        self.needs_icw4 = False
        self.auto_eoi = False
        self.read_isr = False

    def highest(self, bits: int) -> int | None:
        for n in range(8):
            if bits >> n & 1:
                return n
        return None

    def pending(self) -> int | None:
        """The IRQ line this chip would raise now (respecting mask and priority)."""
        n = self.highest(self.irr & ~self.imr)
        if n is None:
            return None
        busy = self.highest(self.isr)
        return n if busy is None or n < busy else None

    def write_command(self, value: int) -> None:
        if value & 0x10:  # ICW1: start initialisation
            self.init_step, self.needs_icw4 = 2, bool(value & 1)
            self.imr = self.isr = self.irr = 0
            self.auto_eoi = self.read_isr = False
        elif value & 0x08:  # OCW3
            if value & 0x02:
                self.read_isr = bool(value & 1)
        else:  # OCW2
            op = value >> 5
            if op == 1:  # non-specific EOI
                n = self.highest(self.isr)
                if n is not None:
                    self.isr &= ~(1 << n)
            elif op == 3:  # specific EOI
                self.isr &= ~(1 << (value & 7))

    def write_data(self, value: int) -> None:
        if self.init_step == 2:
            self.base = value & 0xF8
            self.init_step = 3
        elif self.init_step == 3:
            self.init_step = 4 if self.needs_icw4 else 0
        elif self.init_step == 4:
            self.auto_eoi = bool(value & 2)
            self.init_step = 0
        else:
            self.imr = value

    def read_command(self) -> int:
        return self.isr if self.read_isr else self.irr


class PicPair:
    """Master and slave 8259A as wired in a PC/AT; a port device on the bus."""

    def __init__(self) -> None:
        self.master, self.slave = Pic8259(), Pic8259()

    def raise_irq(self, irq: int) -> None:
        if irq >= 8:
            self.slave.irr |= 1 << (irq - 8)
        else:
            self.master.irr |= 1 << irq

    def _cascade(self) -> None:
        if self.slave.pending() is not None:
            self.master.irr |= 1 << CASCADE_IRQ
        elif not self.master.isr >> CASCADE_IRQ & 1:
            self.master.irr &= ~(1 << CASCADE_IRQ)

    def pending(self) -> bool:
        self._cascade()
        return self.master.pending() is not None

    def acknowledge(self) -> int | None:
        """The CPU's interrupt-acknowledge cycle: the vector to deliver (None: spurious)."""
        self._cascade()
        n = self.master.pending()
        if n is None:
            return None
        chip, line = self.master, n
        self._take(self.master, n)
        if n == CASCADE_IRQ:
            s = self.slave.pending()
            if s is None:
                return self.slave.base | 7  # spurious IRQ 15
            self._take(self.slave, s)
            chip, line = self.slave, s
        return chip.base | line

    @staticmethod
    def _take(chip: Pic8259, n: int) -> None:
        chip.irr &= ~(1 << n)
        if not chip.auto_eoi:
            chip.isr |= 1 << n

    # --- the port device ------------------------------------------------------------------
    def _chip(self, port: int) -> Pic8259:
        return self.slave if port & ~1 == SLAVE else self.master

    def io_read(self, port: int, size: int) -> int:
        chip = self._chip(port)
        return chip.imr if port & 1 else chip.read_command()

    def io_write(self, port: int, size: int, value: int) -> None:
        chip = self._chip(port)
        if port & 1:
            chip.write_data(value & 0xFF)
        else:
            chip.write_command(value & 0xFF)
