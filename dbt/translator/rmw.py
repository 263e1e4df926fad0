"""Read-modify-write memory instructions, split so that any of their stores may run twice.

unicorn 2.1.4 looks for a stop request after every guest load and store
(``check_exit_request`` in ``tcg/tcg-op.c``) and leaves through
``cpu_loop_exit_restore``, which reports the pc of the instruction that made the
access. A stop noticed after the store of ``inc dword [m]`` therefore reports the
``inc`` itself, with memory already written: going on there increments twice.
bt goes on wherever a stop lands (the free clock's timer thread and budget
watchdog, the TLB-resize stop that a fill requests), so it never copies such an
instruction (:data:`dbt.isa.effects.READ_MODIFY_WRITE`); it emits instead::

    mov [save_c], s      s: a register the instruction does not use (ecx, edx, ebx, eax)
    mov s, [m]           its load: faults as the instruction's load would
    mov [m], s           the same value back: faults as its store would, changes nothing
    op  s, src           the instruction on the register: the same result and flags
    mov [m], s           its store: cannot fault now
    mov s, [save_c]

Each host instruction of it is harmless to run again after its own store. A fault
(at the load or the first store) is reported at the guest instruction with ``s``
restored from ``save_c`` (:attr:`Fragment.scratch`), memory and flags untouched;
an access is made as unicorn makes the instruction's own (a load, then stores),
so accessed and dirty bits and #PF error codes are the same.

Forms without a register form that means the same (``bts [m], reg`` reaches past
its operand; ``cmpxchg8b``), with no free register, or with 16-bit addressing are
:func:`find`'s ``splittable=False``: bt runs those alone, stepped, where no stop
can land (see ``Bt._run_alone``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dbt.isa.effects import READ_MODIFY_WRITE, READ_MODIFY_WRITE_NAMES
from dbt.scanner import Insn
from dbt.translator.templates import split_prefixes

_SEGMENTS = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65})
_SCRATCH_ORDER = (1, 2, 3, 0)  # ecx, edx, ebx, eax: each has a low byte without REX


@dataclass(frozen=True)
class Rmw:
    """A copied instruction that reads and writes back a memory operand."""

    splittable: bool
    scratch: int = 0  # the register the split form uses (0-3: eax, ecx, edx, ebx)
    mem_prefixes: bytes = b""  # segment, operand- and address-size prefixes
    rex: int | None = None
    opcode: bytes = b""
    modrm: int = 0
    memory: bytes = b""  # SIB and displacement
    tail: bytes = b""  # the immediate, if any
    byte: bool = False
    rip: bool = False  # the displacement (the last 4 bytes of ``memory``) is RIP-relative

    def _mem(self, opcode: int) -> bytes:
        rex = b"" if self.rex is None else bytes([0x40 | (self.rex & 0x0B)])  # W X B, not R
        modrm = (self.modrm & 0xC7) | (self.scratch << 3)
        return self.mem_prefixes + rex + bytes([opcode, modrm]) + self.memory

    def load(self) -> bytes:
        """``mov s, [m]`` (8A/8B /r)."""
        return self._mem(0x8A if self.byte else 0x8B)

    def store(self) -> bytes:
        """``mov [m], s`` (88/89 /r)."""
        return self._mem(0x88 if self.byte else 0x89)

    def on_register(self) -> bytes:
        """The instruction itself with ``s`` for its memory operand (ModRM.mod = 3)."""
        prefixes = b"\x66" if 0x66 in self.mem_prefixes else b""
        rex = b"" if self.rex is None else bytes([0x40 | (self.rex & 0x0C)])  # W R, not X B
        modrm = 0xC0 | (self.modrm & 0x38) | self.scratch
        return prefixes + rex + self.opcode + bytes([modrm]) + self.tail


def may_read_modify_write(insn: Insn) -> bool:
    """Could it be one? (False: certainly not; the translator's test before the bytes.)"""
    return insn.name in READ_MODIFY_WRITE_NAMES and "[" in insn.op_str


def find(insn: Insn, bits: int) -> Rmw | None:
    """The read-modify-write form of an instruction bt would copy; None if it is not one."""
    if not may_read_modify_write(insn):
        return None
    raw = insn.raw
    prefixes, rex, pos = split_prefixes(raw, bits)
    opcode = raw[pos:pos + 2] if raw[pos] == 0x0F else raw[pos:pos + 1]
    form = READ_MODIFY_WRITE.get(opcode)
    m = pos + len(opcode)
    if form is None or m >= len(raw) or raw[m] >> 6 == 3:
        return None
    digits, byte, implicit, same_on_register = form
    modrm = raw[m]
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    if digits is not None and reg not in digits:
        return None
    if not same_on_register or (bits == 32 and 0x67 in prefixes):
        return Rmw(splittable=False)  # (16-bit addressing: another ModRM table)
    r = rex or 0
    used = set(implicit)
    i = m + 1
    rip = False
    disp = {0: 0, 1: 1, 2: 4}[mod]
    if rm == 4:  # a SIB byte
        sib = raw[i]
        i += 1
        index = ((sib >> 3) & 7) | (r & 2) << 2
        if index != 4:
            used.add(index)
        if sib & 7 == 5 and mod == 0:
            disp = 4  # no base
        else:
            used.add((sib & 7) | (r & 1) << 3)
    elif rm == 5 and mod == 0:
        disp, rip = 4, bits == 64
        if rip and 0x67 in prefixes:
            return Rmw(splittable=False)  # EIP-relative: wraps at 4 GiB
    else:
        used.add(rm | (r & 1) << 3)
    i += disp
    if digits is None:  # the reg field is a source register
        source = reg | (r & 4) << 1
        if byte and rex is None and source >= 4:
            source -= 4  # ah, ch, dh, bh
        used.add(source)
    free = [s for s in _SCRATCH_ORDER if s not in used]
    if not free:
        return Rmw(splittable=False)
    return Rmw(True, free[0], bytes(p for p in prefixes if p in _SEGMENTS or p in (0x66, 0x67)),
               rex, bytes(opcode), modrm, raw[m + 1:i], raw[i:], byte, rip)

