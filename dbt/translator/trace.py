"""Traces: the guest blocks one fragment translates, each continuing the one before.

A basic block ends at every branch (see :mod:`dbt.scanner.block`), and so would a
fragment: a direct ``jmp`` or ``call`` would leave through a jump of its own, and the
fall-through of a conditional branch through another, each starting a new unicorn
block (a chained jump and a block prologue, about 2 ns). A trace goes on instead
with the block the branch leads to, *linked* in place:

- ``JMP``: a direct jmp; the next block is its target (the jmp becomes a nop);
- ``CALL``: a direct call; the next block is the callee (the guest return address is
  pushed as for any call);
- ``JCC``: a conditional branch; the next block is its fall-through, the taken side
  leaves through an exit stub like any branch. In the exact clock the next block
  starts a new *segment*, with a counting prologue of its own.
- ``RET``: a ``ret`` whose ``call`` is linked earlier in the trace, when nothing in
  between can have changed the return address: only innocuous instructions that
  write neither memory nor the stack pointer. The next block is the one after the
  call, and the ret only drops the return address (a leaf function inlined).

A trace stops growing, checking in this order, when the last block

1. does not end in one of those branches (``loop``/``jecxz``-type branches, other
   indirect branches, callouts... end a trace as they end a fragment);
2. leads to a block already in the trace (no unrolling), or, by a jmp or call, to
   one already translated (``placed``: the head of a fragment or a side entry into
   one; the branch is chained to it instead of translating it again). A jcc's
   fall-through is taken in even when it is translated already: left as an exit, it
   would be a ``jmp`` of its own after the jcc, a unicorn block of its own each time
   the branch is not taken (measured: a quarter more blocks run in lzss than under
   hw, where a jcc's fall-through is simply the next guest block);
3. would take the trace past :data:`MAX_TRACE_BLOCKS` blocks or ``max_insns``
   instructions (:data:`MAX_TRACE_INSNS` by default);
4. leads to a block that cannot be fetched or decoded (it gets a fragment of its own,
   which reports the fault where the guest reaches it), or that is a rep string
   instruction (it needs the budget guard at the start of a fragment);
5. is a ``JCC`` and the trace is a budget tail (``max_insns`` given: a tail is one
   segment).

Tail duplication is the price: a block may be translated into several traces, when
a trace that reaches it is translated before the block has an entry of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from dbt.isa import Action
from dbt.isa.effects import may_store_or_move_sp
from dbt.scanner import MAX_BLOCK_INSNS, Block, Decoder, Insn, StopReason, scan_block
from dbt.scanner.block import is_rep_string
from dbt.scanner.explore import direct_target
from dbt.translator.templates import split_prefixes

MAX_TRACE_BLOCKS = 8
MAX_TRACE_INSNS = 128
_NOT_LINKED = frozenset({"jecxz", "jcxz", "jrcxz", "loop", "loope", "loopne"})


class Link(enum.Enum):
    JMP = "jmp"
    CALL = "call"
    JCC = "jcc"
    RET = "ret"


@dataclass
class Trace:
    """Blocks translated together; ``links[i]`` says how the instruction at index i of
    ``insns`` (the last of its block) continues into the next block."""

    blocks: list[Block]
    links: dict[int, Link] = field(default_factory=dict)

    @classmethod
    def of(cls, block: Block) -> Trace:
        return cls([block])

    @property
    def pc(self) -> int:
        return self.blocks[0].pc

    @property
    def insns(self) -> list[Insn]:
        return [i for b in self.blocks for i in b.insns]

    @property
    def stop(self) -> StopReason:
        return self.blocks[-1].stop

    @property
    def fault(self) -> str | None:
        return self.blocks[-1].fault if len(self.blocks) == 1 else None

    @property
    def end(self) -> int:
        """Where the last block ends (the fall-through of the trace)."""
        return self.blocks[-1].end

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The guest byte ranges [start, end) of its blocks."""
        return [(b.pc, b.end) for b in self.blocks if b.insns]

    def pages(self) -> list[int]:
        """The 4 KiB pages (guest-linear) its bytes are on."""
        return pages_of(self.ranges)

    @property
    def guest_bytes(self) -> int:
        return sum(b.guest_bytes for b in self.blocks)


def pages_of(ranges: list[tuple[int, int]]) -> list[int]:
    """The 4 KiB pages that byte ranges [lo, hi) touch, in order."""
    return sorted({p for lo, hi in ranges for p in range(lo & ~0xFFF, hi, 0x1000)})


