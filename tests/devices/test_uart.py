"""The 16550 UART at COM1 (dbt/devices/uart.py): what a guest's serial driver relies on.

Register map (PC16550D data sheet): 0 RBR/THR (DLL with DLAB), 1 IER (DLM with
DLAB), 2 IIR/FCR, 3 LCR, 4 MCR, 5 LSR, 6 MSR, 7 SCR.
"""

from __future__ import annotations

import pytest

from dbt.devices import Uart16550
from dbt.devices.uart import COM1_BASE, LSR_TEMT, LSR_THRE

THR = RBR = DLL = COM1_BASE + 0
IER = DLM = COM1_BASE + 1
IIR = FCR = COM1_BASE + 2
LCR = COM1_BASE + 3
MCR = COM1_BASE + 4
LSR = COM1_BASE + 5
MSR = COM1_BASE + 6
SCR = COM1_BASE + 7

DLAB = 0x80
LOOPBACK = 0x10


@pytest.fixture
def uart() -> Uart16550:
    return Uart16550()


def test_thr_writes_are_the_output(uart):
    """Bytes written to THR are the guest's serial output, in order, byte for byte
    (a UART that dropped, reordered or re-encoded bytes would change every guest's output)."""
    for b in b"Hi\x00\xff\n":
        uart.io_write(THR, 1, b)
    assert bytes(uart.output) == b"Hi\x00\xff\n"


def test_thr_keeps_only_the_low_byte(uart):
    """A wide access to THR outputs one byte: a 16-bit ``out dx, ax`` must not leak AH."""
    uart.io_write(THR, 2, 0x4142)
    assert bytes(uart.output) == b"B"


def test_lsr_reports_transmitter_empty(uart):
    """LSR must always say THRE|TEMT, or a guest polling LSR before each byte (hello.s)
    would spin until its budget runs out."""
    lsr = uart.io_read(LSR, 1)
    assert lsr & LSR_THRE and lsr & LSR_TEMT
    assert lsr & 0x01 == 0  # no received data (there is no receive path)
    uart.io_write(THR, 1, ord("x"))
    assert uart.io_read(LSR, 1) == lsr  # still empty after a write


def test_rbr_reads_zero_without_dlab(uart):
    """No receive path: a driver draining RBR must read 0, not a stale divisor byte."""
    assert uart.io_read(RBR, 1) == 0


def test_dlab_switches_registers_0_and_1_to_the_divisor_latch(uart):
    """With LCR.DLAB set, ports 0/1 are the divisor latch: a driver programming the baud
    rate must not print the divisor's low byte as a character, nor change IER."""
    uart.io_write(IER, 1, 0x05)
    uart.io_write(LCR, 1, DLAB | 0x03)
    uart.io_write(DLL, 1, 0x01)  # 115200 baud
    uart.io_write(DLM, 1, 0x00)
    assert uart.output == b""
    assert uart.io_read(DLL, 1) == 0x01
    assert uart.io_read(DLM, 1) == 0x00
    uart.io_write(LCR, 1, 0x03)  # DLAB off again: 8N1
    assert uart.io_read(IER, 1) == 0x05  # IER untouched by the DLM write
    assert uart.io_read(RBR, 1) == 0
    uart.io_write(THR, 1, ord("A"))
    assert bytes(uart.output) == b"A"
    uart.io_write(LCR, 1, DLAB)
    assert uart.io_read(DLL, 1) == 0x01  # the latch kept its value


def test_divisor_latch_high_byte(uart):
    """DLL and DLM are separate bytes: writing one must not clobber the other."""
    uart.io_write(LCR, 1, DLAB)
    uart.io_write(DLL, 1, 0x34)
    uart.io_write(DLM, 1, 0x12)
    assert (uart.io_read(DLM, 1), uart.io_read(DLL, 1)) == (0x12, 0x34)


def test_ier_keeps_only_its_four_bits(uart):
    """IER bits 4-7 are reserved (read as 0): a driver checking IER after writing 0xFF
    (the Linux 8250 probe does) must see 0x0F."""
    uart.io_write(IER, 1, 0xFF)
    assert uart.io_read(IER, 1) == 0x0F


def test_loopback_mode_suppresses_output(uart):
    """In loopback (MCR bit 4) the transmitter is wired to the receiver: a driver's
    self-test bytes must not appear on the serial output."""
    uart.io_write(MCR, 1, LOOPBACK)
    uart.io_write(THR, 1, 0xAE)
    assert uart.output == b""
    uart.io_write(MCR, 1, 0x03)  # loopback off (DTR|RTS)
    uart.io_write(THR, 1, ord("k"))
    assert bytes(uart.output) == b"k"


def test_loopback_wires_mcr_to_msr(uart):
    """Linux's serial probe checks that MCR outputs come back on MSR in loopback."""
    uart.io_write(MCR, 1, LOOPBACK | 0x0F)  # DTR RTS OUT1 OUT2
    assert uart.io_read(MSR, 1) & 0xF0 == 0xF0
    uart.io_write(MCR, 1, LOOPBACK)
    assert uart.io_read(MSR, 1) & 0xF0 == 0x00


def test_iir_reports_no_interrupt_pending(uart):
    """IIR bit 0 set means 'no interrupt pending'; a guest must not think one is."""
    assert uart.io_read(IIR, 1) & 0x01 == 0x01
    uart.io_write(THR, 1, ord("x"))
    assert uart.io_read(IIR, 1) & 0x0F == 0x01


def test_fcr_enable_shows_fifo_bits_in_iir(uart):
    """IIR bits 6-7 report the FIFOs enabled by FCR bit 0: this is how a driver tells a
    16550A from an 8250; without them it falls back to byte-at-a-time mode."""
    uart.io_write(FCR, 1, 0x01)
    assert uart.io_read(IIR, 1) == 0xC1
    uart.io_write(FCR, 1, 0x00)
    assert uart.io_read(IIR, 1) == 0x01


@pytest.mark.parametrize("value", [0x00, 0x55, 0xAA, 0xFF])
def test_scratch_register_round_trips(uart, value):
    """The 8250 probe writes SCR and reads it back; a UART that lost it looks absent."""
    uart.io_write(SCR, 1, value)
    assert uart.io_read(SCR, 1) == value
    assert uart.output == b""


def test_lcr_and_mcr_read_back(uart):
    """LCR reads back whole; MCR keeps its five defined bits only."""
    uart.io_write(LCR, 1, 0x1B)
    uart.io_write(MCR, 1, 0xFF)
    assert uart.io_read(LCR, 1) == 0x1B
    assert uart.io_read(MCR, 1) == 0x1F  # MCR has five bits
