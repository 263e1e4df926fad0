"""The boot stub that puts a dbt guest on QEMU's PC in dbt's start state (engine ``qemu``).

QEMU's ``-kernel`` speaks Multiboot v1 (Multiboot Specification 0.6.96 §3.1,
§3.2): it starts the kernel in flat 32-bit protected mode, paging off, IF=0,
EAX=0x2BADB002, EBX the Multiboot information, the stack pointer undefined.
dbt hands its guest more (DESIGN §4): SSE usable, a stack at the top of guest
RAM, zeroed registers and RAM, and for 64-bit guests real long mode with guest
RAM identity-mapped. The stub below closes that gap. It is a Multiboot kernel
of its own, loaded in the PC's free conventional memory; the guest's segments
are loaded at their own addresses by QEMU's generic loader device
(``-device loader,file=...,addr=...,force-raw=on``), so the guest is not changed
or moved.

Memory layout of the stub (``STUB_BASE`` = 0x10000; the PC's RAM below 1 MiB
belongs to the firmware and this stub, so guests must lie at or above 1 MiB)::

    +0x000  Multiboot header, flag bit 16 (the a.out kludge: load address fields valid)
    +0x020  32-bit code (entered by the Multiboot loader), ending with the guest's entry point
    +0x200  64-bit code (64-bit guests: entered by a far jump from the 32-bit code), the same
    +0x300  GDT: null, 64-bit code (selector 0x08), flat data (0x10); +0x320 its GDTR
    +0x338  "started": the stub writes 1 here just before it jumps to the guest
    +0x340  the zero table: (address, length) pairs ended by a zero length
    +0x1000 64-bit guests: PML4, PDPT, one page directory per GiB (2 MiB pages)

The scratch stack of the stub is the 64 KiB below ``STUB_BASE``; QEMU puts
the Multiboot information right after the stub (page aligned). Both are in
low memory, which the guest's result does not compare.

What the stub does, in order: mask both 8259 interrupt controllers (dbt's PC
has no interrupt sources; the BIOS left the timer's IRQ 0 unmasked); zero guest
RAM from 1 MiB to its end except the guest's file bytes (the firmware leaves
tables at the top of RAM; dbt's RAM starts zeroed); CR4 = OSFXSR|OSXMMEXCPT,
CR0 = PE|MP|ET; for 64-bit also CR4.PAE, CR3 at the stub's tables, EFER.LME,
CR0.PG, the stub's GDT and a far jump to 64-bit code that loads null data
selectors; EFLAGS = 0x2; the stack pointer at the top of guest RAM; every other
general register 0 (with ``mov reg, 0``, which leaves the flags alone); an
indirect jump to the entry point.

What still differs from dbt's start state: the code selector (0x10 from QEMU's
Multiboot loader in 32-bit mode, 0x08 from the stub in 64-bit mode) and, in
32-bit mode, the data selectors (0x18) and QEMU's GDTR, where dbt has null
selectors and empty descriptor tables; the IDTR is the BIOS's real-mode one;
EFER has no SCE/NXE in either. Those are in the ``system`` part of a result,
which the qemu engine does not report.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dbt.engines import HIGH_MEMORY
from dbt.errors import EngineError
from dbt.loader import Image
from dbt.translator.assembler import assemble

STUB_BASE = 0x10000
MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_AOUT_KLUDGE = 1 << 16
CODE32, CODE64, GDT, GDTR, STARTED, ZERO_TABLE, TABLES = (
    0x20, 0x200, 0x300, 0x320, 0x338, 0x340, 0x1000)
ZERO_TABLE_END = 0x1000
PAGE = 4096
CODE64_SELECTOR = 0x08

# dbt's start state (dbt/monitor/machine.py): the same bits, named as the SDM names them
CR0_START = 0x13  # PE | MP | ET
CR4_START = 0x600  # OSFXSR | OSXMMEXCPT
CR4_PAE, CR0_PG, EFER_MSR, EFER_LME = 0x20, 0x8000_0000, 0xC000_0080, 0x100
_PTE = 0x7  # present | writable | user, as dbt's own boot tables (the CPU sets accessed/dirty)
_GDT = (0, 0x00209A0000000000, 0x00CF92000000FFFF)  # null, 64-bit code, flat 4 GiB data
_GPRS32 = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp")
_GPRS64 = _GPRS32 + tuple(f"r{i}d" for i in range(8, 16))


@dataclass(frozen=True)
class BootImage:
    """The Multiboot kernel file (the stub) and the guest's bytes to place, by address."""

    stub: bytes
    blobs: tuple[tuple[int, bytes], ...]  # (guest-physical address, bytes) for QEMU's loader
    started: int  # the address of the stub's "started" flag


