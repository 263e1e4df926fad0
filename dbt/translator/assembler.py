"""Keystone wrapper: Intel-syntax source text to machine code, with errors that name the line.

This is the one place that hands *user* text to keystone (``dbt/translator/``
owns keystone; the loader's assembly guests come through here). Keystone 0.9.2
cannot be given arbitrary text, so every source line is first checked against
the syntax below, and only what is known to assemble correctly reaches it.

Accepted syntax (one statement per line; every form has a test in
``tests/loader/test_assembler_syntax.py``):

- ``label:`` — any number of labels at the start of a line, names
  ``[A-Za-z_.][A-Za-z0-9_.$]*`` (``.L1:`` is fine). Numeric local labels
  (``1:`` / ``1b``) are not supported by keystone. ``.`` is the current address
  (``$`` is not).
- instructions in Intel syntax, memory operands with ``ptr``:
  ``mov dword ptr [ebx + 4*ecx + 8], eax``, segment overrides on the operand
  (``es:[edi]``), RIP-relative ``[rip + label]`` in 64-bit code. Numbers:
  ``42``, ``0x2a``, ``2ah``, ``0b101010``.
- character literals ``'A'``, with escapes ``\\n \\t \\r \\0 \\\\ \\' \\" \\a \\b \\f \\v \\e
  \\xHH \\ooo`` — dbt turns each into its number before keystone sees it.
- ``.byte``, ``.word``/``.short``, ``.long``/``.int``, ``.quad`` followed by
  comma-separated expressions (numbers, labels, ``'c'``, ``label2 - label1``).
- ``.ascii``, ``.asciz``/``.string`` followed by comma-separated double-quoted
  strings with the escapes above (so ``"line\\n"`` is a newline); non-ASCII text
  is stored as UTF-8. dbt turns strings into ``.byte`` lists.
- ``.zero N[, fill]`` / ``.skip`` / ``.space``: N literal bytes (at most 1 MiB).
- ``.align N[, fill]`` / ``.balign`` (N a power of two up to 4096, in bytes),
  ``.p2align K[, fill]`` (to 2**K, K <= 12); code is padded with NOPs.
- ``.equ name, expr``, ``.set name, expr``, ``name = expr``: constants.
- ``.globl``/``.global name``, ``.intel_syntax [noprefix]``, ``.text``: accepted, no effect.
- comments: ``;`` or ``#`` to the end of the line (outside quotes). ``;`` is
  therefore not a statement separator.

Anything else is refused with a message naming the line, including every
other directive (``.section``, ``.data``, ``.org``, ``.incbin``, macros …).
The mode (32/64-bit) is the caller's ``bits``: ``.code32``/``.code64`` are
handled by the loader, not here.

Keystone 0.9.2 facts behind those rules (each reproduced; DESIGN §5 has more):

- it reports no line numbers: on an error dbt assembles growing prefixes of
  the file (a bisection), standing in the later lines' labels and constants,
  to find the first bad line;
- it *hangs* on some input (a statement starting with punctuation such as
  ``[bits 64]``, an unterminated string, ``.ascii 'x'``, ``.zero -1``,
  ``.p2align 40``, ``lock >``, ``lock mov : % 1``) and *crashes the process* on
  some (``.text`` is a segmentation fault). The syntax checks refuse every such
  form found; as a safety net user text is assembled in a forked child (about
  5 ms) with a time limit, and a hang or crash becomes an error on its line;
- it fails silently: ``mov eax, dword [ebx]`` (NASM's size without ``ptr``)
  makes the whole output empty with no error, ``.word 0x10000`` emits nothing,
  ``mov eax, [ebx`` encodes ``mov eax, [0]``, a forward ``.zero x`` emits
  nothing, ``.end`` stops the file. dbt puts a marker label before every
  statement and reads all marker addresses back from a table appended to the
  code: each statement must produce the number of bytes it should (at least
  one for an instruction). The same table gives the labels' addresses;
- ``;`` separates statements (``nop ; comment`` is an error, ``nop ; int3``
  two instructions); ``#`` comments only at the start of a line; string
  escapes ``\\x41 \\a \\v \\e`` are rejected and the character literals
  ``'\\0'``, ``'\\r'`` assemble as ``'0'``, ``'r'``; ``.incbin`` reads host files;
- known wrong encodings it accepts (not checked here): ``mov al, 256`` is
  truncated to 0; in 32-bit mode ``lgdt/lidt/sgdt/sidt [m]`` get a spurious
  ``0x66`` prefix and ``ljmp sel:off`` becomes the 16-bit ``66 ea`` form;
  ``movsd`` without operands is taken for the SSE instruction (write
  ``movsd dword ptr es:[edi], dword ptr [esi]``).
"""

