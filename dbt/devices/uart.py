"""A 16550 UART (COM1): what the guest writes to THR is its serial output.

Registers (offset from the base port, DLAB = LCR bit 7), per the National
Semiconductor PC16550D data sheet:

    0  RBR (read) / THR (write) / DLL when DLAB=1
    1  IER / DLM when DLAB=1
    2  IIR (read) / FCR (write)
    3  LCR      4  MCR      5  LSR (read only)      6  MSR (read only)      7  SCR

There is no receive path (RBR reads 0, LSR.DR stays clear) and the transmitter
is always empty (LSR.THRE and LSR.TEMT set), so a guest polling LSR never waits.
In loopback mode (MCR bit 4) a byte written to THR is not output.
"""

from __future__ import annotations

COM1_BASE = 0x3F8

LSR_THRE = 0x20
LSR_TEMT = 0x40
IIR_NO_INTERRUPT = 0x01


class Uart16550:
    def __init__(self, base: int = COM1_BASE) -> None:
        self.base = base
        self.output = bytearray()
        self.ier = 0
        self.lcr = 0
        self.mcr = 0
        self.scr = 0
        self.fcr = 0
        self.divisor = 12  # 9600 baud

    @property
    def _dlab(self) -> bool:
        return bool(self.lcr & 0x80)

    def io_read(self, port: int, size: int) -> int:
        reg = port - self.base
        if reg == 0:
            return self.divisor & 0xFF if self._dlab else 0
        if reg == 1:
            return (self.divisor >> 8) & 0xFF if self._dlab else self.ier
        if reg == 2:
            return IIR_NO_INTERRUPT | (0xC0 if self.fcr & 1 else 0)
        if reg == 3:
            return self.lcr
        if reg == 4:
            return self.mcr
        if reg == 5:
            return LSR_THRE | LSR_TEMT
        if reg == 6:
            # Loopback wires MCR outputs to the modem status inputs; otherwise CTS/DSR/DCD set.
            if self.mcr & 0x10:
                m = self.mcr
                return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            return 0xB0
        return self.scr

    def io_write(self, port: int, size: int, value: int) -> None:
        reg = port - self.base
        value &= 0xFF
        if reg == 0:
            if self._dlab:
                self.divisor = (self.divisor & 0xFF00) | value
            elif not self.mcr & 0x10:
                self.output.append(value)
        elif reg == 1:
            if self._dlab:
                self.divisor = (self.divisor & 0x00FF) | (value << 8)
            else:
                self.ier = value & 0x0F
        elif reg == 2:
            self.fcr = value
        elif reg == 3:
            self.lcr = value
        elif reg == 4:
            self.mcr = value & 0x1F
        elif reg == 7:
            self.scr = value
