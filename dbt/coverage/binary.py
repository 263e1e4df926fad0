"""What the coverage harness reads from a binary: its format, word size and code regions.

Every ELF type (executables, shared objects, relocatable objects such as Linux
kernel modules) and PE/PE32+ images (executables, DLLs, EFI applications) for
x86, parsed with lief (System V gABI ch. 4; Microsoft "PE Format"):

* ELF: the sections with ``SHF_EXECINSTR`` (of a type with bytes in the file),
  or, when the section headers are gone, the ``PT_LOAD`` segments with ``PF_X``.
  Roots for descent: the entry point and the defined function symbols
  (``.symtab`` and ``.dynsym``; in a relocatable object a symbol's value is an
  offset into its own section, whose address is 0).
* PE: the sections with ``IMAGE_SCN_MEM_EXECUTE`` or ``IMAGE_SCN_CNT_CODE``, at
  image base + RVA. Roots: the entry point, the exports, and the function
  starts of the exception directory (``.pdata``) of PE32+ images.

A region's bytes are read from the file, never taken from lief, and each
region's file range is checked against the file's size first, so a section
that points past the end of a truncated file is an error that names it.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import struct
from dataclasses import dataclass, field

from dbt.errors import CorpusFileError
from dbt.loader import elf as elf_loader
from dbt.loader import pe as pe_loader

#: larger ELF files reach lief as their metadata only (see _elf_metadata)
WHOLE_FILE = 64 << 20
#: SHT_SYMTAB, SHT_STRTAB, SHT_DYNAMIC, SHT_DYNSYM: what lief reads besides the header tables
_METADATA_SECTIONS = {2, 3, 6, 11}
_SHF_EXECINSTR = 0x4
_PF_X = 0x1
_SCN_CNT_CODE, _SCN_MEM_EXECUTE = 0x20, 0x20000000
_FILE_DLL = 0x2000
_EFI_SUBSYSTEMS = {10, 11, 12, 13}  # EFI application, boot/runtime driver, ROM


@dataclass
class Region:
    """Executable bytes of a binary: a section (or segment), where it loads, where it lies."""

    name: str
    address: int
    offset: int  # in the file
    size: int
    roots: list[int] = field(default_factory=list)  # known code addresses inside it


@dataclass
class Binary:
    format: str  # "ELF" | "PE"
    bits: int
    kind: str  # executable, pie, shared, relocatable, dll, efi
    entry: int | None
    regions: list[Region]


def sniff(head: bytes) -> str | None:
    """"ELF", "PE" or None, from a file's first bytes."""
    if head[:4] == b"\x7fELF":
        return "ELF"
    if head[:2] == b"MZ":
        return "PE"
    return None


def read_binary(path: str, fmt: str, size: int) -> Binary:
    """Parse a file sniffed as ``fmt``; raises :class:`CorpusFileError` if it cannot be scanned."""
    parse = _elf if fmt == "ELF" else _pe
    try:
        with elf_loader.quiet_lief():
            binary = parse(path, size)
            return _checked(path, binary, size)
    except CorpusFileError:
        raise
    except Exception as e:  # lief raises assorted types on damaged files
        raise CorpusFileError(path, f"corrupt {fmt}: {type(e).__name__}: {e}") from None


def _checked(path: str, b: Binary, size: int) -> Binary:
    for r in b.regions:
        if r.offset + r.size > size:
            raise CorpusFileError(path, f"truncated {b.format}: section {r.name!r} has its bytes "
                                        f"at file offset {r.offset:#x}-{r.offset + r.size:#x}, "
                                        f"past the end of the file ({size:#x} bytes)")
    b.regions = [r for r in b.regions if r.size > 0]
    return b


