"""Assembly guests: Intel syntax, assembled by keystone at 0x100000, started at the first byte.

Syntax (what keystone 0.9.2 accepts, plus dbt's conventions):
- one instruction or directive per line; ``label:`` definitions; ``;`` and ``#``
  start comments;
- ``bits 32`` / ``bits 64`` (or ``.code32`` / ``.code64``) selects the mode
  (default 32-bit); ``--arch`` must agree with it;
- data: ``.byte``, ``.word``, ``.long``, ``.quad``, ``.ascii "..."``, ``.asciz "..."``
  (C escapes such as ``\\n``), ``.align N``;
- keystone quirks: string instructions with a size suffix need their operands
  (``rep movsd dword ptr es:[edi], dword ptr [esi]``); ``wait`` is an
  instruction, not a label name; in 64-bit mode ``[address]`` is encoded
  RIP-relative (write ``[rip + label]`` for data, or use a register).
"""

from __future__ import annotations

from dbt.errors import LoadError
from dbt.loader.image import DEFAULT_LOAD_ADDRESS, Arch, Image, Segment
from dbt.translator.assembler import assemble, source_bits


def load_asm(path: str, data: bytes, want: Arch | None) -> Image:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LoadError(path, f"assembly is not UTF-8 text (byte {e.start})") from None
    bits = source_bits(text)
    arch = Arch.X86_64 if bits == 64 else Arch.X86_32 if bits == 32 else (want or Arch.X86_32)
    if want is not None and bits is not None and want is not arch:
        raise LoadError(path, f"--arch {want.value} contradicts the source's 'bits {bits}'")
    code = assemble(text, DEFAULT_LOAD_ADDRESS, arch.bits, path)
    return Image(path, "asm", arch, DEFAULT_LOAD_ADDRESS,
                 (Segment(DEFAULT_LOAD_ADDRESS, code, len(code)),))
