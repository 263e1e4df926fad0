"""Basic-block scanning: decode guest instructions from a pc until a stop rule fires.

A block ends, checking these rules in this order before and after each instruction:

1. **Fetch fault** - the bytes at the pc cannot be read (unmapped): an empty block
   whose ``fault`` is ``"#PF"``; later in a block, the block ends before it.
2. **Undecodable bytes** - capstone cannot decode them: an empty block whose
   ``fault`` is ``"#UD"`` at that address; later in a block, the block ends before them.
3. **Control transfer** - a ``branch`` rule (jmp, jcc, call, ret, loop...) ends the
   block, the branch included.
4. **Block-ending sensitive instruction** - a callout that may change control
   flow, the interrupt window, the mode or the address space
   (:data:`ENDS_BLOCK`), and every ``unsupported`` instruction, ends the block.
5. **Page end** - the next instruction would start on another 4 KiB page (so a
   write to one code page invalidates only the blocks that lie on it; an
   instruction that straddles the boundary ends its block).
6. **Size cap** - :data:`MAX_BLOCK_INSNS` instructions.
7. **Rep string instruction** - a ``rep``-prefixed string instruction is a block
   of its own (the block ends before it, and after it): it may run any number of
   iterations, each counted as an instruction, so bt checks the budget against
   its count register before it runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from dbt.isa import Action
from dbt.scanner.decoder import MAX_INSN_LEN, Decoder, Insn

MAX_BLOCK_INSNS = 64
CHUNK = 64  # bytes decoded in one capstone call
PAGE_SIZE = 4096

#: Callouts after which the translation context may have changed, so the block
#: must end: control transfers through the monitor, mode and paging changes,
#: instructions that open an interrupt window.
ENDS_BLOCK = frozenset({
    "hlt", "int", "int1", "int3", "into", "iret", "iretd", "iretq",
    "ljmp", "lcall", "retf", "retfq", "syscall", "sysenter", "sysexit", "sysexitq", "sysret",
    "sysretq",
    "popf", "popfd", "popfq", "sti", "lmsw", "clts", "wrmsr", "invlpg", "lidt", "lgdt",
    "ltr", "lldt", "rsm", "ud2", "ud0", "ud1", "mwait",
})


class StopReason(enum.Enum):
    FETCH_FAULT = "fetch-fault"
    UNDECODABLE = "undecodable"
    PAGE_END = "page-end"
    CONTROL = "control"
    SENSITIVE = "sensitive"
    SIZE_CAP = "size-cap"
    REP_STRING = "rep-string"


@dataclass
class Block:
    """A guest basic block: its instructions and why it ended."""

    pc: int
    insns: list[Insn]
    stop: StopReason
    fault: str | None = None  # "#UD" or "#PF" for a block that faults at ``end``

    @property
    def end(self) -> int:
        """Guest address just past the last instruction (or of the fault)."""
        return self.insns[-1].next if self.insns else self.pc

    @property
    def guest_bytes(self) -> int:
        return self.end - self.pc

    def as_json(self) -> dict:
        return {"address": self.pc, "stop": self.stop.value, "fault": self.fault,
                "instructions": [{"address": i.address, "bytes": i.raw.hex(),
                                  "mnemonic": i.mnemonic, "op_str": i.op_str,
                                  "class": i.rule.klass.value, "action": i.rule.action.value}
                                 for i in self.insns]}


def runs_past_end(decoder: Decoder, addr: int, window: bytes) -> bool:
    """Undecodable bytes cut short by the end of readable memory: is it the end (a fetch
    fault) or the bytes themselves (#UD whatever follows)? Decoding with zero padding
    tells: if that decodes, the instruction needs bytes that cannot be fetched."""
    if len(window) >= MAX_INSN_LEN:
        return False
    return decoder.decode(addr, window + bytes(MAX_INSN_LEN - len(window))) is not None


STRING_OPS = frozenset({"movsb", "movsw", "movsd", "movsq", "stosb", "stosw", "stosd", "stosq",
                        "lodsb", "lodsw", "lodsd", "lodsq", "cmpsb", "cmpsw", "cmpsd", "cmpsq",
                        "scasb", "scasw", "scasd", "scasq"})


def is_rep_string(insn: Insn) -> bool:
    """A rep/repe/repne string instruction run as is (movs/stos/lods/cmps/scas)."""
    return insn.rep and insn.name in STRING_OPS and insn.rule.action is Action.IDENT


def ends_block(insn: Insn) -> bool:
    """True if the block must end after ``insn`` (rules 4 and 5)."""
    action = insn.rule.action
    if action is Action.BRANCH or action is Action.UNSUPPORTED:
        return True
    if action is Action.CALLOUT:
        return insn.name in ENDS_BLOCK or (insn.name == "mov" and "cr" in insn.op_str)
    return insn.name in ENDS_BLOCK


def scan_block(decoder: Decoder, fetch: Callable[[int, int], bytes], pc: int,
               detail: bool = False, max_insns: int = MAX_BLOCK_INSNS) -> Block:
    """Decode the block at ``pc``; ``fetch(addr, n)`` returns up to n bytes (b"" if unmapped).

    Instructions are decoded a chunk of the page at a time (:data:`CHUNK` bytes, never
    past the page); those near the page's end, whose bytes may come from the next page,
    one at a time as the rules above require."""
    insns: list[Insn] = []
    addr = pc
    page = pc & ~(PAGE_SIZE - 1)
    ahead = iter(())
    while True:
        insn = next(ahead, None)
        if insn is None and not detail and page + PAGE_SIZE - addr > MAX_INSN_LEN:
            ahead = decoder.decode_run(addr, fetch(addr, min(CHUNK, page + PAGE_SIZE - addr)))
            insn = next(ahead, None)
        if insn is None:
            window = fetch(addr, MAX_INSN_LEN)
            if not window:
                return Block(pc, insns, StopReason.FETCH_FAULT, None if insns else "#PF")
            insn = decoder.decode(addr, window, detail)
            if insn is None:
                if runs_past_end(decoder, addr, window):
                    return Block(pc, insns, StopReason.FETCH_FAULT, None if insns else "#PF")
                return Block(pc, insns, StopReason.UNDECODABLE, None if insns else "#UD")
        if is_rep_string(insn):  # a block of its own: it ends the block, or is all of it
            if not insns:
                insns.append(insn)
            return Block(pc, insns, StopReason.REP_STRING)
        insns.append(insn)
        addr = insn.next
        if ends_block(insn):
            return Block(pc, insns, StopReason.CONTROL if insn.rule.action is Action.BRANCH
                         else StopReason.SENSITIVE)
        if addr & ~(PAGE_SIZE - 1) != page:
            return Block(pc, insns, StopReason.PAGE_END)
        if len(insns) >= max_insns:
            return Block(pc, insns, StopReason.SIZE_CAP)
