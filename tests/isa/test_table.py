"""Tests of the ISA table (dbt.isa.table, dbt.isa.groups)."""

from __future__ import annotations

import re

import capstone
import capstone.x86_const as x86
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt.isa import RULES, classify, rule_for_name
from dbt.isa.groups import GROUPS
from dbt.isa.model import Action, InsnClass, Rule
from dbt.isa.table import (
    EXPLICIT,
    IDENT_ALLOWED,
    MNEMONIC_ALIASES,
    OPERAND_DEPENDENT,
    OPERAND_RULES,
    PREFIXES,
    ROBIN_IRVINE,
    RULE_SOURCE,
    UNKNOWN_RULE,
)

P, S, C, I = InsnClass.PRIVILEGED, InsnClass.SENSITIVE, InsnClass.CONTROL, InsnClass.INNOCUOUS
IDENT, INLINE, CALLOUT = Action.IDENT, Action.INLINE, Action.CALLOUT
BRANCH, UNSUP = Action.BRANCH, Action.UNSUPPORTED

_MODES = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32, 64: capstone.CS_MODE_64}
_DISASM = {bits: capstone.Cs(capstone.CS_ARCH_X86, mode) for bits, mode in _MODES.items()}


def _capstone_names() -> dict[str, int]:
    md = _DISASM[64]
    names = {}
    for const in dir(x86):
        if const.startswith("X86_INS_") and const not in ("X86_INS_INVALID", "X86_INS_ENDING"):
            insn_id = getattr(x86, const)
            names[md.insn_name(insn_id)] = insn_id
    return names


CAPSTONE_NAMES = _capstone_names()
GROUP_BY_KEY = {group.key: group for group in GROUPS}


def _all_rules() -> list[tuple[str, Rule]]:
    """Every rule the table can hand out, labelled."""
    rules = [(name, rule) for name, rule in RULES.items()]
    rules += [(f"{name} (operand form)", r) for name, rs in OPERAND_RULES.items() for r in rs]
    rules += [(f"group {group.key}", group.rule) for group in GROUPS]
    rules.append(("UNKNOWN_RULE", UNKNOWN_RULE))
    return rules


# --------------------------------------------------------------------------------------
# 1. coverage
# --------------------------------------------------------------------------------------


def test_capstone_names_are_unique():
    ids = [getattr(x86, c) for c in dir(x86) if c.startswith("X86_INS_")]
    assert len(CAPSTONE_NAMES) == len(ids) - 2  # INVALID and ENDING excluded


def test_every_capstone_instruction_has_a_rule():
    missing = sorted(name for name in CAPSTONE_NAMES if name not in RULES)
    assert not missing, f"instructions without a rule: {missing}"


def test_table_lists_only_capstone_names():
    stale = sorted(name for name in RULES if name not in CAPSTONE_NAMES)
    assert not stale, f"rules for names capstone does not know: {stale}"


def test_every_rule_comes_from_a_row_or_a_group():
    assert RULE_SOURCE.keys() == RULES.keys()
    assert set(RULE_SOURCE.values()) == {"explicit"} | set(GROUP_BY_KEY)
    for name, source in RULE_SOURCE.items():
        if source == "explicit":
            assert RULES[name] is EXPLICIT[name]
        else:
            assert name in GROUP_BY_KEY[source].names
            assert RULES[name] is GROUP_BY_KEY[source].rule


def test_groups_and_rows_are_disjoint():
    seen: dict[str, str] = {name: "explicit" for name in EXPLICIT}
    for group in GROUPS:
        for name in group.names:
            assert name not in seen, f"{name} in {seen[name]} and {group.key}"
            seen[name] = group.key
    assert len(GROUP_BY_KEY) == len(GROUPS)


# Reviewed sizes: changing a group list must change this table too.
EXPECTED_SIZES = {
    "explicit": 151,
    "near-branch": 22,
    "gp-integer": 107,
    "string": 20,
    "bit-manipulation": 27,
    "cache-and-ordering": 18,
    "x87": 92,
    "user-state": 12,
    "mmx-sse": 248,
    "sse4a": 4,
    "3dnow": 25,
    "avx": 620,
    "avx512-opmask": 51,
    "xop-fma4": 76,
    "crypto": 27,
    "padlock": 9,
    "mpx": 7,
    "prefix": 7,
}


def test_group_sizes_are_the_reviewed_ones():
    sizes = {key: 0 for key in EXPECTED_SIZES}
    for source in RULE_SOURCE.values():
        sizes[source] += 1
    assert sizes == EXPECTED_SIZES
    assert sum(sizes.values()) == len(CAPSTONE_NAMES)


