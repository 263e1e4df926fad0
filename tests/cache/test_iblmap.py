"""The indirect-branch map (dbt/cache/iblmap.py), walked here in Python exactly as the
``ibl`` template walks it in translated code.

What could go wrong: a walk that reads outside the map (the guest would steer an
indirect jump through memory it controls), a pc that reaches another pc's translation,
an entry left behind after its fragment was dropped (stale code runs), a region that
loses its table and is then never found again.
"""

from __future__ import annotations

import random
import struct

import pytest

from dbt.cache.iblmap import IblMap
from dbt.cache.layout import TABLE_OFFSET, TABLE_SIZE
from dbt.monitor.hostmem import HostBacked
from dbt.monitor.machine import MONITOR_BASE, monitor_va

MISS = 0x1000  # host addresses stand-ins: the miss routine, then fragment entries


def bswap32(v: int) -> int:
    return int.from_bytes(v.to_bytes(4, "little"), "big")


def new_map(bits: int) -> IblMap:
    phys = MONITOR_BASE + TABLE_OFFSET
    m = IblMap(HostBacked(phys, TABLE_SIZE), monitor_va(bits, phys), bits)
    m.reset(monitor_va(bits, MISS))
    return m


def load(m: IblMap, addr: int, size: int) -> int:
    """A load by translated code: it must stay inside the map."""
    assert m.va <= addr and addr + size <= m.va + TABLE_SIZE, hex(addr)
    return int.from_bytes(m.mem.read(m.mem.phys + addr - m.va, size), "little")


def walk(m: IblMap, pc: int) -> int:
    """Where the ibl template jumps for target ``pc``."""
    index = bswap32(pc & 0xFFFF_FFFF) & 0xFFFF  # mov edx, ecx; bswap edx; movzx edx, dx
    l1 = load(m, m.va + index * 4, 4)
    if m.bits == 32:  # jmp [edx + ecx*4]
        return load(m, (l1 + pc * 4) & 0xFFFF_FFFF, 4)
    l1 = l1 - 2**32 if l1 & 2**31 else l1  # movsxd
    entry = load(m, (l1 + (pc & 0xFFFF) * 8) % 2**64, 8)
    return (entry + (bswap32(pc >> 32) << 32)) % 2**64  # bswap rcx; lea rdx, [rdx + rcx]


def misses(m: IblMap, pc: int) -> bool:
    """The walk reaches the miss routine, or (64-bit, a pc above 4 GiB) lands a multiple
    of 2**32 away from it, which the engine takes for a miss too."""
    to = walk(m, pc)
    return to == m.miss or (m.bits == 64 and pc >> 32 != 0 and (to - m.miss) % 2**32 == 0)


@pytest.mark.parametrize("bits", [32, 64])
def test_every_pc_misses_at_first_and_no_walk_leaves_the_map(bits):
    m = new_map(bits)
    rng = random.Random(1)
    for pc in [0, 1, 0xFFFF, 0x10000, 0x100000, 2**32 - 1] + \
            [rng.randrange(2**bits) for _ in range(300)]:
        assert misses(m, pc), hex(pc)


@pytest.mark.parametrize("bits", [32, 64])
def test_set_reaches_only_its_pc_and_clear_takes_it_back(bits):
    """Link, then neighbours (same region, same low half, next region) still miss, then
    clear: the pc misses again; a clear for a host it no longer leads to changes nothing."""
    m = new_map(bits)
    pc, host = 0x0012_3456, monitor_va(bits, 0x0080_1230)
    m.set(pc, host)
    assert walk(m, pc) == host
    for other in (pc + 1, pc - 1, pc + 0x10000, pc ^ 0x0100_0000):
        assert misses(m, other), hex(other)
    m.clear(pc, host + 16)
    assert walk(m, pc) == host
    m.clear(pc, host)
    assert walk(m, pc) == m.miss


def test_64bit_high_half_lands_outside_the_monitor_window():
    """Two pcs that differ only above bit 31 share an entry: the one it was not made for
    must jump a multiple of 2**32 away (outside the monitor's 16 MiB window, where bt
    refuses every fetch), never onto a translation."""
    m = new_map(64)
    low, high = 0x0010_0100, 0xFFFF_8000_0010_0100
    host = monitor_va(64, 0x0080_4000)
    m.set(high, host)
    assert walk(m, high) == host
    away = walk(m, low)
    assert away != host and (away - host) % 2**32 == 0
    m.set(low, host + 32)  # the entry now serves the low one
    assert walk(m, low) == host + 32 and (walk(m, high) - host - 32) % 2**32 == 0


@pytest.mark.parametrize("bits", [32, 64])
def test_regions_beyond_the_pool_evict_the_oldest(bits):
    """Code in more 64 KiB regions than the pool has tables: the oldest region's pcs miss
    again (to be put back by the monitor), the others keep their entries."""
    m = new_map(bits)
    pcs = [(r << 16) | 0x40 for r in range(1, m.pool + 2)]
    for i, pc in enumerate(pcs):
        m.set(pc, monitor_va(bits, 0x0080_0000 + 16 * i))
    assert m.evictions == 1
    assert walk(m, pcs[0]) == m.miss
    for i, pc in enumerate(pcs[1:], 1):
        assert walk(m, pc) == monitor_va(bits, 0x0080_0000 + 16 * i)
    m.set(pcs[0], monitor_va(bits, 0x0080_0000))  # back, evicting the next oldest
    assert walk(m, pcs[0]) == monitor_va(bits, 0x0080_0000) and walk(m, pcs[1]) == m.miss


def test_l1_entries_are_what_the_32bit_walk_adds_to():
    """32-bit: an L1 entry is its table minus region << 18, so [edx + ecx*4] wraps onto
    the entry of the low 16 bits for every pc of the region."""
    m = new_map(32)
    m.set(0xABCD_0010, 0x1234)
    index = bswap32(0xABCD_0010) & 0xFFFF
    (l1,) = struct.unpack("<I", m.mem.read(m.mem.phys + index * 4, 4))
    assert (l1 + 0xABCD_0000 * 4) % 2**32 == m.va + m._l0_offset(m.tables[0xABCD])


@pytest.mark.parametrize("bits", [32, 64])
def test_the_empty_l1_built_by_rows_is_the_one_built_by_regions(bits):
    m = new_map(bits)
    for region in (0, 1, 0xFF, 0x100, 0x1234, 0xABCD, 0xFFFF):
        index = ((region & 0xFF) << 8) | (region >> 8)
        at = m.mem.phys + index * 4
        assert m.mem.read(at, 4) == m._l1_value(region, None), hex(region)
