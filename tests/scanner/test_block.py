"""The scanner's stop rules (dbt/scanner/block.py), in the order its docstring lists them,
and the decode cache.

Blocks are scanned from byte strings through a dict-backed fetch function, so each
rule is checked in isolation from the loader and the engines.
"""

from __future__ import annotations

import pytest

from dbt.scanner import MAX_BLOCK_INSNS, Decoder, StopReason, scan_block
from dbt.scanner.block import PAGE_SIZE

BASE = 0x100000


class Memory:
    """Guest memory as a dict of byte strings; a fetch outside them returns b""."""

    def __init__(self, *regions: tuple[int, bytes]):
        self.regions = dict(regions)

    def __setitem__(self, addr: int, data: bytes) -> None:
        for start, buf in self.regions.items():
            if start <= addr and addr + len(data) <= start + len(buf):
                off = addr - start
                self.regions[start] = buf[:off] + data + buf[off + len(data):]
                return
        raise KeyError(hex(addr))

    def fetch(self, addr: int, n: int) -> bytes:
        for start, buf in self.regions.items():
            if start <= addr < start + len(buf):
                return buf[addr - start:addr - start + n]
        return b""


def scan(code: bytes, bits: int = 32, at: int = BASE, pc: int | None = None, **kw):
    mem = Memory((at, code))
    return scan_block(Decoder(bits), mem.fetch, at if pc is None else pc, **kw)


NOP, HLT = b"\x90", b"\xf4"


# --- rule 1: fetch fault ------------------------------------------------------------------

def test_fetch_fault_at_the_start_is_an_empty_block_with_pf():
    """A jump into unmapped memory must become a #PF at that address, not an empty block
    that an engine would run as a no-op (and loop on)."""
    b = scan_block(Decoder(32), Memory((BASE, NOP * 16)).fetch, 0x7000000)
    assert (b.stop, b.fault, b.insns, b.end) == (StopReason.FETCH_FAULT, "#PF", [], 0x7000000)


def test_fetch_fault_later_ends_the_block_before_it_without_a_fault():
    """Code running off the end of mapped memory: the instructions before the hole run;
    the fault belongs to the next block (it is raised only if execution gets there)."""
    b = scan(NOP * 3)
    assert b.stop is StopReason.FETCH_FAULT and b.fault is None
    assert [i.address for i in b.insns] == [BASE, BASE + 1, BASE + 2]
    assert b.end == BASE + 3


def test_instruction_running_into_unmapped_memory_is_a_fetch_fault():
    """mov eax, imm32 with only 3 of its 5 bytes mapped: the CPU faults fetching the rest,
    so this is #PF, not #UD."""
    b = scan(b"\xb8\x01\x02")
    assert (b.stop, b.fault, b.insns) == (StopReason.FETCH_FAULT, "#PF", [])


# --- rule 2: undecodable bytes ------------------------------------------------------------

@pytest.mark.parametrize("bad", [b"\xff\xff", b"\x0f\x04", b"\xfe\x38"], ids=lambda b: b.hex())
def test_undecodable_at_the_start_is_an_empty_block_with_ud(bad):
    """Bytes capstone cannot decode must become a #UD at their address; an engine that ran
    an empty block instead would loop at the same pc forever."""
    b = scan(bad + NOP * 16)
    assert (b.stop, b.fault, b.insns, b.end) == (StopReason.UNDECODABLE, "#UD", [], BASE)


def test_undecodable_after_some_instructions_ends_the_block_before_them():
    """The good instructions before bad bytes must still run (and be counted); the #UD is
    raised only when execution reaches the bad bytes, as the CPU would."""
    b = scan(NOP * 2 + b"\xb0\x41" + b"\xff\xff" + NOP * 16)
    assert b.stop is StopReason.UNDECODABLE and b.fault is None
    assert [i.name for i in b.insns] == ["nop", "nop", "mov"]
    assert b.end == BASE + 4


def test_64bit_only_invalid_opcode_is_undecodable_in_long_mode():
    """0x06 (push es) exists in 32-bit mode and is #UD in 64-bit mode."""
    assert scan(b"\x06" + NOP * 16, bits=32).insns[0].name == "push"
    b = scan(b"\x06" + NOP * 16, bits=64)
    assert (b.stop, b.fault) == (StopReason.UNDECODABLE, "#UD")


# --- rule 3: page end ---------------------------------------------------------------------

def test_block_ends_where_the_next_instruction_would_start_on_another_page():
    """A block confined to one page lets a write to a code page invalidate only the
    blocks on it; the instruction at the next page starts a new block."""
    page2 = BASE + PAGE_SIZE
    start = page2 - 4
    mem = Memory((start, NOP * 4 + b"\xb8\x01\x00\x00\x00" + HLT))
    d = Decoder(32)
    b = scan_block(d, mem.fetch, start)
    assert b.stop is StopReason.PAGE_END and b.fault is None
    assert len(b.insns) == 4 and b.end == page2
    nxt = scan_block(d, mem.fetch, b.end)
    assert nxt.pc == page2 and [i.name for i in nxt.insns] == ["mov", "hlt"]