# --------------------------------------------------------------------------------------
# 2. group membership matches what a reviewer expects
# --------------------------------------------------------------------------------------

VMX_SVM_AND_SEGMENT_CHECKS = {
    "vmcall", "vmclear", "vmfunc", "vmlaunch", "vmptrld", "vmptrst", "vmread", "vmresume",
    "vmwrite", "vmxoff", "vmxon",  # VMX
    "vmload", "vmmcall", "vmrun", "vmsave",  # SVM
    "verr", "verw",  # segment checks
}  # fmt: skip


def test_group_rules_are_innocuous_except_near_branches():
    for group in GROUPS:
        expected = (C, BRANCH) if group.key == "near-branch" else (I, IDENT)
        assert (group.rule.klass, group.rule.action) == expected, group.key
        assert not group.rule.robin_irvine


def test_no_system_instruction_starting_with_v_is_in_a_vector_group():
    vector_groups = GROUP_BY_KEY["avx"].names | GROUP_BY_KEY["xop-fma4"].names
    vector_groups |= {n for n in GROUP_BY_KEY["crypto"].names if n.startswith("v")}
    assert not vector_groups & VMX_SVM_AND_SEGMENT_CHECKS
    assert all(name.startswith("v") for name in vector_groups)
    v_names_elsewhere = {n for n in CAPSTONE_NAMES if n.startswith("v")} - vector_groups
    assert v_names_elsewhere == VMX_SVM_AND_SEGMENT_CHECKS
    # the vector instructions that do begin with "vm"
    vm_vector = {n for n in vector_groups if n.startswith("vm")}
    assert all(re.match(r"vm(askmov|ax|in|ov|psadbw|ul)", n) for n in vm_vector), vm_vector
    for name in VMX_SVM_AND_SEGMENT_CHECKS:
        assert RULE_SOURCE[name] == "explicit" and RULES[name].sensitive


def test_x87_group_is_the_f_names_minus_state_management():
    x87 = GROUP_BY_KEY["x87"].names
    assert all(n.startswith("f") for n in x87 - {"wait"})
    assert "wait" in x87  # FWAIT
    f_names_elsewhere = {n for n in CAPSTONE_NAMES if n.startswith("f")} - x87
    assert f_names_elsewhere == {"fxsave", "fxsave64", "fxrstor", "fxrstor64", "femms"}
    assert {"fxsave", "fxrstor", "xsave", "xrstor"} <= GROUP_BY_KEY["user-state"].names
    assert "femms" in GROUP_BY_KEY["3dnow"].names


def test_prefix_groups_match_their_prefix():
    assert GROUP_BY_KEY["avx512-opmask"].names == {n for n in CAPSTONE_NAMES if n.startswith("k")}
    assert GROUP_BY_KEY["mpx"].names == {n for n in CAPSTONE_NAMES if n.startswith("bnd")}
    jcc = {n for n in CAPSTONE_NAMES if re.fullmatch(r"j(?!mp)[a-z]+", n)}
    assert jcc <= GROUP_BY_KEY["near-branch"].names


def test_supervisor_state_forms_are_not_in_user_state_group():
    user_state = GROUP_BY_KEY["user-state"].names
    for name in ("xsaves", "xsaves64", "xrstors", "xrstors64"):
        assert name not in user_state
        assert RULES[name].klass is P and RULES[name].action is UNSUP


# A safety net: names that look like system instructions must not be in a group.
_SYSTEM_LOOKING = re.compile(
    r"(vm(call|clear|func|launch|ptr|read|resume|write|xo|load|mmcall|run|save)"
    r"|sys|swapgs|iret|int\d?$|into$|in$|out$|ins[bwd]$|outs[bwd]$|hlt|cli$|sti$|clts|lmsw"
    r"|rd(msr|tsc|pmc|pid|pkru|[fg]sbase|ssp)|wr(msr|pkru|[fg]sbase|u?ss[dq])|[ls][gil]dt|[ls]tr$"
    r"|smsw|invlpg|invd|invept|invvpid|invpcid|wbinvd|wbnoinvd|xsaves|xrstors|xsetbv|xgetbv"
    r"|encl|getsec|pconfig|monitor|mwait|rsm|lar$|lsl$|verr|verw|l[defgs]s$|push|pop|mov$"
    r"|call|jmp|ret|stgi|clgi|skinit|clac|stac|ptwrite|umwait|tpause|umonitor|cpuid)"
)
# ...except these, reviewed: the PUSHA/POPA family and POPCNT (gp-integer, bit-manipulation).
_SYSTEM_LOOKING_BUT_INNOCUOUS = {"pushal", "pushaw", "popal", "popaw", "popcnt"}


