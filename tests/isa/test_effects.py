"""dbt/isa/effects.py: the cheap test of whether an instruction can store to memory or
move the stack pointer, which lets a trace inline a leaf function's ret without a
detailed decode. What could go wrong: an instruction it calls harmless that does store
(implicitly: push, xchg with memory, maskmovq...) or moves the stack pointer; the trace
would then inline a ret whose return address the callee changed. Checked against
capstone's own account of every instruction's writes, on generated instructions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt.isa import Action
from dbt.isa.effects import IMPLICIT_STORES_OR_SP, may_store_or_move_sp
from dbt.scanner import Decoder

DECODERS = {bits: Decoder(bits) for bits in (32, 64)}
SP = {"rsp", "esp", "sp", "spl"}


@pytest.mark.parametrize("bits", [32, 64])
@settings(max_examples=3000, deadline=None)
@given(raw=st.binary(min_size=15, max_size=15))
def test_a_harmless_verdict_is_never_wrong(bits, raw):
    d = DECODERS[bits]
    insn = d.decode(0x100000, raw)
    if insn is None or insn.rule.action is not Action.IDENT:
        return
    if not may_store_or_move_sp(insn.name, insn.op_str):
        memory, registers = d.writes(insn)
        assert not memory and not SP & registers, f"{insn.mnemonic} {insn.op_str}"


@pytest.mark.parametrize("bits, src", [
    (32, "mov eax, [esp+4]"), (32, "add eax, ebx"), (64, "lea rax, [rip+0x10]"),
    (64, "movsd xmm0, qword ptr [rax]"), (32, "cmp ecx, edx")])
def test_common_leaf_instructions_are_harmless(bits, src):
    from dbt.translator.assembler import assemble

    insn = DECODERS[bits].decode(0x100000, assemble(src, 0x100000, bits))
    assert not may_store_or_move_sp(insn.name, insn.op_str)


@pytest.mark.parametrize("bits, src", [
    (32, "push eax"), (32, "pop ebx"), (32, "xchg [eax], ebx"), (32, "mov [eax], ebx"),
    (32, "add esp, 8"), (64, "maskmovq mm0, mm1"), (32, "leave"), (32, "stosd")])
def test_stores_and_stack_moves_are_suspect(bits, src):
    from dbt.translator.assembler import assemble

    insn = DECODERS[bits].decode(0x100000, assemble(src, 0x100000, bits))
    assert may_store_or_move_sp(insn.name, insn.op_str)


def test_the_list_names_only_instructions_capstone_knows():
    import capstone

    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    names = {cs.insn_name(i) for i in range(1, capstone.x86_const.X86_INS_ENDING)}
    assert IMPLICIT_STORES_OR_SP <= names
