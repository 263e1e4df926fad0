"""The indirect-branch map: guest pc -> host entry, exact, walked by translated code
without a compare.

Why no compare: translated code must keep the guest's flags, and the only branch
that tests a register without them (``jecxz``) ends unicorn's block with a return
to its main loop (QEMU's ``gen_eob``), which costs as much as the rest of an
indirect branch together. A map that is exact by construction needs no test: its
walk is two loads and a ``jmp`` through the last one, which unicorn runs as one
block lookup, as hardware-assisted code pays for its own indirect branch.

Two levels over 64 KiB *regions* of the guest's address space (bits 16-31 of the
pc choose the region, bits 0-15 the entry):

    L1     65536 x 4 bytes   indexed by the region number, byte-swapped (the walk
                             gets it with ``bswap`` and ``movzx``, both flags-free)
    (256 KiB for the code cache's translated jump tables, see jumptable.py)
    empty  one L0 table      every entry the miss routine: regions with no table
    pool   L0 tables         one per region with translated code, entries the
                             host entries of fragments, or the miss routine

32-bit (``jmp [edx + ecx*4]``, ecx the target, edx the L1 entry): an L1 entry is
its L0 table's address minus ``region << 18``, so adding ``pc * 4`` lands on the
entry of the low 16 bits (mod 2**32). Every load stays inside the map whatever
the target, and every entry is a fragment entry or the miss routine: the guest
cannot steer the jump anywhere else.

64-bit: L1 entries are the L0 tables' addresses (sign-extended 32-bit: the map
sits at the top of the address space), entries are 8 bytes, indexed by the low 16
bits, and hold ``host - bswap64(hi)`` where ``hi`` is bits 32-63 of the pc the
entry was made for. The walk adds ``bswap64(hi)`` of the target: a target whose
high half differs lands a multiple of 2**32 away from the code cache, outside the
monitor's window, where bt refuses every instruction fetch (the engine takes that
fault for a miss). Each entry thus keeps one high half (pcs that differ only
there evict each other).

When the pool is full the oldest region loses its table (its fragments are found
again through misses).
"""

from __future__ import annotations

import struct

from dbt.cache.layout import TABLE_SIZE
from dbt.monitor.hostmem import HostBacked

REGION_BITS = 16
ENTRIES = 1 << REGION_BITS
L1_SIZE = ENTRIES * 4
JUMP_TABLES = 256 << 10  # bytes after L1 that the map leaves to translated jump tables


def region_index(region: int) -> int:
    """The L1 index of a region number: its two bytes swapped (what bswap leaves)."""
    return ((region & 0xFF) << 8) | (region >> 8)


class IblMap:
    """The map in the table region: ``va`` where translated code sees it, ``mem`` the host
    memory behind it."""

    def __init__(self, mem: HostBacked, va: int, bits: int):
        self.mem = mem
        self.va = va
        self.bits = bits
        self.entry = 8 if bits == 64 else 4
        self.l0_size = ENTRIES * self.entry
        self.pool = (TABLE_SIZE - L1_SIZE - JUMP_TABLES - self.l0_size) // self.l0_size
        self.jump_tables = va + L1_SIZE  # where the jump-table area starts
        self.tables: dict[int, int] = {}  # region -> pool slot, oldest first
        self.evictions = 0
        self.miss = 0

    # --- addresses --------------------------------------------------------------------------
    def _l0_offset(self, slot: int | None) -> int:
        """Offset in the region of an L0 table (None: the empty one)."""
        return L1_SIZE + JUMP_TABLES + (0 if slot is None else (1 + slot) * self.l0_size)

    def _l1_value(self, region: int, slot: int | None) -> bytes:
        table = (self.va + self._l0_offset(slot)) & 0xFFFF_FFFF
        if self.bits == 32:
            return struct.pack("<I", (table - (region << 18)) & 0xFFFF_FFFF)
        return struct.pack("<I", table)

    def _value(self, pc: int, host: int) -> bytes:
        if self.bits == 32:
            return struct.pack("<I", host)
        hi = int.from_bytes((pc >> 32).to_bytes(4, "little"), "big") << 32  # bswap64(hi)
        return struct.pack("<Q", (host - hi) % 2**64)

    def _write(self, offset: int, data: bytes) -> None:
        self.mem.write(self.mem.phys + offset, data)

    # --- the monitor's side -----------------------------------------------------------------
    def reset(self, miss: int) -> None:
        """Every pc misses (to the routine at host address ``miss``)."""
        self.miss = miss
        self.tables.clear()
        self._write(self._l0_offset(None), self._value(0, miss) * ENTRIES)
        self._write(0, self._empty_l1())

    def _empty_l1(self) -> bytes:
        """L1 with every region on the empty table, in index order. 32-bit: index
        (h << 8) | lo is region (lo << 8) | h, so a row of 256 entries is one base less
        lo << 26 (built a row at a time: 65536 separate packs take 50 ms)."""
        empty = (self.va + self._l0_offset(None)) & 0xFFFF_FFFF
        if self.bits == 64:
            return struct.pack("<I", empty) * ENTRIES
        rows = []
        for h in range(256):
            base = empty - (h << 18)
            rows.append(struct.pack("<256I", *[(base - (lo << 26)) & 0xFFFF_FFFF
                                               for lo in range(256)]))
        return b"".join(rows)

    def set(self, pc: int, host: int) -> None:
        """Translated code reaching ``pc`` by an indirect branch goes to ``host``."""
        slot = self._table(pc >> REGION_BITS & 0xFFFF)
        self._write(self._l0_offset(slot) + (pc & 0xFFFF) * self.entry, self._value(pc, host))

    def clear(self, pc: int, host: int) -> None:
        """``pc`` misses again, if it still leads to ``host``."""
        slot = self.tables.get(pc >> REGION_BITS & 0xFFFF)
        if slot is None:
            return
        at = self.mem.phys + self._l0_offset(slot) + (pc & 0xFFFF) * self.entry
        if self.mem.read(at, self.entry) == self._value(pc, host):
            self.mem.write(at, self._value(0, self.miss))

    def _table(self, region: int) -> int:
        slot = self.tables.get(region)
        if slot is not None:
            return slot
        if len(self.tables) < self.pool:
            slot = len(self.tables)
        else:  # evict the oldest region
            old = next(iter(self.tables))
            slot = self.tables.pop(old)
            self._write(region_index(old) * 4, self._l1_value(old, None))
            self.evictions += 1
        self._write(self._l0_offset(slot), self._value(0, self.miss) * ENTRIES)
        self.tables[region] = slot
        self._write(region_index(region) * 4, self._l1_value(region, slot))
        return slot