def test_no_system_looking_name_is_in_a_group():
    suspicious = sorted(
        name
        for group in GROUPS
        for name in group.names
        if _SYSTEM_LOOKING.match(name) and name not in _SYSTEM_LOOKING_BUT_INNOCUOUS
    )
    assert not suspicious


# --------------------------------------------------------------------------------------
# 3. decoded instructions
# --------------------------------------------------------------------------------------

# (hex bytes, bits, mnemonic as capstone prints it, class, action, robin_irvine)
DECODED = [
    # MOV: control and debug registers
    ("0f22c0", 32, "mov", P, CALLOUT, False),  # mov cr0, eax
    ("0f20c0", 32, "mov", P, CALLOUT, False),  # mov eax, cr0
    ("0f20d8", 64, "mov", P, CALLOUT, False),  # mov rax, cr3
    ("440f20c0", 64, "mov", P, CALLOUT, False),  # mov rax, cr8
    ("0f23f8", 32, "mov", P, CALLOUT, False),  # mov dr7, eax
    ("0f21f8", 32, "mov", P, CALLOUT, False),  # mov eax, dr7
    # MOV: segment registers
    ("8ed8", 32, "mov", S, CALLOUT, True),  # mov ds, eax
    ("8e18", 32, "mov", S, CALLOUT, True),  # mov ds, word ptr [eax]
    ("8ee0", 64, "mov", S, CALLOUT, True),  # mov fs, eax
    ("8cc8", 32, "mov", S, CALLOUT, True),  # mov eax, cs
    ("8c18", 32, "mov", S, CALLOUT, True),  # mov word ptr [eax], ds
    ("488cd0", 64, "mov", S, CALLOUT, True),  # mov rax, ss
    # MOV: ordinary, including segment overrides
    ("89d8", 32, "mov", I, IDENT, False),  # mov eax, ebx
    ("64a128000000", 32, "mov", I, IDENT, False),  # mov eax, dword ptr fs:[0x28]
    ("64488b042528000000", 64, "mov", I, IDENT, False),  # mov rax, qword ptr fs:[0x28]
    ("65c70000000000", 64, "mov", I, IDENT, False),  # mov dword ptr gs:[rax], 0
    ("48b88877665544332211", 64, "movabs", I, IDENT, False),
    # PUSH / POP
    ("0e", 32, "push", S, CALLOUT, True),  # push cs
    ("16", 32, "push", S, CALLOUT, True),  # push ss
    ("0fa0", 32, "push", S, CALLOUT, True),  # push fs
    ("0fa8", 64, "push", S, CALLOUT, True),  # push gs
    ("1f", 32, "pop", S, CALLOUT, True),  # pop ds
    ("17", 32, "pop", S, CALLOUT, True),  # pop ss
    ("0fa1", 64, "pop", S, CALLOUT, True),  # pop fs
    ("50", 32, "push", I, IDENT, False),  # push eax
    ("58", 32, "pop", I, IDENT, False),  # pop eax
    ("6a00", 32, "push", I, IDENT, False),  # push 0
    ("ff30", 32, "push", I, IDENT, False),  # push dword ptr [eax]
    ("8f00", 32, "pop", I, IDENT, False),  # pop dword ptr [eax]
    # far transfers
    ("ea001000001000", 32, "ljmp", S, CALLOUT, True),  # ljmp 0x10:0x1000
    ("9a001000001000", 32, "lcall", S, CALLOUT, True),  # lcall 0x10, 0x1000
    ("ff2d00000000", 32, "jmp", S, CALLOUT, True),  # jmp ptr [0]       (FF /5, m16:32)
    ("64ff2d00000000", 32, "jmp", S, CALLOUT, True),  # jmp ptr fs:[0]
    ("66ff2d00000000", 32, "ljmp", S, CALLOUT, True),  # ljmp [0]        (m16:16)
    ("ff2d00000000", 64, "jmp", S, CALLOUT, True),  # jmp ptr [rip]
    ("48ff2d00000000", 64, "ljmp", S, CALLOUT, True),  # ljmp [rip]      (m16:64)
    ("ff1d00000000", 32, "call", S, CALLOUT, True),  # call ptr [0]     (FF /3)
    ("ff1c24", 64, "call", S, CALLOUT, True),  # call ptr [rsp]
    ("48ff1c24", 64, "lcall", S, CALLOUT, True),  # lcall [rsp]
    ("cb", 32, "retf", S, CALLOUT, True),
    ("ca0800", 32, "retf", S, CALLOUT, True),  # retf 8
    ("48cb", 64, "retfq", S, CALLOUT, True),
    # near transfers
    ("ffe0", 64, "jmp", C, BRANCH, False),  # jmp rax
    ("ff2500000000", 32, "jmp", C, BRANCH, False),  # jmp dword ptr [0]
    ("64ff2500000000", 32, "jmp", C, BRANCH, False),  # jmp dword ptr fs:[0]
    ("ff2510000000", 64, "jmp", C, BRANCH, False),  # jmp qword ptr [rip + 0x10]
    ("ff1510000000", 64, "call", C, BRANCH, False),  # call qword ptr [rip + 0x10]
    ("2eff1500000000", 32, "call", C, BRANCH, False),  # call dword ptr cs:[0]
    ("e800000000", 64, "call", C, BRANCH, False),
    ("e9fbffffff", 32, "jmp", C, BRANCH, False),
    ("c3", 32, "ret", C, BRANCH, False),
    ("c20400", 32, "ret", C, BRANCH, False),  # ret 4
    ("f3c3", 64, "repz ret", C, BRANCH, False),
    ("f2c3", 32, "bnd ret", C, BRANCH, False),
    ("f2e900000000", 32, "bnd jmp", C, BRANCH, False),
    ("3effe0", 32, "notrack jmp", C, BRANCH, False),  # notrack jmp eax
    ("3eff2d00000000", 32, "notrack jmp", S, CALLOUT, True),  # notrack jmp ptr ds:[0]
    ("74fe", 32, "je", C, BRANCH, False),
    ("0f85fcffffff", 64, "jne", C, BRANCH, False),
    ("e2fe", 32, "loop", C, BRANCH, False),
    ("e3fe", 32, "jecxz", C, BRANCH, False),
    ("e3fe", 64, "jrcxz", C, BRANCH, False),
    ("67e3fe", 32, "jcxz", C, BRANCH, False),
    # prefixed string and locked instructions
    ("f3a4", 32, "rep movsb", I, IDENT, False),
    ("f3ab", 32, "rep stosd", I, IDENT, False),
    ("f348ab", 64, "rep stosq", I, IDENT, False),
    ("f2ae", 32, "repne scasb", I, IDENT, False),
    ("f3a6", 32, "repe cmpsb", I, IDENT, False),
    ("a5", 32, "movsd", I, IDENT, False),  # string movsd
    ("f20f10c1", 32, "movsd", I, IDENT, False),  # movsd xmm0, xmm1
    ("f0830001", 32, "lock add", I, IDENT, False),
    ("f2f0830001", 32, "xacquire lock add", I, IDENT, False),
    ("f30fb10a", 32, "cmpxchg", I, IDENT, False),
    # port I/O
    ("e460", 32, "in", P, CALLOUT, False),  # in al, 0x60
    ("ec", 32, "in", P, CALLOUT, False),  # in al, dx
    ("e660", 32, "out", P, CALLOUT, False),  # out 0x60, al
    ("ee", 64, "out", P, CALLOUT, False),  # out dx, al
    ("6d", 32, "insd", P, CALLOUT, False),
    ("f36e", 32, "rep outsb", P, CALLOUT, False),
    ("f36d", 64, "rep insd", P, CALLOUT, False),
    # interrupts, returns, system calls
    ("cd80", 32, "int", S, CALLOUT, True),  # int 0x80
    ("cd03", 32, "int", S, CALLOUT, True),  # int 3 (two-byte form)
    ("cc", 32, "int3", S, CALLOUT, False),
    ("ce", 32, "into", S, CALLOUT, False),
    ("f1", 32, "int1", S, CALLOUT, False),
    ("cf", 32, "iretd", S, CALLOUT, False),
    ("48cf", 64, "iretq", S, CALLOUT, False),
    ("0f05", 64, "syscall", S, CALLOUT, False),
    ("0f34", 32, "sysenter", S, CALLOUT, False),
    ("0f07", 64, "sysret", P, CALLOUT, False),
    ("480f07", 64, "sysretq", P, CALLOUT, False),
    ("0f35", 32, "sysexit", P, CALLOUT, False),
    ("0f01f8", 64, "swapgs", P, CALLOUT, False),
    # flags
    ("fa", 32, "cli", P, INLINE, False),
    ("fb", 32, "sti", P, INLINE, False),
    ("9c", 32, "pushfd", S, INLINE, True),
    ("9d", 32, "popfd", S, INLINE, True),
    ("669c", 32, "pushf", S, INLINE, True),
    ("9c", 64, "pushfq", S, INLINE, True),
    ("9d", 64, "popfq", S, INLINE, True),
    # identification, time, MSRs, extended control registers
    ("0fa2", 32, "cpuid", S, CALLOUT, False),
    ("0f31", 32, "rdtsc", S, CALLOUT, False),
    ("0f01f9", 64, "rdtscp", S, CALLOUT, False),
    ("0f33", 32, "rdpmc", S, CALLOUT, False),
    ("0f32", 32, "rdmsr", P, CALLOUT, False),
    ("0f30", 64, "wrmsr", P, CALLOUT, False),
    ("0f01d0", 64, "xgetbv", S, CALLOUT, False),
    ("0f01d1", 64, "xsetbv", P, CALLOUT, False),
    # descriptor tables, task register, machine status word
    ("0f0100", 32, "sgdt", S, CALLOUT, True),
    ("0f0108", 32, "sidt", S, CALLOUT, True),
    ("0f00c0", 32, "sldt", S, CALLOUT, True),
    ("0f01e0", 32, "smsw", S, CALLOUT, True),
    ("0f00c8", 32, "str", S, CALLOUT, True),
    ("0f02c0", 32, "lar", S, CALLOUT, True),
    ("0f03c0", 32, "lsl", S, CALLOUT, True),
    ("0f0020", 32, "verr", S, CALLOUT, True),
    ("0f0028", 32, "verw", S, CALLOUT, True),
    ("0f0110", 32, "lgdt", P, CALLOUT, False),
    ("0f0118", 64, "lidt", P, CALLOUT, False),
    ("0f0018", 32, "ltr", P, CALLOUT, False),
    ("0f01f0", 32, "lmsw", P, CALLOUT, False),
    ("0f06", 32, "clts", P, CALLOUT, False),
    ("0f0138", 32, "invlpg", P, CALLOUT, False),
    ("0f09", 32, "wbinvd", P, CALLOUT, False),
    ("f4", 32, "hlt", P, CALLOUT, False),
    ("0f01c8", 32, "monitor", P, CALLOUT, False),
    ("0f01c9", 32, "mwait", P, CALLOUT, False),
    # segment loads and bases
    ("0fb200", 32, "lss", S, CALLOUT, False),
    ("c500", 32, "lds", S, CALLOUT, False),
    ("f3480faed0", 64, "wrfsbase", S, CALLOUT, False),
    ("f3480faec8", 64, "rdgsbase", S, CALLOUT, False),
    # unsupported system extensions
    ("0f01c1", 32, "vmcall", S, UNSUP, False),
    ("f30fc730", 32, "vmxon", P, UNSUP, False),
    ("0f01d8", 64, "vmrun", P, UNSUP, False),
    ("0f01d9", 64, "vmmcall", S, UNSUP, False),
    ("0f01ca", 64, "clac", P, UNSUP, False),
    ("0faa", 32, "rsm", P, UNSUP, False),
    ("0f37", 64, "getsec", P, UNSUP, False),
    ("0f01d7", 64, "enclu", S, UNSUP, False),
    ("c7f800000000", 32, "xbegin", C, UNSUP, False),
    # ordinary instructions with reviewed reasons
    ("01c8", 32, "add", I, IDENT, False),  # add eax, ecx
    ("0f0b", 32, "ud2", I, IDENT, False),
    ("0fc7f0", 64, "rdrand", I, IDENT, False),
    ("f30f1efa", 64, "endbr64", I, IDENT, False),
    ("f3480f1ec8", 64, "rdsspq", S, IDENT, False),  # allow-listed: NOP without CET
    ("0fae00", 64, "fxsave", I, IDENT, False),
    ("0fae20", 64, "xsave", I, IDENT, False),
    ("d9e8", 32, "fld1", I, IDENT, False),
    ("c5fc58c1", 64, "vaddps", I, IDENT, False),
    ("62f17c4858c1", 64, "vaddps", I, IDENT, False),  # EVEX
    ("c5f8c2c101", 64, "vcmpltps", I, IDENT, False),  # predicate pseudo-op
    ("0fc2c102", 64, "cmpleps", I, IDENT, False),  # capstone gives it cmpsb's id
    ("def9", 32, "fdivp", I, IDENT, False),
    ("dec1", 32, "faddp", I, IDENT, False),  # printed faddp, capstone name fadd
]


