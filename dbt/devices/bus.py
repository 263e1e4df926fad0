"""The port-I/O bus: routes IN/OUT accesses to the device that claims the port."""

from __future__ import annotations

from typing import Protocol


class PortDevice(Protocol):
    def io_read(self, port: int, size: int) -> int: ...
    def io_write(self, port: int, size: int, value: int) -> None: ...


class PortBus:
    """64 Ki ports; an unclaimed port reads as all ones and ignores writes (as on a PC)."""

    def __init__(self) -> None:
        self._devices: dict[int, PortDevice] = {}
        self.reads = 0
        self.writes = 0
        self.unclaimed = 0

    def attach(self, first: int, count: int, device: PortDevice) -> None:
        for port in range(first, first + count):
            if port in self._devices:
                raise ValueError(f"port {port:#x} is already claimed")
            self._devices[port] = device

    def read(self, port: int, size: int) -> int:
        self.reads += 1
        dev = self._devices.get(port & 0xFFFF)
        if dev is None:
            self.unclaimed += 1
            return (1 << (8 * size)) - 1
        return dev.io_read(port & 0xFFFF, size) & ((1 << (8 * size)) - 1)

    def write(self, port: int, size: int, value: int) -> None:
        self.writes += 1
        dev = self._devices.get(port & 0xFFFF)
        if dev is None:
            self.unclaimed += 1
            return
        dev.io_write(port & 0xFFFF, size, value & ((1 << (8 * size)) - 1))
