"""The code cache: placement of fragments, the guest->host map, chaining, the indirect-branch
map, invalidation by guest address range, and flushing when full.

Invariants:
- every direct link (a patched jmp/jcc) is recorded at both ends: the source
  site knows its target, the target fragment knows its incoming jumps, so
  invalidating a fragment can point them back at their exit stubs;
- a guest page with live translations is write-protected in unicorn, so a
  guest store to it traps before stale code can run (DESIGN §3, invariant 5);
- after any patch of code unicorn may already have translated, its own stale
  blocks are dropped (``ctl_remove_cache``, DESIGN §5).
"""

from __future__ import annotations

import bisect

from unicorn import UC_HOOK_MEM_WRITE_PROT, UC_PROT_READ, UC_PROT_WRITE

from dbt.cache.iblmap import JUMP_TABLES, IblMap
from dbt.cache.layout import CACHE_SIZE, Layout
from dbt.errors import CacheFull
from dbt.monitor.machine import Machine
from dbt.translator.fragment import Fragment, Site, SiteKind
from dbt.translator.templates import INT3
from dbt.translator.trace import Trace, pages_of
from dbt.translator.translate import Translator, retarget

PAGE = 4096
HOT_SIZE = CACHE_SIZE * 3 // 5  # fragments' hot code; the rest holds their cold code


