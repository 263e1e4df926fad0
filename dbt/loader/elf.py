"""ELF executables through lief: PT_LOAD segments, entry point, symbols (System V gABI, ch. 4-5).

Only statically linked executables (``ET_EXEC``) for ``EM_386`` (ELF32) and
``EM_X86_64`` (ELF64) load. Each ``PT_LOAD`` segment goes to its physical
address ``p_paddr`` (paging is off, or identity-mapped, when the guest starts —
what QEMU and Multiboot loaders do): ``p_filesz`` bytes from the file, then
zeros up to ``p_memsz``. The entry point is ``e_entry``; if it lies in a
segment's virtual range whose ``p_paddr`` differs (a kernel linked high and
loaded low) it is moved to the matching physical address. Symbols (``.symtab``
and ``.dynsym``: functions, objects and untyped names) become the image's
symbols, a global one winning over a local one of the same name.

lief is not trusted with broken files: it parses a 10-byte file into a header
of uninitialised memory, and lists segments whose data lies past the end of a
truncated file. So the identification, header size, machine, type and program
header table are checked here from the bytes first, every segment's file range
after, and lief's logging is silenced so the user sees dbt's one line only.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings

import lief

from dbt.errors import LoadError
from dbt.loader.image import Arch, Image, Segment

#: e_machine -> (constant, name), for messages; the two x86 machines are what loads
MACHINES = {
    0: ("EM_NONE", "no machine"),
    2: ("EM_SPARC", "SPARC"),
    3: ("EM_386", "Intel 80386"),
    6: ("EM_IAMCU", "Intel MCU"),
    8: ("EM_MIPS", "MIPS"),
    20: ("EM_PPC", "PowerPC"),
    21: ("EM_PPC64", "PowerPC 64"),
    22: ("EM_S390", "IBM S/390"),
    40: ("EM_ARM", "ARM"),
    43: ("EM_SPARCV9", "SPARC V9"),
    50: ("EM_IA_64", "IA-64"),
    62: ("EM_X86_64", "x86-64"),
    183: ("EM_AARCH64", "AArch64"),
    243: ("EM_RISCV", "RISC-V"),
    258: ("EM_LOONGARCH", "LoongArch"),
}
EM_386, EM_X86_64 = 3, 62
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
PT_LOAD = 1
#: ELF class -> (name, header size, program header entry size)
CLASSES = {1: ("ELF32", 52, 32), 2: ("ELF64", 64, 56)}
_TYPES = {
    ET_REL: "a relocatable object file (ET_REL): link it into an executable first",
    ET_DYN: "a shared object or position-independent executable (ET_DYN): dbt loads "
            "static executables at fixed addresses (link with -static -no-pie)",
    ET_CORE: "a core dump (ET_CORE), not an executable",
}


@contextlib.contextmanager
def quiet_lief():
    """lief says nothing: its log is off, and its bindings' warnings (an enum value it does
    not know) are ignored — the user sees dbt's one line only."""
    with lief.logging.level_scope(lief.logging.LEVEL.OFF), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def machine_name(machine: int) -> str:
    const, name = MACHINES.get(machine, (None, None))
    return f"{name} ({const})" if const else f"machine {machine}"


def load_elf(path: str, data: bytes) -> Image:
    arch, klass = _check_header(path, data)
    elf = _parse(path, data)
    segments, loads = _segments(path, data, elf, klass)
    entry = _entry(path, elf, loads)
    return Image(path, "ELF", arch, entry, tuple(segments), _symbols(elf))


def _check_header(path: str, data: bytes) -> tuple[Arch, int]:
    """What lief would get wrong: check the ELF header from the bytes; (arch, class)."""
    if len(data) < 16:
        raise LoadError(path, f"truncated ELF: {len(data)} bytes, less than the 16-byte "
                              f"identification")
    klass, order, version = data[4], data[5], data[6]
    if klass not in CLASSES:
        raise LoadError(path, f"corrupt ELF header: class byte {klass:#x} is neither "
                              f"ELFCLASS32 (1) nor ELFCLASS64 (2)")
    if order == 2:
        raise LoadError(path, "big-endian ELF (ELFDATA2MSB): not an x86 executable")
    if order != 1 or version != 1:
        raise LoadError(path, f"corrupt ELF header: data byte {order:#x}, version byte "
                              f"{version:#x} (expected 1, 1)")
    name, header_size, phent_size = CLASSES[klass]
    if len(data) < header_size:
        raise LoadError(path, f"truncated ELF: {len(data)} bytes, less than the "
                              f"{header_size}-byte {name} header")
    e_type, machine = struct.unpack_from("<HH", data, 16)
    if machine not in (EM_386, EM_X86_64):
        raise LoadError(path, f"ELF for {machine_name(machine)}, dbt runs x86 only")
    if (klass == 2) != (machine == EM_X86_64):
        why = " (the x32 ABI)" if machine == EM_X86_64 else ""
        raise LoadError(path, f"{name} for {machine_name(machine)}{why} is not supported")
    if e_type != ET_EXEC:
        raise LoadError(path, f"{_TYPES.get(e_type, f'ELF type {e_type}, not an executable')}")
    if klass == 1:
        phoff, = struct.unpack_from("<I", data, 28)
        phentsize, phnum = struct.unpack_from("<HH", data, 42)
    else:
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
    if phnum == 0:
        raise LoadError(path, "ELF executable without program headers: nothing to load")
    if phentsize != phent_size:
        raise LoadError(path, f"corrupt ELF header: program header size {phentsize}, "
                              f"expected {phent_size}")
    end = phoff + phnum * phentsize
    if end > len(data):
        raise LoadError(path, f"truncated ELF: program headers at {phoff:#x}-{end:#x} run past "
                              f"the end of the file ({len(data):#x} bytes)")
    return (Arch.X86_64 if klass == 2 else Arch.X86_32), klass


