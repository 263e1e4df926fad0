"""What a loaded guest is: its architecture, entry point and segments."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dbt.errors import LoadError

DEFAULT_LOAD_ADDRESS = 0x100000
DEFAULT_RAM_SIZE = 64 * 1024 * 1024


class Arch(enum.Enum):
    X86_32 = "x86_32"
    X86_64 = "x86_64"

    @property
    def bits(self) -> int:
        return 64 if self is Arch.X86_64 else 32


@dataclass(frozen=True)
class Segment:
    addr: int
    data: bytes
    memsz: int  # >= len(data); the tail is zero-filled (bss)

    @property
    def end(self) -> int:
        return self.addr + self.memsz


@dataclass(frozen=True)
class Image:
    path: str
    format: str  # "raw" | "asm" | "ELF" | "PE"
    arch: Arch
    entry: int
    segments: tuple[Segment, ...]
    symbols: dict[str, int] = field(default_factory=dict)


def check_fits(image: Image, ram_size: int) -> Image:
    """Refuse images that do not fit guest RAM or whose segments overlap."""
    mib = ram_size / 2**20
    total = sum(s.memsz for s in image.segments)
    if total > ram_size:
        raise LoadError(image.path, f"image of {total} bytes is larger than guest RAM "
                                    f"({mib:g} MiB)")
    spans = sorted((s.addr, s.end) for s in image.segments if s.memsz)
    for start, end in spans:
        if start < 0 or end > ram_size:
            raise LoadError(image.path, f"segment {start:#x}-{end:#x} lies outside guest RAM "
                                        f"(0-{ram_size:#x}, {mib:g} MiB)")
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        if b0 < a1:
            raise LoadError(image.path, f"segments {a0:#x}-{a1:#x} and {b0:#x}-{b1:#x} overlap")
    if not any(s.addr <= image.entry < s.end for s in image.segments):
        raise LoadError(image.path, f"entry point {image.entry:#x} is not inside any segment")
    return image