def build(image: Image, ram_size: int) -> BootImage:
    """The boot stub and blobs that start ``image`` on a PC with ``ram_size`` bytes of RAM."""
    bits = image.arch.bits
    blobs = tuple((s.addr, s.data) for s in sorted(image.segments, key=lambda s: s.addr)
                  if s.data)
    low = [s for s in image.segments if s.memsz and s.addr < HIGH_MEMORY]
    if low:
        raise EngineError(f"{image.path}: segment at {low[0].addr:#x} lies below 1 MiB, which "
                          f"the PC's firmware and the qemu engine's boot stub use")
    if ram_size > 0xC000_0000:
        raise EngineError("qemu engine: guest RAM above 3 GiB runs into the PC's PCI hole")
    stub = bytearray(TABLES)
    struct.pack_into("<8I", stub, 0, MULTIBOOT_MAGIC, MULTIBOOT_AOUT_KLUDGE,
                     -(MULTIBOOT_MAGIC + MULTIBOOT_AOUT_KLUDGE) & 0xFFFF_FFFF,
                     STUB_BASE, STUB_BASE, 0, 0, STUB_BASE + CODE32)  # sizes patched below
    stub[CODE32:CODE64] = _pad(_code32(bits, ram_size, image.entry), CODE64 - CODE32)
    if bits == 64:
        stub[CODE64:GDT] = _pad(_code64(ram_size, image.entry), GDT - CODE64)
        stub[GDT:GDT + 24] = struct.pack("<3Q", *_GDT)
        stub[GDTR:GDTR + 6] = struct.pack("<HI", 24 - 1, STUB_BASE + GDT)
        stub += _page_tables(ram_size)
    table = b"".join(struct.pack("<II", a, n) for a, n in zero_ranges(blobs, ram_size))
    if ZERO_TABLE + len(table) + 8 > ZERO_TABLE_END:
        raise EngineError(f"{image.path}: too many segments for the qemu engine's boot stub")
    stub[ZERO_TABLE:ZERO_TABLE + len(table) + 8] = table + bytes(8)
    struct.pack_into("<2I", stub, 20, STUB_BASE + len(stub), STUB_BASE + len(stub))
    return BootImage(bytes(stub), blobs, STUB_BASE + STARTED)


def zero_ranges(blobs, ram_size: int) -> list[tuple[int, int]]:
    """Guest RAM from 1 MiB to ``ram_size`` less the bytes the loader places: (start, length)."""
    ranges, at = [], HIGH_MEMORY
    for addr, data in blobs:
        if addr > at:
            ranges.append((at, addr - at))
        at = max(at, addr + len(data))
    if ram_size > at:
        ranges.append((at, ram_size - at))
    return ranges


def _pad(code: bytes, size: int) -> bytes:
    if len(code) > size:
        raise AssertionError(f"boot stub code of {len(code)} bytes overflows its {size}")
    return code + b"\xcc" * (size - len(code))


def _code32(bits: int, ram_size: int, entry: int) -> bytes:
    """Entered by the Multiboot loader: flat 32-bit protected mode, paging off, IF=0."""
    base = STUB_BASE
    head = f"""
        cli
        mov esp, {base}
        mov al, 0xff
        out 0x21, al                        ; mask every line of the master 8259
        out 0xa1, al                        ; and of the slave
        cld
        mov esi, {base + ZERO_TABLE}
    zero:
        mov edi, dword ptr [esi]
        mov ecx, dword ptr [esi + 4]
        test ecx, ecx
        jz zeroed
        xor eax, eax
        mov edx, ecx
        shr ecx, 2
        rep stosd
        mov ecx, edx
        and ecx, 3
        rep stosb
        add esi, 8
        jmp zero
    zeroed:
    """
    if bits == 32:
        tail = f"""
        mov eax, {CR4_START}
        mov cr4, eax
        mov eax, {CR0_START}
        mov cr0, eax
        mov dword ptr [{base + STARTED}], 1
        push 2
        popfd
        mov esp, {ram_size}
        {_zero_regs(_GPRS32)}
        jmp dword ptr [entry]
    entry:
        .long {entry}
        """
    else:
        # keystone 0.9.2 mis-encodes lgdt and ljmp in 32-bit mode (DESIGN §5): emit them as bytes
        tail = f"""
        mov eax, {CR4_START | CR4_PAE}
        mov cr4, eax
        mov eax, {base + TABLES}
        mov cr3, eax
        mov ecx, {EFER_MSR}
        mov eax, {EFER_LME}
        xor edx, edx
        wrmsr
        mov eax, {CR0_START | CR0_PG}
        mov cr0, eax
        .byte 0x0f, 0x01, 0x15              ; lgdt [disp32]
        .long {base + GDTR}
        .byte 0xea                          ; ljmp 0x08:code64
        .long {base + CODE64}
        .word {CODE64_SELECTOR}
        """
    return assemble(head + tail, base + CODE32, 32, "<qemu boot stub>")


def _code64(ram_size: int, entry: int) -> bytes:
    """Reached in 64-bit mode: null data selectors, the guest's registers, jump to the entry."""
    base = STUB_BASE
    return assemble(f"""
        xor eax, eax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax
        mov rax, {base + STARTED}
        mov dword ptr [rax], 1
        push 2
        popfq
        mov rsp, {ram_size}
        {_zero_regs(_GPRS64)}
        jmp qword ptr [rip + entry]
    entry:
        .quad {entry}
        """, base + CODE64, 64, "<qemu boot stub>")


def _zero_regs(names) -> str:
    return "\n        ".join(f"mov {r}, 0" for r in names)


def _page_tables(ram_size: int) -> bytes:
    """PML4, PDPT and page directories mapping [0, ram_size) at virtual = physical, 2 MiB pages."""
    gib = (ram_size + (1 << 30) - 1) >> 30
    tables = STUB_BASE + TABLES
    pml4 = struct.pack("<Q", (tables + PAGE) | _PTE).ljust(PAGE, b"\0")
    pdpt = b"".join(struct.pack("<Q", (tables + (2 + i) * PAGE) | _PTE)
                    for i in range(gib)).ljust(PAGE, b"\0")
    pds = b"".join(struct.pack("<Q", a | _PTE | 0x80) for a in range(0, ram_size, 2 << 20))
    return pml4 + pdpt + pds.ljust(gib * PAGE, b"\0")
