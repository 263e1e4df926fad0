"""What the translator produces: fragments of host code and the sites in them."""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field

from dbt.scanner import Block, Insn


class SiteKind(enum.Enum):
    CALLOUT = "callout"  # a sensitive instruction emulated by the monitor's handler
    EXIT = "exit"  # a direct branch leaving the fragment, not yet chained
    #: the instruction-budget chunk ran out (or the monitor asked for an exit): the prologue's
    #: probe load faulted (the site's key is the load's address, not an int3's)
    BUDGET = "budget"
    FAULT = "fault"  # the block starts with bytes that fault (#UD, #PF)
    MISS = "miss"  # the indirect-branch map has no entry for the target (the shared routine)
    REP_GUARD = "rep-guard"  # a rep string instruction may outrun the budget chunk


@dataclass(eq=False)
class Site:
    """A trap into the monitor: an ``int3`` whose following address identifies it (or, for
    BUDGET, a load that faults)."""

    kind: SiteKind
    fragment: Fragment | None
    index: int = 0  # which guest instruction of the block (for exact counting)
    insn: Insn | None = None
    target: int | None = None  # EXIT: guest pc the branch goes to
    key: int = 0  # host address just after the int3: what unicorn reports
    resume: int = 0  # host address where translated code goes on when the insn falls through
    jump_at: int = 0  # EXIT: the jmp/jcc rel32 that chaining points at a fragment
    stub: int = 0  # EXIT: where that jump goes until then (and after unchaining)


@dataclass(eq=False)
class Fragment:
    """The translation of one guest block, placed in the code cache."""

    guest_pc: int
    block: Block
    tc: int  # the entry of direct branches (after the ibl entry)
    code: bytes  # the hot code, from ``start``
    start: int = 0  # the first host byte: the ibl entry, where indirect branches arrive
    cold_tc: int = 0  # exit stubs, lookup slow paths, the budget exit
    cold_code: bytes = b""
    ninsns: int = 0  # guest instructions counted by the prologue
    counted: bool = False  # has a counting prologue (exact clock)
    starts: list[int] = field(default_factory=list)  # host address of each guest insn's code
    sites: list[Site] = field(default_factory=list)
    exits: list[Site] = field(default_factory=list)
    scratch: list[tuple[int, int]] = field(default_factory=list)  # may fault with ecx saved
    #: host address -> the one sensitive mnemonic allowed there (int3 sites, pushf/popf)
    sanctioned: dict[int, str] = field(default_factory=dict)
    incoming: set[int] = field(default_factory=set)  # patch_at addresses chained to us
    valid: bool = True
    #: (guest-linear page, guest-physical page) of each page its guest bytes are on
    pages: tuple[tuple[int, int], ...] = ()

    def physical_ranges(self) -> list[tuple[int, int]]:
        """The guest-physical byte ranges its guest code was translated from."""
        lo, hi = self.block.pc, self.block.end
        out = []
        for vpage, page in self.pages:
            a, b = max(lo, vpage), min(hi, vpage + 4096)
            if a < b:
                out.append((page + a - vpage, page + b - vpage))
        return out

    @property
    def tc_end(self) -> int:
        return self.start + len(self.code)

    @property
    def cold_end(self) -> int:
        return self.cold_tc + len(self.cold_code)

    @property
    def guest_end(self) -> int:
        return self.block.end

    def insn_index_at(self, host: int) -> int:
        """Index of the guest instruction whose translation contains host address ``host``."""
        return max(0, bisect.bisect_right(self.starts, host) - 1)

    def in_ranges(self, host: int, ranges: list[tuple[int, int]]) -> bool:
        return any(a <= host < b for a, b in ranges)