def lief_parse(path: str, data: bytes, parse, binary_type, what: str):
    """Parse with lief, quietly; any failure of lief's is a one-line LoadError."""
    try:
        with quiet_lief():
            binary = parse(io.BytesIO(data))
    except Exception as e:  # lief raises assorted types on bad input
        raise LoadError(path, f"corrupt {what}: lief cannot parse it ({type(e).__name__}: "
                              f"{e})".replace("\n", " ")) from None
    if binary is None or not isinstance(binary, binary_type):
        raise LoadError(path, f"corrupt {what}: lief cannot parse it")
    return binary


def _parse(path: str, data: bytes):
    return lief_parse(path, data, lief.ELF.parse, lief.ELF.Binary, "ELF")


def _segments(path: str, data: bytes, elf, klass: int):
    """The PT_LOAD segments as Segments, and (vaddr, paddr, memsz) of each for the entry point."""
    try:
        with quiet_lief():
            rows = [(int(s.type), s.file_offset, s.virtual_address, s.physical_address,
                     s.physical_size, s.virtual_size) for s in elf.segments]
    except Exception as e:
        raise LoadError(path, f"corrupt ELF: cannot read the program headers ({e})") from None
    phnum, = struct.unpack_from("<H", data, 44 if klass == 1 else 56)
    if len(rows) != phnum:
        raise LoadError(path, f"corrupt ELF: {len(rows)} of {phnum} program headers readable")
    segments, loads = [], []
    for index, (ptype, offset, vaddr, paddr, filesz, memsz) in enumerate(rows):
        if ptype != PT_LOAD or memsz == 0:
            continue
        where = f"segment {index} (PT_LOAD at {paddr:#x})"
        if filesz > memsz:
            raise LoadError(path, f"corrupt ELF: {where} has p_filesz {filesz:#x} larger than "
                                  f"p_memsz {memsz:#x}")
        if offset + filesz > len(data):
            raise LoadError(path, f"truncated ELF: {where} has its bytes at file offset "
                                  f"{offset:#x}-{offset + filesz:#x}, past the end of the file "
                                  f"({len(data):#x} bytes)")
        segments.append(Segment(paddr, bytes(data[offset:offset + filesz]), memsz))
        loads.append((vaddr, paddr, memsz))
    if not segments:
        raise LoadError(path, "ELF executable without PT_LOAD segments: nothing to load")
    return segments, loads


def _entry(path: str, elf, loads) -> int:
    try:
        with quiet_lief():
            entry = int(elf.header.entrypoint)
    except Exception as e:
        raise LoadError(path, f"corrupt ELF: cannot read the entry point ({e})") from None
    if any(paddr <= entry < paddr + memsz for _, paddr, memsz in loads):
        return entry
    for vaddr, paddr, memsz in loads:
        if vaddr <= entry < vaddr + memsz:
            return entry - vaddr + paddr
    return entry  # not in any segment: the image check says so


def _symbols(elf) -> dict[str, int]:
    """Name -> value of the defined function, object and untyped symbols (best effort: a
    damaged symbol table costs the symbols, not the load)."""
    keep = {lief.ELF.Symbol.TYPE.NOTYPE, lief.ELF.Symbol.TYPE.OBJECT, lief.ELF.Symbol.TYPE.FUNC}
    out: dict[str, int] = {}
    try:
        with quiet_lief():
            for sym in elf.symbols:
                if not sym.name or sym.type not in keep or sym.shndx == 0:  # SHN_UNDEF
                    continue
                if sym.binding != lief.ELF.Symbol.BINDING.LOCAL or sym.name not in out:
                    out[sym.name] = int(sym.value)
    except Exception:
        return {}
    return out