def _decode(hexbytes: str, bits: int):
    code = bytes.fromhex(hexbytes)
    insns = list(_DISASM[bits].disasm(code, 0x1000))
    assert len(insns) == 1 and insns[0].size == len(code), f"{hexbytes} decodes as {insns}"
    return insns[0]


@pytest.mark.parametrize(
    "hexbytes,bits,mnemonic,klass,action,robin_irvine",
    DECODED,
    ids=[f"{h}-{b}-{m.replace(' ', '_')}" for h, b, m, *_ in DECODED],
)
def test_classify_decoded(hexbytes, bits, mnemonic, klass, action, robin_irvine):
    insn = _decode(hexbytes, bits)
    assert insn.mnemonic == mnemonic, f"capstone printed {insn.mnemonic} {insn.op_str}"
    rule = classify(insn.mnemonic, insn.op_str)
    assert (rule.klass, rule.action, rule.robin_irvine) == (klass, action, robin_irvine), (
        f"{insn.mnemonic} {insn.op_str}: {rule}"
    )
    # disasm_lite gives the same text
    (_, _, lite_mnemonic, lite_op_str) = next(
        _DISASM[bits].disasm_lite(bytes.fromhex(hexbytes), 0x1000)
    )
    assert classify(lite_mnemonic, lite_op_str) is rule


