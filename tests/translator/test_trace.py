"""Traces (dbt/translator/trace.py): which blocks one fragment translates, and how the
translator links them, without running anything.

What could go wrong: a trace that unrolls a loop forever, links across a branch the
translator cannot link (loop, jecxz, indirect), swallows a rep string instruction
that needs its own budget guard, or a budget tail that spans a conditional branch
(a tail must stop after exactly its count); a linked jmp that is not removed, a
linked jcc whose fall-through still leaves, a segment without its prologue.
"""

from __future__ import annotations

import pytest
from test_translate import GUEST, fetcher, host_insns, translator

from dbt.cache.codecache import HOT_SIZE
from dbt.scanner import Decoder
from dbt.translator.assembler import assemble
from dbt.translator.trace import MAX_TRACE_BLOCKS, BlockCache, Link, build_trace
from dbt.translator.validate import validate


def trace_of(src: str, bits: int = 32, max_insns: int | None = None):
    code = assemble(src, GUEST, bits)
    return build_trace(BlockCache(Decoder(bits), fetcher(code)), GUEST, max_insns)


def test_jmp_call_and_jcc_link_their_next_block():
    t = trace_of("nop\njmp a\nb: ret\na: call f\nf: test eax, eax\njz b\nret")
    assert [b.pc for b in t.blocks] == [GUEST, GUEST + 4, GUEST + 9, GUEST + 13]
    assert [t.links[i] for i in sorted(t.links)] == [Link.JMP, Link.CALL, Link.JCC]
    assert t.insns[-1].name == "ret"


@pytest.mark.parametrize("src", ["l: nop\njmp l", "l: dec ecx\njnz l\nret"])
def test_a_trace_does_not_come_back_to_its_own_blocks(src):
    """A jmp back to the start, or a loop's back edge taken as fall-through... a block
    already in the trace ends it (no unrolling)."""
    t = trace_of(src)
    assert len({b.pc for b in t.blocks}) == len(t.blocks)


@pytest.mark.parametrize("src", ["jecxz a\na: ret", "loop a\na: ret", "jmp eax\nret",
                                 "jmp a\nnop\na: rep stosb\nret", "jmp a\na: .byte 0xff, 0xff"])
def test_branches_that_end_a_trace(src):
    """jecxz/loop and indirect branches are not linked; neither is a block that is a rep
    string instruction (it needs the budget guard at a fragment's start) or one that
    cannot be decoded (its own fragment reports the fault)."""
    assert len(trace_of(src).blocks) == 1


def test_a_leaf_call_and_its_return_are_linked():
    """A ret whose call is linked earlier in the trace, with nothing in between that
    could change the return address, goes on after the call (the pair inlined)."""
    t = trace_of("call f\ninc ebx\nret\nf: mov eax, dword ptr [esi]\ntest eax, eax\n"
                 "jz g\ng: ret")
    assert [t.links[i] for i in sorted(t.links)] == [Link.CALL, Link.JCC, Link.RET]
    assert [b.pc for b in t.blocks][-1] == GUEST + 5


@pytest.mark.parametrize("body", ["push ebx\npop ebx", "mov dword ptr [eax], ebx",
                                  "add esp, 4", "add dword ptr [esp], 2", "stosd",
                                  "call eax", "pushfd\npopfd", "out 0x80, al"])
def test_a_return_address_that_may_have_changed_is_not_linked(body):
    """A store (anywhere: it may hit the return address), a write of esp, another call,
    a template or a callout between the call and the ret: the ret stays indirect."""
    t = trace_of(f"call f\nret\nf: {body}\nret")
    assert Link.RET not in t.links.values()


def test_ret_with_an_immediate_is_not_linked():
    assert Link.RET not in trace_of("call f\nret\nf: ret 4").links.values()


def test_trace_length_is_capped():
    src = "".join(f"jmp b{k}\nb{k}: " for k in range(20)) + "ret"
    assert len(trace_of(src).blocks) == MAX_TRACE_BLOCKS


