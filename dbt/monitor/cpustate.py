"""Three fields of unicorn's internal x86 CPU state that a monitor needs and the API hides.

unicorn reports a guest exception to the interrupt hook by vector only, and it
never clears QEMU's record of the exception being delivered (DESIGN §5, traps 3
and 4). A monitor that delivers exceptions itself therefore needs:

- ``error_code``: the error code QEMU computed for the exception (the selector
  for a segment-load #GP, the P/W/U/I bits for a #PF), so every engine pushes
  the same error code the hardware would;
- ``old_exception``: QEMU's "exception being delivered" marker, which decides
  double-fault escalation (SDM Vol. 3A §6.15, Table 6-5). Left set, the guest's
  next contributory fault arrives as #DF and the one after ends the run as a
  silent triple fault; the monitor resets it after each delivery;
- ``hflags``: QEMU keeps the current privilege level in its low two bits. The
  API has no way to lower it: writing CS leaves it alone, and unicorn refuses
  an SS whose DPL is not the CPL already (the SS load is what sets the CPL).
  Under ``hw``, where the guest really runs at ring 3, the monitor sets it when
  it delivers an interrupt to ring 0 or emulates ``syscall``/``sysenter``
  (:mod:`dbt.monitor.privilege`).

All three live in the CPU state that ``uc.context_save`` copies. Their offsets
in the saved context are found once per process by probing (a #DE, then a #GP
with a known selector, then a #DF; an ``iret`` to ring 3, then ``cli``) and
checked on every probe, so a unicorn whose layout differs fails loudly instead
of corrupting state.
"""

from __future__ import annotations

import ctypes
import struct

from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, Uc
from unicorn import x86_const as U

from dbt.errors import EngineError

_OFFSETS: tuple[int, int] | None = None
_CPL_OFFSET: int | None = None

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


def _field(ctx, offset: int) -> ctypes.c_int32:
    """The 32-bit word at byte ``offset`` of a saved context, to read or patch in place."""
    return ctypes.c_int32.from_address(ctypes.cast(ctx.context, ctypes.c_void_p).value + offset)


def _probe_cpu(gdt: tuple[int, ...]) -> tuple[Uc, list[int]]:
    """A 32-bit CPU with ``gdt`` loaded, a stack, and a hook that records each vector
    raised and stops."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x10000)
    uc.mem_write(0x1000, struct.pack(f"<{len(gdt)}Q", *gdt))
    uc.reg_write(U.UC_X86_REG_GDTR, (0, 0x1000, 8 * len(gdt) - 1, 0))
    uc.reg_write(U.UC_X86_REG_ESP, 0x8000)
    vectors: list[int] = []

    def stop(uc, intno, _ud):
        vectors.append(intno)
        uc.emu_stop()

    uc.hook_add(UC_HOOK_INTR, stop)
    return uc, vectors


def offsets() -> tuple[int, int]:
    """(old_exception, error_code): byte offsets in a saved unicorn context."""
    global _OFFSETS
    if _OFFSETS is not None:
        return _OFFSETS
    uc, vectors = _probe_cpu((0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF))

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
        _field(ctx, old[0] * 4).value = -1
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


def _ring3_probe() -> tuple[Uc, list[int]]:
    """A 32-bit CPU with ring-0 and ring-3 flat segments and a hook recording vectors."""
    uc, vectors = _probe_cpu((0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF, 0x00CFFB000000FFFF,
                              0x00CFF3000000FFFF))
    uc.reg_write(U.UC_X86_REG_SS, 0x10)
    uc.reg_write(U.UC_X86_REG_CS, 0x08)
    return uc, vectors


# push 0x23; push 0x7000; pushfd; push 0x1b; push 0x3000; iretd -> ring 3 at 0x3000
_TO_RING3 = bytes.fromhex("6a23 6800700000 9c 6a1b 6800300000 cf")
_CLI_HLT = b"\xfa\xf4"


def cpl_offset() -> int:
    """Byte offset of QEMU's ``hflags`` (CPL in bits 1:0) in a saved unicorn context.

    Probe: the one word that differs only in its low two bits, 0 at ring 0 and 3
    after an ``iret`` to ring 3; checked by setting it back to 0 in the context,
    after which ``cli`` (a #GP at ring 3) runs."""
    global _CPL_OFFSET
    if _CPL_OFFSET is not None:
        return _CPL_OFFSET
    uc, vectors = _ring3_probe()
    uc.mem_write(0x2000, _TO_RING3)
    uc.mem_write(0x3000, _CLI_HLT)
    ring0 = _words(_raw(uc.context_save()))
    uc.emu_start(0x2000, 0, count=6)
    ring3 = _words(_raw(uc.context_save()))
    found = [i for i, (a, b) in enumerate(zip(ring0, ring3))
             if a & 3 == 0 and b & 3 == 3 and a & ~3 == b & ~3]
    uc.emu_start(0x3000, 0)  # cli at ring 3: #GP
    if len(found) != 1 or uc.reg_read(U.UC_X86_REG_CS) != 0x1B or vectors != [13]:
        raise EngineError("cannot find unicorn's CPL field (unsupported unicorn)")
    ctx = uc.context_save()
    _field(ctx, found[0] * 4).value &= ~3
    uc.context_restore(ctx)
    uc.reg_write(U.UC_X86_REG_CS, 0x08)  # refused at CPL 3
    uc.reg_write(U.UC_X86_REG_SS, 0x10)
    uc.emu_start(0x3000, 0)  # cli at ring 0: runs
    if vectors != [13] or uc.reg_read(U.UC_X86_REG_EIP) != 0x3002:
        raise EngineError("unicorn's CPL field does not set the privilege level "
                          "(unsupported unicorn)")
    _CPL_OFFSET = found[0] * 4
    return _CPL_OFFSET


class CpuState:
    """Read the error code of the exception unicorn just raised; forget it afterwards;
    set the privilege level."""

    def __init__(self, uc: Uc):
        self.uc = uc
        self.old_off, self.err_off = offsets()
        self.cpl_off = cpl_offset()
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

    def set_cpl(self, cpl: int) -> None:
        """Set QEMU's current privilege level (hflags bits 1:0). The caller then loads
        CS and SS for that level: unicorn checks them against it."""
        self.uc.context_update(self.ctx)
        field = ctypes.c_uint32.from_address(self.addr + self.cpl_off)
        field.value = (field.value & ~3) | cpl
        self.uc.context_restore(self.ctx)