def _elf(path: str, size: int) -> Binary:
    import lief

    with open(path, "rb") as f:
        head = f.read(64)
    if len(head) < 20:
        raise CorpusFileError(path, f"truncated ELF: {len(head)} bytes")
    if head[4] not in elf_loader.CLASSES or head[5] not in (1, 2):
        raise CorpusFileError(path, f"corrupt ELF header: class {head[4]}, data {head[5]}")
    if head[5] == 2:
        raise CorpusFileError(path, "big-endian ELF: not x86", status="skipped")
    machine = int.from_bytes(head[18:20], "little")
    if machine not in (elf_loader.EM_386, elf_loader.EM_X86_64):
        raise CorpusFileError(path, f"ELF for {elf_loader.machine_name(machine)}, not x86",
                              status="skipped")
    _check_tables(path, head, size)
    config = lief.ELF.ParserConfig()
    config.parse_overlay = False  # bytes past the last section: never held in memory
    config.parse_relocations = False
    config.parse_notes = False
    config.parse_symbol_versions = False
    elf = lief.ELF.parse(path, config) if size <= WHOLE_FILE else \
        lief.ELF.parse(io.BytesIO(_elf_metadata(path, head, size)), config)
    if not isinstance(elf, lief.ELF.Binary):
        raise CorpusFileError(path, "corrupt ELF: lief cannot parse it")
    bits = 64 if head[4] == 2 else 32
    etype = int.from_bytes(head[16:18], "little")
    if etype == elf_loader.ET_CORE:
        raise CorpusFileError(path, "an ELF core dump, not code", status="skipped")
    relocatable = etype == elf_loader.ET_REL
    kind = {elf_loader.ET_REL: "relocatable", elf_loader.ET_EXEC: "executable"}.get(etype)
    if kind is None:
        kind = "pie" if elf.has_interpreter and _has_entry(elf) else "shared"
    regions: list[Region] = []
    by_index: dict[int, Region] = {}
    for index, s in enumerate(elf.sections):
        if int(s.flags) & _SHF_EXECINSTR and s.type != lief.ELF.Section.TYPE.NOBITS:
            r = Region(s.name or f"section {index}", int(s.virtual_address), int(s.offset),
                       int(s.size))
            regions.append(r)
            by_index[index] = r
    if not elf.sections:  # no section headers: the executable segments
        for index, seg in enumerate(elf.segments):
            if seg.type == lief.ELF.Segment.TYPE.LOAD and int(seg.flags) & _PF_X:
                regions.append(Region(f"segment {index}", int(seg.virtual_address),
                                      int(seg.file_offset), int(seg.physical_size)))
    entry = None if relocatable else int(elf.header.entrypoint) or None
    symbols = [*elf.symbols] if elf.symbols else []
    for sym in symbols:
        if sym.type != lief.ELF.Symbol.TYPE.FUNC or sym.shndx == 0:
            continue
        if relocatable:
            r = by_index.get(int(sym.shndx))
            if r is not None:
                r.roots.append(int(sym.value))
        else:
            _add_root(regions, int(sym.value))
    if entry is not None:
        _add_root(regions, entry)
    return Binary("ELF", bits, kind, entry, regions)


def _check_tables(path: str, head: bytes, size: int) -> None:
    """The header and its program and section header tables lie inside the file (lief
    would quietly list fewer of them)."""
    name, header_size, _ = elf_loader.CLASSES[head[4]]
    if len(head) < header_size:
        raise CorpusFileError(path, f"truncated ELF: {size} bytes, less than the "
                                    f"{header_size}-byte {name} header")
    if head[4] == 1:
        phoff, shoff = struct.unpack_from("<II", head, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 42)
    else:
        phoff, shoff = struct.unpack_from("<QQ", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
    want = {"program": 32 if head[4] == 1 else 56, "section": 40 if head[4] == 1 else 64}
    for what, off, n, ent in (("program", phoff, phnum, phentsize),
                              ("section", shoff, shnum, shentsize)):
        if n and ent != want[what]:
            raise CorpusFileError(path, f"corrupt ELF header: {what} header size {ent}, "
                                        f"expected {want[what]}")
        if n and off + n * ent > size:
            raise CorpusFileError(path, f"truncated ELF: {n} {what} headers at {off:#x}-"
                                        f"{off + n * ent:#x} run past the end of the file "
                                        f"({size:#x} bytes)")


def _elf_metadata(path: str, head: bytes, size: int) -> bytes:
    """The first bytes of a large ELF file, up to the end of its last piece of metadata
    (header tables, symbol and string tables): all lief needs, since the code is read
    from the file here. (lief reads whole files into memory.)"""
    wide = head[4] == 2
    shoff = struct.unpack_from("<Q" if wide else "<I", head, 40 if wide else 32)[0]
    shentsize, shnum = struct.unpack_from("<HH", head, 58 if wide else 46)
    phoff = struct.unpack_from("<Q" if wide else "<I", head, 32 if wide else 28)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 54 if wide else 42)
    limit = max(64, phoff + phentsize * phnum, shoff + shentsize * shnum)
    with open(path, "rb") as f:
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        for i in range(shnum):
            if wide:
                stype, = struct.unpack_from("<I", table, i * shentsize + 4)
                offset, length = struct.unpack_from("<QQ", table, i * shentsize + 24)
            else:
                stype, = struct.unpack_from("<I", table, i * shentsize + 4)
                offset, length = struct.unpack_from("<II", table, i * shentsize + 16)
            if stype in _METADATA_SECTIONS:
                limit = max(limit, min(size, offset + length))
        f.seek(0)
        return f.read(limit)


