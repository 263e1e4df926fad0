"""The port-I/O bus and the debug-exit device (dbt/devices/bus.py, debugexit.py)."""

from __future__ import annotations

import pytest

from dbt.devices import DebugExit, PortBus, Uart16550
from dbt.devices.debugexit import DEBUG_EXIT_PORT
from dbt.devices.uart import COM1_BASE


class Recorder:
    """A device that records accesses and answers reads with a fixed wide value."""

    def __init__(self, answer: int = 0x1234_5678_9ABC):
        self.answer = answer
        self.writes: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []

    def io_read(self, port: int, size: int) -> int:
        self.reads.append((port, size))
        return self.answer

    def io_write(self, port: int, size: int, value: int) -> None:
        self.writes.append((port, size, value))


@pytest.mark.parametrize("size,ones", [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF)])
def test_unclaimed_port_reads_all_ones_of_the_access_size(size, ones):
    """An empty ISA slot floats high: a guest probing for absent hardware must read all
    ones of the width it asked for (0xFF for ``in al``, not 0xFFFFFFFF)."""
    bus = PortBus()
    assert bus.read(0x80, size) == ones
    assert bus.unclaimed == 1


def test_unclaimed_port_ignores_writes():
    """A write to an empty port goes nowhere: it must not reach a neighbouring device."""
    bus = PortBus()
    dev = Recorder()
    bus.attach(0x60, 1, dev)
    bus.write(0x61, 1, 0xAB)  # next to a claimed port
    assert dev.writes == []
    assert bus.unclaimed == 1 and bus.writes == 1


def test_double_claiming_a_port_raises():
    """Two devices on one port would make I/O depend on attach order."""
    bus = PortBus()
    bus.attach(0x3F8, 8, Uart16550())
    with pytest.raises(ValueError):
        bus.attach(0x3FF, 2, Recorder())  # overlaps the last UART port
    with pytest.raises(ValueError):
        bus.attach(0x3F8, 1, Recorder())


def test_adjacent_ranges_may_be_claimed():
    """The overlap check must not refuse neighbours (COM1 ends at 0x3FF)."""
    bus = PortBus()
    bus.attach(0x3F8, 8, Uart16550())
    bus.attach(0x400, 1, Recorder())
    bus.attach(0x3F7, 1, Recorder())


@pytest.mark.parametrize("size,mask", [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF)])
def test_reads_are_masked_to_the_access_size(size, mask):
    """A device returning a wide value must not put bits above the access size into the
    guest's register (``in al, dx`` must leave the rest of eax alone)."""
    bus = PortBus()
    bus.attach(0x100, 1, Recorder(0xDEAD_BEEF_CAFE))
    assert bus.read(0x100, size) == 0xDEAD_BEEF_CAFE & mask


@pytest.mark.parametrize("size,mask", [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF)])
def test_writes_are_masked_to_the_access_size(size, mask):
    """A device must never see bits above the access size (``out dx, al`` with garbage
    in the upper bytes of eax)."""
    bus = PortBus()
    dev = Recorder()
    bus.attach(0x100, 1, dev)
    bus.write(0x100, size, 0x1122_3344_5566)
    assert dev.writes == [(0x100, size, 0x1122_3344_5566 & mask)]


def test_port_numbers_wrap_at_64k():
    """Port addresses are 16 bits: a device sees the port it was attached at."""
    bus = PortBus()
    dev = Recorder(0x42)
    bus.attach(0x80, 1, dev)
    assert bus.read(0x1_0080, 1) == 0x42
    bus.write(0x1_0080, 1, 7)
    assert dev.reads == [(0x80, 1)] and dev.writes == [(0x80, 1, 7)]


def test_bus_counts_accesses():
    """The I/O statistics a run reports (io_reads/io_writes) count every access."""
    bus = PortBus()
    bus.attach(COM1_BASE, 8, Uart16550())
    bus.read(COM1_BASE + 5, 1)
    bus.write(COM1_BASE, 1, 65)
    bus.write(COM1_BASE, 1, 66)
    assert (bus.reads, bus.writes, bus.unclaimed) == (1, 2, 0)


def test_uart_on_the_bus_outputs_one_byte_per_out():
    """``out dx, eax`` to THR: the bus masks to 32 bits, the UART keeps the low byte;
    a 4-byte write must not become four characters."""
    bus = PortBus()
    uart = Uart16550()
    bus.attach(COM1_BASE, 8, uart)
    bus.write(COM1_BASE, 4, 0x6968_6766)  # out dx, eax: only the low byte goes out
    assert bytes(uart.output) == b"f"


def test_debug_exit_records_the_first_value_only():
    """The first write ends the run; a later write (e.g. from a second ``out`` the engine
    ran before stopping) must not change the exit code the user sees."""
    bus = PortBus()
    dev = DebugExit()
    bus.attach(DEBUG_EXIT_PORT, 1, dev)
    assert dev.code is None
    bus.write(DEBUG_EXIT_PORT, 1, 3)
    bus.write(DEBUG_EXIT_PORT, 1, 0)
    bus.write(DEBUG_EXIT_PORT, 1, 9)
    assert dev.code == 3


def test_debug_exit_code_is_one_byte():
    """QEMU's isa-debug-exit is one byte wide: the exit status is the low byte."""
    dev = DebugExit()
    dev.io_write(DEBUG_EXIT_PORT, 4, 0x1_0203)
    assert dev.code == 0x03


def test_debug_exit_zero_is_recorded():
    """Exit code 0 is a value, not 'nothing written'."""
    dev = DebugExit()
    dev.io_write(DEBUG_EXIT_PORT, 1, 0)
    dev.io_write(DEBUG_EXIT_PORT, 1, 5)
    assert dev.code == 0
