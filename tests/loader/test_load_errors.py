"""Bad input: each case is a LoadError with one clear line naming the file, never a traceback,
and nothing else on stderr (lief's own complaints are silenced)."""

from __future__ import annotations

import builtins
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt.errors import AssembleError, LoadError
from dbt.loader import Arch, load
from loader_files import (ARM64, EM_ARM, EM_RISCV, EM_X86_64, ET_DYN, ET_REL, PT_NOTE, Phdr,
                          Section, make_elf, make_pe, write)


def refused(path: str, *args, capfd=None, **kwargs) -> str:
    """The loader's message for ``path`` (checked to be one line naming the file)."""
    with pytest.raises(LoadError) as e:
        load(path, *args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and e.value.path == path
    if capfd is not None:
        out, err = capfd.readouterr()
        assert (out, err) == ("", ""), "lief (or keystone) printed something"
    return msg[len(path) + 2:]


# --- the file itself -------------------------------------------------------------------------

def test_missing_file(tmp_path):
    assert refused(str(tmp_path / "nope.bin")) == "no such file"


def test_directory(tmp_path):
    assert refused(str(tmp_path)) == "is a directory, not a guest file"


def test_unreadable_file(tmp_path, monkeypatch):
    """Permission errors, simulated (chmod 000 does not stop root)."""
    path = write(tmp_path, "g.bin", b"\xf4")
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    assert refused(path) == "permission denied"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_unreadable_file_for_real(tmp_path):
    path = write(tmp_path, "g.bin", b"\xf4")
    os.chmod(path, 0)
    try:
        assert refused(path) == "permission denied"
    finally:
        os.chmod(path, 0o644)


def test_other_os_error(tmp_path, monkeypatch):
    path = write(tmp_path, "g.bin", b"\xf4")

    def broken(file, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(builtins, "open", broken)
    assert refused(path) == "cannot read: Input/output error"


@pytest.mark.parametrize("name", ["empty.bin", "empty.s", "empty.elf"])
def test_empty_file(tmp_path, name):
    assert refused(write(tmp_path, name, b"")) == "is empty"


# --- ELF -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [32, 64])
def test_truncated_elf_cut_in_half(tmp_path, bits, capfd):
    elf = make_elf(bits, [Phdr(0x100000, bytes(range(256)) * 2)])
    msg = refused(write(tmp_path, "g.elf", elf[:len(elf) // 2]), capfd=capfd)
    assert msg.startswith("truncated ELF: segment 0 (PT_LOAD at 0x100000) has its bytes at "
                          "file offset ")
    assert "past the end of the file" in msg


def test_gcc_elf_cut_in_half(tmp_path, gcc_elf, capfd):
    _, path = gcc_elf
    data = path.read_bytes()
    assert refused(write(tmp_path, "g.elf", data[:len(data) // 2]), capfd=capfd) \
        .startswith("truncated ELF: segment ")


@pytest.mark.parametrize("cut,why", [
    (10, "truncated ELF: 10 bytes, less than the 16-byte identification"),
    (40, "truncated ELF: 40 bytes, less than the 52-byte ELF32 header"),
    (60, "truncated ELF: program headers at 0x34-0x54 run past the end of the file (0x3c bytes)"),
])
def test_truncated_elf_header(tmp_path, cut, why, capfd):
    assert refused(write(tmp_path, "g.elf", make_elf(32)[:cut]), capfd=capfd) == why


def test_corrupt_elf_header(tmp_path, capfd):
    garbage = b"\x7fELF" + bytes((i * 97 + 13) & 0xFF for i in range(200))
    assert refused(write(tmp_path, "g.elf", garbage), capfd=capfd).startswith(
        "corrupt ELF header: class byte 0xd is neither ELFCLASS32 (1) nor ELFCLASS64 (2)")


@pytest.mark.parametrize("machine,name", [(EM_ARM, "ARM (EM_ARM)"), (EM_RISCV, "RISC-V (EM_RISCV)"),
                                          (1234, "machine 1234")])
def test_elf_for_another_machine(tmp_path, machine, name, capfd):
    elf = make_elf(64 if machine == EM_RISCV else 32, machine=machine)
    assert refused(write(tmp_path, "g.elf", elf), capfd=capfd) == \
        f"ELF for {name}, dbt runs x86 only"


def test_x32_abi_elf(tmp_path):
    assert refused(write(tmp_path, "g.elf", make_elf(32, machine=EM_X86_64))) == \
        "ELF32 for x86-64 (EM_X86_64) (the x32 ABI) is not supported"


def test_big_endian_elf(tmp_path):
    elf = bytearray(make_elf(32))
    elf[5] = 2
    assert refused(write(tmp_path, "g.elf", bytes(elf))).startswith("big-endian ELF")


@pytest.mark.parametrize("etype,why", [
    (ET_DYN, "a shared object or position-independent executable (ET_DYN)"),
    (ET_REL, "a relocatable object file (ET_REL): link it into an executable first"),
])
def test_elf_that_is_not_an_executable(tmp_path, etype, why):
    assert refused(write(tmp_path, "g.elf", make_elf(64, etype=etype))).startswith(why)


def test_gcc_object_file(tmp_path, gcc_elf):
    """A real ET_REL: what 'gcc -c' makes."""
    import subprocess

    bits, _ = gcc_elf
    src = write(tmp_path, "f.c", "int f(void) { return 1; }")
    obj = str(tmp_path / "f.o")
    subprocess.run(["gcc", f"-m{bits}", "-c", "-o", obj, src], check=True)
    assert "relocatable object file (ET_REL)" in refused(obj)


def test_elf_without_load_segments(tmp_path):
    elf = make_elf(32, [Phdr(0, b"note", type=PT_NOTE)])
    assert refused(write(tmp_path, "g.elf", elf)) == \
        "ELF executable without PT_LOAD segments: nothing to load"


def test_elf_without_program_headers(tmp_path):
    assert refused(write(tmp_path, "g.elf", make_elf(32, []))) == \
        "ELF executable without program headers: nothing to load"


def test_elf_filesz_larger_than_memsz(tmp_path):
    elf = make_elf(32, [Phdr(0x100000, b"abcd", memsz=2)])
    assert "has p_filesz 0x4 larger than p_memsz 0x2" in refused(write(tmp_path, "g.elf", elf))


def test_elf_entry_outside_its_segments(tmp_path):
    elf = make_elf(32, [Phdr(0x100000, b"\xf4")], entry=0x200000)
    assert refused(write(tmp_path, "g.elf", elf)) == \
        "entry point 0x200000 is not inside any segment"


def test_elf_arch_argument_contradicts_the_file(tmp_path):
    path = write(tmp_path, "g.elf", make_elf(32))
    assert refused(path, "x86_64") == "x86_64 was asked for, but the file is ELF for x86_32"


def test_overlapping_segments(tmp_path):
    elf = make_elf(32, [Phdr(0x100000, b"\x90" * 16), Phdr(0x100008, b"\xf4")])
    assert refused(write(tmp_path, "g.elf", elf)) == \
        "segments 0x100000-0x100010 and 0x100008-0x100009 overlap"


# --- PE ------------------------------------------------------------------------------------------

def test_pe_section_data_past_the_end_of_the_file(tmp_path, capfd):
    pe = make_pe(32, [Section(".text", 0x1000, b"\xf4", raw_at=0x10000)])
    assert refused(write(tmp_path, "g.exe", pe), capfd=capfd) == (
        "truncated PE: section '.text' has its raw data at file offset 0x10000-0x10200, "
        "past the end of the file (0x400 bytes)")


def test_pe_cut_short(tmp_path, capfd):
    pe = make_pe(64, [Section(".text", 0x1000, b"\x90" * 0x1000)])
    msg = refused(write(tmp_path, "g.exe", pe[:0x800]), capfd=capfd)
    assert msg.startswith("truncated PE: section '.text' has its raw data")


@pytest.mark.parametrize("cut", [0x50, 0x80])
def test_pe_headers_cut_short(tmp_path, cut, capfd):
    assert refused(write(tmp_path, "g.exe", make_pe(32)[:cut]), capfd=capfd) \
        .startswith("truncated PE: ")


def test_pe_for_arm64(tmp_path, capfd):
    assert refused(write(tmp_path, "g.exe", make_pe(64, machine=ARM64)), capfd=capfd) == \
        "PE for ARM64 (IMAGE_FILE_MACHINE_ARM64), dbt runs x86 only"


def test_pe32_plus_for_i386_is_inconsistent(tmp_path):
    assert refused(write(tmp_path, "g.exe", make_pe(64, machine=0x14C))) == \
        "corrupt PE: PE32+ for I386 (IMAGE_FILE_MACHINE_I386)"


def test_mz_without_pe_signature_named_exe(tmp_path):
    assert refused(write(tmp_path, "g.exe", b"MZ" + bytes(100))).startswith(
        "MZ header without a PE signature: not a PE image")


def test_pe_without_entry_point(tmp_path):
    assert refused(write(tmp_path, "g.exe", make_pe(32, entry_rva=0))) == \
        "PE without an entry point (AddressOfEntryPoint is 0)"


def test_pe_arch_argument_contradicts_the_file(tmp_path):
    assert refused(write(tmp_path, "g.exe", make_pe(64)), Arch.X86_32) == \
        "x86_32 was asked for, but the file is PE for x86_64"


def test_pe_at_an_image_base_outside_guest_ram(tmp_path):
    """The usual 64-bit base, 0x140000000, is not in 64 MiB of RAM (no relocation here)."""
    assert refused(write(tmp_path, "g.exe", make_pe(64, base=0x140000000))) == \
        "segment 0x140000000-0x140000200 lies outside guest RAM (64 MiB)"


# --- assembly --------------------------------------------------------------------------------

def test_asm_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "g.s", "bits 32\n; comment\nnop\n  movv eax, 1\nnop\n")
    with pytest.raises(AssembleError):
        load(path)
    assert refused(path) == "line 4: Invalid mnemonic (KS_ERR_ASM_MNEMONICFAIL): movv eax, 1"


@pytest.mark.parametrize("source,why", [
    ("nop\nbits 64\nnop", "line 2: 'bits 64' must come before the code (the whole file is one "
                          "mode)"),
    ("bits 32\n.code64\nnop", "line 2: '.code64' contradicts line 1"),
    ("bits 16\nnop", "line 1: dbt runs 32- and 64-bit code only: bits 16"),
    ("mov rax, 1", "line 1: Invalid operand (KS_ERR_ASM_INVALIDOPERAND): mov rax, 1"),
])
def test_asm_mode_errors(tmp_path, source, why):
    assert refused(write(tmp_path, "g.s", source)) == why


def test_asm_arch_argument_contradicts_the_directive(tmp_path):
    path = write(tmp_path, "g.s", "; header\nbits 64\nnop")
    assert refused(path, "x86_32") == "line 2: the source says 64-bit but x86_32 was asked for"


def test_asm_not_utf8(tmp_path):
    assert refused(write(tmp_path, "g.s", b"nop\n\xff\xfe")) == \
        "assembly source is not UTF-8 text (byte 0x4)"


def test_asm_without_code(tmp_path):
    assert refused(write(tmp_path, "g.s", "; nothing\nlabel:\n")) == "assembles to no code"


# --- guest RAM -----------------------------------------------------------------------------------

def test_image_larger_than_guest_ram(tmp_path):
    path = write(tmp_path, "g.bin", bytes(2 << 20))
    assert refused(path, ram_size=1 << 20) == "image of 2 MiB is larger than guest RAM (1 MiB)"


def test_segment_outside_guest_ram(tmp_path):
    elf = make_elf(32, [Phdr(0x4000000, b"\xf4", memsz=0x1000)], entry=0x4000000)
    assert refused(write(tmp_path, "g.elf", elf)) == \
        "segment 0x4000000-0x4001000 lies outside guest RAM (64 MiB)"


def test_raw_image_past_the_end_of_small_ram(tmp_path):
    path = write(tmp_path, "g.bin", b"\xf4" * 16)
    assert refused(path, ram_size=1 << 20) == \
        "segment 0x100000-0x100010 lies outside guest RAM (1 MiB)"


@pytest.mark.parametrize("ram", [0, -4096, 1000, 4097, 1.5, True, "64"])
def test_ram_size_must_be_a_positive_multiple_of_4096(tmp_path, ram):
    path = write(tmp_path, "g.bin", b"\xf4")
    assert refused(path, ram_size=ram) == \
        f"guest RAM size {ram!r} is not a positive multiple of 4096 bytes"


def test_unknown_arch(tmp_path):
    assert refused(write(tmp_path, "g.bin", b"\xf4"), "arm") == \
        "unknown architecture 'arm' (use x86_32 or x86_64)"


# --- whatever the bytes, a LoadError or an image -----------------------------------------------

def _load_bytes(tmp_path: Path, name: str, data: bytes) -> None:
    path = write(tmp_path, name, data)
    try:
        load(path)
    except LoadError as e:
        assert "\n" not in str(e)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(min_size=0, max_size=400))
def test_any_bytes_after_the_elf_magic(tmp_path, tail):
    _load_bytes(tmp_path, "g.elf", b"\x7fELF" + tail)


@FUZZ
@given(st.data())
def test_mutated_elf(tmp_path, data):
    elf = bytearray(make_elf(64, [Phdr(0x100000, b"\x90\xf4" * 64),
                                  Phdr(0x200000, b"ab", memsz=0x100)]))
    for _ in range(data.draw(st.integers(1, 6))):
        elf[data.draw(st.integers(0, len(elf) - 1))] = data.draw(st.integers(0, 255))
    _load_bytes(tmp_path, "g.elf", bytes(elf[:data.draw(st.integers(0, len(elf)))]))


@FUZZ
@given(st.data())
def test_mutated_pe(tmp_path, data):
    pe = bytearray(make_pe(data.draw(st.sampled_from([32, 64])),
                           [Section(".text", 0x1000, b"\x90\xf4"),
                            Section(".data", 0x2000, b"abc", vsize=0x3000)]))
    for _ in range(data.draw(st.integers(1, 6))):
        pe[data.draw(st.integers(0, 0x2FF))] = data.draw(st.integers(0, 255))
    _load_bytes(tmp_path, "g.exe", bytes(pe[:data.draw(st.integers(0, len(pe)))]))


def test_corrupt_files_print_nothing(tmp_path, capfd):
    """lief logs 'Failed to read ELF identity' and friends to stderr unless silenced."""
    for name, data in [("a.elf", b"\x7fELF\x01\x01\x01" + bytes(50)),
                       ("b.elf", make_elf(32)[:60]),
                       ("c.exe", make_pe(32)[:0x120]),
                       ("d.elf", b"\x7fELF\x02\x01\x01" + struct.pack("<9xHH", 2, 62) + bytes(40))]:
        refused(write(tmp_path, name, data), capfd=capfd)
