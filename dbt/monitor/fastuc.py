"""Direct calls into libunicorn for the monitor's hot paths.

The Python binding of unicorn 2.1.4 spends several microseconds per
``reg_read``/``reg_write`` choosing a register class, more than the call into C
itself; exits, callouts and interpretation make those calls on every event.
These accessors call the C functions the binding wraps, for 64-bit-wide
general registers, flags and the pc, and the descriptor-table registers (anything
else goes through the binding).
"""

from __future__ import annotations

import ctypes

from unicorn.unicorn_py3.unicorn import uclib


class _Mmr(ctypes.Structure):
    """unicorn's uc_x86_mmr: GDTR, IDTR, LDTR, TR."""

    _fields_ = (("selector", ctypes.c_uint16), ("base", ctypes.c_uint64),
                ("limit", ctypes.c_uint32), ("flags", ctypes.c_uint32))


class FastRegs:
    def __init__(self, uc):
        self._h = uc._uch
        self._val = ctypes.c_uint64()
        self._ref = ctypes.byref(self._val)
        self._read = uclib.uc_reg_read
        self._write = uclib.uc_reg_write
        self._mem_read = uclib.uc_mem_read
        self._mem_write = uclib.uc_mem_write
        self._buf = ctypes.create_string_buffer(64)
        self._mmr = _Mmr()
        self._mmr_ref = ctypes.byref(self._mmr)

    def read(self, rid: int) -> int:
        v = self._val
        v.value = 0
        self._read(self._h, rid, self._ref)
        return v.value

    def mmr(self, rid: int) -> tuple[int, int, int, int]:
        """A descriptor-table or segment register (GDTR, IDTR, LDTR, TR): (selector, base,
        limit, flags), as the binding's ``reg_read`` gives it."""
        m = self._mmr
        self._read(self._h, rid, self._mmr_ref)
        return m.selector, m.base, m.limit, m.flags

    def write(self, rid: int, value: int) -> None:
        self._val.value = value & 0xFFFFFFFFFFFFFFFF
        self._write(self._h, rid, self._ref)

    def mem(self, addr: int, n: int) -> bytes:
        """Up to 64 bytes of memory, or b"" if unicorn refuses (unmapped)."""
        if self._mem_read(self._h, addr, self._buf, n) != 0:
            return b""
        return self._buf.raw[:n]

    def mem_write(self, addr: int, data: bytes) -> None:
        if self._mem_write(self._h, addr, data, len(data)) != 0:
            raise ValueError(f"cannot write {len(data)} bytes at {addr:#x}")