def link_of(insn: Insn, bits: int) -> tuple[Link, int] | None:
    """How a block ending in ``insn`` could continue in a trace, and the pc it continues at."""
    if insn.rule.action is not Action.BRANCH or insn.name in _NOT_LINKED \
            or 0x66 in split_prefixes(insn.raw, bits)[0]:
        return None  # (a 16-bit near branch: the translator refuses it on its own)
    target = direct_target(insn)
    if target is None:
        return None
    if insn.name == "jmp":
        return Link.JMP, target
    if insn.name == "call":
        return Link.CALL, target
    if insn.name.startswith("j"):
        return Link.JCC, insn.next
    return None


def _return_of(trace: Trace, decoder: Decoder) -> int | None:
    """Where a ``ret`` ending the trace returns, if the last call linked in the trace is
    its call and the return address cannot have changed since (see Link.RET)."""
    insns = trace.insns
    calls = [i for i, link in trace.links.items() if link is Link.CALL]
    if insns[-1].name != "ret" or insns[-1].op_str or not calls \
            or 0x66 in split_prefixes(insns[-1].raw, decoder.bits)[0]:
        return None
    call = max(calls)
    sp = {"rsp", "esp", "sp"}
    for i in range(call + 1, len(insns) - 1):
        link = trace.links.get(i)
        if link in (Link.JMP, Link.JCC):
            continue  # (a jcc leaves when taken; on the trace's path it changes nothing)
        insn = insns[i]
        if link is not None or insn.rule.action is not Action.IDENT:
            return None
        if not may_store_or_move_sp(insn.name, insn.op_str):
            continue
        memory, registers = decoder.writes(insn)
        if memory or sp & registers:
            return None
    return insns[call].next


class BlockCache:
    """Scanned blocks by pc, so that a block linked into several traces is decoded once.
    Only blocks of placed translations are remembered, and all are forgotten whenever
    translations are dropped (their bytes may have changed): the write protection of
    translated code is what keeps an entry true."""

    def __init__(self, decoder: Decoder, fetch: Callable[[int, int], bytes]):
        self.decoder = decoder
        self.fetch = fetch
        self._blocks: dict[int, Block] = {}

    def scan(self, pc: int, cap: int = MAX_BLOCK_INSNS) -> Block:
        """The block at ``pc`` of at most ``cap`` instructions."""
        block = self._blocks.get(pc)
        if block is not None:
            n = len(block.insns)
            if n > cap:  # what a scan with the smaller cap finds: its first cap instructions
                return Block(pc, block.insns[:cap], StopReason.SIZE_CAP)
            if n == cap or block.stop is not StopReason.SIZE_CAP:
                return block
        return scan_block(self.decoder, self.fetch, pc, max_insns=cap)

    def remember(self, trace: Trace) -> None:
        for block in trace.blocks:  # (a block cut short by a smaller cap is not kept)
            if block.stop is not StopReason.SIZE_CAP or len(block.insns) == MAX_BLOCK_INSNS:
                self._blocks[block.pc] = block

    def forget(self) -> None:
        self._blocks.clear()


def build_trace(blocks: BlockCache, pc: int, max_insns: int | None = None,
                placed: Callable[[int], bool] = lambda pc: False) -> Trace:
    """The trace from ``pc``: its first block, then linked blocks (rules above)."""
    tail = max_insns is not None
    limit = max_insns if tail else MAX_TRACE_INSNS
    trace = Trace([blocks.scan(pc, min(limit, MAX_BLOCK_INSNS))])
    count = len(trace.blocks[0].insns)
    while len(trace.blocks) < MAX_TRACE_BLOCKS and trace.blocks[-1].insns:
        found = link_of(trace.blocks[-1].insns[-1], blocks.decoder.bits)
        if found is None:
            back = _return_of(trace, blocks.decoder)
            if back is None:
                break
            found = Link.RET, back
        link, at = found
        if link is Link.JCC and tail or any(b.pc == at for b in trace.blocks) \
                or count >= limit:
            break
        if link in (Link.JMP, Link.CALL) and placed(at):
            break
        block = blocks.scan(at, min(limit - count, MAX_BLOCK_INSNS))
        if not block.insns or is_rep_string(block.insns[0]):
            break
        trace.links[count - 1] = link
        trace.blocks.append(block)
        count += len(block.insns)
    return trace
