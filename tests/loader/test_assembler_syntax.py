"""The keystone wrapper (dbt/translator/assembler.py): every documented form, every refusal,
and a regression test per keystone 0.9.2 hazard it guards against."""

from __future__ import annotations

import re
import time

import pytest
from keystone import KS_ARCH_X86, KS_MODE_32, Ks

from dbt.errors import AssembleError
from dbt.translator import assembler
from dbt.translator.assembler import assemble, assemble_program

BASE = 0x100000

# (source, bits, expected bytes): one row per form the module docstring documents
FORMS = [
    # labels, several on a line, local-looking names, '.' as the current address
    ("start: nop\njmp start", 32, "90ebfd"),
    ("a: b: nop\njmp b", 32, "90ebfd"),
    (".L1: nop\njmp .L1", 32, "90ebfd"),
    ("mov eax, .", 32, "b800001000"),
    # memory operands with ptr, segment override on the operand, RIP-relative in 64-bit
    ("mov dword ptr [ebx + 4*ecx + 8], eax", 32, "89448b08"),
    ("mov eax, es:[edi]", 32, "268b07"),
    ("lea rsi, [rip + msg]\nmsg: .byte 1", 64, "488d350000000001"),
    # numbers
    ("mov eax, 42\nmov eax, 0x2a\nmov eax, 2ah\nmov eax, 0b101010", 32, "b82a000000" * 4),
    # character literals (';' and '#' inside quotes are not comments)
    ("mov al, 'A'", 32, "b041"),
    ("mov al, ';'\nmov al, '#'", 32, "b03bb023"),
    # integer data
    (".byte 1, 2, 'c'", 32, "010263"),
    (".word 0x1234", 32, "3412"),
    (".short -1", 32, "ffff"),
    ("x: .long x", 32, "00001000"),
    (".int 5", 32, "05000000"),
    (".quad 0x1122334455667788", 32, "8877665544332211"),
    ("s: .byte 1, 2\ne: .long e - s", 32, "010202000000"),
    ("x: .quad x", 64, "0000100000000000"),
    # strings
    (r'.ascii "Hi\n"', 32, "48690a"),
    (r'.asciz "Hi\n"', 32, "48690a00"),
    ('.string "ok"', 32, "6f6b00"),
    ('.ascii "a", "b"', 32, "6162"),
    ('.ascii "é"', 32, "c3a9"),
    (r'.ascii "a;b#c"', 32, "613b622363"),
    # zeros
    (".zero 3", 32, "000000"),
    (".zero 3, 0x90", 32, "909090"),
    (".skip 2", 32, "0000"),
    (".space 2, 7", 32, "0707"),
    # alignment: NOP padding in code, or the fill byte
    ("nop\n.align 4\nnop", 32, "900f1f0090"),
    ("nop\n.align 4, 0xcc\nnop", 32, "90cccccc90"),
    ("nop\n.balign 8, 0xcc", 32, "90cccccccccccccc"),
    ("nop\n.p2align 2, 0xcc\nnop", 32, "90cccccc90"),
    ("nop\n.align 8", 64, "900f1f8000000000"),
    # constants, also used before their definition
    (".equ A, 5\nmov eax, A", 32, "b805000000"),
    (".set B, 6\nmov eax, B", 32, "b806000000"),
    ("C = 7\nmov eax, C", 32, "b807000000"),
    ("mov eax, D\n.equ D, 9", 32, "b809000000"),
    # accepted, no effect
    (".globl _start\n.global x\n.intel_syntax noprefix\n.text\n_start: x: nop", 32, "90"),
    # comments
    ("nop ; a comment\nnop # another\n; whole line\n# whole line\nnop", 32, "909090"),
    ("nop\r\nnop\r\n", 32, "9090"),
]


@pytest.mark.parametrize("source,bits,expected", FORMS, ids=[f[0] for f in FORMS])
def test_documented_form(source, bits, expected):
    assert assemble(source, BASE, bits).hex() == expected


CHAR_ESCAPES = [(r"\n", 10), (r"\t", 9), (r"\r", 13), (r"\0", 0), ("\\\\", 92), (r"\'", 39),
                (r"\"", 34), (r"\a", 7), (r"\b", 8), (r"\f", 12), (r"\v", 11), (r"\e", 27),
                (r"\x41", 0x41), (r"\101", 0x41)]


