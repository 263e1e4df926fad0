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
