"""Assembly guests: Intel syntax assembled by keystone at 0x100000, started at the first byte.

The file is UTF-8 text. The entry point is the first byte of the output (the
first instruction or datum), whatever the labels are called: ``_start`` is not
special. Every label becomes a symbol of the image.

The mode is chosen by a directive, on a line of its own, before the first
instruction or datum (only comments, blank lines, labels, ``.globl``,
``.intel_syntax``, ``.text`` and constants may come before it)::

    bits 32      bits 64      [bits 32]      [bits 64]      .code32      .code64

(``bits`` in any case). Without one the file is 32-bit, or what the ``arch``
argument says; an ``arch`` that contradicts the directive is an error, and so
is a directive after the code or a second one that disagrees.

Everything else — labels, instructions, data directives, comments with ``;``
and ``#``, string escapes such as ``"\\n"`` — is the syntax of
:mod:`dbt.translator.assembler`, whose docstring lists it exactly.
"""

from __future__ import annotations

import re

from dbt.errors import AssembleError, LoadError
from dbt.loader.image import DEFAULT_LOAD_ADDRESS, Arch, Image, Segment
from dbt.translator.assembler import assemble_program, split_statement

_MODE = re.compile(r"\[\s*bits\s+(\w+)\s*\]|bits\s+(\w+)|\.code(\w+)", re.I)
_NO_CODE = re.compile(r"\.(globl|global|intel_syntax|text|equ|set)\b|[A-Za-z_.][\w.$]*\s*=(?!=)",
                      re.I)


def load_asm(path: str, data: bytes, want: Arch | None) -> Image:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LoadError(path, f"assembly source is not UTF-8 text (byte {e.start:#x})") from None
    bits, line, text = source_mode(text, path)
    if bits is None:
        arch = want or Arch.X86_32
    else:
        arch = Arch.X86_64 if bits == 64 else Arch.X86_32
        if want is not None and want is not arch:
            raise LoadError(path, f"line {line}: the source says {bits}-bit "
                                  f"but {want.value} was asked for")
    program = assemble_program(text, DEFAULT_LOAD_ADDRESS, arch.bits, path)
    if not program.code:
        raise LoadError(path, "assembles to no code")
    return Image(path, "asm", arch, DEFAULT_LOAD_ADDRESS,
                 (Segment(DEFAULT_LOAD_ADDRESS, program.code, len(program.code)),),
                 dict(program.labels))


def source_mode(text: str, path: str = "<asm>") -> tuple[int | None, int | None, str]:
    """(bits, line of the directive, the text with mode directives blanked out), or
    (None, None, text) without a directive. Raises AssembleError for a misplaced one."""
    bits = where = None
    code_seen = False
    out = []
    for number, raw in enumerate(text.split("\n"), 1):
        parts = split_statement(raw)
        if parts is None:  # malformed: the assembler reports it
            code_seen = True
            out.append(raw)
            continue
        labels, rest = parts
        m = _MODE.fullmatch(rest)
        if m is None:
            code_seen = code_seen or bool(rest and not _NO_CODE.match(rest))
            out.append(raw)
            continue
        value = m.group(1) or m.group(2) or m.group(3)
        if value not in ("32", "64"):
            raise AssembleError(path, f"line {number}: dbt runs 32- and 64-bit code only: {rest}")
        if code_seen:
            raise AssembleError(path, f"line {number}: '{rest}' must come before the code "
                                      f"(the whole file is one mode)")
        if bits is not None and bits != int(value):
            raise AssembleError(path, f"line {number}: '{rest}' contradicts line {where}")
        bits, where = int(value), number
        out.append(" ".join(f"{name}:" for name in labels))  # keep the line count
    return bits, where, "\n".join(out)
