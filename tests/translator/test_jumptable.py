"""Jump tables (dbt/translator/jumptable.py): when a trace's final ``jmp [idx*S + T]`` may
go through a host table, without running anything.

What could go wrong: a jump translated without a bounds check that really holds on
its path (a signed compare, an index written after the check, a 64-bit index whose
upper half is not known clear): the host table would be read past its end, which
is an escape from the code cache; or a table read wrongly (size, count).
"""

from __future__ import annotations

import pytest
from test_translate import GUEST, fetcher

from dbt.scanner import Decoder
from dbt.translator.assembler import assemble
from dbt.translator.jumptable import JumpTable, find, targets
from dbt.translator.trace import BlockCache, build_trace

TABLE = 0x200000


def found(src: str, bits: int = 32) -> JumpTable | None:
    code = assemble(src, GUEST, bits)
    d = Decoder(bits)
    trace = build_trace(BlockCache(d, fetcher(code)), GUEST)
    return find(trace.insns, trace.links, d)


SWITCH32 = f"cmp edx, 11\nja out\njmp dword ptr [edx*4 + {TABLE:#x}]\nout: ret"
SWITCH64 = f"mov eax, dword ptr [rbx]\ncmp eax, 11\nja out\njmp qword ptr [rax*8 + {TABLE:#x}]\nout: ret"


@pytest.mark.parametrize("bits,src,entries", [
    (32, SWITCH32, 12),
    (32, SWITCH32.replace("ja out", "jae out"), 11),
    (32, "mov edx, eax\n" + SWITCH32.replace("11", "0"), 1),
    (64, SWITCH64, 12),
    (64, SWITCH64.replace("mov eax, dword ptr [rbx]", "xor eax, eax\nnop"), 12),
    (64, SWITCH64.replace("mov eax, dword ptr [rbx]\ncmp eax", "cmp rax"), 12),
])
def test_bounded_switch_dispatch_is_found(bits, src, entries):
    jt = found(src, bits)
    assert jt is not None and (jt.table, jt.entries, jt.size) == (TABLE, entries, bits // 8)


@pytest.mark.parametrize("bits,src", [
    (32, f"jmp dword ptr [edx*4 + {TABLE:#x}]"),                            # no check
    (32, SWITCH32.replace("ja out", "jg out")),                               # signed
    (32, SWITCH32.replace("ja out", "jb out")),                               # wrong side
    (32, SWITCH32.replace("cmp edx, 11", "cmp ecx, 11")),                     # other reg
    (32, SWITCH32.replace("ja out\n", "ja out\ninc edx\n")),                  # index written
    (32, SWITCH32.replace("ja out\n", "ja out\nmov dl, 200\n")),              # ... in part
    (32, SWITCH32.replace("cmp edx, 11", "cmp edx, 100000")),                 # too large
    (32, SWITCH32.replace("[edx*4 +", "[ebx + edx*4 +")),                     # a base
    (32, SWITCH32.replace("dword ptr [", "dword ptr fs:[")),                  # a segment
    (64, SWITCH64.replace("mov eax, dword ptr [rbx]", "mov rax, qword ptr [rbx]")),
    (64, SWITCH64.replace("mov eax, dword ptr [rbx]", "movsxd rax, dword ptr [rbx]")),
    (64, SWITCH64.replace("mov eax, dword ptr [rbx]", "nop")),               # upper unknown
    (64, SWITCH64.replace("mov eax, dword ptr [rbx]", "mov ax, word ptr [rbx]")),
])
def test_unproven_bounds_are_not_translated(bits, src):
    assert found(src, bits) is None


@pytest.mark.parametrize("bits", [32, 64])
def test_targets_are_read_in_the_address_size(bits):
    size = bits // 8
    data = b"".join((0x100000 + k).to_bytes(size, "little") for k in range(3))
    jt = JumpTable(TABLE, 3, size, 3)
    assert targets(jt, fetcher(data, TABLE)) == [0x100000, 0x100001, 0x100002]
    assert targets(JumpTable(TABLE, 4, size, 3), fetcher(data, TABLE)) is None