def _has_entry(elf) -> bool:
    return int(elf.header.entrypoint) != 0


def _pe(path: str, size: int) -> Binary:
    import lief

    with open(path, "rb") as f:
        head = f.read(4096)
    at = pe_loader.pe_offset(head)
    if at is None:
        raise CorpusFileError(path, "MZ header without a PE signature (a DOS program or not "
                                    "an executable)", status="skipped")
    if at + 24 > len(head):
        raise CorpusFileError(path, "truncated PE: the file ends inside the COFF header")
    machine = int.from_bytes(head[at + 4:at + 6], "little")
    if machine not in (pe_loader.I386, pe_loader.AMD64):
        raise CorpusFileError(path, f"PE for {pe_loader.machine_name(machine)}, not x86",
                              status="skipped")
    nsections, = struct.unpack_from("<H", head, at + 6)
    opt_size, = struct.unpack_from("<H", head, at + 20)
    magic = int.from_bytes(head[at + 24:at + 26], "little")
    if magic not in (pe_loader.PE32, pe_loader.PE32_PLUS):
        raise CorpusFileError(path, f"corrupt PE: optional header magic {magic:#x} is neither "
                                    f"PE32 (0x10b) nor PE32+ (0x20b)")
    if opt_size < (96 if magic == pe_loader.PE32 else 112):
        raise CorpusFileError(path, f"corrupt PE: optional header of {opt_size} bytes")
    table = at + 24 + opt_size
    if table + 40 * nsections > size:
        raise CorpusFileError(path, f"truncated PE: {nsections} section headers at {table:#x} "
                                    f"run past the end of the file ({size:#x} bytes)")
    config = lief.PE.ParserConfig()
    config.parse_reloc = False
    config.parse_rsrc = False
    config.parse_signature = False
    pe = lief.PE.parse(path, config)
    if not isinstance(pe, lief.PE.Binary):
        raise CorpusFileError(path, "corrupt PE: lief cannot parse it")
    bits = 64 if machine == pe_loader.AMD64 else 32
    base = int(pe.optional_header.imagebase)
    if int(pe.optional_header.subsystem.value) in _EFI_SUBSYSTEMS:
        kind = "efi"
    elif int(pe.header.characteristics) & _FILE_DLL:
        kind = "dll"
    else:
        kind = "executable"
    regions = []
    for s in pe.sections:
        if int(s.characteristics) & (_SCN_CNT_CODE | _SCN_MEM_EXECUTE):
            raw = int(s.sizeof_raw_data)
            size = min(raw, int(s.virtual_size)) if s.virtual_size else raw
            regions.append(Region(s.name, base + int(s.virtual_address),
                                  int(s.pointerto_raw_data), size))
    entry_rva = int(pe.optional_header.addressof_entrypoint)
    entry = base + entry_rva if entry_rva else None
    if entry is not None:
        _add_root(regions, entry)
    if pe.has_exports:
        for e in pe.get_export().entries:
            if not e.is_extern:
                _add_root(regions, base + int(e.address))
    with contextlib.suppress(Exception):  # the exception directory is optional and may be damaged
        for fn in pe.exception_functions:
            _add_root(regions, base + int(fn.address))
    return Binary("PE", bits, kind, entry, regions)


def _add_root(regions: list[Region], address: int) -> None:
    for r in regions:
        if r.address <= address < r.address + r.size:
            r.roots.append(address)
            return


@contextlib.contextmanager
def mapped(path: str, size: int):
    """The file as a private, writable (copy-on-write) memoryview: capstone reads slices of
    it in place, and nothing is copied into Python memory."""
    if size == 0:
        yield memoryview(bytearray())
        return
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    view = memoryview(mm)
    try:
        yield view
    finally:
        view.release()
        try:
            mm.close()
        except BufferError:  # a decoder generator not yet collected still holds a slice:
            pass  # the mapping goes when it does (closing is only an early release)
