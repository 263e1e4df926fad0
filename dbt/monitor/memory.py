"""Memory virtualization: the monitor's TLB over guest RAM (the EPT role), and the
shadow MMU over the guest's own page tables.

With unicorn's default mapping every guest store takes the softmmu slow path
(DESIGN §5). In ``fast`` mode the monitor owns the TLB instead: unicorn runs in
virtual-TLB mode and calls :meth:`GuestMemory.fill` on each TLB miss, which maps
guest-physical pages 1:1 and gives a page read/write until code is first
fetched from it, then read/write/execute for good. A data page's entry thus
never has execute permission, which is what keeps stores on unicorn's fast
path; a page that ever held code keeps an executable entry, so two functions
rewritten on one page are both seen (the unsafe variants in DESIGN §5 are not
used). Under ``bt`` guest RAM never becomes executable at all: only the code
cache runs.

Once the guest turns paging on (32-bit: CR0.PG; 64-bit: a CR3 other than dbt's
boot tables), the MMU mode decides (``--mmu``):

- ``shadow`` — what a software VMM must do: every fill walks the guest's page
  tables (:mod:`dbt.monitor.paging`), sets their accessed and dirty bits, and
  installs guest-virtual → host entries with the guest's permissions (less
  execute on data pages, as above). unicorn's TLB is the shadow: it is flushed
  whenever the guest's translations may change (CR3, CR0, CR4 writes and
  ``invlpg``, exactly when a hardware TLB is), so it can never hold a
  translation the guest has withdrawn and invalidated. A walk that fails makes
  the fill refuse; the engine then injects #PF with the error code and CR2.
- ``nested`` — what hardware with EPT/NPT does: the first fill after the guest
  turned paging on switches unicorn to its own page walker (QEMU's, in C), which
  raises #PF itself; guest-physical memory stays mapped 1:1.

In 64-bit mode the fill also provides the high alias of the monitor's memory
(:func:`~dbt.monitor.machine.monitor_va`): under ``bt`` the guest's linear
addresses there belong to the monitor (the code cache), as VMware's monitor
kept the top of the linear address space for itself.
"""

from __future__ import annotations

from unicorn import unicorn_const as C

from dbt.monitor.machine import MONITOR_BASE, MONITOR_SIZE, monitor_va
from dbt.monitor.paging import FETCH, READ, WRITE, PageFault, Walker

PAGE_MASK = ~0xFFF
RW = C.UC_PROT_READ | C.UC_PROT_WRITE
MONITOR_END = MONITOR_BASE + MONITOR_SIZE
UNBACKED = MONITOR_END  # a physical address nothing is mapped at
_ACCESS = {C.UC_MEM_READ: READ, C.UC_MEM_WRITE: WRITE, C.UC_MEM_FETCH: FETCH}
#: unicorn's TLB starts with 256 entries (CPU_TLB_DYN_DEFAULT_BITS = 8); a flush grows it
#: to twice its size when more than 70 % of its entries were in use (see _note_fill)
TLB_START = 256
GROW_USE = 0.7


