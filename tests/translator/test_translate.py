"""Block translation (dbt/translator/translate.py) and the no-escape validator
(dbt/translator/validate.py), without running anything.

The translator is built as ``dbt translate`` builds it (dbt/translator/show.py): a
Machine with non-executable guest RAM, the bt layout mapped into it, the templates.
"""

from __future__ import annotations

import dataclasses
import functools
import struct

import pytest

from dbt.cache.codecache import HOT_SIZE
from dbt.cache.layout import CACHE_SIZE, Layout
from dbt.errors import TranslationError
from dbt.monitor.machine import Machine
from dbt.scanner import Decoder, StopReason, scan_block
from dbt.translator.assembler import assemble
from dbt.translator.fragment import Fragment, SiteKind
from dbt.translator.templates import Templates
from dbt.translator.trace import Trace
from dbt.translator.translate import Translator
from dbt.translator.validate import validate

GUEST = 0x100000
RAM = 4 << 20


@functools.lru_cache(maxsize=None)
def _layout(bits: int) -> tuple[Layout, Templates]:
    machine = Machine(bits, RAM, exec_ram=False, memory="default")
    layout = Layout.map(machine)
    return layout, Templates(layout)


def translator(bits: int, exact: bool = True) -> tuple[Translator, Decoder, Layout]:
    layout, templates = _layout(bits)
    decoder = Decoder(bits)
    return Translator(layout, templates, decoder, exact), decoder, layout


def fetcher(code: bytes, at: int = GUEST):
    def fetch(addr: int, n: int) -> bytes:
        if at <= addr < at + len(code):
            return code[addr - at:addr - at + n]
        return b""
    return fetch


def translate_all(code: bytes, bits: int, exact: bool = True, place: int = 0x1000):
    """Translate the blocks of ``code`` one after another (falling through), as placed
    back to back in the cache; returns (fragments, decoder, layout)."""
    tr, d, layout = translator(bits, exact)
    fetch = fetcher(code)
    at, cold, pc, frags = layout.cache + place, layout.cache + HOT_SIZE, GUEST, []
    while pc < GUEST + len(code):
        block = scan_block(d, fetch, pc)
        frag = tr.translate(Trace.of(block), at, cold)
        frags.append(frag)
        at, cold = (frag.tc_end + 15) & ~15, (frag.cold_end + 15) & ~15
        if not block.insns:
            break
        pc = block.end
    return frags, d, layout


def host_insns(frag: Fragment, d: Decoder):
    """Hot then cold host code of a fragment, decoded."""
    return list(d.disasm(frag.code, frag.start)) + list(d.disasm(frag.cold_code, frag.cold_tc))


def with_code(frag: Fragment, at: int, new: bytes) -> Fragment:
    """A copy of the fragment with the host bytes at address ``at`` replaced."""
    off = at - frag.start
    code = frag.code[:off] + new + frag.code[off + len(new):]
    assert len(code) == len(frag.code)
    return dataclasses.replace(frag, code=code)


# --- the validator ------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "free"])
def test_cli_sti_pushf_popf_translate_and_validate(bits, exact):
    """The flag instructions become templates on the virtual flags; the only sensitive
    host instructions left are the template's own pushf/popf and the int3 sites, all
    sanctioned. A real cli/sti in the cache would change the monitor's own IF."""
    src = "cli\npushfd\nsti\npop eax\npush eax\npopfd\nhlt" if bits == 32 else \
        "cli\npushfq\nsti\npop rax\npush rax\npopfq\nhlt"
    frags, d, layout = translate_all(assemble(src, GUEST, bits), bits, exact)
    assert [f.trace.stop for f in frags] == [StopReason.SENSITIVE] * 3  # sti, popf, hlt
    for frag in frags:
        validate(frag, d, layout)
        names = [m for _, _, m, _ in host_insns(frag, d)]
        assert "cli" not in names and "sti" not in names
    pushf_at = [a for a, _, m, _ in host_insns(frags[0], d) if m.startswith("pushf")]
    popf_at = [a for a, _, m, _ in host_insns(frags[1], d) if m.startswith("popf")]
    assert len(pushf_at) == 1 and len(popf_at) == 1
    assert pushf_at[0] in frags[0].sanctioned and popf_at[0] in frags[1].sanctioned