@pytest.mark.parametrize("escape,value", CHAR_ESCAPES, ids=[e for e, _ in CHAR_ESCAPES])
def test_escapes_in_character_literals_and_strings(escape, value):
    """keystone gets '\\0' and '\\r' wrong (as '0' and 'r') and rejects "\\x41": dbt turns
    literals into numbers itself."""
    assert assemble(f"mov al, '{escape}'", BASE, 32) == bytes([0xB0, value])
    assert assemble(f'.ascii "<{escape}>"', BASE, 32) == bytes([0x3C, value, 0x3E])


def test_labels_are_reported_with_their_addresses():
    p = assemble_program("start: nop\n\n; comment\nloop_: dec ecx\n jnz loop_\n"
                         "msg: .asciz \"hi\"\nend_:", BASE, 32)
    assert p.labels == {"start": BASE, "loop_": BASE + 1, "msg": BASE + 4, "end_": BASE + 7}
    assert p.code == bytes.fromhex("9049 75fd 686900".replace(" ", ""))


def test_labels_above_4gib_in_64_bit_mode():
    p = assemble_program("x: nop\ny: jmp x", 0x1_0000_0000, 64)
    assert p.labels == {"x": 0x1_0000_0000, "y": 0x1_0000_0001}


def test_the_marker_table_does_not_change_the_code():
    """dbt adds marker labels and an address table: the code must be what keystone gives
    for the plain text."""
    text = ("mov ecx, 100\nagain: add eax, ecx\nloop again\njmp far_away\n.zero 200\n"
            "far_away: mov dword ptr [data], eax\nhlt\ndata: .long 0")
    plain = bytes(Ks(KS_ARCH_X86, KS_MODE_32).asm(text, BASE)[0])
    assert assemble(text, BASE, 32) == plain


def test_keystone_instances_are_cached():
    assert assembler._ks(32) is assembler._ks(32)
    assert assembler._ks(64) is not assembler._ks(32)


def test_empty_source_assembles_to_nothing():
    assert assemble("", BASE, 32) == b""
    assert assemble("; only a comment\n\nlabel:", BASE, 32) == b""


# --- errors name the line --------------------------------------------------------------------

def error(source: str, bits: int = 32) -> str:
    with pytest.raises(AssembleError) as e:
        assemble(source, BASE, bits, "guest.s")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("guest.s: line ")
    return msg


def test_error_names_the_first_bad_line_despite_forward_references():
    msg = error("jmp later\nnop\n; comment\nfoo eax, 1\nlater: nop\nbar")
    assert msg == "guest.s: line 4: Invalid mnemonic (KS_ERR_ASM_MNEMONICFAIL): foo eax, 1"


@pytest.mark.parametrize("line", [1, 2, 5])
def test_error_line_at_start_middle_and_end(line):
    lines = ["nop"] * 5
    lines[line - 1] = "mov eax,"
    assert error("\n".join(lines)).startswith(f"guest.s: line {line}: ")


def test_undefined_symbol_names_its_line():
    assert error("nop\ncall missing\nret") == \
        "guest.s: line 2: Cannot find a symbol (KS_ERR_ASM_SYMBOL_MISSING): call missing"


def test_duplicate_label_names_both_lines():
    assert error("x: nop\n\nx: ret") == \
        "guest.s: line 3: 'x' is already defined on line 1: x: ret"


def test_forward_loop_out_of_range_blames_the_loop():
    """The prefix that fails is the one where the target moves out of reach (the .zero
    line); the line to blame is the loop."""
    assert error("nop\nloop far\n.zero 300\nfar: nop").startswith(
        "guest.s: line 2: Invalid fixup")


def test_semicolon_is_a_comment_not_a_separator():
    """keystone reads 'nop ; int3' as two instructions."""
    assert assemble("nop ; int3", BASE, 32) == b"\x90"