from __future__ import annotations

import enum
import faulthandler
import os
import pickle
import re
import select
import signal
import struct
import time
from dataclasses import dataclass, field

from keystone import KS_ARCH_X86, KS_MODE_32, KS_MODE_64, Ks, KsError

from dbt.errors import AssembleError

MAX_ZERO = 1 << 20  # the largest .zero/.skip/.space (bigger ones are slow in keystone)
MAX_ALIGN = 4096
RESERVED = "__dbt_"  # prefix of the marker labels dbt adds
_TIMEOUT = 5.0  # seconds for keystone on the whole file, plus _TIMEOUT_PER_LINE per line
_TIMEOUT_BISECT = 2.0  # seconds for each prefix while looking for a bad line
_TIMEOUT_PER_LINE = 0.0001
_CHUNK = 32  # table entries per .long/.quad line

_KS: dict[int, Ks] = {}


def _ks(bits: int) -> Ks:
    """The cached keystone instance for a mode."""
    if bits not in _KS:
        _KS[bits] = Ks(KS_ARCH_X86, KS_MODE_64 if bits == 64 else KS_MODE_32)
    return _KS[bits]


@dataclass(frozen=True)
class Program:
    """Assembled code and the addresses of its labels."""

    code: bytes
    labels: dict[str, int] = field(default_factory=dict, hash=False)


def assemble(text: str, address: int, bits: int, path: str = "<asm>") -> bytes:
    """Assemble Intel-syntax ``text`` for ``bits`` (32/64) at ``address``; raises AssembleError."""
    return assemble_program(text, address, bits, path).code


def assemble_program(text: str, address: int, bits: int, path: str = "<asm>") -> Program:
    """Like :func:`assemble`, and also return every label's address."""
    if bits not in (32, 64):
        raise AssembleError(path, f"cannot assemble for {bits}-bit mode (32 or 64)")
    stmts = parse(text, path)
    return _Assembly(stmts, address, bits, path).run()


# --- the line syntax ----------------------------------------------------------------------------

class Kind(enum.Enum):
    EMPTY = "empty"  # nothing (or only labels)
    IGNORED = "ignored"  # accepted, no effect, not given to keystone
    INSN = "insn"  # an instruction: at least one byte
    DATA = "data"  # .byte .. .quad, .ascii.., .zero: exactly `size` bytes
    ALIGN = "align"  # .align ..: fewer than `size` bytes
    CONST = "const"  # .equ/.set/=: defines `name`, no bytes


@dataclass(frozen=True)
class Statement:
    """One source line: its labels and the statement after them, as keystone will get it."""

    line: int  # 1-based
    source: str  # as written, for messages
    labels: tuple[str, ...]
    text: str  # the statement rewritten for keystone ("" for EMPTY/IGNORED)
    kind: Kind
    size: int = 0  # DATA: exact byte count; ALIGN: the alignment
    name: str = ""  # CONST: the constant's name


class _LineError(Exception):
    """A line-syntax problem; parse() turns it into an AssembleError naming the line."""


