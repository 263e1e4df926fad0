"""PE guests through lief: headers and sections at image base + RVA (Microsoft PE/COFF spec)."""

from __future__ import annotations

import lief

from dbt.errors import LoadError
from dbt.loader.image import Arch, Image, Segment

lief.logging.disable()

_MACHINES = {"I386": Arch.X86_32, "AMD64": Arch.X86_64}


def load_pe(path: str, data: bytes) -> Image:
    try:
        pe = lief.PE.parse(list(data))
    except Exception as e:
        raise LoadError(path, f"corrupt PE: {e}") from None
    if pe is None:
        raise LoadError(path, "corrupt or truncated PE (lief could not parse it)")
    machine = str(pe.header.machine).split(".")[-1]
    arch = _MACHINES.get(machine)
    if arch is None:
        raise LoadError(path, f"PE for {machine}, but dbt runs x86 guests only")
    base = pe.optional_header.imagebase
    size_headers = pe.optional_header.sizeof_headers
    segments = [Segment(base, data[:size_headers], size_headers)]
    for sec in pe.sections:
        raw_end = sec.pointerto_raw_data + sec.sizeof_raw_data
        if sec.sizeof_raw_data and raw_end > len(data):
            raise LoadError(path, f"section {sec.name!r} points past the end of the file "
                                  f"({raw_end:#x} > {len(data):#x})")
        content = bytes(data[sec.pointerto_raw_data:raw_end])
        size = max(sec.virtual_size, sec.sizeof_raw_data)
        if size == 0:
            continue
        size = (size + 0xFFF) & ~0xFFF
        segments.append(Segment(base + sec.virtual_address, content[:size], size))
    entry = base + pe.optional_header.addressof_entrypoint
    return Image(path, "PE", arch, entry, tuple(segments))