def test_far_indirect_operands_print_without_a_size():
    """The far-form test in classify() relies on this capstone behaviour."""
    assert _decode("ff2d00000000", 32).op_str == "ptr [0]"
    assert _decode("ff1c24", 64).op_str == "ptr [rsp]"
    assert _decode("ff2500000000", 32).op_str == "dword ptr [0]"
    assert _decode("ff2500000000", 64).op_str == "qword ptr [rip]"


def test_prefixed_mnemonics_resolve_to_the_base_rule():
    for name, rule in RULES.items():
        if name in OPERAND_DEPENDENT:
            continue
        assert classify(name, "") is rule
        for prefix in ("rep", "lock", "xacquire lock", "bnd", "notrack"):
            assert classify(f"{prefix} {name}", "") is rule
    assert classify("rep", "") is RULES["rep"]  # a bare prefix is its own name
    assert classify("bnd notrack jmp", "eax") is RULES["jmp"]
    assert classify("bnd notrack jmp", "ptr [eax]") is RULES["ljmp"]
    assert classify("REP MOVSB", "") is RULES["movsb"]
    assert "lock" in PREFIXES and "notrack" in PREFIXES


def test_unknown_names():
    for rule in (rule_for_name("frobnicate"), classify("frobnicate", "eax"), classify("rep", "x")):
        if rule is RULES["rep"]:
            continue
        assert rule is UNKNOWN_RULE
    assert UNKNOWN_RULE.klass is P and UNKNOWN_RULE.action is UNSUP
    assert UNKNOWN_RULE.reason == "not in the ISA table"
    assert classify("lock frobnicate", "") is UNKNOWN_RULE
    assert rule_for_name("mov") is RULES["mov"]


