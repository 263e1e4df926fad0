"""Loader: guest files to an :class:`Image` of segments to place in guest RAM.

Formats, recognised by content first and file name second:

- ELF (``\\x7fELF``): ELF32 ``EM_386`` and ELF64 ``EM_X86_64`` static
  executables, through lief (:mod:`dbt.loader.elf`);
- PE (``MZ`` with a ``PE\\0\\0`` signature): PE32 I386 and PE32+ AMD64, through
  lief (:mod:`dbt.loader.pe`);
- assembly (``.s``, ``.S``, ``.asm``): Intel syntax assembled by keystone at
  0x100000, started at the first byte (:mod:`dbt.loader.asm`);
- C (``.c``): a freestanding program compiled by the system gcc for ``arch``
  (32-bit by default), linked at 0x100000 (:mod:`dbt.toolchain`; ``guests/c/rt.h``
  gives serial output and the debug exit), then loaded as the ELF it becomes;
- anything else (``.bin`` or unknown): a raw image at 0x100000, started there
  (:mod:`dbt.loader.raw`).

ELF and PE say their own architecture (an ``arch`` that contradicts them is an
error); assembly may say it with ``bits 64``; raw images are what ``arch`` says,
32-bit by default. Every image must fit guest RAM ``[0, ram_size)`` with no
overlapping segments and its entry point inside one. Every failure is a
:class:`~dbt.errors.LoadError` whose one-line message names the file and what
is wrong, never a traceback.
"""

from __future__ import annotations

import os

from dbt.errors import LoadError
from dbt.loader.image import (DEFAULT_LOAD_ADDRESS, DEFAULT_RAM_SIZE, Arch, Image, Segment,
                              check_image, check_ram_size)

__all__ = ["Arch", "DEFAULT_LOAD_ADDRESS", "DEFAULT_RAM_SIZE", "Image", "Segment", "load"]

ASM_SUFFIXES = (".s", ".S", ".asm")
PE_SUFFIXES = (".exe", ".dll", ".efi", ".sys")  # an MZ file named so must be a PE


def load(path: str, arch: str | Arch | None = None, ram_size: int = DEFAULT_RAM_SIZE) -> Image:
    """Load the guest in ``path`` for a machine with ``ram_size`` bytes of RAM."""
    path = os.fspath(path)
    check_ram_size(path, ram_size)
    want = Arch.parse(arch, path) if arch is not None else None
    data = _read(path)
    image = _load(path, data, want)
    if want is not None and want is not image.arch:
        raise LoadError(path, f"{want.value} was asked for, but the file is {image.format} "
                              f"for {image.arch.value}")
    return check_image(image, ram_size)


def _load(path: str, data: bytes, want: Arch | None) -> Image:
    if data[:4] == b"\x7fELF":
        from dbt.loader.elf import load_elf

        return load_elf(path, data)
    if data[:2] == b"MZ":  # lief is imported only for files that may be PE (it is slow to load)
        from dbt.loader.pe import load_pe, pe_offset

        if pe_offset(data) is not None or path.lower().endswith(PE_SUFFIXES):
            return load_pe(path, data)
    if path.endswith(".c"):
        return _load_c(path, want)
    if path.endswith(ASM_SUFFIXES):
        from dbt.loader.asm import load_asm

        return load_asm(path, data, want)
    from dbt.loader.raw import load_raw

    return load_raw(path, data, want)


def _load_c(path: str, want: Arch | None) -> Image:
    from dbt.errors import EngineError
    from dbt.loader.elf import load_elf
    from dbt.toolchain import build_c

    arch = (want or Arch.X86_32).value
    try:
        elf = build_c(path, arch)
    except EngineError as e:  # (its message names the file and gcc's first line)
        raise LoadError(path, str(e).removeprefix(f"{path}: ")) from None
    return load_elf(path, _read(str(elf)))


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise LoadError(path, "no such file") from None
    except IsADirectoryError:
        raise LoadError(path, "is a directory, not a guest file") from None
    except PermissionError:
        raise LoadError(path, "permission denied") from None
    except OSError as e:
        raise LoadError(path, f"cannot read: {e.strerror or e}") from None
    if not data:
        raise LoadError(path, "is empty")
    return data
