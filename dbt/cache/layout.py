"""Where the binary translator's structures live in the monitor's memory.

    offset (from MONITOR_BASE)   size     unicorn perms   what
    0x0020_0000                  2 MiB    read/write      the vCPU area: virtual flags, scratch
                                                          slots, the instruction-budget counter
    0x0040_0000                  4 MiB    read            the indirect-branch map
    0x0080_0000                  8 MiB    read/execute    the code cache

Only the vCPU area from its slots on is mapped: the page below the slots is the
*probe hole*, which the exact clock's prologue reads when the budget chunk is spent
(a load that faults is its flags-free conditional exit, see the templates).

The lookup table and the code cache are written only by the monitor; a guest
store to them faults. The monitor writes them in host memory that backs them
(:class:`~dbt.monitor.hostmem.HostBacked`), not with ``uc.mem_write``: on a write-protected region that
lifts the protection and puts it back, two rebuilds of unicorn's memory map and
a TLB flush (measured: 32 us a write, against 1 us into guest RAM; placing one
fragment writes three times). unicorn does not see such a write, so whoever
changes code unicorn may have translated drops its blocks (``ctl_remove_cache``),
as after any patch. Regions are 2 MiB aligned so that 64-bit mode maps them with
large pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE

from dbt.monitor.hostmem import HostBacked
from dbt.monitor.machine import Machine

VCPU_OFFSET, VCPU_SIZE = 0x0020_0000, 0x0020_0000
TABLE_OFFSET, TABLE_SIZE = 0x0040_0000, 0x0040_0000
CACHE_OFFSET, CACHE_SIZE = 0x0080_0000, 0x0080_0000
#: The vCPU slots sit this far into their region. unicorn's TLB is direct-mapped on the
#: low bits of the page number, and its victim TLB does not save a page that keeps
#: colliding: at a page number ending in 00 the slots shared a TLB set with guest
#: memory at 0x100000-aligned addresses and the code cache, and every slot access took
#: the slow path (60 ns instead of 2.5 ns per block in a measured loop).
VCPU_SLOTS_AT = 0x5B000

#: slots of the vCPU area, 8 bytes each (rem, vif, viopl adjacent: read together by callouts);
#: vmask: the bits of IF and IOPL the guest's CPL lets it change (0: cli/sti fault)
SLOTS = ("save_c", "save_d", "jump_slot", "rem", "vif", "viopl", "tmp", "save_sp", "target",
         "pending", "rep_c", "vmask")


@dataclass(frozen=True)
class Layout:
    """Addresses (as translated code sees them) of the bt structures for one machine."""

    vcpu: int
    table: int
    cache: int
    cache_phys: int
    table_phys: int
    vcpu_phys: int
    bits: int
    table_mem: HostBacked = field(compare=False)
    cache_mem: HostBacked = field(compare=False)

    def slot(self, name: str) -> int:
        return self.vcpu + 8 * SLOTS.index(name)

    def slot_phys(self, name: str) -> int:
        return self.vcpu_phys + 8 * SLOTS.index(name)

    @classmethod
    def map(cls, machine: Machine) -> Layout:
        from dbt.monitor.machine import MONITOR_BASE

        vcpu = machine.map_monitor(VCPU_OFFSET + VCPU_SLOTS_AT, VCPU_SIZE - VCPU_SLOTS_AT,
                                   UC_PROT_READ | UC_PROT_WRITE)
        table_mem = HostBacked(MONITOR_BASE + TABLE_OFFSET, TABLE_SIZE)
        cache_mem = HostBacked(MONITOR_BASE + CACHE_OFFSET, CACHE_SIZE)
        table = machine.map_monitor(TABLE_OFFSET, TABLE_SIZE, UC_PROT_READ, table_mem.host)
        cache = machine.map_monitor(CACHE_OFFSET, CACHE_SIZE, UC_PROT_READ | UC_PROT_EXEC,
                                    cache_mem.host)
        return cls(vcpu, table, cache, cache_mem.phys, table_mem.phys,
                   MONITOR_BASE + VCPU_OFFSET + VCPU_SLOTS_AT, machine.bits, table_mem,
                   cache_mem)
