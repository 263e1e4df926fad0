"""The physical machine: a unicorn CPU with guest RAM, the monitor's memory and a defined start state.

Physical address map (identical for every engine, so guests see the same machine):

    0x0000_0000 .. ram_size        guest RAM (default 64 MiB)
    MONITOR_BASE .. + MONITOR_SIZE  the monitor's memory: 64-bit boot page tables,
                                    and (engine bt) the code cache and its tables

Only what an engine needs of the monitor's memory is mapped, read-only unless
it must be writable: under ``hw`` and ``interp`` a guest that reaches past its
RAM faults. In 64-bit mode the monitor's memory is mapped at the top of the
virtual address space (:func:`monitor_va`), where a sign-extended 32-bit
displacement reaches it.

Start state (DESIGN §4, what a Multiboot loader hands over): flat segments with
null selectors and empty GDTR/IDTR (a loader promises no GDT), CPL 0, IF=0,
EFLAGS=0x2, CR0 = PE|MP|ET, CR4 = OSFXSR|OSXMMEXCPT (SSE usable), ESP/RSP at the
top of guest RAM. 64-bit adds a real long mode (unicorn's own 64-bit start state
has paging off, which no CPU can be in): CR4.PAE, EFER.LME|LMA, CR0.PG and CR3
pointing at identity page tables (2 MiB pages, user-accessible) that map exactly
guest RAM; they live in monitor memory, so the guest cannot see or change them
unless it loads a CR3 of its own.
"""

from __future__ import annotations

import ctypes
import struct

from unicorn import (
    UC_ARCH_X86,
    UC_CTL_TLB_FLUSH,
    UC_ERR_EXCEPTION,
    UC_MODE_32,
    UC_MODE_64,
    UC_PROT_ALL,
    UC_PROT_READ,
    UC_PROT_WRITE,
    Uc,
)
from unicorn import x86_const as U

from dbt.errors import EngineError
from dbt.monitor.hostmem import HostBacked

PAGE = 4096
RAM_CHUNK = 1 << 20
MONITOR_BASE = 0xF000_0000
MONITOR_SIZE = 0x0100_0000
MAX_RAM = MONITOR_BASE

CR0_PE, CR0_MP, CR0_ET, CR0_TS, CR0_WP, CR0_PG = 1, 2, 0x10, 8, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 4, 1 << 5, 1 << 9, 1 << 10
EFER_MSR = 0xC0000080
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11

START_CR0 = CR0_PE | CR0_MP | CR0_ET
START_CR4 = CR4_OSFXSR | CR4_OSXMMEXCPT
START_EFLAGS = 0x2
PT_BASE = MONITOR_BASE  # 64-bit boot page tables: PML4, PDPT, then one PD per GiB
PT_SIZE = 0x10000
HIGH_ALIAS = 0xFFFF_FFFF_0000_0000  # 64-bit: monitor memory seen at HIGH_ALIAS | physical
_PTE = 0x1 | 0x2 | 0x20 | 0x40  # present, writable, accessed, dirty (the walker never writes)
_USER = 0x4  # guest RAM is user-accessible (a guest may run ring-3 code on these tables)


def monitor_va(bits: int, phys: int) -> int:
    """The address translated code uses for monitor memory at physical ``phys``."""
    return (HIGH_ALIAS | phys) if bits == 64 else phys


def _reg(name: str) -> int:
    return getattr(U, "UC_X86_REG_" + name.upper())


_REG_CACHE: dict[str, int] = {}


def reg_id(name: str) -> int:
    """Unicorn register id for a capstone register name ("eax", "r8d", "sil", "cr3"...)."""
    rid = _REG_CACHE.get(name)
    if rid is None:
        rid = _REG_CACHE[name] = _reg(name)
    return rid