def test_a_budget_tail_has_its_count_and_no_jcc():
    """A tail of ``max_insns`` instructions follows jmps but stops at a jcc and after
    exactly its count."""
    src = "inc eax\njmp a\na: inc ebx\ninc ecx\njz b\nb: inc edx\nret"
    t = trace_of(src, max_insns=3)
    assert len(t.insns) == 3 and t.links == {1: Link.JMP}
    t = trace_of(src, max_insns=10)
    assert len(t.insns) == 5 and Link.JCC not in t.links.values()


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "free"])
def test_linked_trace_translates_and_validates(bits, exact):
    """The linked jmp is a nop, the linked call a push, the linked jcc leaves only when
    taken; after the jcc a new segment starts, with its own prologue in the exact
    clock."""
    code = assemble("inc eax\njmp a\na: call f\nf: test eax, eax\njz out\ninc ebx\n"
                    "out: ret", GUEST, bits)
    tr, d, layout = translator(bits, exact)
    trace = build_trace(BlockCache(d, fetcher(code)), GUEST)
    frag = tr.translate(trace, layout.cache + 0x1000, layout.cache + HOT_SIZE)
    validate(frag, d, layout)
    assert [s.ninsns for s in frag.segments] == [5, 2]
    jmp_at = frag.starts[1]
    assert frag.code[jmp_at - frag.start] == 0x90
    names = [m for _, _, m, _ in host_insns(frag, d)]
    assert names.count("push") == 1
    exits = [s for s in frag.sites if s.kind.value == "exit"]
    assert [s.target for s in exits] == [GUEST + len(code) - 1]  # jz's taken side only
    probes = [s for s in frag.sites if s.kind.value == "budget"]
    assert [s.index for s in probes] == ([0, 5] if exact else [])


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "free"])
def test_side_entries(exact):
    """A direct branch may enter a trace at a block it linked: in the free clock at any
    of them, in the exact clock only where a segment (and its prologue) starts; never
    inside a callee whose ret the trace inlined (that ret goes back to this trace's
    call, not to whoever branches in)."""
    src = ("inc eax\njmp a\na: test eax, eax\njz out\nb: call f\nadd eax, 2\nret\n"
           "f: test ebx, ebx\njz g\ng: inc ebx\nret\nout: ret")
    code = assemble(src, GUEST, 32)
    tr, d, layout = translator(32, exact)
    trace = build_trace(BlockCache(d, fetcher(code)), GUEST)
    assert [trace.links[i] for i in sorted(trace.links)] == \
        [Link.JMP, Link.JCC, Link.CALL, Link.JCC, Link.RET]
    frag = tr.translate(trace, layout.cache + 0x1000, layout.cache + HOT_SIZE)
    a, b, f, g, after = (trace.blocks[i].pc for i in range(1, 6))
    if exact:
        assert frag.entries == {b: frag.segments[1].entry}  # not g: it is in f, inlined
    else:
        assert set(frag.entries) == {a, b, after}  # not f, not g
        assert frag.entries[a] == frag.starts[trace.insns.index(trace.blocks[1].insns[0])]


def test_a_trace_stops_before_a_translated_block():
    """A block that already has an entry (here the jmp's target) is chained to, not
    linked into the trace and translated again."""
    code = assemble("inc eax\njmp a\na: inc ebx\njz b\nb: ret", GUEST, 32)
    placed = {GUEST + 3}
    t = build_trace(BlockCache(Decoder(32), fetcher(code)), GUEST, None, placed.__contains__)
    assert [b.pc for b in t.blocks] == [GUEST] and t.insns[-1].name == "jmp"


def test_a_translated_fall_through_is_taken_in():
    """A jcc's fall-through goes on in the trace even when it is translated already (left
    as an exit it would be a jmp of its own, a unicorn block each time the branch is not
    taken); a jmp or call into translated code still stops the trace."""
    code = assemble("l: cmp eax, ebx\nje out\nf: inc eax\njmp g\ng: jmp l\nout: ret", GUEST, 32)
    t0 = build_trace(BlockCache(Decoder(32), fetcher(code)), GUEST)
    f, g = t0.blocks[1].pc, t0.blocks[1].end
    t = build_trace(BlockCache(Decoder(32), fetcher(code)), GUEST, None, {f, g}.__contains__)
    assert [b.pc for b in t.blocks] == [GUEST, f]  # the fall-through f copied, g chained
    assert t.links == {1: Link.JCC} and t.insns[-1].name == "jmp"
