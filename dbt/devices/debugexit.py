"""The debug-exit device (QEMU's isa-debug-exit at 0xF4): a write of v ends the run with code v."""

from __future__ import annotations

DEBUG_EXIT_PORT = 0xF4


class DebugExit:
    """Records the first value written; the monitor ends the run when ``code`` is set."""

    def __init__(self) -> None:
        self.code: int | None = None

    def io_read(self, port: int, size: int) -> int:
        return 0xFFFFFFFF

    def io_write(self, port: int, size: int, value: int) -> None:
        if self.code is None:
            self.code = value & 0xFF
