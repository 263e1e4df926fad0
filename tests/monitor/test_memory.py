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