def test_instruction_straddling_the_page_boundary_ends_its_block():
    """The straddling instruction belongs to the block that starts on the first page; the
    block must end right after it (it touches two pages, and nothing more may follow)."""
    page2 = BASE + PAGE_SIZE
    start = page2 - 3
    mem = Memory((start, NOP + b"\xb8\x01\x00\x00\x00" + NOP * 8))  # mov spans the boundary
    b = scan_block(Decoder(32), mem.fetch, start)
    assert b.stop is StopReason.PAGE_END
    assert [i.name for i in b.insns] == ["nop", "mov"]
    assert b.end == page2 + 3


def test_branch_on_the_page_boundary_is_still_a_control_stop():
    """A jmp that straddles the page end is both rule 3 and rule 4; the block must report
    CONTROL, or static exploration would not follow its target (explore() follows direct
    targets only for CONTROL stops). (The docstring's numbering suggests page end first.)"""
    page2 = BASE + PAGE_SIZE
    start = page2 - 2
    mem = Memory((start, NOP + b"\xe9\x00\x00\x00\x00" + NOP * 8))
    b = scan_block(Decoder(32), mem.fetch, start)
    assert [i.name for i in b.insns] == ["nop", "jmp"]
    assert b.stop is StopReason.CONTROL


# --- rule 4: control transfer -------------------------------------------------------------

@pytest.mark.parametrize("bits,branch,name", [
    (32, b"\xeb\xfe", "jmp"),                      # jmp short .
    (32, b"\x75\x10", "jne"),
    (32, b"\x0f\x84\x00\x01\x00\x00", "je"),
    (32, b"\xe8\x00\x00\x00\x00", "call"),
    (32, b"\xc3", "ret"),
    (32, b"\xc2\x08\x00", "ret"),
    (32, b"\xff\xe0", "jmp"),                      # jmp eax
    (32, b"\xff\x50\x04", "call"),                 # call [eax + 4]
    (32, b"\xe2\xfe", "loop"),
    (32, b"\xe3\x02", "jecxz"),
    (64, b"\xff\x15\x10\x00\x00\x00", "call"),     # call [rip + 0x10]
    (64, b"\x41\xff\xe3", "jmp"),                  # jmp r11
], ids=lambda v: v.hex() if isinstance(v, bytes) else str(v))
def test_control_transfer_is_the_last_instruction(bits, branch, name):
    """The branch is included and nothing after it: instructions after a taken branch
    must never run."""
    b = scan(NOP * 2 + branch + b"\xb8\x01\x00\x00\x00" * 4, bits=bits)
    assert b.stop is StopReason.CONTROL and b.fault is None
    assert [i.name for i in b.insns] == ["nop", "nop", name]
    assert b.end == BASE + 2 + len(branch)


# --- rule 5: block-ending sensitive instructions ------------------------------------------

@pytest.mark.parametrize("insn,name", [
    (b"\xf4", "hlt"),
    (b"\x0f\x22\xc0", "mov"),      # mov cr0, eax: mode/paging change
    (b"\x0f\x22\xd8", "mov"),      # mov cr3, eax: address space change
    (b"\x9d", "popfd"),            # may set IF: opens an interrupt window
    (b"\xfb", "sti"),
    (b"\xcd\x80", "int"),          # int 0x80: control through the monitor
    (b"\xcc", "int3"),
    (b"\x0f\x01\x10", "lgdt"),
    (b"\x0f\x0b", "ud2"),
], ids=lambda v: v.hex() if isinstance(v, bytes) else str(v))
def test_block_ending_callout_ends_the_block(insn, name):
    """After these the translation context (pc, IF, mode, address space) may have changed,
    so the next instruction must be looked up afresh."""
    b = scan(b"\x40" + insn + b"\x43" * 8)  # inc eax; insn; inc ebx...
    assert b.stop is StopReason.SENSITIVE and b.fault is None
    assert [i.name for i in b.insns] == ["inc", name]


@pytest.mark.parametrize("insn,name", [
    (b"\xee", "out"),              # out dx, al
    (b"\xe6\x80", "out"),          # out 0x80, al
    (b"\xec", "in"),               # in al, dx
    (b"\x0f\xa2", "cpuid"),
    (b"\xfa", "cli"),              # closes the window: nothing to re-check
    (b"\x9c", "pushfd"),
    (b"\x0f\x31", "rdtsc"),
], ids=lambda v: v.hex() if isinstance(v, bytes) else str(v))
def test_non_ending_sensitive_instruction_does_not_end_the_block(insn, name):
    """Port I/O and CPUID are callouts that return to the next instruction: ending the
    block after each would split every serial-output loop for nothing."""
    b = scan(b"\x40" + insn + b"\x43" + b"\xc3")
    assert b.stop is StopReason.CONTROL
    assert [i.name for i in b.insns] == ["inc", name, "inc", "ret"]


