"""Random straight-line ALU code under every engine: the differential oracle on programs
nobody wrote by hand.

Known divergences are kept out of the generator and pinned by their own xfail tests
below: ``bt r, imm`` (bit test; its undefined flags differ by engine) and a second read
of the flags after ``pushfd`` under hw.

Each example is a short sequence of innocuous 32-bit instructions (moves, arithmetic,
logic, shifts and rotates, multiplies, lea, setcc, cmovcc, push/pop pairs, 8- and 16-bit
forms) over eax..edi without esp, assembled by keystone at 0x100000 and ended by
``cli; hlt``. Every engine must finish with the same registers (eflags included: the
code leaves arithmetic flags behind, some of them architecturally undefined, which every
engine computes on the same unicorn CPU), the same count and the same memory. A few
examples also read the flags back with ``pushfd`` (bt's inline template must produce the
real arithmetic flags plus the virtual IF) and round-trip them with ``pushfd; popfd``.

What could go wrong: a translation that clobbers the flags or a scratch register
(bt's counting prologue runs before every block), mis-copied 8/16-bit forms, a count
that drifts by one, a stack access that differs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt.engines import engine_names, run_guest
from dbt.loader import Arch, Image, Segment
from dbt.monitor.monitor import RunConfig
from dbt.translator.assembler import assemble

BASE = 0x100000
RAM = 2 << 20
REGS = ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"]
REGS16 = ["ax", "bx", "cx", "dx", "si", "di", "bp"]
REGS8 = ["al", "ah", "bl", "bh", "cl", "ch", "dl", "dh"]
CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]

reg = st.sampled_from(REGS)
reg16 = st.sampled_from(REGS16)
reg8 = st.sampled_from(REGS8)
imm32 = st.one_of(st.integers(0, 0xFFFF_FFFF),
                  st.sampled_from([0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x80]))
imm8 = st.integers(-128, 127)
count = st.integers(0, 31)
scale = st.sampled_from([1, 2, 4, 8])
disp = st.integers(-0x1000, 0x1000)
binop = st.sampled_from(["add", "sub", "xor", "and", "or", "adc", "sbb", "cmp", "test"])
shift = st.sampled_from(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"])
unop = st.sampled_from(["inc", "dec", "neg", "not"])
cc = st.sampled_from(CC)


def line(fmt: str, *parts):
    return st.tuples(*parts).map(lambda t: [fmt.format(*t)])


INSN = st.one_of(
    line("mov {}, {:#x}", reg, imm32),
    line("mov {}, {}", reg, reg),
    line("{} {}, {}", binop, reg, reg),
    line("{} {}, {:#x}", binop, reg, imm32),
    line("{} {}, {}", binop, reg, imm8),
    line("{} {}, {}", binop, reg16, reg16),
    line("{} {}, {}", binop, reg8, reg8),
    line("{} {}, {}", shift, reg, count),
    line("{} {}, 1", shift, reg),
    line("{} {}", unop, reg),
    line("{} {}", unop, reg8),
    line("imul {}, {}", reg, reg),
    line("imul {}, {}, {}", reg, reg, imm8),
    line("lea {}, [{} + {}*{} + {}]", reg, reg, reg, scale, disp),
    line("set{} {}", cc, reg8),
    line("cmov{} {}, {}", cc, reg, reg),
    line("movzx {}, {}", reg, reg8),
    line("movsx {}, {}", reg, reg16),
    line("xchg {}, {}", reg, reg),
    line("bswap {}", reg),
    st.sampled_from([["clc"], ["stc"], ["cmc"], ["cdq"], ["cwde"], ["lahf"], ["sahf"]]),
    st.tuples(reg, reg).map(lambda t: [f"push {t[0]}", f"pop {t[1]}"]),
    st.tuples(imm32, reg).map(lambda t: [f"push {t[0]:#x}", f"pop {t[1]}"]),
)
FLAGS = st.one_of(
    # bt: the pushf template. The add defines every arithmetic flag again: after a pushfd,
    # hw reads the flags wrongly (test_flags_read_twice_after_pushfd, xfail)
    st.tuples(reg, reg).map(lambda t: ["pushfd", f"pop {t[0]}", f"add {t[1]}, 0"]),
    st.just(["pushfd", "popfd"]),  # bt: the popf template (ends the block)
)


@st.composite
def programs(draw) -> list[str]:
    lines = []
    for piece in draw(st.lists(st.one_of(INSN, INSN, INSN, FLAGS), min_size=1, max_size=24)):
        lines += piece
    return lines


def run_everywhere(lines: list[str]):
    code = assemble("\n".join(lines + ["cli", "hlt"]), BASE, 32)
    image = Image("<random>", "raw", Arch.X86_32, BASE, (Segment(BASE, code, len(code)),))
    config = RunConfig(max_insns=10_000)
    return {e: run_guest(image, e, config, ram_size=RAM) for e in engine_names(outside=False)}


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_alu_code_runs_alike_everywhere(lines):
    """Same registers, eflags, count, system state and memory under every engine."""
    results = run_everywhere(lines)
    ref = results["interp"]
    assert ref.reason.value == "halt", (ref.fault and ref.fault.describe(), lines)
    assert ref.guest_instructions == len(lines) + 2  # straight-line: each once, plus cli, hlt
    for engine, r in results.items():
        where = (engine, lines)
        assert r.reason == ref.reason, where
        assert r.guest_instructions == ref.guest_instructions, where
        assert r.registers == ref.registers, (where, {k: (hex(v), hex(ref.registers[k]))
                                                      for k, v in r.registers.items()
                                                      if v != ref.registers[k]})
        assert r.system == ref.system, where
        assert r.memory_sha256 == ref.memory_sha256, where


def test_flags_read_back_include_the_arithmetic_flags():
    """A fixed example of the pushfd case: after ``stc; mov eax, 0x7fffffff; inc eax``
    (OF, SF, AF set, CF kept), pushfd must show those bits in every engine, and IF clear."""
    results = run_everywhere(["stc", "mov eax, 0x7fffffff", "inc eax", "pushfd", "pop ebx"])
    for engine, r in results.items():
        flags = r.registers["ebx"]
        assert flags & 0x0801 == 0x0801, (engine, hex(flags))  # OF | CF
        assert flags & 0x0080, (engine, hex(flags))  # SF
        assert not flags & 0x0200, (engine, hex(flags))  # IF: the guest's, cleared
        assert r.registers == results["interp"].registers, engine


# --- known divergences, found by this generator ---------------------------------------------

@pytest.mark.xfail(strict=True, reason="hw (exact clock, --memory fast): unicorn 2.1.4 with "
                   "virtual-TLB mode, a TLB-fill hook and emu_start(count=...) reads the flags "
                   "wrongly after a pushfd: imul eax, ebx (eax=0) then pushfd twice pushes 0x46 "
                   "then 0x847 (CF and OF set); the final eflags is 0x847 too. interp and bt: "
                   "0x46 both times")
def test_flags_read_twice_after_pushfd():
    """Nothing between two pushfd changes the flags: both must push the same value.
    (Reproduced on bare unicorn: Uc + ctl_set_tlb_mode(UC_TLB_VIRTUAL) + a UC_HOOK_TLB_FILL
    identity hook + emu_start(count=100).)"""
    results = run_everywhere(["xor eax, eax", "mov ebx, 3", "imul eax, ebx",
                              "pushfd", "pop ecx", "pushfd", "pop edx"])
    for engine, r in results.items():
        assert r.registers["ecx"] == r.registers["edx"] == 0x46, (engine, hex(r.registers["edx"]))
        assert r.registers["eflags"] == 0x46, engine


@pytest.mark.xfail(strict=True, reason="bt r, imm (bit test) leaves OF/SF/AF/PF "
                   "(architecturally undefined) as QEMU derives them from the previous "
                   "lazy-flags state, which depends on where a translation block starts: "
                   "after sub eax, 1; mov ebx, 3; bt eax, 5 the bt engine (and hw in the free "
                   "clock) has eflags 0x887, interp and hw (exact) 0x97 - pushfd shows it")
def test_bit_test_leaves_the_same_flags_everywhere():
    """Undefined flags are still guest-visible (pushfd): the engines must agree on them."""
    results = run_everywhere(["sub eax, 1", "mov ebx, 3", "bt eax, 5", "pushfd", "pop ecx"])
    flags = {e: hex(r.registers["ecx"]) for e, r in results.items()}
    assert len(set(flags.values())) == 1, flags
