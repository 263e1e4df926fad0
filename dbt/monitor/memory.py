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
RESIZE_AFTER = 2048  # TLB fills since the last flush before asking for one


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
        self.fills += 1
        self.since_flush += 1
        if self.since_flush == RESIZE_AFTER and self.resize_stops:
            # unicorn's TLB starts small and QEMU resizes it only when it is flushed: a
            # guest whose working set outgrows it would take a Python fill on nearly every
            # access (measured: 814,500 fills, 22 MIPS on a 2.8 MB sieve). Stop at the next
            # block boundary so the engine flushes (QEMU then grows the TLB) and goes on.
            self.want_flush = True
            uc.emu_stop()
        page = vaddr & PAGE_MASK
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
        self.resizes += 1
        self.machine.flush_tlb()
        return True

    def flush_if_busy(self) -> None:
        """For engines that cannot be stopped mid-block: flush at a clean stop when many
        fills happened since the last flush, so that QEMU may grow the TLB."""
        if self.since_flush >= RESIZE_AFTER:
            self.want_flush = True
            self.flush_if_wanted()

    def stats(self) -> dict:
        return {"tlb_fills": self.fills, "code_pages": len(self.code_pages),
                "data_pages_filled": max(0, self.fills - len(self.code_pages)),
                "tlb_resize_flushes": self.resizes, "paging_refused": self.paging_refused}
