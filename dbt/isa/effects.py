"""Side effects of ordinary instructions that are not in their operand text.

In Intel syntax (what capstone prints) an instruction writes its *first*
operand; the exceptions below write memory or a register other than the first
operand as well. The translator asks :func:`may_store_or_move_sp` whether an
instruction can change memory or the stack pointer before it pays for a
detailed decode (about 35 us an instruction through capstone's Python binding):
``False`` is a proof, ``True`` only means "decode it to know".

References: Intel SDM Vol. 1 §6.2-6.3 (the stack and the instructions that use
it: PUSH, POP, PUSHA/POPA, PUSHF/POPF, ENTER, LEAVE, CALL, RET); Vol. 2 pages of
XCHG and XADD (both operands written), MULX (two destinations), MASKMOVQ,
MASKMOVDQU and VMASKMOVDQU (store through DS:[E/RDI]), MOVDIR64B (store through
ES:[reg]); AMD APM Vol. 3, CLZERO (store through [rAX]).

:data:`READ_MODIFY_WRITE` lists the encodings that read a memory operand and write
it back (Intel SDM Vol. 2, the opcode map of Appendix A.3 and the pages of each
instruction named there). unicorn 2 may stop a run after any guest store and then
reports the pc of the instruction that stored (see dbt/translator/rmw.py): such
an instruction, started again, would modify its operand twice.
"""

from __future__ import annotations

#: capstone names of instructions that store to memory or change the stack pointer
#: other than through their first operand
IMPLICIT_STORES_OR_SP = frozenset({
    "call", "clzero", "enter", "leave", "maskmovdqu", "maskmovq",
    "movdir64b", "mulx", "pop", "popal", "popaw", "popf", "popfd", "popfq", "push",
    "pushal", "pushaw", "pushf", "pushfd", "pushfq", "ret", "retf", "vmaskmovdqu", "xadd",
    "xchg",
})


def may_store_or_move_sp(name: str, op_str: str) -> bool:
    """Could this instruction write memory or the stack pointer? (False: certainly not.)"""
    if name in IMPLICIT_STORES_OR_SP:
        return True
    first = op_str.split(",", 1)[0]
    return "[" in first or "sp" in first  # a memory destination, or rsp/esp/sp/spl


#: Encodings whose r/m operand, when it is memory, is read and written back: opcode
#: bytes -> (the ModRM.reg values that select such a form, or None where the reg field
#: names a source register; 8-bit operand; registers read implicitly, by number:
#: 0 = eax, 1 = ecx; True when the register form of the same encoding does the same to
#: a register). References: SDM Vol. 2 pages ADD, OR, ADC, SBB, AND, SUB, XOR (00-31,
#: 80-83 /0-/6; /7 is CMP, a read), XCHG (86, 87), RCL/RCR/ROL/ROR and SAL/SAR/SHL/SHR
#: (C0, C1, D0-D3, count in CL for D2/D3), NOT and NEG (F6/F7 /2 /3), INC and DEC
#: (FE/FF /0 /1), SHLD and SHRD (0F A4/A5/AC/AD, CL for A5/AD), BTS/BTR/BTC (0F BA
#: /5-/7 with an immediate; 0F AB/B3/BB with a register, whose bit offset reaches past
#: the operand, so a register form means something else), CMPXCHG (0F B0/B1, EAX
#: implicit), XADD (0F C0/C1), CMPXCHG8B/16B (0F C7 /1: EDX:EAX and ECX:EBX, no
#: register form), ARPL (63, 32-bit mode only; a 16-bit operand without 66).
_ALU_WRITES = frozenset(range(7))
_ALL = frozenset(range(8))
READ_MODIFY_WRITE: dict[bytes, tuple[frozenset[int] | None, bool, tuple[int, ...], bool]] = {
    **{bytes([op]): (None, op & 1 == 0, (), True)
       for op in (0x00, 0x01, 0x08, 0x09, 0x10, 0x11, 0x18, 0x19, 0x20, 0x21, 0x28, 0x29,
                  0x30, 0x31, 0x86, 0x87)},
    b"\x80": (_ALU_WRITES, True, (), True),
    b"\x81": (_ALU_WRITES, False, (), True),
    b"\x82": (_ALU_WRITES, True, (), True),  # (32-bit mode only: #UD in 64-bit mode)
    b"\x83": (_ALU_WRITES, False, (), True),
    b"\xc0": (_ALL, True, (), True),
    b"\xc1": (_ALL, False, (), True),
    b"\xd0": (_ALL, True, (), True),
    b"\xd1": (_ALL, False, (), True),
    b"\xd2": (_ALL, True, (1,), True),
    b"\xd3": (_ALL, False, (1,), True),
    b"\xf6": (frozenset({2, 3}), True, (), True),
    b"\xf7": (frozenset({2, 3}), False, (), True),
    b"\xfe": (frozenset({0, 1}), True, (), True),
    b"\xff": (frozenset({0, 1}), False, (), True),
    b"\x0f\xa4": (None, False, (), True),
    b"\x0f\xa5": (None, False, (1,), True),
    b"\x0f\xac": (None, False, (), True),
    b"\x0f\xad": (None, False, (1,), True),
    b"\x0f\xba": (frozenset({5, 6, 7}), False, (), True),
    b"\x0f\xab": (None, False, (), False),
    b"\x0f\xb3": (None, False, (), False),
    b"\x0f\xbb": (None, False, (), False),
    b"\x0f\xb0": (None, True, (0,), True),
    b"\x0f\xb1": (None, False, (0,), True),
    b"\x0f\xc0": (None, True, (), True),
    b"\x0f\xc1": (None, False, (), True),
    b"\x0f\xc7": (frozenset({1}), False, (0, 1, 2, 3), False),
    b"\x63": (None, False, (), False),  # (32-bit mode; in 64-bit mode 63 is MOVSXD, a load)
}

#: capstone names of the instructions above (a cheap first test before the bytes)
READ_MODIFY_WRITE_NAMES = frozenset({
    "add", "or", "adc", "sbb", "and", "sub", "xor", "xchg", "rol", "ror", "rcl", "rcr",
    "shl", "sal", "shr", "sar", "not", "neg", "inc", "dec", "shld", "shrd", "bts", "btr",
    "btc", "cmpxchg", "xadd", "cmpxchg8b", "cmpxchg16b", "arpl",
})
