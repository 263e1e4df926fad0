"""ELF guests through lief: PT_LOAD segments, the entry point, symbols (System V gABI ch. 5)."""

from __future__ import annotations

import lief

from dbt.errors import LoadError
from dbt.loader.image import Arch, Image, Segment

lief.logging.disable()

_MACHINES = {"I386": Arch.X86_32, "X86_64": Arch.X86_64}


def load_elf(path: str, data: bytes) -> Image:
    try:
        elf = lief.ELF.parse(list(data))
    except Exception as e:  # lief raises several types on garbage
        raise LoadError(path, f"corrupt ELF: {e}") from None
    if elf is None:
        raise LoadError(path, "corrupt or truncated ELF (lief could not parse it)")
    machine = elf.header.machine_type.__name__ if hasattr(elf.header.machine_type, "__name__") \
        else str(elf.header.machine_type).split(".")[-1]
    arch = _MACHINES.get(machine)
    if arch is None:
        raise LoadError(path, f"ELF for {machine}, but dbt runs x86 guests only")
    bits = 64 if elf.header.identity_class == lief.ELF.Header.CLASS.ELF64 else 32
    if bits != arch.bits:
        raise LoadError(path, f"ELF{bits} with machine {machine}: inconsistent header")
    segments = []
    for seg in elf.segments:
        if seg.type != lief.ELF.Segment.TYPE.LOAD or seg.virtual_size == 0:
            continue
        content = bytes(seg.content)
        if seg.file_offset + seg.physical_size > len(data):
            raise LoadError(path, f"segment at {seg.virtual_address:#x} extends past the end of "
                                  f"the file ({len(data)} bytes): truncated ELF")
        if len(content) > seg.virtual_size:
            content = content[:seg.virtual_size]
        segments.append(Segment(seg.virtual_address, content, seg.virtual_size))
    if not segments:
        raise LoadError(path, "ELF has no loadable (PT_LOAD) segment: not an executable")
    symbols = {}
    for sym in elf.symbols:
        if sym.name and sym.value:
            symbols[sym.name] = sym.value
    return Image(path, "ELF", arch, elf.entrypoint, tuple(segments), symbols)
