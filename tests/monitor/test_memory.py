"""The monitor's TLB (dbt/monitor/memory.py): how often it asks unicorn to grow.

Counts, never times: a TLB that does not grow shows up as fills, one Python call each.
"""

from __future__ import annotations

import pytest

from dbt.engines import run_guest
from dbt.loader import Arch, Image, Segment
from dbt.monitor.monitor import RunConfig
from dbt.translator.assembler import assemble

BASE = 0x100000
PAGES = 3000  # more than a flush's worth of fills at the old fixed threshold (2048)
SWEEPS = 40


def page_sweeps() -> Image:
    """Store one byte in each of PAGES pages, SWEEPS times over (a sieve's outer loop
    over a 12 MB array, with a stride of a page)."""
    src = f"""
        mov edx, {SWEEPS}
    sweep:
        mov eax, 0x200000
        mov ecx, {PAGES}
    page:
        mov byte ptr [eax], dl
        add eax, 0x1000
        dec ecx
        jnz page
        dec edx
        jnz sweep
        cli
        hlt
    """
    code = assemble(src, BASE, 32)
    return Image("<pages>", "raw", Arch.X86_32, BASE, (Segment(BASE, code, len(code)),))


@pytest.mark.parametrize("engine,clock", [("hw", "free"), ("bt", "free"), ("bt", "exact")])
def test_tlb_grows_to_a_working_set_larger_than_a_flush_interval(engine, clock):
    """A working set larger than the fills allowed between two resize flushes used to
    thrash: the refill after each flush reached the threshold and asked for the next
    flush, so the TLB never kept the working set (one fill per store, 120,000 here).
    The threshold now doubles with each flush, as unicorn's TLB does: a handful of
    flushes, then the sweeps run from the TLB."""
    r = run_guest(page_sweeps(), engine, RunConfig(clock=clock, max_insns=10**8),
                  ram_size=16 << 20)
    assert r.reason.value == "halt"
    stats = r.stats
    assert stats["tlb_resize_flushes"] <= 6, stats
    assert stats["tlb_fills"] < 5 * PAGES, stats  # before: about SWEEPS * PAGES



def test_unicorn_runs_a_read_modify_write_again_after_a_stop_noticed_at_its_store():
    """A fact about unicorn 2.1.4 that dbt's free clock lives with (README, known gaps):
    it looks for a stop request after every memory access and reports the pc of the
    instruction that made it. After the store of a read-modify-write instruction that
    instruction has run, so resuming at the reported pc runs it again: here ``inc``
    counts twice. Should unicorn change, this test fails and the known gap can go."""
    from unicorn import UC_ARCH_X86, UC_MODE_32, UC_PROT_ALL, UC_PROT_READ, UC_PROT_WRITE, Uc
    from unicorn import unicorn_const as C
    from unicorn.x86_const import UC_X86_REG_EIP

    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0x1000, 0x2000)
    uc.mem_write(0x1000, assemble("inc dword ptr [0x2000]\nhlt", 0x1000, 32))
    uc.ctl_set_tlb_mode(C.UC_TLB_VIRTUAL)

    def fill(uc, vaddr, access, entry, _ud):
        entry.paddr = vaddr
        entry.perms = UC_PROT_ALL if vaddr != 0x2000 else UC_PROT_READ  # (a clean page)
        if vaddr == 0x2000 and access == C.UC_MEM_WRITE:  # the store: stop
            entry.perms = UC_PROT_READ | UC_PROT_WRITE
            uc.emu_stop()
        return True

    uc.hook_add(C.UC_HOOK_TLB_FILL, fill)
    uc.emu_start(0x1000, 0)
    assert uc.reg_read(UC_X86_REG_EIP) == 0x1000  # reported as not run yet
    assert int.from_bytes(uc.mem_read(0x2000, 4), "little") == 1  # but its store is done
    uc.emu_start(0x1000, 0)
    assert int.from_bytes(uc.mem_read(0x2000, 4), "little") == 2
