"""The guest's page tables, walked in software as the processor walks them.

The monitor needs this walk twice: as the *shadow* MMU (``--mmu shadow``: every
TLB miss of the machine is filled from the guest's tables, see
:mod:`dbt.monitor.memory`), and for its own accesses to guest linear addresses
under every MMU mode (exception frames, descriptor tables, the operands of
emulated instructions, instruction fetch by ``interp`` and ``bt``'s scanner).

The rules are those of the Intel SDM Vol. 3A chapter 4 ("Paging"), in the
details where the SDM leaves room the way QEMU's MMU (what ``--mmu nested``
runs) resolves them, so that shadow and nested paging leave the same bits in
guest memory:

- 32-bit paging (§4.3) with 4 MiB pages when CR4.PSE; PAE paging (§4.4: the
  four PDPTEs are read at each walk, not cached at the CR3 load); 4-level
  paging (§4.5) with 2 MiB and 1 GiB pages;
- accessed bits are set in every paging-structure entry on the way down (a
  2 MiB or 4 MiB leaf's only when the access is allowed, a 1 GiB leaf's on the
  way down), the dirty bit of the leaf on a write; a leaf
  that is not yet dirty is mapped without write permission, so the first write
  comes back for the dirty bit (entries are updated with a 4-byte store of their
  low half);
- U/S and R/W combine across levels; CR0.WP decides whether supervisor writes
  honour R/W; NX when EFER.NXE (reserved otherwise); reserved bits above the
  physical-address width;
- the page-fault error code (§4.7): P, W/R, U/S, RSVD, I/D (I/D only when NX
  is enabled); a non-canonical address in long mode is a #GP(0) instead.

Paging-structure entries outside guest RAM read as 0 (not present), as QEMU's
PC reads unbacked physical memory; leaves that point outside guest RAM are
mapped as they say, and the access then ends the run as a bus error.
Not modelled: SMEP/SMAP, protection keys, 5-level paging, global pages (every
flush is a full flush, as in QEMU).
"""

from __future__ import annotations

import struct

from dbt.monitor.machine import CR0_PG, CR0_WP, CR4_PAE, CR4_PSE, EFER_LMA, EFER_NXE

P, RW, US, PWT, PCD, A, D, PS = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80
NX = 1 << 63
ADDRESS_MASK = 0x000F_FFFF_FFFF_F000
PHYS_BITS = 40  # the CPU model's physical-address width (CPUID 0x80000008, QEMU's default)
PAT_LARGE = 1 << 12  # PAT bit of a 2 MiB / 4 MiB / 1 GiB leaf

ERR_P, ERR_W, ERR_U, ERR_RSVD, ERR_I = 1, 2, 4, 8, 0x10

#: access kinds (unicorn's UC_MEM_READ / WRITE / FETCH map onto these)
READ, WRITE, FETCH = 0, 1, 2
#: TLB permissions (unicorn's UC_PROT_* values)
PROT_R, PROT_W, PROT_X = 1, 2, 4



class PageFault(Exception):
    """The walk failed: deliver #PF (vector 14) with ``error_code`` and CR2 = ``address``,
    or #GP(0) (vector 13) for a non-canonical address."""

    def __init__(self, address: int, error_code: int, vector: int = 14, why: str = ""):
        super().__init__(why)
        self.address, self.error_code, self.vector, self.why = address, error_code, vector, why


class Mode:
    """The paging-related control state a walk depends on."""

    __slots__ = ("cr0", "cr3", "cr4", "efer")

    def __init__(self, cr0: int, cr3: int, cr4: int, efer: int):
        self.cr0, self.cr3, self.cr4, self.efer = cr0, cr3, cr4, efer

    @property
    def paging(self) -> bool:
        return bool(self.cr0 & CR0_PG)


