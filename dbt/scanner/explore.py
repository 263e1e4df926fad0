"""Static exploration: the blocks reachable from a guest's entry point through direct branches.

Used by ``dbt scan`` and ``dbt translate`` to show what the scanner sees without
running the guest. Indirect branches (``ret``, ``jmp reg``) are not followed.
"""

from __future__ import annotations

import re
from collections import deque

from dbt.loader import Image
from dbt.scanner.block import Block, StopReason, scan_block
from dbt.scanner.decoder import Decoder, Insn

#: after these the next instruction is not reached by falling through
NO_FALLTHROUGH = frozenset({"jmp", "ret", "retf", "retfq", "ljmp", "iret", "iretd", "iretq",
                             "sysret", "sysexit", "ud2", "hlt"})
_TARGET = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)$")  # capstone prints targets below 10 in decimal


def direct_target(insn: Insn) -> int | None:
    """The target of a direct near branch, from capstone's text (it prints absolute targets)."""
    return target_of(insn.op_str)


def target_of(op_str: str) -> int | None:
    """The target a branch's operand text names, when it is an absolute address."""
    return int(op_str, 0) if _TARGET.match(op_str) else None


class ImageMemory:
    """Read-only view of an image's segments as a fetch function."""

    def __init__(self, image: Image):
        self.segments = sorted((s.addr, s.data + bytes(s.memsz - len(s.data)))
                               for s in image.segments)

    def fetch(self, addr: int, n: int) -> bytes:
        for start, data in self.segments:
            if start <= addr < start + len(data):
                return data[addr - start:addr - start + n]
        return b""


def explore(image: Image, max_blocks: int = 10_000) -> list[Block]:
    decoder = Decoder(image.arch.bits)
    mem = ImageMemory(image)
    seen: dict[int, Block] = {}
    todo = deque([image.entry])
    while todo and len(seen) < max_blocks:
        pc = todo.popleft()
        if pc in seen:
            continue
        block = scan_block(decoder, mem.fetch, pc)
        seen[pc] = block
        if not block.insns:
            continue
        last = block.insns[-1]
        target = direct_target(last) if block.stop is StopReason.CONTROL else None
        if target is not None:
            todo.append(target)
        if last.name not in NO_FALLTHROUGH and block.stop is not StopReason.UNDECODABLE:
            todo.append(block.end)
    return sorted(seen.values(), key=lambda b: b.pc)