def test_aliases_point_at_real_names():
    for alias, name in MNEMONIC_ALIASES.items():
        assert alias not in RULES and name in RULES
        assert classify(alias, "xmm0, xmm1") is RULES[name]


# Compare-predicate immediates are printed as part of the mnemonic.
_PREDICATE_FORMS = [
    bytes([0x0F, 0xC2, 0xC1]),  # cmpps
    bytes([0x66, 0x0F, 0xC2, 0xC1]),  # cmppd
    bytes([0xF3, 0x0F, 0xC2, 0xC1]),  # cmpss
    bytes([0xF2, 0x0F, 0xC2, 0xC1]),  # cmpsd
    bytes([0xC5, 0xF8, 0xC2, 0xC1]),  # vcmpps
    bytes([0xC5, 0xF9, 0xC2, 0xC1]),  # vcmppd
    bytes([0xC5, 0xFA, 0xC2, 0xC1]),  # vcmpss
    bytes([0xC5, 0xFB, 0xC2, 0xC1]),  # vcmpsd
    bytes([0x62, 0xF1, 0x7C, 0x48, 0xC2, 0xC1]),  # vcmpps k, zmm
    bytes([0x62, 0xF3, 0x7D, 0x48, 0x3F, 0xC1]),  # vpcmpb
    bytes([0x62, 0xF3, 0x7D, 0x48, 0x3E, 0xC1]),  # vpcmpub
    bytes([0x62, 0xF3, 0x7D, 0x48, 0x1F, 0xC1]),  # vpcmpd
    bytes([0x62, 0xF3, 0xFD, 0x48, 0x1E, 0xC1]),  # vpcmpuq
    bytes([0x8F, 0xE8, 0x78, 0xCC, 0xC1]),  # vpcomb
    bytes([0x8F, 0xE8, 0x78, 0xEC, 0xC1]),  # vpcomub
    bytes([0x66, 0x0F, 0x3A, 0x44, 0xC1]),  # pclmulqdq
]


