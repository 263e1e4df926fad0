"""A loaded guest (architecture, entry point, segments) and the checks every image passes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dbt.errors import LoadError

DEFAULT_LOAD_ADDRESS = 0x100000  # raw images and assembly (1 MiB, as Multiboot kernels)
DEFAULT_RAM_SIZE = 64 * 1024 * 1024
PAGE = 4096


class Arch(enum.Enum):
    X86_32 = "x86_32"
    X86_64 = "x86_64"

    @property
    def bits(self) -> int:
        return 64 if self is Arch.X86_64 else 32

    @classmethod
    def parse(cls, value: str | Arch, path: str) -> Arch:
        """An Arch from its name ("x86_32"/"x86_64") or itself; LoadError otherwise."""
        if isinstance(value, Arch):
            return value
        try:
            return cls(value)
        except ValueError:
            names = " or ".join(a.value for a in cls)
            raise LoadError(path, f"unknown architecture {value!r} (use {names})") from None


@dataclass(frozen=True)
class Segment:
    """Bytes to place in guest RAM at ``addr``; ``memsz - len(data)`` zero bytes follow (bss)."""

    addr: int
    data: bytes
    memsz: int  # >= len(data)

    @property
    def end(self) -> int:
        return self.addr + self.memsz


@dataclass(frozen=True)
class Image:
    """A guest ready for RAM: the monitor writes the segments and starts at ``entry``."""

    path: str
    format: str  # "raw" | "asm" | "ELF" | "PE"
    arch: Arch
    entry: int
    segments: tuple[Segment, ...]
    symbols: dict[str, int] = field(default_factory=dict, hash=False)  # name -> value


def size_text(n: int) -> str:
    """A byte count for messages: "64 MiB", "12 KiB", "100 bytes"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def check_ram_size(path: str, ram_size: int) -> None:
    if isinstance(ram_size, bool) or not isinstance(ram_size, int) or ram_size <= 0 \
            or ram_size % PAGE:
        raise LoadError(path, f"guest RAM size {ram_size!r} is not a positive multiple of "
                              f"{PAGE} bytes")


def check_image(image: Image, ram_size: int) -> Image:
    """Refuse an image that does not fit guest RAM [0, ram_size), whose segments overlap or are
    malformed, or whose entry point is not in any segment."""
    ram = size_text(ram_size)
    segments = [s for s in image.segments if s.memsz]
    for s in segments:
        if len(s.data) > s.memsz:
            raise LoadError(image.path, f"segment {s.addr:#x}: {len(s.data)} bytes of data "
                                        f"but only {s.memsz} bytes in memory")
    total = sum(s.memsz for s in segments)
    if total > ram_size:
        raise LoadError(image.path, f"image of {size_text(total)} is larger than guest RAM "
                                    f"({ram})")
    for s in sorted(segments, key=lambda s: s.addr):
        if s.addr < 0 or s.end > ram_size:
            raise LoadError(image.path, f"segment {s.addr:#x}-{s.end:#x} lies outside guest RAM "
                                        f"({ram})")
    spans = sorted((s.addr, s.end) for s in segments)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        if b0 < a1:
            raise LoadError(image.path, f"segments {a0:#x}-{a1:#x} and {b0:#x}-{b1:#x} overlap")
    if not any(s.addr <= image.entry < s.end for s in segments):
        raise LoadError(image.path, f"entry point {image.entry:#x} is not inside any segment")
    return image