def test_validator_rejects_a_cli_at_an_unsanctioned_offset():
    """A translator bug that left a guest cli in the cache would let the guest turn off
    the monitor's interrupts: the validator must find it."""
    frags, d, layout = translate_all(assemble("nop\nnop\nhlt", GUEST, 32), 32)
    frag = frags[0]
    nop_at = frag.starts[0]
    assert frag.code[nop_at - frag.start] == 0x90 and nop_at not in frag.sanctioned
    validate(frag, d, layout)
    with pytest.raises(TranslationError, match="not a sanctioned site"):
        validate(with_code(frag, nop_at, b"\xfa"), d, layout)


@pytest.mark.parametrize("insn", [b"\xfb", b"\xf4", b"\x0f\x22\xd8", b"\xec"],
                         ids=["sti", "hlt", "mov-cr3", "in"])
def test_validator_rejects_other_sensitive_instructions(insn):
    """sti, hlt, mov cr3 and in would each act on the monitor's own CPU state."""
    frags, d, layout = translate_all(assemble("nop\nnop\nnop\nhlt", GUEST, 32), 32)
    frag = frags[0]
    with pytest.raises(TranslationError, match="not a sanctioned site"):
        validate(with_code(frag, frag.starts[0], insn), d, layout)


def test_validator_sanctions_only_the_expected_instruction():
    """An int3 site's address is sanctioned for the int3 the translator put there; any
    other sensitive instruction at that address is not the monitor's callout."""
    frags, d, layout = translate_all(assemble("nop\nhlt", GUEST, 32), 32)
    frag = frags[0]
    site = next(a for a in sorted(frag.sanctioned) if frag.code[a - frag.start] == 0xCC)
    with pytest.raises(TranslationError):
        validate(with_code(frag, site, b"\xfa"), d, layout)


def rel32(at: int, size: int, target: int) -> bytes:
    """The rel32 field of a ``size``-byte branch at ``at`` to ``target`` (wrapping)."""
    return struct.pack("<I", (target - (at + size)) % 2**32)


def with_jump(frag: Fragment, at: int, target: int, jcc: bool = False) -> Fragment:
    """The fragment with the host bytes at ``at`` replaced by jmp/je rel32 to ``target``."""
    code = b"\x0f\x84" + rel32(at, 6, target) if jcc else b"\xe9" + rel32(at, 5, target)
    return with_code(frag, at, code)


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("jcc", [False, True], ids=["jmp", "je"])
def test_validator_rejects_a_jump_out_of_the_code_cache(bits, jcc):
    """A direct jump from translated code into guest RAM (or just past the cache) would
    run bytes nobody translated (no-escape invariant)."""
    frags, d, layout = translate_all(assemble("nop\n" * 8 + "hlt", GUEST, bits), bits)
    frag = frags[0]
    at = frag.starts[0]
    for target in (GUEST, layout.cache + CACHE_SIZE, layout.cache - 1):
        with pytest.raises(TranslationError, match="leaves the code cache"):
            validate(with_jump(frag, at, target, jcc), d, layout)


@pytest.mark.parametrize("bits", [32, 64])
def test_validator_accepts_jumps_to_both_ends_of_the_cache(bits):
    """The bounds check must not refuse legitimate chaining targets at the edges."""
    frags, d, layout = translate_all(assemble("nop\n" * 8 + "hlt", GUEST, bits), bits)
    frag = frags[0]
    at = frag.starts[0]
    validate(with_jump(frag, at, layout.cache, jcc=True), d, layout)
    validate(with_jump(frag, at, layout.cache + CACHE_SIZE - 1), d, layout)


