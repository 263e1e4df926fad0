"""The translator's code templates (dbt/translator/templates.py), checked independently of
the check the module runs on itself.

keystone 0.9.2 mis-encodes some instructions (DESIGN §5), and a template that came out
RIP-relative, with a stray operand-size prefix or at the wrong address would corrupt
guest state silently in every translated block.
"""

from __future__ import annotations

import functools
import re
import struct

import pytest

from dbt.cache.layout import SLOTS, Layout
from dbt.monitor.machine import Machine
from dbt.scanner import Decoder
from dbt.translator.templates import SENTINEL, TEXT, Template, Templates

RAM = 4 << 20


@functools.lru_cache(maxsize=None)
def build(bits: int) -> tuple[int, Layout, Templates]:
    machine = Machine(bits, RAM, exec_ram=False, memory="default")
    layout = Layout.map(machine)
    return bits, layout, Templates(layout)


@pytest.fixture(params=[32, 64], ids=["x86_32", "x86_64"])
def built(request):
    return build(request.param)


def names_for(bits: int) -> list[str]:
    return [n for n, pair in TEXT.items() if pair[1 if bits == 64 else 0] is not None]


def statements(bits: int, name: str) -> list[str]:
    return [s.strip() for s in TEXT[name][1 if bits == 64 else 0].split(";") if s.strip()]


def expected_addresses(layout: Layout, bits: int, name: str) -> set[int]:
    """The absolute addresses the template's text names, from the layout."""
    extra = {"l1": layout.table, "probe": layout.vcpu, "target4": layout.slot("target") + 4,
             "save_c3": layout.slot("save_c") + 3, "save_c4": layout.slot("save_c") + 4,
             "tmp3": layout.slot("tmp") + 3}
    out = set()
    for key in re.findall(r"\{(\w+)\}", TEXT[name][1 if bits == 64 else 0]):
        out.add(extra[key] if key in extra else layout.slot(key))
    return out


def mem_operands(decoder: Decoder, code: bytes, at: int = 0):
    addr = 0
    while addr < len(code):
        insn = decoder.decode(at + addr, code[addr:addr + 15], detail=True)
        assert insn is not None, f"undecodable at +{addr}: {code.hex()}"
        yield insn, [o.mem for o in insn.operands if o.kind == "mem"]
        addr += insn.size


def test_every_template_is_built(built):
    """Every template of the mode exists (and push_imm64 only in 64-bit mode, where a
    return address above 2 GiB needs two halves)."""
    bits, _, t = built
    for name in names_for(bits):
        assert isinstance(t[name], Template) and t[name].code, name
    if bits == 32:
        with pytest.raises(KeyError):
            t["push_imm64"]


def test_each_template_decodes_to_its_statements(built):
    """capstone must see exactly one instruction per statement of the text, covering every
    byte, with the mnemonic the text asked for: keystone silently drops or merges some."""
    bits, _, t = built
    d = Decoder(bits)
    for name in names_for(bits):
        code = t[name].code
        want = statements(bits, name)
        got = list(d.disasm(code, 0))
        assert len(got) == len(want), (name, got)
        assert sum(size for _, size, _, _ in got) == len(code), name
        for (_, _, mnemonic, _), w in zip(got, want):  # (a mov of rax may be a movabs)
            assert mnemonic in (w.split()[0], "movabs" if w.startswith("mov ") else ""), \
                (name, mnemonic, w)


def test_no_template_is_rip_relative(built):
    """In 64-bit mode keystone turns ``[addr]`` into ``[rip + disp]``; code copied into the
    cache at another address would then touch the wrong memory."""
    bits, _, t = built
    d = Decoder(bits)
    for name in names_for(bits):
        for insn, mems in mem_operands(d, t[name].code):
            assert "rip" not in insn.op_str, (name, insn.mnemonic, insn.op_str)
            assert all(m.base != "rip" for m in mems), name


def test_no_unasked_operand_size_prefix(built):
    """keystone adds a spurious 0x66 to some 32-bit forms (DESIGN §5): a 16-bit store into
    a slot would keep stale upper bytes."""
    bits, _, t = built
    d = Decoder(bits)
    for name in names_for(bits):
        for insn, _ in mem_operands(d, t[name].code):
            assert 0x66 not in insn.prefixes, (name, insn.mnemonic, insn.op_str)


def test_vcpu_area_addressed_absolutely(built):
    """Every ``[slot]`` of the text must be an absolute address (disp32, no base register)
    equal to layout.slot(...); in 64-bit mode the monitor's memory sits at the top of the
    address space, so the disp32 is sign-extended to reach it."""
    bits, layout, t = built
    d = Decoder(bits)
    mask = (1 << bits) - 1
    for name in names_for(bits):
        want = expected_addresses(layout, bits, name)
        seen = set()
        for insn, mems in mem_operands(d, t[name].code):
            for m in mems:
                if m.base in ("", None) and m.index in ("", None):
                    assert -2**31 <= m.disp < 2**32, (name, insn.op_str)
                    seen.add(m.disp & mask)
                elif m.index and m.base in ("", None):  # [reg*8 + table]
                    seen.add(m.disp & mask)
        assert want <= seen, (name, sorted(map(hex, want - seen)))
        if bits == 64:
            for addr in want:
                assert addr >= 2**64 - 2**31  # reachable only as a sign-extended disp32


