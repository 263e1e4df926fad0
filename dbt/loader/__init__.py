"""Loader: guest files -> an :class:`Image` of segments to place in guest RAM.

Formats, recognised by content first and extension second:

- ELF32 (EM_386) and ELF64 (EM_X86_64) executables, through lief: PT_LOAD
  segments at their addresses, bss zeroed, the entry point, symbols;
- PE32 (I386) and PE32+ (AMD64), through lief: headers at the image base, each
  section at image base + RVA, the entry point;
- assembly (``.s``, ``.S``, ``.asm``): Intel syntax assembled by keystone at
  0x100000 (see :mod:`dbt.translator.assembler`);
- anything else: a raw image loaded at 0x100000 and started there.

Every failure is a :class:`~dbt.errors.LoadError` naming the file and the problem.
"""

from __future__ import annotations

import os

from dbt.errors import LoadError
from dbt.loader.image import (DEFAULT_LOAD_ADDRESS, DEFAULT_RAM_SIZE, Arch, Image, Segment,
                              check_fits)

__all__ = ["Arch", "DEFAULT_LOAD_ADDRESS", "DEFAULT_RAM_SIZE", "Image", "Segment", "load"]

ASM_SUFFIXES = (".s", ".S", ".asm")


def load(path: str, arch: str | Arch | None = None, ram_size: int = DEFAULT_RAM_SIZE) -> Image:
    """Load a guest file for a machine with ``ram_size`` bytes of RAM."""
    if ram_size <= 0 or ram_size % 4096:
        raise LoadError(path, f"guest RAM size {ram_size} is not a positive multiple of 4 KiB")
    want = Arch(arch) if arch is not None else None
    data = _read(path)
    if data[:4] == b"\x7fELF":
        from dbt.loader.elf import load_elf

        image = load_elf(path, data)
    elif data[:2] == b"MZ":
        from dbt.loader.pe import load_pe

        image = load_pe(path, data)
    elif path.endswith(ASM_SUFFIXES):
        from dbt.loader.asm import load_asm

        return check_fits(load_asm(path, data, want), ram_size)
    else:
        arch_ = want or Arch.X86_32
        image = Image(path, "raw", arch_, DEFAULT_LOAD_ADDRESS,
                      (Segment(DEFAULT_LOAD_ADDRESS, data, len(data)),))
        return check_fits(image, ram_size)
    if want is not None and want is not image.arch:
        raise LoadError(path, f"--arch {want.value} contradicts the file, which is "
                              f"{image.format} for {image.arch.value}")
    return check_fits(image, ram_size)


def _read(path: str) -> bytes:
    if not os.path.exists(path):
        raise LoadError(path, "no such file")
    if os.path.isdir(path):
        raise LoadError(path, "is a directory, not a guest file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LoadError(path, f"cannot read: {e.strerror or e}") from None
    if not data:
        raise LoadError(path, "is empty")
    return data
