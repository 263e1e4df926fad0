"""PE images through lief: headers and sections at image base + RVA (Microsoft "PE Format" spec).

PE32 for ``IMAGE_FILE_MACHINE_I386`` and PE32+ for ``IMAGE_FILE_MACHINE_AMD64``
load; other machines are refused. The image is placed at its preferred
``ImageBase`` (base relocations are not applied, so the base must lie in guest
RAM): the first ``SizeOfHeaders`` bytes of the file at the base, then each
section at ``ImageBase + VirtualAddress``, ``max(VirtualSize, SizeOfRawData)``
bytes long — ``SizeOfRawData`` bytes from ``PointerToRawData`` in the file,
zeros after. The entry point is ``ImageBase + AddressOfEntryPoint``. Imports
are not resolved (a guest has no Windows to import from); PE images have no
symbols here.

As for ELF, the headers are checked from the bytes before lief sees them, and
every section's file range after.
"""

from __future__ import annotations

import io
import struct

import lief

from dbt.errors import LoadError
from dbt.loader.elf import lief_parse, quiet_lief
from dbt.loader.image import Arch, Image, Segment

#: IMAGE_FILE_MACHINE_* -> name, for messages
MACHINES = {
    0x0: "UNKNOWN", 0x14C: "I386", 0x8664: "AMD64", 0x1C0: "ARM", 0x1C2: "THUMB",
    0x1C4: "ARMNT", 0xAA64: "ARM64", 0xA641: "ARM64EC", 0xA64E: "ARM64X", 0x200: "IA64",
    0x5032: "RISCV32", 0x5064: "RISCV64", 0x6232: "LOONGARCH32", 0x6264: "LOONGARCH64",
    0xEBC: "EBC", 0x1F0: "POWERPC", 0x166: "R4000",
}
I386, AMD64 = 0x14C, 0x8664
PE32, PE32_PLUS = 0x10B, 0x20B
_SECTION = 40  # bytes per section header


def machine_name(machine: int) -> str:
    name = MACHINES.get(machine)
    return f"{name} (IMAGE_FILE_MACHINE_{name})" if name else f"machine {machine:#x}"


def pe_offset(data: bytes) -> int | None:
    """The offset of the "PE\\0\\0" signature an MZ header points at, or None."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        return None
    lfanew, = struct.unpack_from("<I", data, 0x3C)
    return lfanew if data[lfanew:lfanew + 4] == b"PE\0\0" else None


def load_pe(path: str, data: bytes) -> Image:
    arch = _check_headers(path, data)
    pe = _parse(path, data)
    try:
        with quiet_lief():
            base = int(pe.optional_header.imagebase)
            header_size = int(pe.optional_header.sizeof_headers)
            entry_rva = int(pe.optional_header.addressof_entrypoint)
            sections = [(s.name, int(s.virtual_address), int(s.virtual_size),
                         int(s.pointerto_raw_data), int(s.sizeof_raw_data)) for s in pe.sections]
    except Exception as e:  # lief returns odd objects for damaged files
        raise LoadError(path, f"corrupt PE: cannot read its headers ({e})") from None
    if header_size > len(data):
        raise LoadError(path, f"truncated PE: SizeOfHeaders is {header_size:#x} but the file "
                              f"has {len(data):#x} bytes")
    if entry_rva == 0:
        raise LoadError(path, "PE without an entry point (AddressOfEntryPoint is 0)")
    segments = [Segment(base, bytes(data[:header_size]), header_size)] if header_size else []
    for name, rva, vsize, raw_at, raw_size in sections:
        size = max(vsize, raw_size)
        if size == 0:
            continue
        if raw_size and raw_at + raw_size > len(data):
            raise LoadError(path, f"truncated PE: section {name!r} has its raw data at file "
                                  f"offset {raw_at:#x}-{raw_at + raw_size:#x}, past the end of "
                                  f"the file ({len(data):#x} bytes)")
        raw = bytes(data[raw_at:raw_at + raw_size]) if raw_size else b""
        segments.append(Segment(base + rva, raw, size))
    return Image(path, "PE", arch, base + entry_rva, tuple(segments))


def _check_headers(path: str, data: bytes) -> Arch:
    at = pe_offset(data)
    if at is None:
        raise LoadError(path, "MZ header without a PE signature: not a PE image "
                              "(DOS executables are not supported)")
    if at + 24 + 2 > len(data):
        raise LoadError(path, "truncated PE: the file ends inside the COFF header")
    machine, nsections = struct.unpack_from("<HH", data, at + 4)
    opt_size, = struct.unpack_from("<H", data, at + 20)
    magic, = struct.unpack_from("<H", data, at + 24)
    if machine not in (I386, AMD64):
        raise LoadError(path, f"PE for {machine_name(machine)}, dbt runs x86 only")
    if magic not in (PE32, PE32_PLUS):
        raise LoadError(path, f"corrupt PE: optional header magic {magic:#x} is neither "
                              f"PE32 (0x10b) nor PE32+ (0x20b)")
    if (magic == PE32_PLUS) != (machine == AMD64):
        kind = "PE32+" if magic == PE32_PLUS else "PE32"
        raise LoadError(path, f"corrupt PE: {kind} for {machine_name(machine)}")
    table = at + 24 + opt_size
    if opt_size < (96 if magic == PE32 else 112) or table > len(data):
        raise LoadError(path, f"truncated PE: optional header of {opt_size} bytes at "
                              f"{at + 24:#x} does not fit the file ({len(data):#x} bytes)")
    if table + nsections * _SECTION > len(data):
        raise LoadError(path, f"truncated PE: {nsections} section headers at {table:#x} run "
                              f"past the end of the file ({len(data):#x} bytes)")
    return Arch.X86_64 if machine == AMD64 else Arch.X86_32


def _parse(path: str, data: bytes):
    return lief_parse(path, data, lief.PE.parse, lief.PE.Binary, "PE")
