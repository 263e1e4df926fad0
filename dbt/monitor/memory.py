"""Memory virtualization: the monitor's TLB over guest RAM (the EPT role).

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

In 64-bit mode the fill also provides the high alias of the monitor's memory
(:func:`~dbt.monitor.machine.monitor_va`); guest page tables are not walked
yet, so a guest that turns on paging of its own is refused with a fault.
"""

from __future__ import annotations

from unicorn import unicorn_const as C
from unicorn import x86_const as U

PAGE_MASK = ~0xFFF
RW = C.UC_PROT_READ | C.UC_PROT_WRITE
#: unicorn's TLB starts with 256 entries (CPU_TLB_DYN_DEFAULT_BITS = 8); a flush grows it
#: to twice its size when more than 70 % of its entries were in use (see _note_fill)
TLB_START = 256
GROW_USE = 0.7


class GuestMemory:
    def __init__(self, machine, exec_guest: bool):
        from dbt.monitor.machine import HIGH_ALIAS, PT_BASE

        self.machine = machine
        self.exec_guest = exec_guest
        self.ram_size = machine.ram_size
        self.bits = machine.bits
        self.high_alias = HIGH_ALIAS
        self.boot_cr3 = PT_BASE
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
        self.paging_refused = 0
        uc = machine.uc
        uc.ctl_set_tlb_mode(C.UC_TLB_VIRTUAL)
        uc.hook_add(C.UC_HOOK_TLB_FILL, self.fill)

    def fill(self, uc, vaddr: int, access: int, entry, _ud) -> bool:
        page = vaddr & PAGE_MASK
        self._note_fill(uc, page)
        if page < self.ram_size:
            if self._guest_paging(uc):
                self.paging_refused += 1
                return False
            entry.paddr = page
            if access == C.UC_MEM_FETCH and self.exec_guest:
                self.code_pages.add(page)
            entry.perms = C.UC_PROT_ALL if page in self.code_pages else RW
            return True
        if self.bits == 64 and page >= self.high_alias:
            entry.paddr = page - self.high_alias  # the monitor's memory (engine bt)
        else:
            entry.paddr = page  # outside guest RAM: unicorn reports the unmapped access
        # the code cache is fetched from; the vCPU area and tables only read and written:
        # an executable entry would put their stores on the slow path (and the region's
        # own permissions still apply)
        if access == C.UC_MEM_FETCH:
            self.monitor_code_pages.add(page)
        entry.perms = C.UC_PROT_ALL if page in self.monitor_code_pages else RW
        return True

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

    def _guest_paging(self, uc) -> bool:
        if self.bits == 64:
            return uc.reg_read(U.UC_X86_REG_CR3) != self.boot_cr3
        return bool(uc.reg_read(U.UC_X86_REG_CR0) & (1 << 31))

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
        return {"tlb_fills": self.fills, "code_pages": len(self.code_pages),
                "data_pages_filled": max(0, self.fills - len(self.code_pages)),
                "tlb_resize_flushes": self.resizes, "paging_refused": self.paging_refused}