def test_compare_predicate_pseudo_ops_are_innocuous():
    md = _DISASM[64]
    seen = set()
    for prefix in _PREDICATE_FORMS:
        for imm in range(32):
            for _, _, mnemonic, op_str in md.disasm_lite(prefix + bytes([imm]), 0):
                seen.add(mnemonic)
                rule = classify(mnemonic, op_str)
                assert (rule.klass, rule.action) == (I, IDENT), (mnemonic, op_str, rule)
    assert {"cmpltps", "vcmpneq_oqpd", "vpcmpnltub", "vpcomgeb"} <= seen


def _corpus():
    """A broad, deterministic sweep of encodings (about half a million decodes)."""
    tail = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x08])
    modrms = list(range(0, 256, 11)) + [0x04, 0x05, 0xC0, 0xC8, 0xD0, 0xD8, 0xE0, 0xE8, 0xF0, 0xF8]
    for bits in (32, 64):
        prefixes = [b"", b"\x66", b"\xf2", b"\xf3", b"\xf0"] + ([b"\x48"] if bits == 64 else [])
        for prefix in prefixes:
            for opmap in (b"", b"\x0f", b"\x0f\x38", b"\x0f\x3a"):
                for op in range(256):
                    for modrm in modrms:
                        yield bits, prefix + opmap + bytes([op, modrm]) + tail
        for opcode in [bytes([x]) for x in range(0xD8, 0xE0)] + [b"\x0f\x01", b"\x0f\x00"]:
            for prefix in (b"", b"\x66", b"\xf3", b"\xf2"):
                for modrm in range(256):
                    yield bits, prefix + opcode + bytes([modrm]) + tail
        for imm in range(256):
            yield bits, b"\x0f\x0f\xc1" + bytes([imm])  # 3DNow!
    vex_modrms = (0x00, 0x04, 0xC1, 0xC9, 0xD1, 0xD9, 0xE1, 0xF1)
    for mmmmm in (1, 2, 3):
        for w in (0, 1):
            for vl in (0, 1):
                for pp in range(4):
                    b2 = (w << 7) | 0x78 | (vl << 2) | pp
                    for op in range(256):
                        for modrm in vex_modrms:
                            yield 64, bytes([0xC4, 0xE0 | mmmmm, b2, op, modrm]) + tail
    for mmmmm in (8, 9, 10):
        for w in (0, 1):
            for op in range(256):
                for modrm in (0x00, 0xC1):
                    yield 64, bytes([0x8F, 0xE0 | mmmmm, (w << 7) | 0x78, op, modrm]) + tail
    for mm in (1, 2, 3):
        for w in (0, 1):
            for pp in range(4):
                for ll in range(3):
                    p1 = (w << 7) | 0x7C | pp
                    for op in range(256):
                        for modrm in (0x04, 0xC1, 0xC9, 0xE9):
                            for aaa in (0, 1):
                                p2 = (ll << 5) | 0x08 | aaa
                                yield 64, bytes([0x62, 0xF0 | mm, p1, p2, op, modrm]) + tail


def test_every_printed_mnemonic_in_a_broad_sweep_has_a_rule():
    unknown: dict[str, str] = {}
    names_reached = set()
    for bits, code in _corpus():
        for _, _, mnemonic, op_str in _DISASM[bits].disasm_lite(code, 0, 1):
            rule = classify(mnemonic, op_str)
            if rule is UNKNOWN_RULE:
                unknown.setdefault(mnemonic, code.hex())
            names_reached.add(mnemonic)
    assert not unknown, f"printed mnemonics without a rule: {unknown}"
    assert len(names_reached) > 1300  # the sweep really reaches most of the ISA


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from([16, 32, 64]), st.binary(min_size=1, max_size=15))
def test_random_bytes_never_reach_an_unknown_mnemonic(bits, code):
    for _, _, mnemonic, op_str in _DISASM[bits].disasm_lite(code, 0):
        assert classify(mnemonic, op_str) is not UNKNOWN_RULE, (mnemonic, op_str, code.hex())


# --------------------------------------------------------------------------------------
# 4. Robin & Irvine
# --------------------------------------------------------------------------------------

# The sensitive, unprivileged instructions of Robin & Irvine (2000), and the
# capstone names that carry them.
ROBIN_IRVINE_PAPER = {
    "SGDT": {"sgdt"},
    "SIDT": {"sidt"},
    "SLDT": {"sldt"},
    "SMSW": {"smsw"},
    "PUSHF": {"pushf", "pushfd", "pushfq"},
    "POPF": {"popf", "popfd", "popfq"},
    "LAR": {"lar"},
    "LSL": {"lsl"},
    "VERR": {"verr"},
    "VERW": {"verw"},
    "POP (segment register)": {"pop"},
    "PUSH (segment register)": {"push"},
    "CALL (far)": {"lcall", "call"},  # call: far indirect form printed as "call ptr [..]"
    "JMP (far)": {"ljmp", "jmp"},  # likewise
    "INT n": {"int"},
    "RET (far)": {"retf", "retfq"},
    "STR": {"str"},
    "MOV (segment register)": {"mov"},
}