def test_64bit_slot_encodings_are_sib_absolute(built):
    """An absolute disp32 in 64-bit mode needs a SIB byte with no base and no index
    (ModRM mod=00 rm=100, SIB base=101 index=100); ModRM rm=101 alone means RIP-relative."""
    bits, layout, t = built
    if bits != 32:
        code = t["restore_c"].code  # mov rcx, qword ptr [save_c]
        assert code[:2] == b"\x48\x8b" and code[2] & 0xC7 == 0x04 and code[3] == 0x25
        assert struct.unpack_from("<i", code, 4)[0] % 2**64 == layout.slot("save_c")
    else:
        code = t["restore_c"].code
        assert code[:2] == b"\x8b\x0d"
        assert struct.unpack_from("<I", code, 2)[0] == layout.slot("save_c")


def test_slots_do_not_overlap(built):
    """Each vCPU slot is 8 bytes: overlapping slots would let saving rcx clobber the
    instruction budget or the virtual IF."""
    _, layout, _ = built
    addrs = sorted(layout.slot(n) for n in SLOTS)
    assert all(b - a >= 8 for a, b in zip(addrs, addrs[1:]))


def test_sentinels_are_recorded_and_gone_after_fill(built):
    """Each sentinel S1/S2 must be found once in the encoding; after fill() none is left
    (a forgotten sentinel would run as a wild immediate)."""
    bits, _, t = built
    for name in names_for(bits):
        text = TEXT[name][1 if bits == 64 else 0]
        n = 2 if "S2" in text else 1 if "S1" in text else 0
        tpl = t[name]
        assert len(tpl.patches) == n, name
        for i, off in enumerate(tpl.patches, 1):
            assert struct.unpack_from("<I", tpl.code, off)[0] == SENTINEL + i
        filled = tpl.fill(*range(1, n + 1))
        for i in range(1, n + 1):
            assert struct.pack("<I", SENTINEL + i) not in filled, name


@pytest.mark.parametrize("value", [0, 1, -3, 0x7FFF_FFFF, -2**31, 0x1234_5678])
def test_fill_writes_values_at_the_sentinel_offsets(built, value):
    """fill() writes each value, as 32 bits little-endian, at its sentinel's offset and
    changes no other byte."""
    bits, _, t = built
    tpl = t["count"]
    (off,) = tpl.patches
    out = tpl.fill(value)
    assert len(out) == len(tpl.code)
    assert out[off:off + 4] == struct.pack("<I", value & 0xFFFF_FFFF)
    assert out[:off] == tpl.code[:off] and out[off + 4:] == tpl.code[off + 4:]
    d = Decoder(bits)
    lea = [i for i, _ in mem_operands(d, out) if i.name == "lea"][0]
    disp = lea.operands[1].mem.disp
    assert disp == (value if value < 2**31 else value - 2**32)


def test_fill_two_sentinels():
    """push_imm64 takes the low and the high half of a 64-bit return address: swapped
    or missing halves would push a wrong guest address."""
    _, _, t = build(64)
    tpl = t["push_imm64"]
    ret = 0x1_2345_6789
    out = tpl.fill(ret, ret >> 32)
    a, b = tpl.patches
    assert struct.unpack_from("<I", out, a)[0] == ret & 0xFFFF_FFFF
    assert struct.unpack_from("<I", out, b)[0] == ret >> 32


def test_fill_on_a_hand_made_template():
    """fill() on a known layout: values little-endian at their offsets, nothing else
    touched, missing values leave their bytes as they are."""
    tpl = Template("t", bytes(12), (2, 7))
    out = tpl.fill(0x11223344, 0xAABBCCDD)
    assert out[2:6] == bytes.fromhex("44332211") and out[7:11] == bytes.fromhex("ddccbbaa")
    assert out[:2] == b"\0\0" and out[6] == 0 and out[11] == 0
    assert tpl.fill(1) == bytes(2) + b"\x01\0\0\0" + bytes(6)  # missing values: left as is


def test_flag_templates_preserve_arithmetic_flags_textually(built):
    """Only ``popf`` may write the arithmetic flags: every other template uses flag-free
    instructions (mov, lea, movzx, movsx, bswap, not, set, push, pop, jmp)."""
    bits, _, t = built
    d = Decoder(bits)
    writers = {"add", "sub", "and", "or", "xor", "inc", "dec", "cmp", "test", "neg", "shl",
               "shr", "sar", "imul", "popfd", "popfq", "bsf", "bsr", "bt"}
    for name in names_for(bits):
        if name == "popf":
            continue
        for insn, _ in mem_operands(d, t[name].code):
            assert insn.name not in writers, (name, insn.mnemonic, insn.op_str)
