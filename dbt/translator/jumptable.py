"""Jump tables: an indirect ``jmp`` through a table whose index a bounds check in the same
trace has limited, translated into a jump through a table of host addresses.

A compiled ``switch`` dispatches with ``cmp idx, N-1; ja default; jmp [idx*S + T]``.
Through the indirect-branch map that jump costs two more registers saved and
restored and two more loads; but when the trace holds the bounds check, the index
is known to be below N, and the jump can go through a host table H of N entries
instead: ``jmp [idx*S + H]``, the guest's own instruction with another
displacement. Each entry of H leaves through an exit stub for its guest target
until the monitor chains it (writes the target's host address in the entry).

The jump is translated so when, walking back along the trace (its instructions are
the path that reaches the jump):

1. it is ``jmp [idx*S + disp32]``: no base, no segment override, S the address size;
2. the jcc linked last before it is ``ja`` or ``jae`` (unsigned: the fall-through
   means ``idx <= imm`` or ``idx < imm``), right after ``cmp idx, imm`` on the
   index register, its full width or (64-bit) its 32-bit half; the table has at
   most :data:`MAX_ENTRIES` entries;
3. nothing between the jcc and the jump writes the index register;
4. (64-bit, a 32-bit compare) the last write to the index register before the
   compare writes its 32-bit half, which clears the upper half;
5. the guest's paging is off and the table lies in RAM (the engine's part: the
   guest's own load, which the translation no longer makes, could otherwise fault or
   set an accessed bit).

The translation depends on the table's bytes as on code: the code cache
write-protects them, and a guest store to them drops the fragment.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbt.scanner import Decoder, Insn
from dbt.translator.trace import Link

MAX_ENTRIES = 256

#: register name -> (register it is part of, width in bits)
FAMILY: dict[str, tuple[str, int]] = {}
for _r in "abcd":
    FAMILY.update({f"r{_r}x": (f"r{_r}x", 64), f"e{_r}x": (f"r{_r}x", 32),
                   f"{_r}x": (f"r{_r}x", 16), f"{_r}l": (f"r{_r}x", 8), f"{_r}h": (f"r{_r}x", 8)})
for _r in ("si", "di", "bp", "sp"):
    FAMILY.update({f"r{_r}": (f"r{_r}", 64), f"e{_r}": (f"r{_r}", 32), _r: (f"r{_r}", 16),
                   f"{_r}l": (f"r{_r}", 8)})
for _n in range(8, 16):
    FAMILY.update({f"r{_n}": (f"r{_n}", 64), f"r{_n}d": (f"r{_n}", 32),
                   f"r{_n}w": (f"r{_n}", 16), f"r{_n}b": (f"r{_n}", 8)})


@dataclass(frozen=True)
class JumpTable:
    table: int  # guest address of the table
    entries: int  # how many the bounds check lets through
    size: int  # bytes an entry (the address size)
    disp_offset: int  # where the jump's disp32 is in its bytes


def _writes(decoder: Decoder, insn: Insn, family: str) -> int | None:
    """The width at which ``insn`` writes the register ``family`` (None: it does not)."""
    widths = [FAMILY[r][1] for r in decoder.writes(insn)[1]
              if r in FAMILY and FAMILY[r][0] == family]
    return max(widths) if widths else None


def find(insns: list[Insn], links: dict[int, Link], decoder: Decoder) -> JumpTable | None:
    """The jump table the last instruction of a trace dispatches through (rules 1-4)."""
    bits = decoder.bits
    last = insns[-1]
    if last.name != "jmp" or "*" not in last.op_str or Link.JCC not in links.values():
        return None  # (cheap tests first: most traces end otherwise)
    jmp = decoder.decode(last.address, last.raw, detail=True)
    mems = [o.mem for o in jmp.operands or () if o.kind == "mem"]
    if jmp.name != "jmp" or len(mems) != 1:
        return None
    mem = mems[0]
    index = FAMILY.get(mem.index)
    if mem.base or mem.seg or index is None or index[1] != bits or mem.scale != bits // 8:
        return None
    family = index[0]
    jccs = [i for i, link in links.items() if link is Link.JCC and i < len(insns) - 1]
    if not jccs or max(jccs) < 1:
        return None
    j = max(jccs)
    jcc, cmp = insns[j], decoder.decode(insns[j - 1].address, insns[j - 1].raw, detail=True)
    ops = cmp.operands or ()
    if jcc.name not in ("ja", "jae") or cmp.name != "cmp" or len(ops) != 2 \
            or ops[0].kind != "reg" or ops[1].kind != "imm" \
            or FAMILY.get(ops[0].reg, ("", 0))[0] != family:
        return None
    width = FAMILY[ops[0].reg][1]
    bound = ops[1].imm % (1 << width)
    entries = bound + 1 if jcc.name == "ja" else bound
    if width not in (32, bits) or not 1 <= entries <= MAX_ENTRIES:
        return None
    if any(_writes(decoder, insns[k], family) for k in range(j + 1, len(insns) - 1)):
        return None
    if width < bits:  # the upper half must be known clear
        last = next((w for w in (_writes(decoder, insns[k], family)
                                 for k in range(j - 2, -1, -1)) if w), None)
        if last != 32:
            return None
    return JumpTable(mem.disp % (1 << bits), entries, bits // 8, jmp.disp_offset)


def targets(jt: JumpTable, fetch) -> list[int] | None:
    """The guest targets in the table (``fetch(addr, n)`` reads guest memory; None if
    the table is not all readable)."""
    data = fetch(jt.table, jt.entries * jt.size)
    if len(data) != jt.entries * jt.size:
        return None
    return [int.from_bytes(data[k:k + jt.size], "little")
            for k in range(0, len(data), jt.size)]
