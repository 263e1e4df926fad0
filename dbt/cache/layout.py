"""Where the binary translator's structures live in the monitor's memory.

    offset (from MONITOR_BASE)   size     unicorn perms   what
    0x0020_0000                  2 MiB    read/write      the vCPU area: virtual flags, scratch
                                                          slots, the instruction-budget counter
    0x0040_0000                  2 MiB    read            the indirect-branch lookup table
    0x0060_0000                  10 MiB   read/execute    the code cache

The lookup table and the code cache are written only by the monitor (unicorn's
mem_write ignores protections); a guest store to them faults. Regions are
2 MiB aligned so that 64-bit mode maps them with large pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE

from dbt.monitor.machine import Machine

VCPU_OFFSET, VCPU_SIZE = 0x0020_0000, 0x0020_0000
TABLE_OFFSET, TABLE_SIZE = 0x0040_0000, 0x0020_0000
CACHE_OFFSET, CACHE_SIZE = 0x0060_0000, 0x00A0_0000

TABLE_ENTRIES = 1 << 16  # indexed by the low 16 bits of the guest pc
#: The vCPU slots sit this far into their region. unicorn's TLB is direct-mapped on the
#: low bits of the page number, and its victim TLB does not save a page that keeps
#: colliding: at a page number ending in 00 the slots shared a TLB set with guest
#: memory at 0x100000-aligned addresses and the code cache, and every slot access took
#: the slow path (60 ns instead of 2.5 ns per block in a measured loop).
VCPU_SLOTS_AT = 0x5B000

#: slots of the vCPU area, 8 bytes each (rem, vif, viopl adjacent: read together by callouts);
#: vmask: the bits of IF and IOPL the guest's CPL lets it change (0: cli/sti fault)
SLOTS = ("save_c", "save_d", "jump_slot", "rem", "vif", "viopl", "tmp", "save_sp", "target",
         "hits", "pending", "rep_c", "vmask")


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

    def slot(self, name: str) -> int:
        return self.vcpu + 8 * SLOTS.index(name)

    def slot_phys(self, name: str) -> int:
        return self.vcpu_phys + 8 * SLOTS.index(name)

    @property
    def entry_size(self) -> int:
        return 16 if self.bits == 64 else 8

    @classmethod
    def map(cls, machine: Machine) -> Layout:
        from dbt.monitor.machine import MONITOR_BASE

        vcpu = machine.map_monitor(VCPU_OFFSET, VCPU_SIZE, UC_PROT_READ | UC_PROT_WRITE)
        vcpu += VCPU_SLOTS_AT
        table = machine.map_monitor(TABLE_OFFSET, TABLE_SIZE, UC_PROT_READ)
        cache = machine.map_monitor(CACHE_OFFSET, CACHE_SIZE, UC_PROT_READ | UC_PROT_EXEC)
        return cls(vcpu, table, cache, MONITOR_BASE + CACHE_OFFSET, MONITOR_BASE + TABLE_OFFSET,
                   MONITOR_BASE + VCPU_OFFSET + VCPU_SLOTS_AT, machine.bits)