_NAME = r"[A-Za-z_.][A-Za-z0-9_.$]*"
_LABEL = re.compile(rf"\s*({_NAME})\s*:(?!:)")
_ASSIGN = re.compile(rf"({_NAME})\s*=(?!=)\s*(.*)$")
_INT_DATA = {".byte": 1, ".word": 2, ".short": 2, ".long": 4, ".int": 4, ".quad": 8}
_STRINGS = {".ascii": False, ".asciz": True, ".string": True}
_ZERO = {".zero", ".skip", ".space"}
_ALIGN = {".align", ".balign", ".p2align"}
_IGNORED = {".globl", ".global", ".intel_syntax", ".text"}
_NASM_DATA = {"db": ".byte", "dw": ".word", "dd": ".long", "dq": ".quad", "resb": ".zero N",
              "resw": ".zero 2*N", "resd": ".zero 4*N", "resq": ".zero 8*N",
              "equ": ".equ name, value"}  # NASM words that may follow a label: 'msg db "hi"'
_NASM = {**_NASM_DATA, "times": ".zero for zeros, or repeat the line",
         "section": "nothing: the image is one block",
         "org": "nothing: the image starts at the load address"}
_SIZE_NO_PTR = re.compile(r"\b(byte|word|dword|fword|qword|tbyte|xmmword|ymmword)\b(?!\s*ptr\b)",
                          re.I)
_SEGMENTS = {"es", "cs", "ss", "ds", "fs", "gs"}
_OPERAND_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                     "_.$@ \t[](){}+-*/,:~<>&|^!=%")
_STRAY_COLON = re.compile(r"(^|[^\w)\]])\s*:")  # ':' must follow a segment, selector or label
_PREFIX_THEN_JUNK = re.compile(r"(lock|rep|repe|repz|repne|repnz)\s+(?![A-Za-z])", re.I)
_SHORT_BRANCHES = {"loop", "loope", "loopz", "loopne", "loopnz", "jecxz", "jcxz", "jrcxz"}
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8,
            "f": 12, "v": 11, "e": 27}


def parse(text: str, path: str = "<asm>") -> list[Statement]:
    """Check every line against the accepted syntax; one Statement per source line."""
    out: list[Statement] = []
    seen: dict[str, tuple[int, bool]] = {}  # name -> (line, is a label)
    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.rstrip("\r")
        try:
            st = _parse_line(number, raw)
        except _LineError as e:
            raise AssembleError(path, f"line {number}: {e}: {raw.strip()}") from None
        for name in st.labels + ((st.name,) if st.kind is Kind.CONST else ()):
            is_label = name in st.labels
            problem = None
            if name.startswith(RESERVED):
                problem = f"names starting with {RESERVED} are reserved for dbt"
            elif name in seen and (is_label or seen[name][1]):
                problem = f"'{name}' is already defined on line {seen[name][0]}"
            if problem:
                raise AssembleError(path, f"line {number}: {problem}: {raw.strip()}")
            seen.setdefault(name, (number, is_label))
        out.append(st)
    return out


def _unquoted(text: str):
    """(index, character) of each character of ``text`` outside string and character
    literals (the quotes themselves left out); raises _LineError for a literal left open."""
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        else:
            yield i, c
        i += 1
    if quote == '"':
        raise _LineError("unterminated string")
    if quote == "'":
        raise _LineError("unterminated character literal")


def strip_comment(line: str) -> str:
    """The line without its ``;``/``#`` comment; quotes are respected (raises _LineError)."""
    for i, c in _unquoted(line):
        if c in ";#":
            return line[:i]
    return line


def split_statement(line: str) -> tuple[tuple[str, ...], str] | None:
    """(labels, statement) of a source line, comment removed; None if the line is malformed
    (assembling it says why)."""
    try:
        return split_labels(strip_comment(line))
    except _LineError:
        return None


def split_labels(stmt: str) -> tuple[tuple[str, ...], str]:
    """(labels, rest) of a comment-free line."""
    labels = []
    while m := _LABEL.match(stmt):
        labels.append(m.group(1))
        stmt = stmt[m.end():]
    return tuple(labels), stmt.strip()


