"""Two fields of unicorn's internal x86 CPU state that a monitor needs and the API hides.

unicorn reports a guest exception to the interrupt hook by vector only, and it
never clears QEMU's record of the exception being delivered (DESIGN §5, traps 3
and 4). A monitor that delivers exceptions itself therefore needs:

- ``error_code``: the error code QEMU computed for the exception (the selector
  for a segment-load #GP, the P/W/U/I bits for a #PF), so every engine pushes
  the same error code the hardware would;
- ``old_exception``: QEMU's "exception being delivered" marker, which decides
  double-fault escalation (SDM Vol. 3A §6.15, Table 6-5). Left set, the guest's
  next contributory fault arrives as #DF and the one after ends the run as a
  silent triple fault; the monitor resets it after each delivery.

Both live in the CPU state that ``uc.context_save`` copies. Their offsets in the
saved context are found once per process by probing (a #DE, then a #GP with a
known selector, then a #DF) and checked on every probe, so a unicorn whose
layout differs fails loudly instead of corrupting state.
"""

from __future__ import annotations

import ctypes
import struct

from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, Uc
from unicorn import x86_const as U

from dbt.errors import EngineError

_OFFSETS: tuple[int, int] | None = None

# the probe: a flat GDT, then code that faults in a known order
_PROBE_CODE = {
    "divide": b"\x31\xd2\x31\xc0\xf7\xf0",  # xor edx, edx; xor eax, eax; div eax -> #DE
    "gp1": b"\x66\xb8\x4c\x12\x8e\xd8",  # mov ax, 0x124c; mov ds, ax -> #GP(0x124c)
    "gp2": b"\x66\xb8\x34\x0a\x8e\xd8",  # mov ax, 0x0a34; mov ds, ax -> #GP(0x0a34)
}


def _raw(ctx) -> bytes:
    return ctypes.string_at(ctypes.cast(ctx.context, ctypes.c_void_p).value, ctx.size)


def _words(blob: bytes) -> list[int]:
    return list(struct.unpack_from(f"<{len(blob) // 4}i", blob))


def offsets() -> tuple[int, int]:
    """(old_exception, error_code): byte offsets in a saved unicorn context."""
    global _OFFSETS
    if _OFFSETS is not None:
        return _OFFSETS
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x10000)
    uc.mem_write(0x1000, struct.pack("<QQQ", 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF))
    uc.reg_write(U.UC_X86_REG_GDTR, (0, 0x1000, 23, 0))
    uc.reg_write(U.UC_X86_REG_ESP, 0x8000)
    vectors: list[int] = []

    def stop(uc, intno, _ud):
        vectors.append(intno)
        uc.emu_stop()

    uc.hook_add(UC_HOOK_INTR, stop)

    def run(name: str) -> list[int]:
        code = _PROBE_CODE[name]
        uc.mem_write(0x2000, code)
        uc.reg_write(U.UC_X86_REG_EAX, 0x5A5A0000)  # so eax never equals a probed value
        uc.emu_start(0x2000, 0x2000 + len(code))
        return _words(_raw(uc.context_save()))

    before = _words(_raw(uc.context_save()))
    after_de = run("divide")
    after_gp1 = run("gp1")  # a contributory fault after #DE: QEMU escalates it to #DF
    if vectors != [0, 8]:
        raise EngineError(f"unicorn CPU-state probe: vectors {vectors}, expected [0, 8]")
    old = [i for i, (a, b, c) in enumerate(zip(before, after_de, after_gp1))
           if a == -1 and b == 0 and c == 8]
    if len(old) != 1:
        raise EngineError("cannot find unicorn's old_exception field (unsupported unicorn)")

    def reset() -> None:
        ctx = uc.context_save()
        ctypes.c_int32.from_address(ctypes.cast(ctx.context, ctypes.c_void_p).value
                                    + old[0] * 4).value = -1
        uc.context_restore(ctx)

    reset()
    after_gp1 = run("gp1")
    reset()
    after_gp2 = run("gp2")
    err = [i for i, (a, b) in enumerate(zip(after_gp1, after_gp2)) if a == 0x124C and b == 0x0A34]
    if vectors != [0, 8, 13, 13] or len(err) != 1:
        raise EngineError("cannot find unicorn's exception error code (unsupported unicorn)")
    _OFFSETS = (old[0] * 4, err[0] * 4)
    return _OFFSETS


class CpuState:
    """Read the error code of the exception unicorn just raised; forget it afterwards."""

    def __init__(self, uc: Uc):
        self.uc = uc
        self.old_off, self.err_off = offsets()
        self.ctx = uc.context_save()  # reused: context_update refills it in place
        self.addr = ctypes.cast(self.ctx.context, ctypes.c_void_p).value

    def error_code(self) -> int:
        self.uc.context_update(self.ctx)
        return ctypes.c_uint32.from_address(self.addr + self.err_off).value

    def forget_exception(self) -> None:
        """Reset QEMU's old_exception (trap 4): the monitor delivered the exception."""
        self.uc.context_update(self.ctx)
        ctypes.c_int32.from_address(self.addr + self.old_off).value = -1
        self.uc.context_restore(self.ctx)