@pytest.mark.parametrize("target", [0, 5, 9])
def test_validator_rejects_a_jump_to_a_low_address(target):
    """A jump from the cache to guest address 0..9 escapes just like any other."""
    frags, d, layout = translate_all(assemble("nop\n" * 5 + "hlt", GUEST, 32), 32)
    frag = frags[0]
    at = frag.starts[0]
    with pytest.raises(TranslationError, match="leaves the code cache"):
        validate(with_jump(frag, at, target), d, layout)


def test_validator_rejects_undecodable_host_code():
    """Bytes the validator cannot decode could hide anything: refuse them."""
    frags, d, layout = translate_all(assemble("nop\nnop\nhlt", GUEST, 32), 32)
    frag = frags[0]
    with pytest.raises(TranslationError, match="undecodable"):
        validate(with_code(frag, frag.starts[0], b"\xff\xff"), d, layout)


# --- RIP-relative operands ----------------------------------------------------------------

def _effective(d: Decoder, frag: Fragment, host: int) -> tuple[str, int]:
    insn = d.decode(host, frag.code[host - frag.start:host - frag.start + 15], detail=True)
    (mem,) = [o.mem for o in insn.operands if o.kind == "mem"]
    assert mem.base == "rip"
    return insn.mnemonic, (insn.next + mem.disp) % 2**64


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "free"])
@pytest.mark.parametrize("place", [0x10, 0x1000, 0x7F_0000])
def test_rip_relative_operand_is_re_aimed_at_the_guest_address(exact, place):
    """An IDENT copy of ``lea rax, [rip + 0x100]`` runs at a cache address: its displacement
    must be rewritten so it still means guest 0x100007 + 0x100, not cache + 0x100."""
    code = assemble("lea rax, [rip + 0x100]\nhlt", GUEST, 64)
    assert code[:7] == bytes.fromhex("488d0500010000")
    frags, d, layout = translate_all(code, 64, exact, place=place)
    frag = frags[0]
    validate(frag, d, layout)
    host = frag.starts[0]
    assert layout.cache <= host < layout.cache + CACHE_SIZE
    mnemonic, target = _effective(d, frag, host)
    assert mnemonic == "lea"
    assert target == (GUEST + 7 + 0x100) % 2**64


def test_rip_relative_store_and_negative_displacement():
    """Re-aiming works for stores and read-modify-write forms, and for negative and
    large displacements (the displacement is not always right after the ModRM byte)."""
    code = assemble("mov dword ptr [rip - 0x40], eax\ninc qword ptr [rip + 0x7fff0]\nhlt",
                    GUEST, 64)
    frags, d, layout = translate_all(code, 64)
    frag = frags[0]
    block = frag.trace
    _, target = _effective(d, frag, frag.starts[0])
    assert target == block.insns[0].next - 0x40
    # the inc is split (dbt/translator/rmw.py): its load and both stores are re-aimed
    lo, hi = frag.starts[1], frag.starts[2]
    moves = [a for a, _, m, o in d.disasm(frag.code[lo - frag.start:hi - frag.start], lo)
             if "rip" in o]
    assert len(moves) == 3
    for host in moves:
        assert _effective(d, frag, host) == ("mov", block.insns[1].next + 0x7FFF0)


def test_rip_relative_indirect_call_reads_the_guest_slot():
    """``call qword ptr [rip + 0x10]`` loads its target through a re-aimed operand, and
    pushes the *guest* return address (transparency: the guest sees guest addresses)."""
    code = assemble("call qword ptr [rip + 0x10]", GUEST, 64)
    frags, d, layout = translate_all(code, 64)
    frag = frags[0]
    validate(frag, d, layout)
    insn = frag.insns[0]
    loads = [a for a, _, m, o in host_insns(frag, d) if m == "mov" and "rip" in o]
    assert len(loads) == 1
    _, target = _effective(d, frag, loads[0])
    assert target == insn.next + 0x10
    pushes = [o for _, _, m, o in host_insns(frag, d) if m == "push"]
    assert pushes == [hex(insn.next)]


