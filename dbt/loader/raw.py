"""Raw images: the file's bytes at 0x100000, started at their first byte."""

from __future__ import annotations

from dbt.loader.image import DEFAULT_LOAD_ADDRESS, Arch, Image, Segment


def load_raw(path: str, data: bytes, want: Arch | None) -> Image:
    """A raw image for ``want`` (default 32-bit: a raw file cannot say which it is)."""
    return Image(path, "raw", want or Arch.X86_32, DEFAULT_LOAD_ADDRESS,
                 (Segment(DEFAULT_LOAD_ADDRESS, data, len(data)),))