def _parse_line(number: int, raw: str) -> Statement:
    labels, rest = split_labels(strip_comment(raw))
    for name in labels:
        if name.lower() in _SEGMENTS:
            raise _LineError(f"'{name}:' is read as a label: write the segment override "
                             f"on the memory operand ({name}:[...])")
    if not rest:
        return Statement(number, raw, labels, "", Kind.EMPTY)
    if rest.startswith("."):
        return _directive(number, raw, labels, rest)
    if m := _ASSIGN.match(rest):
        if not m.group(2).strip():
            raise _LineError("missing value after '='")
        return Statement(number, raw, labels, f"{m.group(1)} = {_expr(m.group(2))}",
                         Kind.CONST, name=m.group(1))
    if not rest[0].isalpha():
        raise _LineError("expected an instruction, a directive or a label")
    return Statement(number, raw, labels, _instruction(rest), Kind.INSN)


def _instruction(rest: str) -> str:
    words = rest.split(None, 2)
    for w, table in zip(words, (_NASM, _NASM_DATA)):
        hint = table.get(w.lower())
        if hint:
            raise _LineError(f"'{w}' is NASM syntax, not accepted here: use {hint}")
    if m := _SIZE_NO_PTR.search(rest):
        raise _LineError(f"write '{m.group(1)} ptr [...]' (keystone silently drops "
                         f"'{m.group(1)} [...]')")
    text = _expr(rest)
    if m := _PREFIX_THEN_JUNK.match(text):
        raise _LineError(f"'{m.group(1)}' must be followed by an instruction")
    if _STRAY_COLON.search(text):
        raise _LineError("stray ':'")
    return text


def _expr(text: str) -> str:
    """Check an operand/expression text: ASCII, balanced brackets, no strings; char literals
    become numbers."""
    out = []
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    i = 0
    while i < len(text):
        c = text[i]
        if c == "'":
            value, i = _char_literal(text, i)
            out.append(str(value))
            continue
        if c == '"':
            raise _LineError("a string is only allowed after .ascii, .asciz or .string")
        if not c.isascii():
            raise _LineError(f"non-ASCII character {c!r}")
        if c not in _OPERAND_CHARS:
            raise _LineError(f"unexpected character {c!r}")
        if c in "([{":
            stack.append(c)
        elif c in ")]}":
            if not stack or stack.pop() != pairs[c]:
                raise _LineError(f"unbalanced '{c}'")
        out.append(c)
        i += 1
    if stack:
        raise _LineError(f"unclosed '{stack[-1]}'")
    return "".join(out)


def _escape(text: str, i: int) -> tuple[int, int]:
    """The byte of the escape sequence at text[i] == '\\\\', and the index after it."""
    if i + 1 >= len(text):
        raise _LineError("a backslash ends the line")
    c = text[i + 1]
    if c in "01234567":
        j = i + 1
        while j < len(text) and j < i + 4 and text[j] in "01234567":
            j += 1
        value = int(text[i + 1:j], 8)
        if value > 255:
            raise _LineError(f"octal escape \\{text[i + 1:j]} is more than one byte")
        return value, j
    if c == "x":
        m = re.match(r"[0-9A-Fa-f]{1,2}", text[i + 2:])
        if not m:
            raise _LineError("\\x needs hex digits")
        return int(m.group(0), 16), i + 2 + m.end()
    if c in _ESCAPES:
        return _ESCAPES[c], i + 2
    raise _LineError(f"unknown escape \\{c}")


def _char_literal(text: str, i: int) -> tuple[int, int]:
    """The value of the character literal starting at text[i] == "'", and the index after it."""
    if i + 1 < len(text) and text[i + 1] == "\\":
        value, j = _escape(text, i + 1)
    elif i + 1 < len(text) and text[i + 1] != "'":
        ch = text[i + 1]
        if not ch.isascii():
            raise _LineError(f"non-ASCII character literal '{ch}'")
        value, j = ord(ch), i + 2
    else:
        raise _LineError("empty character literal")
    if j >= len(text) or text[j] != "'":
        raise _LineError("a character literal holds one character")
    return value, j + 1