class Machine:
    """A unicorn CPU in 32- or 64-bit mode with guest RAM mapped at physical 0."""

    def __init__(self, bits: int, ram_size: int, exec_ram: bool = True, memory: str = "fast",
                 mmu: str = "nested"):
        if ram_size <= 0 or ram_size % PAGE or ram_size > MAX_RAM:
            raise EngineError(f"guest RAM size {ram_size:#x} must be a positive multiple of 4 KiB "
                              f"up to {MAX_RAM // 2**20} MiB")
        self.bits = bits
        self.ram_size = ram_size
        self.exec_ram = exec_ram
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64 if bits == 64 else UC_MODE_32)
        self.pc_reg = U.UC_X86_REG_RIP if bits == 64 else U.UC_X86_REG_EIP
        self.sp_reg = U.UC_X86_REG_RSP if bits == 64 else U.UC_X86_REG_ESP
        # Guest RAM in host memory (see dbt.monitor.hostmem: write-protecting a page, bt's
        # self-modifying-code check, then splits its region without a copy), as 1 MiB
        # regions so that a split rebuilds little of unicorn's memory map
        perms = UC_PROT_ALL if exec_ram else UC_PROT_READ | UC_PROT_WRITE
        self.ram_mem = HostBacked(0, ram_size)
        for base in range(0, ram_size, RAM_CHUNK):
            size = min(RAM_CHUNK, ram_size - base)
            self.uc.mem_map_ptr(base, size, perms, self.ram_mem.host + base)
            self.uc.mem_protect(base, size, perms)  # see map_monitor
        if bits == 64:
            self.uc.mem_map(PT_BASE, PT_SIZE, UC_PROT_READ)
        # DESIGN §5 trap 5: never let `until` be translated through guest page tables.
        self.uc.ctl_exits_enabled(True)
        self.uc.ctl_set_exits([])
        self._uch = ctypes.cast(self.uc._uch, ctypes.c_void_p).value
        from dbt.monitor.fastuc import FastRegs

        self.fast = FastRegs(self.uc)
        #: keep the paging controls between reads: only when every write of CR0, CR3, CR4
        #: and EFER goes through the monitor, which then calls forget_paging() (engines
        #: that do not own the CPU: the guest's own mov to CR3 would not be seen)
        self.keep_paging = False
        self._paging: tuple | None = None
        self.counter_offset = find_counter_offset()
        self.reset()
        from dbt.monitor.paging import Walker

        #: the guest's page tables walked in software (the monitor's own accesses, shadow)
        self.walker = Walker(self.fast.mem, self.uc.mem_write, ram_size)
        self.memory = None
        if mmu not in ("nested", "shadow"):
            raise EngineError(f"unknown MMU mode {mmu!r} (nested or shadow)")
        if memory == "fast":
            from dbt.monitor.memory import GuestMemory

            self.memory = GuestMemory(self, exec_guest=exec_ram, mmu=mmu, walker=self.walker)
        elif memory != "default":
            raise EngineError(f"unknown memory mode {memory!r} (fast or default)")

    # --- start state --------------------------------------------------------------------
    def reset(self) -> None:
        uc = self.uc
        if self.bits == 64:
            self._build_identity_tables()
            uc.reg_write(U.UC_X86_REG_CR3, PT_BASE)
            uc.reg_write(U.UC_X86_REG_CR4, START_CR4 | CR4_PAE)
            uc.reg_write(U.UC_X86_REG_MSR, (EFER_MSR, EFER_LME | EFER_LMA))
            uc.reg_write(U.UC_X86_REG_CR0, START_CR0 | CR0_PG)
        else:
            uc.reg_write(U.UC_X86_REG_CR4, START_CR4)
            uc.reg_write(U.UC_X86_REG_CR0, START_CR0)
        uc.reg_write(U.UC_X86_REG_EFLAGS, START_EFLAGS)
        uc.reg_write(self.sp_reg, self.ram_size)

    def _build_identity_tables(self) -> None:
        """PML4 -> PDPT (low) -> PDs mapping guest RAM with 2 MiB pages at virtual = physical.

        Page PT_BASE+PAGE*k: 0 PML4, 1 low PDPT, 2.. PDs for guest RAM (one per GiB),
        then the high PDPT and PD used by :meth:`map_monitor`.
        """
        gib = (self.ram_size + (1 << 30) - 1) >> 30
        self._pt_high = PT_BASE + (2 + gib) * PAGE  # high PDPT; high PD follows
        pml4 = bytearray(PAGE)
        struct.pack_into("<Q", pml4, 0, (PT_BASE + PAGE) | _PTE | _USER)
        struct.pack_into("<Q", pml4, 511 * 8, self._pt_high | _PTE)
        pdpt = b"".join(struct.pack("<Q", (PT_BASE + (2 + i) * PAGE) | _PTE | _USER)
                        for i in range(gib))
        pds = b"".join(struct.pack("<Q", addr | _PTE | _USER | 0x80)  # 2 MiB page
                       for addr in range(0, self.ram_size, 2 << 20))
        high_pdpt = bytearray(PAGE)
        struct.pack_into("<Q", high_pdpt, ((HIGH_ALIAS | MONITOR_BASE) >> 30 & 511) * 8,
                         (self._pt_high + PAGE) | _PTE)
        self.uc.mem_write(PT_BASE, bytes(pml4))
        self.uc.mem_write(PT_BASE + PAGE, pdpt)
        self.uc.mem_write(PT_BASE + 2 * PAGE, pds)
        self.uc.mem_write(self._pt_high, bytes(high_pdpt))

    def map_monitor(self, offset: int, size: int, perms: int, host: int | None = None) -> int:
        """Map monitor memory at MONITOR_BASE+offset, backed by host memory at address
        ``host`` if given; returns the address translated code uses for it. In 64-bit
        mode the boot tables map the 2 MiB pages that hold it (what lies in them but
        outside the region stays unmapped physically, so accesses there still fault)."""
        phys = MONITOR_BASE + offset
        if host is None:
            self.uc.mem_map(phys, size, perms)
        else:  # unicorn enforces the permissions of such a region only once protected
            self.uc.mem_map_ptr(phys, size, perms, host)
            self.uc.mem_protect(phys, size, perms)
        if self.bits == 64:
            for addr in range(phys & ~((2 << 20) - 1), phys + size, 2 << 20):
                index = (addr >> 21) & 511
                self.uc.mem_write(self._pt_high + PAGE + index * 8,
                                  struct.pack("<Q", addr | _PTE | 0x80))
        return monitor_va(self.bits, phys)

    # --- memory ---------------------------------------------------------------------------
    def load(self, segments) -> None:
        for seg in segments:
            self.uc.mem_write(seg.addr, seg.data + bytes(seg.memsz - len(seg.data)))

    def fetch(self, addr: int, n: int) -> bytes:
        """Up to n bytes of guest RAM at a physical address; fewer at the end of RAM, b"" outside."""
        if addr < 0 or addr >= self.ram_size:
            return b""
        return self.ram_mem.buf[addr:addr + n]

    def ram(self) -> bytes:
        return self.ram_mem.buf[:]

    def flush_tlb(self) -> None:
        """Drop every TLB entry (the Python binding has no wrapper for UC_CTL_TLB_FLUSH)."""
        self.uc._Uc__ctl_w(UC_CTL_TLB_FLUSH)

    # --- the guest's paging -----------------------------------------------------------------
    def guest_paging(self) -> bool:
        """Has the guest turned on paging of its own (beyond dbt's 64-bit boot tables)?"""
        return self._kept_paging()[0] if self.keep_paging else self._read_guest_paging()

    def paging_mode(self):
        """The paging controls (CR0, CR3, CR4, EFER) the guest's accesses go through."""
        return self._kept_paging()[1] if self.keep_paging else self._read_paging_mode()

    def forget_paging(self) -> None:
        """A control register or EFER was written: read them again (see keep_paging)."""
        self._paging = None

    def _kept_paging(self) -> tuple:
        if self._paging is None:
            self._paging = (self._read_guest_paging(), self._read_paging_mode())
        return self._paging

    def _read_guest_paging(self) -> bool:
        if self.bits == 64:
            return self.fast.read(U.UC_X86_REG_CR3) != PT_BASE
        return bool(self.fast.read(U.UC_X86_REG_CR0) & CR0_PG)

    def _read_paging_mode(self):
        from dbt.monitor.paging import Mode

        fast = self.fast
        cr4 = fast.read(U.UC_X86_REG_CR4)
        efer = self.uc.reg_read(U.UC_X86_REG_MSR, EFER_MSR) if cr4 & CR4_PAE else 0
        return Mode(fast.read(U.UC_X86_REG_CR0), fast.read(U.UC_X86_REG_CR3), cr4, efer)

    def fill_fault(self, err):
        """The #PF (and its access kind) a refused TLB fill of the shadow MMU left, if
        that is what ended the last emu_start (unicorn then reports UC_ERR_EXCEPTION at
        the faulting instruction); None otherwise."""
        if self.memory and err is not None and err.errno == UC_ERR_EXCEPTION:
            return self.memory.take_page_fault()
        return None

    # --- registers --------------------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self.fast.read(self.pc_reg)

    @pc.setter
    def pc(self, value: int) -> None:
        self.fast.write(self.pc_reg, value)

    # --- unicorn's instruction counter (DESIGN §3: hw counts with emu_start(count=)) ---------
    def executed_count(self) -> int:
        """How many times unicorn's count hook fired in the last emu_start(count=N)."""
        return ctypes.c_uint64.from_address(self._uch + self.counter_offset).value


