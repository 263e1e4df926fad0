"""The qemu engine's boot stub: Multiboot header, code decoded back, page tables, zero table.

These need no QEMU: they check the bytes the stub is made of. keystone 0.9.2
mis-encodes ``lgdt`` and ``ljmp`` in 32-bit mode, so those are emitted as bytes;
decoding every stub back with capstone catches a wrong byte there or anywhere.
"""

from __future__ import annotations

import struct

import capstone
import pytest

from dbt.engines import multiboot as mb
from dbt.errors import EngineError
from dbt.loader import Arch, Image, Segment

RAM = 64 << 20


def image(bits: int, segments=((0x100000, b"\xf4", 1),), entry: int = 0x100000) -> Image:
    return Image("guest", "raw", Arch.X86_64 if bits == 64 else Arch.X86_32, entry,
                 tuple(Segment(a, d, n) for a, d, n in segments))


def disasm(code: bytes, address: int, bits: int) -> list[str]:
    mode = capstone.CS_MODE_64 if bits == 64 else capstone.CS_MODE_32
    md = capstone.Cs(capstone.CS_ARCH_X86, mode)
    out, at = [], 0
    for insn in md.disasm(code, address):
        if insn.mnemonic == "int3":  # the padding after the code
            break
        out.append(f"{insn.mnemonic} {insn.op_str}".strip())
        at = insn.address + insn.size - address
        if insn.mnemonic == "jmp" and "ptr" in insn.op_str:  # the jump to the guest ends the code
            break
    assert at, "nothing decoded"
    return out


@pytest.mark.parametrize("bits", [32, 64])
def test_multiboot_header(bits):
    stub = mb.build(image(bits), RAM).stub
    magic, flags, checksum, header, load, load_end, bss_end, entry = struct.unpack_from("<8I", stub)
    assert (magic, flags) == (0x1BADB002, 1 << 16)
    assert (magic + flags + checksum) & 0xFFFFFFFF == 0
    assert header == load == mb.STUB_BASE
    assert load_end == bss_end == mb.STUB_BASE + len(stub)
    assert entry == mb.STUB_BASE + mb.CODE32
    assert load_end <= 0x9F000  # below the EBDA and the PC's 640 KiB hole


def test_32_bit_code_decodes_to_the_start_state():
    boot = mb.build(image(32, entry=0x100000), RAM)
    text = disasm(boot.stub[mb.CODE32:mb.CODE64], mb.STUB_BASE + mb.CODE32, 32)
    assert text[:5] == ["cli", f"mov esp, {mb.STUB_BASE:#x}", "mov al, 0xff", "out 0x21, al",
                        "out 0xa1, al"]
    assert "rep stosd dword ptr es:[edi], eax" in text
    tail = text[text.index("mov eax, 0x600"):]
    assert tail == ["mov eax, 0x600", "mov cr4, eax", "mov eax, 0x13", "mov cr0, eax",
                    f"mov dword ptr [{boot.started:#x}], 1", "push 2", "popfd",
                    f"mov esp, {RAM:#x}", *(f"mov {r}, 0" for r in mb._GPRS32),
                    tail[-1]]
    assert tail[-1].startswith("jmp dword ptr [")
    slot = int(tail[-1].split("[")[1].rstrip("]"), 16) - mb.STUB_BASE
    assert struct.unpack_from("<I", boot.stub, slot)[0] == 0x100000


def test_64_bit_code_decodes_to_long_mode():
    boot = mb.build(image(64, entry=0x100040, segments=((0x100000, b"\x90" * 0x41, 0x41),)), RAM)
    text32 = disasm(boot.stub[mb.CODE32:mb.CODE64], mb.STUB_BASE + mb.CODE32, 32)
    gdtr, code64 = mb.STUB_BASE + mb.GDTR, mb.STUB_BASE + mb.CODE64
    assert text32[-5:] == ["wrmsr", "mov eax, 0x80000013", "mov cr0, eax",
                           f"lgdt [{gdtr:#x}]", f"ljmp 8:{code64:#x}"]
    assert f"mov eax, {mb.STUB_BASE + mb.TABLES:#x}" in text32 and "mov cr3, eax" in text32
    assert "mov eax, 0x620" in text32  # PAE | OSFXSR | OSXMMEXCPT
    text64 = disasm(boot.stub[mb.CODE64:mb.GDT], code64, 64)
    assert text64[:8] == ["xor eax, eax", *(f"mov {s}, ax" for s in ("ds", "es", "ss", "fs", "gs")),
                          f"mov rax, {boot.started:#x}", "mov dword ptr [rax], 1"]
    assert ["push 2", "popfq", f"mov rsp, {RAM:#x}"] == text64[8:11]
    assert text64[-1] == "jmp qword ptr [rip]"  # the entry point follows the jump
    end = boot.stub.index(b"\xff\x25\x00\x00\x00\x00", mb.CODE64) + 6
    assert struct.unpack_from("<Q", boot.stub, end)[0] == 0x100040
    limit, base = struct.unpack_from("<HI", boot.stub, mb.GDTR)
    assert (limit, base) == (23, mb.STUB_BASE + mb.GDT)
    assert struct.unpack_from("<Q", boot.stub, mb.GDT + 8)[0] == 0x00209A0000000000  # L=1 code


def test_page_tables_identity_map_guest_ram():
    stub = mb.build(image(64), RAM).stub

    def entry(table_phys: int, index: int) -> int:
        return struct.unpack_from("<Q", stub, table_phys - mb.STUB_BASE + 8 * index)[0]

    for vaddr in (0, 0x100000, 0x3E00000, RAM - 1):
        pml4e = entry(mb.STUB_BASE + mb.TABLES, vaddr >> 39 & 511)
        pdpte = entry(pml4e & ~0xFFF, vaddr >> 30 & 511)
        pde = entry(pdpte & ~0xFFF, vaddr >> 21 & 511)
        assert pde & 0x83 == 0x83  # present, writable, 2 MiB page
        assert (pde & ~0x1FFFFF & (1 << 52) - 1) | (vaddr & 0x1FFFFF) == vaddr
    assert entry(entry(mb.STUB_BASE + mb.TABLES, 0) & ~0xFFF, 0) & 1
    pd = entry(mb.STUB_BASE + mb.TABLES + mb.PAGE, 0) & ~0xFFF
    assert entry(pd, RAM >> 21) == 0  # nothing past guest RAM


@pytest.mark.parametrize("blobs, expected", [
    ([(0x100000, b"x" * 10)], [(0x10000a, RAM - 0x10000a)]),
    ([(0x100000, b"x"), (0x200000, b"y" * 4)], [(0x100001, 0xfffff), (0x200004, RAM - 0x200004)]),
    ([(0x300000, b"z")], [(0x100000, 0x200000), (0x300001, RAM - 0x300001)]),
    ([(RAM - 2, b"zz")], [(0x100000, RAM - 2 - 0x100000)]),
])
def test_zero_ranges_cover_ram_but_the_guest_bytes(blobs, expected):
    assert mb.zero_ranges(blobs, RAM) == expected


def test_zero_table_in_the_stub_ends_with_a_zero_length():
    stub = mb.build(image(32), RAM).stub
    assert struct.unpack_from("<4I", stub, mb.ZERO_TABLE) == (0x100001, RAM - 0x100001, 0, 0)


def test_guest_below_1_mib_is_refused():
    with pytest.raises(EngineError, match=r"guest: segment at 0x8000 lies below 1 MiB"):
        mb.build(image(32, segments=((0x8000, b"\xf4", 1),), entry=0x8000), RAM)