def _strings(args: str) -> bytes:
    """The bytes of a comma-separated list of double-quoted strings (non-ASCII as UTF-8)."""
    out = bytearray()
    i, n = 0, len(args)
    expect_string = True
    while True:
        while i < n and args[i] in " \t":
            i += 1
        if i >= n:
            break
        if expect_string:
            if args[i] != '"':
                raise _LineError("expected a double-quoted string")
            i += 1
            while True:
                if i >= n:
                    raise _LineError("unterminated string")
                c = args[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    value, i = _escape(args, i)
                    out.append(value)
                else:
                    out += c.encode("utf-8")
                    i += 1
        elif args[i] != ",":
            raise _LineError("expected ',' between strings")
        else:
            i += 1
        expect_string = not expect_string
    if expect_string:
        raise _LineError("expected a string" + (" after ','" if out or "," in args else ""))
    return bytes(out)


def _split_args(args: str) -> list[str]:
    """Comma-separated items of an operand list (commas inside brackets/quotes don't split)."""
    items, depth, start = [], 0, 0
    for i, c in _unquoted(args):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(args[start:i].strip())
            start = i + 1
    items.append(args[start:].strip())
    return items


def _literal(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise _LineError(f"{what} must be a literal number, not '{text}'") from None
    if not low <= value <= high:
        raise _LineError(f"{what} must be {low}..{high}, not {value}")
    return value


def _directive(number: int, raw: str, labels: tuple[str, ...], rest: str) -> Statement:
    name, args = re.match(r"(\S+)\s*(.*)$", rest).groups()
    d = name.lower()

    def st(kind: Kind, text: str = "", size: int = 0, const: str = "") -> Statement:
        return Statement(number, raw, labels, text, kind, size, const)

    if d in _INT_DATA:
        items = _split_args(args)
        if not args or any(not it for it in items):
            raise _LineError(f"{name} needs comma-separated values")
        for it in items:
            if it.startswith('"'):
                raise _LineError(f"use .ascii for strings, not {name}")
        return st(Kind.DATA, f"{d} " + ", ".join(_expr(it) for it in items),
                  _INT_DATA[d] * len(items))
    if d in _STRINGS:
        data = _strings(args) + (b"\0" if _STRINGS[d] else b"")
        return st(Kind.DATA, ".byte " + ", ".join(map(str, data)) if data else "", len(data))
    if d in _ZERO:
        items = _split_args(args)
        if not args or len(items) > 2:
            raise _LineError(f"{name} takes a count and an optional fill byte")
        count = _literal(items[0], "the count", 0, MAX_ZERO)
        fill = _literal(items[1], "the fill byte", 0, 255) if len(items) == 2 else 0
        return st(Kind.DATA, f".zero {count}, {fill}" if count else "", count)
    if d in _ALIGN:
        items = _split_args(args)
        if not args or len(items) > 2:
            raise _LineError(f"{name} takes an alignment and an optional fill byte")
        if d == ".p2align":
            align = 1 << _literal(items[0], "the power of two", 0, 12)
        else:
            align = _literal(items[0], "the alignment", 1, MAX_ALIGN)
            if align & (align - 1):
                raise _LineError(f"the alignment must be a power of two, not {align}")
        fill = f", {_literal(items[1], 'the fill byte', 0, 255)}" if len(items) == 2 else ""
        return st(Kind.ALIGN, f".balign {align}{fill}", align)
    if d in (".equ", ".set"):
        items = _split_args(args)
        if len(items) != 2 or not re.fullmatch(_NAME, items[0]) or not items[1]:
            raise _LineError(f"{name} takes a name and a value")
        return st(Kind.CONST, f".set {items[0]}, {_expr(items[1])}", const=items[0])
    if d in _IGNORED:
        if d == ".intel_syntax" and args not in ("", "noprefix"):
            raise _LineError("only '.intel_syntax noprefix' is accepted")
        return st(Kind.IGNORED)
    if d in (".code16", ".code32", ".code64"):
        raise _LineError(f"{name} must come before the code (the whole file is one mode)")
    if d in (".data", ".bss", ".section", ".org", ".att_syntax"):
        why = {".att_syntax": "only Intel syntax is accepted",
               ".org": "the image is one block at the load address"}.get(
                   d, "sections are not supported: the image is one block at the load address")
        raise _LineError(f"{name}: {why}")
    raise _LineError(f"unsupported directive {name} (see dbt/translator/assembler.py for the "
                     f"accepted syntax)")


# --- assembling, checking and finding the bad line -----------------------------------------------

@dataclass(frozen=True)
class _Outcome:
    status: str  # "ok", "error" (keystone's message), "hang", "crash"
    data: bytes = b""
    message: str = ""


class _Assembly:
    """One source: rendered for keystone with marker labels and an address table at the end."""

    def __init__(self, stmts: list[Statement], address: int, bits: int, path: str):
        self.stmts = stmts
        self.address = address
        self.bits = bits
        self.path = path
        self.width = 8 if bits == 64 else 4
        self.emitting = [i for i, s in enumerate(stmts) if s.kind in (Kind.INSN, Kind.DATA,
                                                                      Kind.ALIGN, Kind.CONST)]
        self.labels = [name for s in stmts for name in s.labels]

    def run(self) -> Program:
        n = len(self.emitting)
        outcome, parsed = self._try(n)
        if parsed is None:
            self._fail(self._bisect(n, outcome))
        code, markers, labels = parsed
        for k, (i, start) in enumerate(zip(self.emitting, markers)):
            st = self.stmts[i]
            size = markers[k + 1] - start
            problem = None
            if st.kind is Kind.INSN and size == 0:
                problem = "keystone produced no bytes for this instruction"
            elif st.kind is Kind.DATA and size != st.size:
                problem = (f"keystone produced {size} bytes where {st.size} were due "
                           f"(is a value out of range?)")
            elif st.kind is Kind.ALIGN and size >= st.size:
                problem = f"keystone padded {size} bytes to align to {st.size}"
            elif st.kind is Kind.CONST and size:
                problem = f"keystone produced {size} bytes for a constant"
            if problem:
                raise AssembleError(self.path, f"line {st.line}: {problem}: {st.source.strip()}")
        return Program(code, dict(zip(self.labels, labels)))

    # rendering -------------------------------------------------------------------------------
    def _render(self, k: int) -> str:
        """The text for keystone: statements emitting[:k] in full; later ones stand in by
        their labels (and constants as 1), so forward references still resolve."""
        cut = self.emitting[k] if k < len(self.emitting) else len(self.stmts)
        lines, markers, stubs = [], [], set()
        defined = {s.name for s in self.stmts[:cut] if s.kind is Kind.CONST}
        for i, st in enumerate(self.stmts):
            head = "".join(f"{name}: " for name in st.labels)
            if i < cut and st.kind in (Kind.INSN, Kind.DATA, Kind.ALIGN, Kind.CONST):
                marker = f"{RESERVED}{len(markers)}"
                markers.append(marker)
                lines.append(f"{marker}: {head}{st.text}")
            elif i >= cut and st.kind is Kind.CONST and st.name not in defined | stubs:
                stubs.add(st.name)
                lines.append(f"{head}.set {st.name}, 1")
            elif head:
                lines.append(head)
            else:
                lines.append("")
        names = markers + [f"{RESERVED}end"] + self.labels
        lines.append(f"{RESERVED}end:")
        directive = ".quad" if self.width == 8 else ".long"
        for j in range(0, len(names), _CHUNK):
            lines.append(f"{directive} " + ", ".join(names[j:j + _CHUNK]))
        return "\n".join(lines)

    def _try(self, k: int, bisecting: bool = False):
        """Assemble prefix k; (outcome, (code, marker addresses + end, label addresses) or None)."""
        timeout = (_TIMEOUT_BISECT if bisecting else _TIMEOUT) + _TIMEOUT_PER_LINE * len(self.stmts)
        outcome = _guarded(self.bits, self._render(k), self.address, timeout)
        if outcome.status != "ok":
            return outcome, None
        nmark = min(k, len(self.emitting)) + 1
        count = nmark + len(self.labels)
        out = outcome.data
        if len(out) < count * self.width:
            return outcome, None
        code = out[:len(out) - count * self.width]
        fmt = "<%d%s" % (count, "Q" if self.width == 8 else "I")
        table = struct.unpack(fmt, out[len(code):])
        markers, labels = table[:nmark], table[nmark:]
        end = self.address + len(code)
        if (markers[-1] & ((1 << self.bits) - 1)) != (end & ((1 << self.bits) - 1)) or any(
                b < a for a, b in zip(markers, markers[1:])) or markers[0] < self.address:
            return outcome, None
        return outcome, (code, markers, labels)

    def _bisect(self, n: int, outcome: _Outcome) -> tuple[int, _Outcome]:
        """The first emitting statement whose prefix fails, and how it failed."""
        lo, hi, bad = 0, n, outcome  # prefix lo is good (an empty prefix assembles), hi bad
        while hi - lo > 1:
            mid = (lo + hi) // 2
            o, parsed = self._try(mid, bisecting=True)
            if parsed is None:
                hi, bad = mid, o
            else:
                lo = mid
        return hi - 1, bad

    def _fail(self, found: tuple[int, _Outcome]):
        k, outcome = found
        if k < 0:  # even the empty program failed: nothing to blame on a line
            raise AssembleError(self.path, f"line 1: keystone failed: {outcome.message}")
        st = self.stmts[self.emitting[k]]
        if "FIXUP" in outcome.message:
            st = self._short_branch_before(k) or st
        why = {"error": outcome.message + (" (a branch target out of reach?)"
                                           if "FIXUP" in outcome.message else ""),
               "hang": "keystone hangs on this line",
               "crash": f"keystone crashed ({outcome.message}) on this line",
               "ok": "keystone produced no code here (it fails silently on some forms)"}
        raise AssembleError(self.path, f"line {st.line}: {why[outcome.status]}: "
                                       f"{st.source.strip()}")


    def _short_branch_before(self, k: int) -> Statement | None:
        """A forward loop/jecxz before statement k: the prefix fails where the target
        moves out of its reach, but the branch is the line to blame."""
        for j in reversed(self.emitting[:k]):
            st = self.stmts[j]
            words = st.text.split()
            if st.kind is Kind.INSN and words[0].lower() in _SHORT_BRANCHES and len(words) == 2:
                target = words[1]
                if any(target in s.labels for s in self.stmts[j + 1:]):
                    return st
        return None


def _keystone(bits: int, text: str, address: int) -> _Outcome:
    try:
        encoding, _ = _ks(bits).asm(text, address)
    except KsError as e:
        return _Outcome("error", message=str(e))
    return _Outcome("ok", bytes(encoding or b""))


def _guarded(bits: int, text: str, address: int, timeout: float) -> _Outcome:
    """Run keystone in a forked child, so a hang or a crash cannot take dbt with it."""
    if not hasattr(os, "fork"):
        return _keystone(bits, text, address)
    _ks(bits)  # create it in the parent, so later children inherit it
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to spare: assemble here, unguarded
        os.close(r)
        os.close(w)
        return _keystone(bits, text, address)
    if pid == 0:  # the child: assemble, send the outcome, leave without cleanup
        code = 1
        try:
            os.close(r)
            faulthandler.disable()  # a crash is reported by the parent, in one line
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            payload = pickle.dumps(_keystone(bits, text, address))
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline, hung = [], time.monotonic() + timeout, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                hung = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:  # e.g. KeyboardInterrupt: do not wait for a hung child
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if hung:
        return _Outcome("hang")
    if os.WIFSIGNALED(status):
        return _Outcome("crash", message=signal.Signals(os.WTERMSIG(status)).name)
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:  # the child died before sending everything
        return _Outcome("crash", message=f"exit status {os.waitstatus_to_exitcode(status)}")
