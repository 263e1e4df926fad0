"""Loading good guests: raw, assembly, ELF (gcc-built and hand-written), PE32 and PE32+."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dbt.loader import DEFAULT_LOAD_ADDRESS, DEFAULT_RAM_SIZE, Arch, Image, Segment, load
from loader_files import (PT_LOAD, PT_NOTE, Phdr, Section, make_elf, make_pe,
                          program_headers, write)

ROOT = Path(__file__).resolve().parents[2]


def test_types():
    assert DEFAULT_LOAD_ADDRESS == 0x100000 and DEFAULT_RAM_SIZE == 64 << 20
    assert (Arch.X86_32.bits, Arch.X86_64.bits) == (32, 64)
    assert Arch("x86_64") is Arch.X86_64
    seg = Segment(0x1000, b"ab", 0x10)
    assert seg.end == 0x1010
    image = Image("g", "raw", Arch.X86_32, 0x1000, (seg,), {"x": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.entry = 0  # type: ignore[misc]
    hash(image)  # usable as a key despite the symbols dict


# --- raw ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["guest.bin", "guest.img", "guest"])
def test_raw_image(tmp_path, name):
    image = load(write(tmp_path, name, b"\xf4\x90"))
    assert (image.format, image.arch, image.entry) == ("raw", Arch.X86_32, 0x100000)
    assert image.segments == (Segment(0x100000, b"\xf4\x90", 2),)
    assert image.symbols == {}


@pytest.mark.parametrize("arch", ["x86_64", Arch.X86_64])
def test_raw_image_arch_from_the_argument(tmp_path, arch):
    assert load(write(tmp_path, "g.bin", b"\xf4"), arch).arch is Arch.X86_64


def test_mz_bytes_without_pe_header_are_raw_in_a_bin(tmp_path):
    """'MZ' is 'dec ebp; pop edx': only a PE signature makes the file a PE."""
    assert load(write(tmp_path, "g.bin", b"MZ\xf4")).format == "raw"


# --- assembly ----------------------------------------------------------------------------------

HELLO = """\
; a comment first
start:  mov esi, msg        ; the entry is the first byte, whatever the labels are called
        hlt