# --- branches -----------------------------------------------------------------------------

@pytest.mark.parametrize("bits,src", [
    (32, "ret"),
    (32, "ret 8"),
    (32, "jmp eax"),
    (32, "call dword ptr [eax + 4]"),
    (32, "jmp dword ptr [0x200000 + ebx*4]"),
    (64, "ret"),
    (64, "jmp rax"),
    (64, "jmp r11"),
    (64, "call qword ptr [rip + 0x10]"),
    (64, "call qword ptr [r8 + rcx*8 + 8]"),
    (32, "jmp 0x100100"),
    (32, "je 0x100100"),
    (32, "call 0x100100"),
    (32, "loop 0x100000"),
    (64, "jrcxz 0x100000"),
])
def test_branches_translate_and_validate(bits, src):
    """Every branch form leaves the fragment through an exit stub or the walk of the
    indirect-branch map, never by a direct jump to a guest address."""
    code = assemble("nop\n" + src, GUEST, bits)
    frags, d, layout = translate_all(code, bits)
    frag = frags[0]
    assert frag.trace.stop is StopReason.CONTROL
    validate(frag, d, layout)
    assert frag.insns[-1].rule.action.value == "branch"
    walks = frag.code.endswith(translator(bits)[0].t["ibl"].code)
    assert walks != any(s.kind is SiteKind.EXIT for s in frag.sites)


def test_direct_call_pushes_the_guest_return_address():
    """Transparency: the return address on the guest stack is the guest's next pc, never
    a code-cache address."""
    code = assemble("call 0x100100", GUEST, 32)
    frags, d, _ = translate_all(code, 32)
    pushes = [o for _, _, m, o in host_insns(frags[0], d) if m == "push"]
    assert pushes == [hex(GUEST + 5)]


def test_exit_sites_carry_their_guest_targets():
    """A conditional branch has two exits, taken and fall-through, each with its guest
    target for chaining."""
    code = assemble("je 0x100100", GUEST, 32)
    frags, _, _ = translate_all(code, 32)
    assert sorted(s.target for s in frags[0].exits) == [GUEST + 6, 0x100100]


@pytest.mark.parametrize("src", ["jmp 5", "call 0", "jne 9"])
def test_direct_branch_to_a_low_address_translates(src):
    """capstone prints branch targets below 10 in decimal ('jmp 5'): a scanner that
    parsed only hex took them for indirect branches and the translator refused them."""
    code = assemble(src, GUEST, 32)
    frags, d, layout = translate_all(code, 32)
    validate(frags[0], d, layout)
    assert {s.target for s in frags[0].exits} & {0, 5, 9}


def test_faulting_block_translates_to_a_fault_site():
    """A block that starts with undecodable bytes is a fault site, uncounted."""
    frags, d, layout = translate_all(b"\xff\xff" + b"\x90" * 16, 32)
    frag = frags[0]
    assert frag.trace.fault == "#UD"
    assert [s.kind for s in frag.sites] == [SiteKind.FAULT]
    assert (frag.segments, frag.counted) == ([], False)
    validate(frag, d, layout)


def test_ident_instructions_are_copied_byte_for_byte():
    """Innocuous instructions run unmodified: their bytes appear verbatim, in order."""
    code = assemble("mov eax, 0x12345678\nadd ebx, eax\nimul ecx, edx, 7\nhlt", GUEST, 32)
    frags, d, layout = translate_all(code, 32, exact=False)
    frag = frags[0]
    for k, insn in enumerate(frag.insns[:3]):
        at = frag.starts[k] - frag.start
        assert frag.code[at:at + insn.size] == insn.raw