class Walker:
    """Walks guest page tables in guest-physical memory ``ram`` (read with ``read``,
    written with ``write``; both physical, within ``ram_size``)."""

    def __init__(self, read, write, ram_size: int):
        self._read, self._write, self.ram_size = read, write, ram_size

    # --- guest-physical memory ----------------------------------------------------------------
    def _load(self, addr: int, size: int) -> int:
        if addr + size > self.ram_size:
            return 0  # unbacked: reads as not present
        return int.from_bytes(self._read(addr, size), "little")

    def _store_low(self, addr: int, entry: int) -> None:
        if addr + 4 <= self.ram_size:
            self._write(addr, struct.pack("<I", entry & 0xFFFF_FFFF))

    # --- the walk ------------------------------------------------------------------------------
    def translate(self, mode: Mode, vaddr: int, access: int, user: bool,
                  update: bool = True) -> tuple[int, int, int]:
        """Translate linear address ``vaddr`` for an ``access`` (READ/WRITE/FETCH) at
        user (CPL 3) or supervisor privilege. Returns (physical address, page size,
        TLB permissions PROT_*). ``update=False`` probes: no accessed or dirty bit is
        written. Raises :class:`PageFault`."""
        if not mode.paging:
            return vaddr, 4096, PROT_R | PROT_W | PROT_X
        nxe = bool(mode.efer & EFER_NXE)
        if mode.cr4 & CR4_PAE:
            rsvd = ~((1 << PHYS_BITS) - 1) & ADDRESS_MASK
            if not nxe:
                rsvd |= NX
            if mode.efer & EFER_LMA:
                sext = vaddr >> 47
                if sext not in (0, (1 << 17) - 1):
                    raise PageFault(vaddr, 0, vector=13, why="non-canonical address")
                e4_at = (mode.cr3 & ADDRESS_MASK) + ((vaddr >> 39) & 0x1FF) * 8
                e4 = self._level(mode, vaddr, access, user, e4_at, 8, rsvd | PS, update)
                ptep = e4 ^ NX
                e3_at = (e4 & ADDRESS_MASK) + ((vaddr >> 30) & 0x1FF) * 8
                e3 = self._level(mode, vaddr, access, user, e3_at, 8, rsvd, update)
                ptep &= e3 ^ NX
                if e3 & PS:
                    return self._leaf(mode, vaddr, access, user, e3_at, e3, ptep, 1 << 30,
                                      rsvd, update)
            else:  # PAE with 32-bit linear addresses: 4 PDPTEs, no accessed bits
                e3_at = (mode.cr3 & ~0x1F) + ((vaddr >> 27) & 0x18)
                e3 = self._load(e3_at, 8)
                if not e3 & P:
                    raise self._fault(mode, vaddr, access, user, 0)
                if e3 & (rsvd | (0x7FF << 52) | NX):
                    raise self._fault(mode, vaddr, access, user, ERR_RSVD | ERR_P)
                ptep = NX | US | RW
            e2_at = (e3 & ADDRESS_MASK) + ((vaddr >> 21) & 0x1FF) * 8
            e2 = self._level(mode, vaddr, access, user, e2_at, 8, rsvd, update, large=True)
            ptep &= e2 ^ NX
            if e2 & PS:
                return self._leaf(mode, vaddr, access, user, e2_at, e2, ptep, 1 << 21, rsvd,
                                  update)
            e1_at = (e2 & ADDRESS_MASK) + ((vaddr >> 12) & 0x1FF) * 8
            e1 = self._load(e1_at, 8)
            if not e1 & P:
                raise self._fault(mode, vaddr, access, user, 0)
            ptep &= e1 ^ NX
            return self._leaf(mode, vaddr, access, user, e1_at, e1, ptep, 4096, rsvd, update)
        # 32-bit paging
        vaddr &= 0xFFFF_FFFF
        pde_at = (mode.cr3 & ~0xFFF & 0xFFFF_FFFF) + ((vaddr >> 20) & 0xFFC)
        pde = self._load(pde_at, 4)
        if not pde & P:
            raise self._fault(mode, vaddr, access, user, 0)
        if pde & PS and mode.cr4 & CR4_PSE:
            # PSE-36: PDE bits 20..13 give physical bits 39..32; bit 21 is reserved
            leaf = pde | ((pde & 0x1FE000) << (32 - 13))
            return self._leaf(mode, vaddr, access, user, pde_at, leaf, pde | NX, 1 << 22,
                              0x200000, update, pse36=True)
        if update and not pde & A:
            self._store_low(pde_at, pde | A)
        pte_at = (pde & ~0xFFF) + ((vaddr >> 10) & 0xFFC)
        pte = self._load(pte_at, 4)
        if not pte & P:
            raise self._fault(mode, vaddr, access, user, 0)
        return self._leaf(mode, vaddr, access, user, pte_at, pte, (pde & pte) | NX, 4096, 0,
                          update)

    def _level(self, mode: Mode, vaddr: int, access: int, user: bool, at: int, size: int,
               rsvd: int, update: bool, large: bool = False) -> int:
        """Read a non-leaf entry (or a possible large-page leaf): present, reserved bits,
        and its accessed bit (a large leaf gets it in :meth:`_leaf`)."""
        entry = self._load(at, size)
        if not entry & P:
            raise self._fault(mode, vaddr, access, user, 0)
        if entry & rsvd:
            raise self._fault(mode, vaddr, access, user, ERR_RSVD | ERR_P)
        if update and not entry & A and not (large and entry & PS):
            self._store_low(at, entry | A)
        return entry

    def _leaf(self, mode: Mode, vaddr: int, access: int, user: bool, at: int, entry: int,
              ptep: int, size: int, rsvd: int, update: bool, pse36: bool = False):
        if not pse36:
            rsvd |= (size - 1) & ADDRESS_MASK & ~PAT_LARGE
        if entry & rsvd:
            raise self._fault(mode, vaddr, access, user, ERR_RSVD | ERR_P)
        ptep ^= NX  # NX back to its sense: set (at some level) means not executable
        if user and not ptep & US:
            raise self._fault(mode, vaddr, access, user, ERR_P)
        prot = PROT_R
        if ptep & RW or (not user and not mode.cr0 & CR0_WP):
            prot |= PROT_W
        if not ptep & NX:
            prot |= PROT_X
        if not prot & (PROT_R, PROT_W, PROT_X)[access]:
            raise self._fault(mode, vaddr, access, user, ERR_P)
        dirty = access == WRITE and not entry & D
        if update and (not entry & A or dirty):
            entry |= A | (D if dirty else 0)
            self._store_low(at, entry)
        if not entry & D:
            prot &= ~PROT_W  # the first write comes back to set the dirty bit
        base = entry & ADDRESS_MASK & ~(size - 1)
        return base | (vaddr & (size - 1)), size, prot

    def _fault(self, mode: Mode, vaddr: int, access: int, user: bool, bits: int) -> PageFault:
        code = bits | (ERR_W if access == WRITE else 0) | (ERR_U if user else 0)
        if access == FETCH and mode.efer & EFER_NXE and mode.cr4 & CR4_PAE:
            code |= ERR_I
        kind = ("read of", "write to", "instruction fetch from")[access]
        why = "reserved bit set" if bits & ERR_RSVD else \
            "protection violation" if bits & ERR_P else "page not present"
        return PageFault(vaddr, code, why=f"{kind} {vaddr:#x}: {why}")