class GuestMemory:
    def __init__(self, machine, exec_guest: bool, mmu: str, walker: Walker):
        self.machine = machine
        self.exec_guest = exec_guest
        self.ram_size = machine.ram_size
        self.bits = machine.bits
        #: under bt, the linear addresses that are the monitor's (see the module docstring)
        self.window_lo = self.window_hi = 0
        if not exec_guest:
            self.window_lo = monitor_va(self.bits, MONITOR_BASE)
            self.window_hi = self.window_lo + MONITOR_SIZE
        self.code_pages: set[int] = set()
        self.monitor_code_pages: set[int] = set()
        self.fills = 0
        self.since_flush = 0
        self.tlb_size = TLB_START  # what the TLB has grown to, as far as the monitor knows
        self.pages_since_flush: set[int] = set()  # pages filled since the last resize flush
        self.want_flush = False
        #: engines whose count unicorn keeps (hw, exact clock) turn this off: a stop
        #: requested in the middle of a block was measured to skew unicorn's counter
        self.resize_stops = True
        self.resizes = 0
        self.mmu = mmu
        self.walker = walker
        #: is the access being filled a user-mode one (CPL 3)? set by the monitor
        self.user = lambda: False
        #: the last fill that refused, and its access kind (see fill)
        self.page_fault: tuple[PageFault, int] | None = None
        self.page_faults = 0
        self.shadow_fills = 0
        self.shadow_flushes = 0
        self.nested_walker = False  # unicorn walks the guest's tables itself (nested)
        uc = machine.uc
        uc.ctl_set_tlb_mode(C.UC_TLB_VIRTUAL)
        uc.hook_add(C.UC_HOOK_TLB_FILL, self.fill)

    def fill(self, uc, vaddr: int, access: int, entry, _ud) -> bool:
        page = vaddr & PAGE_MASK
        self._note_fill(uc, page)
        if self.window_lo <= page < self.window_hi:  # the monitor's memory (engine bt)
            return self._monitor(page - self.window_lo + MONITOR_BASE, page, access, entry)
        if access == C.UC_MEM_FETCH and not self.exec_guest:
            # bt runs nothing but its code cache: refuse, without walking the guest's
            # tables (that would set accessed bits the guest never asked for)
            return False
        prot = C.UC_PROT_ALL  # guest paging off: guest-physical = linear
        if self.machine.guest_paging():
            if self.mmu == "nested":
                # unicorn's own walker from now on; this one miss is served below
                uc.ctl_set_tlb_mode(C.UC_TLB_CPU)
                self.nested_walker = True
            else:
                self.shadow_fills += 1
            try:
                phys, _, prot = self.walker.translate(self.machine.paging_mode(), vaddr,
                                                      _ACCESS[access], self.user())
            except PageFault as e:
                self.page_fault = (e, _ACCESS[access])
                self.page_faults += 1
                return False  # unicorn ends emu_start with UC_ERR_EXCEPTION, at the insn
            page = phys & PAGE_MASK
            if page >= self.ram_size:  # a leaf pointing outside guest RAM: a bus error
                entry.paddr = page if not MONITOR_BASE <= page < MONITOR_END else UNBACKED
                entry.perms = prot
                return True
        if page >= self.ram_size:
            return self._monitor(page, page, access, entry)
        entry.paddr = page
        if access == C.UC_MEM_FETCH and self.exec_guest:
            self.code_pages.add(page)
        # a data page's entry never gets execute permission (see the module docstring)
        exe = prot & C.UC_PROT_EXEC and page in self.code_pages
        entry.perms = (prot & RW) | (C.UC_PROT_EXEC if exe else 0)
        return True

    def _monitor(self, phys: int, page: int, access: int, entry) -> bool:
        """Beyond guest RAM: the monitor's memory (engine bt), or nothing (unicorn then
        reports the unmapped access)."""
        entry.paddr = phys
        # the code cache is fetched from; the vCPU area and tables only read and written:
        # an executable entry would put their stores on the slow path (and the region's
        # own permissions still apply)
        if access == C.UC_MEM_FETCH:
            self.monitor_code_pages.add(page)
        entry.perms = C.UC_PROT_ALL if page in self.monitor_code_pages else RW
        return True

    def take_page_fault(self) -> tuple[PageFault, int] | None:
        """The #PF a refused fill left (and its access kind), once."""
        pf, self.page_fault = self.page_fault, None
        return pf

    # --- TLB resize policy -----------------------------------------------------------------
    def _note_fill(self, uc, page: int) -> None:
        """Count a fill; when the TLB is too small for the working set, stop at the next
        block boundary so that the engine flushes (:meth:`flush_if_wanted`).

        unicorn's TLB starts small and QEMU resizes it only when it is flushed, and by at
        most a doubling per flush. A guest whose working set outgrows it takes a Python
        fill on nearly every access (a 10 MB sieve: 4.4 M fills and 22 MIPS with no
        resize). The TLB is too small when, since the last resize flush, more pages were
        filled than would make QEMU grow it, and the fills come to twice its size (a
        working set that fits is filled once). Both bounds follow the TLB as it grows: a
        fixed number of fills below the working set made each refill after a flush ask
        for the next one (2048 fills: 1,480 flushes, 3.0 M fills on that sieve); counting
        fills alone asks for useless flushes when other flushes cause them (a store
        beside translated code write-protects its page, which flushes the TLB)."""
        self.fills += 1
        self.since_flush += 1
        self.pages_since_flush.add(page)
        if self.since_flush >= 2 * self.tlb_size and not self.want_flush \
                and self.resize_stops and self._too_small():
            self.want_flush = True
            uc.emu_stop()

    def _too_small(self) -> bool:
        return len(self.pages_since_flush) > GROW_USE * self.tlb_size

    def flush_if_wanted(self) -> bool:
        """Flush the TLB if a fill asked for it (see :meth:`fill`); True if it did."""
        if not self.want_flush:
            return False
        self.want_flush = False
        self.since_flush = 0
        self.pages_since_flush = set()
        self.tlb_size *= 2
        self.resizes += 1
        self.machine.flush_tlb()
        return True

    def flush_if_busy(self) -> None:
        """For engines that cannot be stopped mid-block: flush at a clean stop when many
        fills happened since the last flush, so that QEMU may grow the TLB."""
        if self.since_flush >= 2 * self.tlb_size and self._too_small():
            self.want_flush = True
            self.flush_if_wanted()

    def stats(self) -> dict:
        """Fill statistics; under ``nested`` the fills of unicorn's own walker are not seen."""
        return {"tlb_fills": self.fills, "code_pages": len(self.code_pages),
                "data_pages_filled": max(0, self.fills - len(self.code_pages)),
                "tlb_resize_flushes": self.resizes,
                "shadow_fills": self.shadow_fills, "shadow_flushes": self.shadow_flushes,
                "page_faults_from_fills": self.page_faults,
                "nested_walker": self.nested_walker}