class CodeCache:
    def __init__(self, machine: Machine, layout: Layout, translator: Translator):
        self.machine = machine
        self.uc = machine.uc
        self.layout = layout
        self.translator = translator
        self.fragments: dict[int, Fragment] = {}  # guest pc -> fragment
        #: guest pc -> (fragment, host address) of a side entry (a block inside a trace)
        self.side: dict[int, tuple[Fragment, int]] = {}
        self.sites: dict[int, Site] = {}  # host address after the int3 -> site
        #: guest-physical page -> fragments translated from it (what a store hits)
        self.by_page: dict[int, set[Fragment]] = {}
        #: guest-linear page -> fragments fetched through it (what a remapping changes)
        self.by_vpage: dict[int, set[Fragment]] = {}
        self.placed: list[Fragment] = []  # in host-address order
        self.placed_tc: list[int] = []
        self.stats = {"chained": 0, "unchained": 0, "invalidations": 0, "flushes": 0,
                      "invalidated_fragments": 0, "jump_tables": 0}
        self.epoch = 0  # bumped whenever fragments are invalidated or flushed
        self.hooks: dict[int, int] = {}  # protected guest page -> its write-protection hook
        self.on_write_prot = None  # set by the engine
        self.map = IblMap(layout.table_mem, layout.table, layout.bits)
        self._reset()

    # --- allocation and flushing ----------------------------------------------------------
    def _reset(self) -> None:
        lay = self.layout
        self.ptr = lay.cache
        self.end = lay.cache + HOT_SIZE
        self.cold_ptr = self.end
        self.cold_end = lay.cache + CACHE_SIZE
        # the map's miss routine: registers back, int3; jmp [jump_slot]
        t = self.translator.t
        miss = Site(SiteKind.MISS, None)
        code = t["ibl_miss"].code + INT3 + t["jump_slot"].code
        lay.cache_mem.write(lay.cache_phys, code)
        miss.key = lay.cache + len(t["ibl_miss"].code) + 1
        self.sites[miss.key] = miss
        self.miss_key = miss.key
        self.ptr = (lay.cache + len(code) + 15) & ~15
        self.map.reset(lay.cache)
        self.table_ptr = self.map.jump_tables  # translated jump tables, never freed
        #: guest page -> fragments that translated a jump table on it
        self.table_pages: dict[int, set[Fragment]] = {}

    def flush(self) -> None:
        """Drop every translation (the cache is full, or everything changed)."""
        self.stats["flushes"] += 1
        self.epoch += 1
        for page in list(self.by_page):
            self._unprotect(page)
        self.fragments.clear()
        self.side.clear()
        self.sites.clear()
        self.by_page.clear()
        self.by_vpage.clear()
        self.placed.clear()
        self.placed_tc.clear()
        self._reset()
        self.uc.ctl_remove_cache(self.layout.cache, self.layout.cache + CACHE_SIZE)

    # --- lookup and translation -------------------------------------------------------------
    def lookup(self, pc: int) -> Fragment | None:
        """The fragment whose trace starts at ``pc`` (what indirect branches need: its
        ibl entry)."""
        return self.fragments.get(pc)

    def entry(self, pc: int) -> tuple[Fragment, int] | None:
        """Where a direct branch to ``pc`` may go: the head of a fragment for ``pc``, or
        else a side entry of a fragment whose trace holds ``pc``'s block."""
        frag = self.fragments.get(pc)
        if frag is not None:
            return frag, frag.tc
        return self.side.get(pc)

    def place(self, trace: Trace, cached: bool = True,
              pages: tuple[tuple[int, int], ...] | None = None,
              table: tuple[int, list[int]] | None = None) -> Fragment:
        """Translate a trace into the cache; ``cached=False`` for one-off fragments
        (budget tails, single-instruction restarts) that nothing may look up.
        ``pages``: (linear page, physical page) of each page the trace's bytes are on
        (default: linear = physical, the guest's paging off). ``table``: the guest jump
        table the trace ends with, (guest address, targets), if it is to be translated
        (the guest's paging off)."""
        spec = None
        if table is not None:
            size = self.layout.bits // 8 * len(table[1])
            if self.table_ptr + size <= self.map.jump_tables + JUMP_TABLES:
                spec = (self.table_ptr, table[1], (table[0], table[0] + size))
        frag = self.translator.translate(trace, self.ptr, self.cold_ptr, spec)
        if frag.tc_end > self.end or frag.cold_end > self.cold_end:
            raise CacheFull(f"code cache full ({CACHE_SIZE >> 20} MiB)")
        code = self.layout.cache_mem  # fresh addresses: nothing of unicorn's to drop
        code.write(self._phys(frag.start), frag.code)
        if frag.cold_code:
            code.write(self._phys(frag.cold_tc), frag.cold_code)
        self.ptr = (frag.tc_end + 15) & ~15
        self.cold_ptr = (frag.cold_end + 15) & ~15
        for site in frag.sites:
            self.sites[site.key] = site
        self.placed.append(frag)
        self.placed_tc.append(frag.start)
        if spec is not None:
            self.stats["jump_tables"] += 1
            self.table_ptr = (self.table_ptr + size + 15) & ~15
            for site in frag.exits:
                if site.slot_at:
                    self._write_slot(site.slot_at, site.stub)
            for p in pages_of([frag.table[2]]):
                self.table_pages.setdefault(p, set()).add(frag)
        if frag.insns:
            if pages is None:
                pages = tuple((p, p) for p in frag.guest_pages())
            frag.pages = pages
            for vpage, page in pages:
                self.by_page.setdefault(page, set()).add(frag)
                self.by_vpage.setdefault(vpage, set()).add(frag)
                self._protect(page)
        if cached:
            self.fragments[trace.pc] = frag
            self.map.set(trace.pc, frag.start)
            for pc, host in frag.entries.items():
                self.side.setdefault(pc, (frag, host))
        return frag

    def scratch(self, code: bytes) -> int:
        """Place monitor code that runs once (not a translation) in the cold region."""
        if self.cold_ptr + len(code) > self.cold_end:
            raise CacheFull("code cache full")
        at = self.cold_ptr
        self.layout.cache_mem.write(self._phys(at), code)
        self.cold_ptr = (at + len(code) + 15) & ~15
        return at

    def fragment_at(self, host: int) -> Fragment | None:
        """The fragment whose code contains host address ``host``."""
        i = bisect.bisect_right(self.placed_tc, host) - 1
        if i >= 0 and host < self.placed[i].tc_end:
            return self.placed[i]
        return None

    def _phys(self, host: int) -> int:
        return host - self.layout.cache + self.layout.cache_phys

    def reached(self, frag: Fragment) -> None:
        """An indirect branch missed on ``frag``'s pc: put it (back) in the map (its region
        lost its table, or, in 64-bit mode, another pc with the same low half took the
        entry)."""
        if frag.valid and self.fragments.get(frag.guest_pc) is frag:
            self.map.set(frag.guest_pc, frag.start)

    # --- chaining ---------------------------------------------------------------------------
    def chain(self, site: Site, target: Fragment, at: int | None = None) -> None:
        """Point an exit's jump straight at the target fragment, at its head or at one
        of its side entries (``at``), recorded both ways."""
        if not site.fragment or not site.fragment.valid or not target.valid:
            return
        self._relink(site, target.tc if at is None else at)
        target.incoming.add(site.key)
        self.stats["chained"] += 1

    def _relink(self, site: Site, to: int) -> None:
        """Aim an exit at host address ``to``: its jump, or its jump-table entry."""
        if site.slot_at:
            self._write_slot(site.slot_at, to)
        else:
            self._patch_jump(site.jump_at, to)

    def _write_slot(self, at: int, to: int) -> None:
        """A jump-table entry (data: unicorn reads it when the jump runs)."""
        size = self.layout.bits // 8
        self.layout.table_mem.write(at - self.layout.table + self.layout.table_phys,
                                    (to % 2**(8 * size)).to_bytes(size, "little"))

    def _patch_jump(self, at: int, target: int) -> None:
        phys = self._phys(at)
        code = self.layout.cache_mem
        new = retarget(code.read(phys, 6), at, target)
        code.write(phys, new)
        self.uc.ctl_remove_cache(at, at + 6)

    # --- invalidation (self-modifying code) ------------------------------------------------
    def overlaps_code(self, start: int, end: int) -> bool:
        """Does the guest-physical range [start, end) hold bytes of a live translation?"""
        for page in range(start & ~(PAGE - 1), end, PAGE):
            for f in self.by_page.get(page, ()):
                for lo, hi in f.physical_ranges():
                    if lo < end and start < hi:
                        return True
        return False

    def invalidate(self, start: int, end: int) -> int:
        """Drop every fragment translated from the physical pages [start, end) touches."""
        doomed: set[Fragment] = set()
        for page in range(start & ~(PAGE - 1), end, PAGE):
            doomed |= self.by_page.get(page, set())
        return self.drop(doomed)

    def remapped(self, probe, page: int | None = None) -> int:
        """The guest's translations changed (CR3, CR0/CR4, EFER written, or ``invlpg
        page``): drop the fragments fetched through a linear page that ``probe(page)``
        now maps elsewhere (or not at all), as a hardware iTLB would forget them."""
        doomed: set[Fragment] = set()
        vpages = list(self.by_vpage) if page is None else [page]
        for vpage in vpages:
            frags = self.by_vpage.get(vpage)
            if not frags:
                continue
            phys = probe(vpage)
            for f in frags:
                if dict(f.pages).get(vpage) != phys:
                    doomed.add(f)
        return self.drop(doomed)

    def drop(self, doomed: set[Fragment]) -> int:
        for f in doomed:
            self._drop(f)
        if doomed:
            self.epoch += 1
            self.stats["invalidations"] += 1
            self.stats["invalidated_fragments"] += len(doomed)
        return len(doomed)

    def _drop(self, f: Fragment) -> None:
        f.valid = False
        if self.fragments.get(f.guest_pc) is f:
            del self.fragments[f.guest_pc]
            self.map.clear(f.guest_pc, f.start)
        for pc in f.entries:
            if self.side.get(pc, (None,))[0] is f:
                del self.side[pc]
        for key in f.incoming:  # unchain: send each incoming jump back to its stub
            site = self.sites.get(key)
            if site and site.fragment and site.fragment.valid:
                self._relink(site, site.stub)
                self.stats["unchained"] += 1
        f.incoming.clear()
        if f.table is not None:
            for p in pages_of([f.table[2]]):
                self.table_pages.get(p, set()).discard(f)
        for vpage, page in f.pages:
            frags = self.by_page.get(page)
            if frags is not None:
                frags.discard(f)
                if not frags:
                    del self.by_page[page]
                    self._unprotect(page)
            frags = self.by_vpage.get(vpage)
            if frags is not None:
                frags.discard(f)
                if not frags:
                    del self.by_vpage[vpage]
        self.uc.ctl_remove_cache(f.start, f.tc_end)
        if f.cold_code:
            self.uc.ctl_remove_cache(f.cold_tc, f.cold_end)

    def _protect(self, page: int) -> None:
        """Write-protect a guest page that holds translated code, with a write-protection
        hook on that page alone (a hook on all of RAM would slow every store)."""
        if page in self.hooks:
            return
        self.uc.mem_protect(page, PAGE, UC_PROT_READ)
        self.hooks[page] = self.uc.hook_add(UC_HOOK_MEM_WRITE_PROT, self.on_write_prot, None,
                                            page, page + PAGE - 1)

    def _unprotect(self, page: int) -> None:
        handle = self.hooks.pop(page, None)
        if handle is not None:
            self.uc.hook_del(handle)
        self.uc.mem_protect(page, PAGE, UC_PROT_READ | UC_PROT_WRITE)

    def protect(self, page: int, on: bool) -> None:
        """Let one store through a protected page (on=False), then protect it again."""
        self.uc.mem_protect(page, PAGE, UC_PROT_READ if on else UC_PROT_READ | UC_PROT_WRITE)