def test_unsupported_instruction_ends_the_block():
    """An instruction the monitor cannot emulate (vmcall) raises #UD in the guest: nothing
    after it may run in the same block."""
    b = scan(b"\x40\x0f\x01\xc1\x43\xc3")
    assert [i.name for i in b.insns] == ["inc", "vmcall"]
    assert b.stop is StopReason.SENSITIVE


# --- rule 6: size cap ---------------------------------------------------------------------

def test_size_cap():
    """A long straight run is cut at MAX_BLOCK_INSNS, so one block's count fits the
    budget arithmetic and a translation stays bounded."""
    b = scan(b"\x40" * (MAX_BLOCK_INSNS + 20))
    assert b.stop is StopReason.SIZE_CAP
    assert len(b.insns) == MAX_BLOCK_INSNS
    assert b.end == BASE + MAX_BLOCK_INSNS


def test_size_cap_can_be_lowered():
    """Budget tails scan with a smaller cap (max_insns) to stop exactly at the budget."""
    b = scan(b"\x40" * 10 + HLT, max_insns=3)
    assert (b.stop, len(b.insns)) == (StopReason.SIZE_CAP, 3)


def test_block_of_exactly_the_cap_ending_in_a_branch_is_control():
    """When the cap and a branch coincide the stop is CONTROL, so the branch's target is
    still followed."""
    b = scan(b"\x40" * (MAX_BLOCK_INSNS - 1) + b"\xc3" + NOP * 4)
    assert (b.stop, len(b.insns)) == (StopReason.CONTROL, MAX_BLOCK_INSNS)


def test_page_end_wins_over_size_cap():
    """When the cap and the page end coincide, the block still ends at the page end."""
    page2 = BASE + PAGE_SIZE
    start = page2 - MAX_BLOCK_INSNS
    b = scan(b"\x40" * (MAX_BLOCK_INSNS + 8), at=start)
    assert len(b.insns) == MAX_BLOCK_INSNS and b.end == page2
    assert b.stop is StopReason.PAGE_END


# --- the decode cache ---------------------------------------------------------------------

def test_decode_cache_never_serves_a_stale_instruction():
    """Self-modifying code: after the bytes at an address change, decoding that address
    must give the new instruction, not the one cached for the old bytes."""
    d = Decoder(32)
    old = d.decode(BASE, b"\xb0\x6f" + NOP * 13)
    assert (old.mnemonic, old.op_str) == ("mov", "al, 0x6f")
    new = d.decode(BASE, b"\xb0\x6e" + NOP * 13)
    assert (new.mnemonic, new.op_str) == ("mov", "al, 0x6e")
    again = d.decode(BASE, b"\xb0\x6f" + NOP * 13)
    assert again.op_str == "al, 0x6f"


def test_decode_cache_with_detail_is_not_stale_either():
    """The handlers decode with detail (operands): that cache must not be stale either,
    or a rewritten immediate would be emulated with its old value."""
    d = Decoder(32)
    assert d.decode(BASE, b"\x83\xc0\x01" + NOP * 12, detail=True).operands[1].imm == 1
    assert d.decode(BASE, b"\x83\xc0\x03" + NOP * 12, detail=True).operands[1].imm == 3


def test_rescanning_after_a_rewrite_sees_the_new_code():
    """A block scanned again after the guest rewrote it (same address, same decoder)
    must contain the new instructions: add eax, 1 -> add eax, 3, and a nop -> hlt."""
    d = Decoder(32)
    mem = Memory((BASE, b"\x83\xc0\x01" + NOP + b"\xc3" + NOP * 16))
    first = scan_block(d, mem.fetch, BASE)
    assert [i.op_str for i in first.insns][:1] == ["eax, 1"]
    assert first.stop is StopReason.CONTROL
    mem[BASE + 2] = b"\x03"
    mem[BASE + 3] = HLT
    second = scan_block(d, mem.fetch, BASE)
    assert second.insns[0].op_str == "eax, 3"
    assert [i.name for i in second.insns] == ["add", "hlt"]
    assert second.stop is StopReason.SENSITIVE


def test_decode_of_identical_bytes_at_another_address_is_relocated():
    """The cache key includes the address: a jmp rel8 at two addresses has two targets."""
    d = Decoder(32)
    assert d.decode(0x1000, b"\xeb\x00" + NOP * 13).op_str == "0x1002"
    assert d.decode(0x2000, b"\xeb\x00" + NOP * 13).op_str == "0x2002"


def test_block_json_names_its_stop_and_fault():
    """``dbt scan --json`` shows why a block ended and how it faults."""
    b = scan(b"\xff\xff" + NOP * 16)
    j = b.as_json()
    assert (j["address"], j["stop"], j["fault"], j["instructions"]) == (
        BASE, "undecodable", "#UD", [])