_COUNTER_OFFSET: int | None = None


def find_counter_offset() -> int:
    """Find unicorn's internal instruction counter (uc_struct.emu_counter) by probing.

    unicorn 2.1 counts `emu_start(count=N)` in a field it does not export; it is
    the one 64-bit word of the handle that reads k+1 after a run stopped by
    count=k, for several k (and is followed by the limit k itself). The result
    is checked on every probe run, so a unicorn whose layout differs fails loudly.
    """
    global _COUNTER_OFFSET
    if _COUNTER_OFFSET is not None:
        return _COUNTER_OFFSET
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(PAGE, PAGE)
    uc.mem_write(PAGE, b"\x40\xeb\xfd")  # l: inc eax; jmp l
    base = ctypes.cast(uc._uch, ctypes.c_void_p).value
    words = 8192
    candidates: set[int] | None = None
    for k in (1000, 2345, 777, 31, 4):
        uc.emu_start(PAGE, 0, count=k)
        arr = (ctypes.c_uint64 * words).from_address(base)
        found = {i for i in range(words - 1) if arr[i] == k + 1 and arr[i + 1] == k}
        candidates = found if candidates is None else candidates & found
    if not candidates or len(candidates) != 1:
        raise EngineError("cannot find unicorn's instruction counter (unsupported unicorn version)")
    _COUNTER_OFFSET = candidates.pop() * 8
    return _COUNTER_OFFSET
