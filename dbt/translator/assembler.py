"""Keystone wrapper for guest assembly: Intel syntax in, bytes out, errors with line numbers.

keystone 0.9.2 quirks this wrapper handles (found by testing):
- ``;`` separates statements for keystone; in dbt sources it starts a comment, so
  comments are stripped first (outside string literals);
- keystone reports no line number: on an error the source is re-assembled one
  line at a time to find the first line keystone rejects;
- ``bits 32``/``bits 64`` and ``.code32``/``.code64`` lines select the mode and
  are removed before assembly.
"""

from __future__ import annotations

import re

from keystone import KS_ARCH_X86, KS_MODE_32, KS_MODE_64, Ks, KsError

from dbt.errors import AssembleError

_KS: dict[int, Ks] = {}
_BITS_LINE = re.compile(r"^\s*(?:bits\s+(32|64)|\.code(32|64))\s*$", re.I)


def _ks(bits: int) -> Ks:
    if bits not in _KS:
        _KS[bits] = Ks(KS_ARCH_X86, KS_MODE_64 if bits == 64 else KS_MODE_32)
    return _KS[bits]


def strip_comment(line: str) -> str:
    """Drop a ``;`` or ``#`` comment, but not inside a quoted string."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == "\\":
                continue
            if c == quote and line[i - 1] != "\\":
                quote = None
        elif c in "\"'":
            quote = c
        elif c in ";#":
            return line[:i]
    return line


def source_bits(text: str) -> int | None:
    """The mode a ``bits``/``.codeNN`` directive asks for, or None."""
    for line in text.splitlines():
        m = _BITS_LINE.match(strip_comment(line))
        if m:
            return int(m.group(1) or m.group(2))
    return None


def assemble(text: str, address: int, bits: int, path: str = "<asm>") -> bytes:
    lines = ["" if _BITS_LINE.match(strip_comment(raw)) else strip_comment(raw).rstrip()
             for raw in text.splitlines()]
    try:
        encoding, _ = _ks(bits).asm("\n".join(lines), address)
    except KsError as e:
        raise AssembleError(path, _locate(lines, address, bits, e)) from None
    if not encoding and any(line.strip() for line in lines):
        raise AssembleError(path, "keystone produced no code")
    return bytes(encoding or b"")


def _locate(lines: list[str], address: int, bits: int, err: KsError) -> str:
    """Find the first line keystone rejects: labels defined on other lines are replaced
    by the address itself, so each line can be assembled alone."""
    labels = {m.group(1) for line in lines for m in [re.match(r"\s*([\w.$]+)\s*:", line)] if m}
    for n, line in enumerate(lines, 1):
        body = re.sub(r"^\s*[\w.$]+\s*:", "", line).strip()
        if not body:
            continue
        probe = body
        for label in sorted(labels, key=len, reverse=True):
            probe = re.sub(rf"(?<![\w.$]){re.escape(label)}(?![\w.$])", hex(address), probe)
        try:
            _ks(bits).asm(probe, address)
        except KsError as e:
            return f"line {n}: {e}: {body}"
    return f"keystone: {err}"