def test_robin_irvine_set_is_the_papers():
    expected = set().union(*ROBIN_IRVINE_PAPER.values())
    assert ROBIN_IRVINE == expected


def test_robin_irvine_flags_only_the_sensitive_forms():
    for name in ROBIN_IRVINE & OPERAND_DEPENDENT.keys():
        assert not RULES[name].robin_irvine, f"ordinary {name} must not be flagged"
    for label, rule in _all_rules():
        if rule.robin_irvine:
            assert rule.klass is S, label
            assert rule.action is not IDENT, label
            assert "Robin & Irvine 2000" in rule.ref, label


# --------------------------------------------------------------------------------------
# 5. reasons, references, actions
# --------------------------------------------------------------------------------------


def test_every_rule_has_a_reason_and_a_reference():
    for label, rule in _all_rules():
        assert rule.reason.strip() and rule.ref.strip(), label
        assert "\n" not in rule.reason and "\n" not in rule.ref, label
    for group in GROUPS:
        assert group.title.strip() and group.names, group.key


def test_sensitive_rules_are_not_copied_unless_allow_listed():
    copied = {
        label
        for label, rule in _all_rules()
        if rule.klass in (P, S) and rule.action is IDENT
    }
    assert copied == set(IDENT_ALLOWED)
    assert all(reason.strip() for reason in IDENT_ALLOWED.values())


def test_control_transfers_and_actions_agree():
    for label, rule in _all_rules():
        if rule.action is BRANCH:
            assert rule.klass is C, label
        if rule.action is INLINE:
            assert rule.sensitive, label
    assert all(RULES[name].action is BRANCH for name in ("jmp", "call", "ret"))


def test_operand_dependent_names_are_documented():
    assert OPERAND_DEPENDENT.keys() == OPERAND_RULES.keys() == {"mov", "push", "pop", "jmp", "call"}
    for name, how in OPERAND_DEPENDENT.items():
        assert how.strip()
        assert RULES[name] not in OPERAND_RULES[name]
        assert all(rule.sensitive for rule in OPERAND_RULES[name])
    assert OPERAND_RULES["jmp"] == (RULES["ljmp"],) and OPERAND_RULES["call"] == (RULES["lcall"],)


UNSUPPORTED_EXPECTED = {
    # VMX
    "vmxon", "vmxoff", "vmcall", "vmlaunch", "vmresume", "vmptrld", "vmptrst", "vmclear",
    "vmread", "vmwrite", "invept", "invvpid", "vmfunc",
    # SVM
    "vmrun", "vmload", "vmsave", "vmmcall", "stgi", "clgi", "skinit", "invlpga",
    # SGX, SMX, PCONFIG, SMM
    "encls", "enclu", "enclv", "getsec", "pconfig", "rsm",
    # supervisor or host-bound features the virtual CPU does not report
    "clac", "stac", "xsaves", "xsaves64", "xrstors", "xrstors64", "wbnoinvd", "rdpid",
    "rdpkru", "wrpkru", "ptwrite", "umonitor", "umwait", "tpause", "monitorx", "mwaitx",
    "llwpcb", "slwpcb", "lwpins", "lwpval",
    # CET shadow stacks
    "incsspd", "incsspq", "rstorssp", "saveprevssp", "wrssd", "wrssq", "setssbsy", "clrssbsy",
    "wrussd", "wrussq",
    # TSX
    "xbegin",
}  # fmt: skip


def test_unsupported_set_is_the_reviewed_one():
    unsupported = {name for name, rule in RULES.items() if rule.action is UNSUP}
    assert unsupported == UNSUPPORTED_EXPECTED


def test_callout_set_covers_the_emulated_instructions():
    callouts = {name for name, rule in RULES.items() if rule.action is CALLOUT}
    must = set(
        "in out insb insw insd outsb outsw outsd hlt cpuid rdtsc rdtscp rdpmc rdmsr wrmsr lgdt"
        " lidt lldt ltr lmsw clts invlpg invd wbinvd invpcid sgdt sidt sldt smsw str lar lsl verr"
        " verw ljmp lcall retf retfq int int3 into int1 iret iretd iretq syscall sysenter sysexit"
        " sysret swapgs xsetbv xgetbv monitor mwait wrfsbase wrgsbase rdfsbase rdgsbase lfs lgs"
        " lss lds les".split()
    )
    assert must <= callouts, must - callouts
