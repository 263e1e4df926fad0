"""What the translator produces: fragments of host code and the sites in them."""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field

from dbt.scanner import Insn
from dbt.translator.trace import Trace, pages_of


class SiteKind(enum.Enum):
    CALLOUT = "callout"  # a sensitive instruction emulated by the monitor's handler
    EXIT = "exit"  # a direct branch leaving the fragment, not yet chained
    #: the instruction-budget chunk ran out (or the monitor asked for an exit): the prologue's
    #: probe load faulted (the site's key is the load's address, not an int3's)
    BUDGET = "budget"
    FAULT = "fault"  # the block starts with bytes that fault (#UD, #PF)
    MISS = "miss"  # the indirect-branch map has no entry for the target (the shared routine)
    REP_GUARD = "rep-guard"  # a rep string instruction may outrun the budget chunk
    #: a read-modify-write instruction bt cannot split (dbt/translator/rmw.py): the monitor
    #: steps its copy in the cold code (``Site.alone``) where no stop can land in it
    ALONE = "alone"


@dataclass(eq=False)
class Site:
    """A trap into the monitor: an ``int3`` whose following address identifies it (or, for
    BUDGET, a load that faults)."""

    kind: SiteKind
    fragment: Fragment | None
    index: int = 0  # which guest instruction of the trace (BUDGET: its segment's first)
    insn: Insn | None = None
    target: int | None = None  # EXIT: guest pc the branch goes to
    key: int = 0  # host address just after the int3: what unicorn reports
    resume: int = 0  # host address where translated code goes on when the insn falls through
    jump_at: int = 0  # EXIT: the jmp/jcc rel32 that chaining points at a fragment
    slot_at: int = 0  # EXIT of a jump table: its entry (a host address) instead of a jump
    stub: int = 0  # EXIT: where that jump goes until then (and after unchaining)
    alone: int = 0  # ALONE: host address of the instruction's copy


@dataclass
class Segment:
    """Instructions that one prologue counts (exact clock): from the start of a trace, or
    from the fall-through of a conditional branch in it, to the next such point."""

    first: int  # index of its first instruction in the trace
    ninsns: int
    pc: int  # guest pc of its first instruction
    entry: int = 0  # host address of its prologue, where it starts again


@dataclass(eq=False)
class Fragment:
    """The translation of one guest trace, placed in the code cache."""

    guest_pc: int
    trace: Trace
    tc: int  # the entry of direct branches (after the ibl entry)
    code: bytes  # the hot code, from ``start``
    start: int = 0  # the first host byte: the ibl entry, where indirect branches arrive
    cold_tc: int = 0  # exit stubs, lookup slow paths, the budget exit
    cold_code: bytes = b""
    insns: list[Insn] = field(default_factory=list)  # the trace's instructions
    segments: list[Segment] = field(default_factory=list)
    counted: bool = False  # has counting prologues (exact clock)
    starts: list[int] = field(default_factory=list)  # host address of each guest insn's code
    sites: list[Site] = field(default_factory=list)
    exits: list[Site] = field(default_factory=list)
    #: host ranges that may fault while a register is held in save_c: (start, end, the
    #: register's number: 0-3 for eax, ecx, edx, ebx)
    scratch: list[tuple[int, int, int]] = field(default_factory=list)
    #: host address -> the one sensitive mnemonic allowed there (int3 sites, pushf/popf)
    sanctioned: dict[int, str] = field(default_factory=dict)
    incoming: set[int] = field(default_factory=set)  # patch_at addresses chained to us
    valid: bool = True
    #: (guest-linear page, guest-physical page) of each page its guest bytes are on
    pages: tuple[tuple[int, int], ...] = ()
    #: a jump table it dispatches through: (host table, guest targets, guest byte range)
    table: tuple[int, list[int], tuple[int, int]] | None = None
    #: side entries: guest pc of a block inside the trace -> host address where a direct
    #: branch may arrive there (see Translator.side_entries)
    entries: dict[int, int] = field(default_factory=dict)

    def guest_ranges(self) -> list[tuple[int, int]]:
        """The guest-linear byte ranges its translation depends on: its code, and the
        jump table it translated."""
        return self.trace.ranges + ([self.table[2]] if self.table else [])

    def guest_pages(self) -> list[int]:
        return pages_of(self.guest_ranges())

    def physical_ranges(self) -> list[tuple[int, int]]:
        """The guest-physical byte ranges its guest code was translated from."""
        out = []
        for lo, hi in self.guest_ranges():
            for vpage, page in self.pages:
                a, b = max(lo, vpage), min(hi, vpage + 4096)
                if a < b:
                    out.append((page + a - vpage, page + b - vpage))
        return out

    def segment_of(self, index: int) -> Segment:
        """The segment that counts the trace's instruction ``index``."""
        return next(s for s in reversed(self.segments) if s.first <= index)

    def pending(self, index: int) -> int:
        """Instructions from ``index`` to the end of its segment: counted by the segment's
        prologue, not yet run when instruction ``index`` is about to run."""
        if not self.counted:
            return 0
        seg = self.segment_of(index)
        return seg.first + seg.ninsns - index

    @property
    def tc_end(self) -> int:
        return self.start + len(self.code)

    @property
    def cold_end(self) -> int:
        return self.cold_tc + len(self.cold_code)

    def insn_index_at(self, host: int) -> int:
        """Index of the guest instruction whose translation contains host address ``host``."""
        return max(0, bisect.bisect_right(self.starts, host) - 1)

    def scratch_register(self, host: int) -> int | None:
        """The register held in save_c at host address ``host``, if any (see scratch)."""
        return next((r for a, b, r in self.scratch if a <= host < b), None)
