"""Guest files for the loader tests, written byte by byte (ELF, PE) or built with gcc."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

PT_LOAD, PT_NOTE = 1, 4
EM_386, EM_X86_64, EM_ARM, EM_RISCV = 3, 62, 40, 243
ET_REL, ET_EXEC, ET_DYN = 1, 2, 3


@dataclass
class Phdr:
    vaddr: int
    data: bytes
    memsz: int | None = None  # default len(data)
    paddr: int | None = None  # default vaddr
    type: int = PT_LOAD


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    """Write a test file (text or bytes) and return its path as a string."""
    p = tmp_path / name
    if isinstance(data, str):
        p.write_text(data)
    else:
        p.write_bytes(data)
    return str(p)


def make_elf(bits: int = 32, phdrs: list[Phdr] | None = None, entry: int = 0x100000,
             machine: int | None = None, etype: int = ET_EXEC) -> bytes:
    """A minimal ELF: header, program headers, then each segment's bytes (no sections)."""
    if phdrs is None:
        phdrs = [Phdr(0x100000, b"\xf4")]
    machine = machine if machine is not None else (EM_X86_64 if bits == 64 else EM_386)
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1, 1]) + bytes(9)
    offset = ehsize + phentsize * len(phdrs)
    table, body = b"", b""
    for p in phdrs:
        memsz = len(p.data) if p.memsz is None else p.memsz
        paddr = p.vaddr if p.paddr is None else p.paddr
        fields = (p.type, offset, p.vaddr, paddr, len(p.data), memsz)
        if bits == 64:
            table += struct.pack("<IIQQQQQQ", p.type, 7, offset, p.vaddr, paddr, len(p.data),
                                 memsz, 1)
        else:
            table += struct.pack("<IIIIIIII", *fields, 7, 1)
        body += p.data
        offset += len(p.data)
    if bits == 64:
        header = struct.pack("<16sHHIQQQIHHHHHH", ident, etype, machine, 1, entry, 64, 0, 0,
                             ehsize, phentsize, len(phdrs), 64, 0, 0)
    else:
        header = struct.pack("<16sHHIIIIIHHHHHH", ident, etype, machine, 1, entry, 52, 0, 0,
                             ehsize, phentsize, len(phdrs), 40, 0, 0)
    return header + table + body


@dataclass
class Section:
    name: str
    rva: int
    data: bytes
    vsize: int | None = None  # default len(data)
    raw_at: int | None = None  # override PointerToRawData


I386, AMD64, ARM64 = 0x14C, 0x8664, 0xAA64


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def make_pe(bits: int = 32, sections: list[Section] | None = None, base: int = 0x400000,
            entry_rva: int = 0x1000, machine: int | None = None,
            file_align: int = 0x200, section_align: int = 0x1000) -> bytes:
    """A minimal PE32 (bits=32) or PE32+ (bits=64) image, laid out as the PE/COFF spec says."""
    if sections is None:
        sections = [Section(".text", 0x1000, b"\xf4")]
    machine = machine if machine is not None else (AMD64 if bits == 64 else I386)
    opt_size = 240 if bits == 64 else 224
    lfanew = 0x40
    headers_end = lfanew + 4 + 20 + opt_size + 40 * len(sections)
    size_of_headers = _align(headers_end, file_align)
    raw_at = size_of_headers
    table, body = b"", b""
    image_end = size_of_headers
    for s in sections:
        raw_size = _align(len(s.data), file_align)
        vsize = len(s.data) if s.vsize is None else s.vsize
        pointer = s.raw_at if s.raw_at is not None else raw_at
        table += struct.pack("<8sIIIIIIHHI", s.name.encode()[:8], vsize, s.rva, raw_size,
                             pointer if raw_size else 0, 0, 0, 0, 0, 0x60000020)
        body += s.data.ljust(raw_size, b"\0")
        raw_at += raw_size
        image_end = max(image_end, s.rva + max(vsize, raw_size))
    size_of_image = _align(image_end, section_align)
    dirs = bytes(16 * 8)
    if bits == 64:
        opt = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 14, 0, 0, 0, 0, entry_rva,
                          0x1000, base, section_align, file_align, 6, 0, 0, 0, 6, 0, 0,
                          size_of_image, size_of_headers, 0, 3, 0, 0x100000, 0x1000,
                          0x100000, 0x1000, 0, 16) + dirs
    else:
        opt = struct.pack("<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII", 0x10B, 14, 0, 0, 0, 0, entry_rva,
                          0x1000, 0, base, section_align, file_align, 6, 0, 0, 0, 6, 0, 0,
                          size_of_image, size_of_headers, 0, 3, 0, 0x100000, 0x1000,
                          0x100000, 0x1000, 0, 16) + dirs
    assert len(opt) == opt_size
    coff = struct.pack("<HHIIIHH", machine, len(sections), 0, 0, 0, opt_size,
                       0x0102 if bits == 32 else 0x0022)
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", lfanew)
    headers = (dos + b"PE\0\0" + coff + opt + table).ljust(size_of_headers, b"\0")
    return headers + body


C_GUEST = r"""
int counter = 5;                 /* .data */
char buffer[8192];               /* .bss */
void _start(void)
{
    buffer[0] = (char)counter;
    for (;;)
        __asm__ volatile("cli; hlt");
}
"""
GCC_FLAGS = ["-nostdlib", "-static", "-ffreestanding", "-fno-pic", "-no-pie",
             "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-O2",
             "-Wl,--build-id=none", "-Wl,-Ttext=0x200000"]


def build_gcc_elf(bits: int, out_dir: Path) -> tuple[Path | None, str]:
    """(path, "") of C_GUEST compiled for ``bits``, or (None, why not)."""
    gcc = shutil.which("gcc")
    if not gcc:
        return None, "no gcc on PATH"
    src = out_dir / "guest.c"
    src.write_text(C_GUEST)
    out = out_dir / f"guest{bits}.elf"
    p = subprocess.run([gcc, f"-m{bits}", *GCC_FLAGS, "-o", str(out), str(src)],
                       capture_output=True, text=True)
    if p.returncode:
        first = (p.stderr.strip().splitlines() or ["no output"])[0]
        hint = " (apt-get install gcc-multilib)" if bits == 32 else ""
        return None, f"gcc -m{bits} cannot build a static executable here{hint}: {first}"
    return out, ""


def program_headers(data: bytes) -> list[tuple[int, int, int, int, int, int]]:
    """(type, offset, vaddr, paddr, filesz, memsz) of each program header, read with struct
    (an independent reading to check lief's against)."""
    if data[4] == 2:
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        return [(lambda t, f, o, v, p, fs, ms, a: (t, o, v, p, fs, ms))(
            *struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)) for i in range(phnum)]
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    return [struct.unpack_from("<IIIIII", data, phoff + i * phentsize) for i in range(phnum)]