REFUSED = [
    # NASM-isms: keystone fails on them, or silently assembles nothing for the whole file
    ("mov eax, dword [ebx]", "write 'dword ptr [...]'"),
    ("db 1, 2", "'db' is NASM syntax"),
    ("msg db 'hi'", "'db' is NASM syntax"),
    # keystone hangs on these
    ("[bits 64]", "expected an instruction, a directive or a label"),
    (".ascii 'x'", "expected a double-quoted string"),
    ('.ascii "abc', "unterminated string"),
    ("mov al, 'a", "unterminated character literal"),
    (".zero -1", "the count must be 0..1048576"),
    (".p2align 40", "the power of two must be 0..12"),
    ("lock >", "'lock' must be followed by an instruction"),
    ("lock mov : % 1", "stray ':'"),
    # keystone encodes 'mov eax, [0]' for this
    ("mov eax, [ebx", "unclosed '['"),
    # keystone emits nothing for a forward constant count
    (".zero x", "the count must be a literal number"),
    # directives that crash keystone, read host files, or break the one-block image
    (".section .data", "sections are not supported"),
    (".data", "sections are not supported"),
    (".org 0x10", "the image is one block"),
    ('.incbin "/etc/passwd"', "unsupported directive .incbin"),
    (".end", "unsupported directive .end"),
    (".att_syntax", "only Intel syntax"),
    (".code64", "must come before the code"),
    (".rept 3", "unsupported directive .rept"),
    # other syntax errors found before keystone sees them
    ("mov eax, 'ab'", "a character literal holds one character"),
    (".byte 1,", ".byte needs comma-separated values"),
    ('.byte "ab"', "use .ascii for strings"),
    (".align 3", "must be a power of two"),
    ('.ascii "\\q"', "unknown escape \\q"),
    ('.ascii "\\477"', "more than one byte"),
    ("mov eax, ?", "unexpected character '?'"),
    ("fs: nop", "write the segment override on the memory operand"),
    ("é: nop", "non-ASCII character"),
    ("__dbt_x: nop", "reserved for dbt"),
]


@pytest.mark.parametrize("source,why", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_before_keystone_sees_it(source, why):
    start = time.monotonic()
    msg = error("nop\n" + source)
    assert msg.startswith("guest.s: line 2: ") and why in msg, msg
    assert msg.endswith(source.strip())
    assert time.monotonic() - start < 2, "refused lexically, not by the watchdog"


def test_value_out_of_range_that_keystone_drops_silently():
    """keystone emits no bytes for '.word 0x10000' and says nothing."""
    msg = error("nop\n.word 0x10000\nnop")
    assert msg.startswith("guest.s: line 2: keystone produced 0 bytes where 2 were due")


def test_out_of_range_byte_that_keystone_reports():
    assert "line 2: Literal value out of range" in error("nop\n.byte 300")


def test_text_directive_does_not_crash():
    """'.text' is a segmentation fault in keystone 0.9.2; dbt accepts it as a no-op."""
    assert assemble(".text\nnop", BASE, 32) == b"\x90"


def test_movsd_needs_its_operands():
    """keystone takes a bare 'movsd' for the SSE instruction and rejects it."""
    assert "line 1: Invalid mnemonic" in error("movsd")
    assert assemble("movsd dword ptr es:[edi], dword ptr [esi]", BASE, 32) == b"\xa5"


def test_bad_mode():
    with pytest.raises(AssembleError, match="cannot assemble for 16-bit mode"):
        assemble("nop", BASE, 16)


# --- the watchdog: keystone hangs and crashes on some input ------------------------------------

def test_watchdog_reports_a_hang():
    outcome = assembler._guarded(32, "[bits 64]", BASE, timeout=1.0)
    assert outcome.status == "hang"


def test_watchdog_reports_a_crash():
    outcome = assembler._guarded(32, ".text\nnop", BASE, timeout=10.0)
    assert outcome.status == "crash" and outcome.message.startswith("SIG")  # SIGSEGV here


def test_watchdog_passes_results_and_errors_through():
    assert assembler._guarded(32, "nop", BASE, 10.0).data == b"\x90"
    o = assembler._guarded(32, "foo", BASE, 10.0)
    assert (o.status, o.message) == ("error", "Invalid mnemonic (KS_ERR_ASM_MNEMONICFAIL)")


def test_a_hang_that_passes_the_line_checks_is_found_by_bisection(monkeypatch):
    """Should a hanging line get past the syntax checks, the file still fails on that line,
    in bounded time."""
    monkeypatch.setattr(assembler, "_PREFIX_THEN_JUNK", re.compile(r"(?!)"))
    monkeypatch.setattr(assembler, "_TIMEOUT", 1.0)
    monkeypatch.setattr(assembler, "_TIMEOUT_BISECT", 0.5)
    start = time.monotonic()
    assert error("nop\nnop\nlock >\nnop") == \
        "guest.s: line 3: keystone hangs on this line: lock >"
    assert time.monotonic() - start < 10