_start: nop
msg:    .asciz "hi\\n"
"""


@pytest.mark.parametrize("suffix", [".s", ".S", ".asm"])
def test_asm_32(tmp_path, suffix):
    image = load(write(tmp_path, "g" + suffix, HELLO))
    assert (image.format, image.arch, image.entry) == ("asm", Arch.X86_32, 0x100000)
    code = bytes.fromhex("be07001000") + b"\xf4\x90" + b"hi\n\0"
    assert image.segments == (Segment(0x100000, code, len(code)),)
    assert image.symbols == {"start": 0x100000, "_start": 0x100006, "msg": 0x100007}


@pytest.mark.parametrize("directive", ["bits 64", "BITS 64", "[bits 64]", ".code64",
                                       "start: bits 64"])
def test_asm_64_by_directive(tmp_path, directive):
    src = f"; header\n\n.globl start\n{directive}\nmov rax, 1\n"
    image = load(write(tmp_path, "g.s", src))
    assert image.arch is Arch.X86_64
    assert image.segments[0].data == bytes.fromhex("48c7c001000000")


def test_asm_64_by_argument(tmp_path):
    image = load(write(tmp_path, "g.s", "mov rax, 1"), "x86_64")
    assert image.arch is Arch.X86_64 and image.segments[0].data == bytes.fromhex("48c7c001000000")


def test_asm_directive_that_agrees_with_the_argument(tmp_path):
    assert load(write(tmp_path, "g.s", "bits 32\nnop"), Arch.X86_32).arch is Arch.X86_32
    assert load(write(tmp_path, "g.s", "bits 64\nbits 64\nnop"), "x86_64").arch is Arch.X86_64


def test_bundled_example_loads():
    image = load(str(ROOT / "examples" / "hello.s"))
    assert image.format == "asm" and image.segments[0].data.endswith(b"Hello from the guest\n\0")
    assert image.symbols["message"] == 0x100000 + image.segments[0].data.index(b"Hello")


# --- ELF -----------------------------------------------------------------------------------------

def test_gcc_elf(gcc_elf):
    bits, path = gcc_elf
    data = path.read_bytes()
    image = load(str(path))
    assert (image.format, image.arch) == ("ELF", Arch.X86_64 if bits == 64 else Arch.X86_32)
    assert image.entry == image.symbols["_start"] == 0x200000
    assert "guest.c" not in image.symbols  # STT_FILE and STT_SECTION symbols are left out
    loads = [(paddr, data[off:off + filesz], memsz)
             for ptype, off, vaddr, paddr, filesz, memsz in program_headers(data)
             if ptype == PT_LOAD and memsz]
    assert [(s.addr, s.data, s.memsz) for s in image.segments] == loads
    # .data holds counter = 5; buffer is in the zero-filled tail of the same segment
    counter, buffer = image.symbols["counter"], image.symbols["buffer"]
    seg = next(s for s in image.segments if s.addr <= counter < s.end)
    assert seg.data[counter - seg.addr:counter - seg.addr + 4] == (5).to_bytes(4, "little")
    assert len(seg.data) < seg.memsz and seg.addr + len(seg.data) <= buffer
    assert buffer + 8192 <= seg.end


def test_gcc_elf_arch_argument_that_agrees(gcc_elf):
    bits, path = gcc_elf
    assert load(str(path), f"x86_{bits}").arch.bits == bits


@pytest.mark.parametrize("bits", [32, 64])
def test_hand_written_elf(tmp_path, bits):
    elf = make_elf(bits, [Phdr(0x100000, b"\x90\xf4"), Phdr(0, b"note", type=PT_NOTE),
                          Phdr(0x300000, b"", memsz=0),  # empty: skipped
                          Phdr(0x101000, b"ab", memsz=0x1000)], entry=0x100001)
    image = load(write(tmp_path, "g.elf", elf))
    assert image.arch.bits == bits and image.entry == 0x100001
    assert image.segments == (Segment(0x100000, b"\x90\xf4", 2), Segment(0x101000, b"ab", 0x1000))
    assert image.symbols == {}


def test_elf_loads_at_physical_addresses(tmp_path):
    """A kernel linked high (vaddr) and loaded low (paddr): segments go to p_paddr and the
    entry point moves with them, as Multiboot loaders and QEMU do."""
    elf = make_elf(64, [Phdr(0xFFFFFFFF80100000, b"\x90\xf4", paddr=0x100000)],
                   entry=0xFFFFFFFF80100001)
    image = load(write(tmp_path, "g.elf", elf))
    assert image.segments == (Segment(0x100000, b"\x90\xf4", 2),) and image.entry == 0x100001


# --- PE ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [32, 64])
def test_pe(tmp_path, bits):
    pe = make_pe(bits, [Section(".text", 0x1000, b"\x90\xf4"),
                        Section(".data", 0x2000, b"abc", vsize=0x3000),
                        Section(".bss", 0x5000, b"", vsize=0x100)],
                 base=0x400000, entry_rva=0x1001)
    image = load(write(tmp_path, "g.exe", pe))
    assert (image.format, image.arch.bits, image.entry) == ("PE", bits, 0x401001)
    headers, text, data, bss = image.segments
    assert headers == Segment(0x400000, pe[:0x200], 0x200)  # SizeOfHeaders bytes
    assert text == Segment(0x401000, b"\x90\xf4".ljust(0x200, b"\0"), 0x200)  # raw size > virtual
    assert data == Segment(0x402000, b"abc".ljust(0x200, b"\0"), 0x3000)  # virtual > raw
    assert bss == Segment(0x405000, b"", 0x100)
    assert image.symbols == {}


def test_pe_is_recognised_by_content_whatever_its_name(tmp_path):
    assert load(write(tmp_path, "guest.bin", make_pe(32))).format == "PE"


# --- C -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", [None, "x86_64"])
def test_a_c_file_is_built_and_loaded_as_its_elf(arch):
    image = load(str(ROOT / "guests" / "c" / "crc32.c"), arch)
    assert image.format == "ELF" and image.arch is Arch(arch or "x86_32")
    assert image.entry >= DEFAULT_LOAD_ADDRESS


def test_a_c_file_that_does_not_compile_names_gccs_error(tmp_path):
    from dbt.errors import LoadError

    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return 0 }\n")
    with pytest.raises(LoadError, match=r"bad\.c: gcc failed: .*error: expected"):
        load(str(bad))
