"""The oracle: every guest under every engine gives the same guest-visible result.

Compared: serial output, reason, exit code, instruction count, final registers,
system state (control registers, descriptor tables, selectors) and guest memory,
as far as both engines report them (``dbt.engines.reports``: ``qemu`` counts no
instructions, and has registers and memory only when it is still running at the
end). Each guest's expected output and ending are checked too, so the engines
cannot agree on a wrong answer. New engines join by registering in ``dbt.engines``;
an engine that cannot run here (``qemu`` without QEMU) is skipped with its reason.
"""

from __future__ import annotations

import pytest

from dbt.engines import HIGH_MEMORY, engine_names, reports, run_guest, unavailable
from dbt.loader import load
from dbt.monitor.exits import Reason, RunResult
from dbt.monitor.monitor import RunConfig
from guests import Guest, all_guests, guest_file

GUESTS = all_guests()


def first_difference(a: bytes, b: bytes, base: int = 0) -> str:
    for i in range(0, min(len(a), len(b)), 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            j = next(k for k in range(i, i + 4096) if a[k] != b[k])
            return f"first differing byte at {base + j:#x}: {a[j]:#04x} vs {b[j]:#04x}"
    return "lengths differ"


@pytest.fixture(scope="module")
def results_cache():
    return {}


def run_all(guest: Guest, tmp_path_factory, cache) -> dict:
    if guest.name not in cache:
        path = guest_file(guest, tmp_path_factory.mktemp("guest"))
        image = load(str(path))
        config = RunConfig(max_insns=50_000_000, keep_ram=True, validate=True)
        cache[guest.name] = {e: run_guest(image, e, config) for e in engine_names()
                             if unavailable(e) is None}
    return cache[guest.name]


def run_variant(guest: Guest, tmp_path_factory, engine: str, **config) -> RunResult:
    """One more run of a guest, under a configuration of its own (as run_all's: 50M
    instructions, RAM kept)."""
    image = load(str(guest_file(guest, tmp_path_factory.mktemp("guest"))))
    return run_guest(image, engine, RunConfig(max_insns=50_000_000, keep_ram=True, **config))


def assert_same_end(r: RunResult, ref: RunResult) -> None:
    """Same output, ending and exit code."""
    assert (r.serial, r.reason, r.exit_code) == (ref.serial, ref.reason, ref.exit_code)


def assert_same_state(r: RunResult, ref: RunResult) -> None:
    """Same final registers, system state and memory."""
    assert r.registers == ref.registers
    assert r.system == ref.system
    assert r.memory_sha256 == ref.memory_sha256, first_difference(r.ram, ref.ram)


@pytest.mark.parametrize("guest", GUESTS, ids=str)
def test_guest_does_what_it_should(guest: Guest, tmp_path_factory, results_cache):
    r = run_all(guest, tmp_path_factory, results_cache)["interp"]
    assert r.reason.value == guest.reason, r.fault and r.fault.describe()
    if guest.exit_code is not None:
        assert r.exit_code == guest.exit_code, r.serial
    if guest.serial is not None:
        assert r.serial == guest.serial


@pytest.mark.parametrize("guest", GUESTS, ids=str)
@pytest.mark.parametrize("engine", [e for e in engine_names() if e != "interp"])
def test_engine_agrees_with_interp(guest: Guest, engine: str, tmp_path_factory, results_cache,
                                   request):
    if why := unavailable(engine):
        pytest.skip(why)
    if engine == "qemu" and guest.qemu:  # a real difference between QEMU's PC and dbt's contract
        # (a timing-dependent guest may pass on QEMU's real-time clock: not strict)
        request.applymarker(pytest.mark.xfail(reason=guest.qemu,
                                              strict=not guest.qemu.startswith("timing")))
    results = run_all(guest, tmp_path_factory, results_cache)
    ref, r = results["interp"], results[engine]
    both = reports(engine) & reports("interp")
    assert r.serial == ref.serial
    expected = (ref.reason, ref.exit_code)
    if engine == "qemu" and ref.reason is Reason.FAULT:
        # dbt ends the run at an exception the guest does not handle; a PC goes on
        # trying to deliver it and shuts down (a triple fault)
        expected = (Reason.TRIPLE_FAULT, None)
    assert (r.reason, r.exit_code) == expected
    if "fault" in both:
        assert r.fault == ref.fault
    if "guest_instructions" in both:
        skew = dict(guest.count_skew).get(engine, 0)  # a documented counting artefact
        assert r.guest_instructions == ref.guest_instructions + skew
    if "registers" in both and r.registers:
        assert r.registers == ref.registers
    if "system" in both:
        assert r.system == ref.system
    if "memory" in both:
        assert r.memory_sha256 == ref.memory_sha256, first_difference(r.ram, ref.ram)
    elif "high_memory" in both and r.ram is not None:
        high, ref_high = r.ram[HIGH_MEMORY:], ref.ram[HIGH_MEMORY:]
        assert high == ref_high, first_difference(high, ref_high, HIGH_MEMORY)


PAGING_GUESTS = [g for g in GUESTS if g.mmu]


@pytest.mark.parametrize("guest", PAGING_GUESTS, ids=str)
@pytest.mark.parametrize("variant", ["interp/shadow", "hw/shadow", "hw/nested/default-memory"])
def test_mmu_modes_agree(guest: Guest, variant: str, tmp_path_factory, results_cache):
    """Guests that turn paging on give the same result under shadow and nested paging
    (the default runs are interp and hw nested, bt shadow) and on unicorn's own mapping."""
    ref = run_all(guest, tmp_path_factory, results_cache)["interp"]
    engine, mmu, *rest = variant.split("/")
    r = run_variant(guest, tmp_path_factory, engine, mmu=mmu,
                    memory="default" if rest else "fast")
    assert_same_end(r, ref)
    assert r.fault == ref.fault
    assert r.guest_instructions == ref.guest_instructions
    assert_same_state(r, ref)
    if mmu == "shadow" and r.reason is Reason.EXIT:
        assert r.stats["shadow_fills"] > 0  # the monitor really walked the guest tables


@pytest.mark.parametrize("guest", [g for g in GUESTS if not g.exact_clock], ids=str)
def test_bt_free_clock_agrees(guest: Guest, tmp_path_factory, results_cache):
    """bt in the free clock (no counting prologues; a direct branch may enter a trace at
    any block it linked, not only at a segment; timer interrupts follow the host clock)
    ends as interp does. Registers and memory are compared too, except for guests whose
    state depends on when ticks arrive (``timed:`` in their header says how)."""
    ref = run_all(guest, tmp_path_factory, results_cache)["interp"]
    r = run_variant(guest, tmp_path_factory, "bt", validate=True, clock="free")
    assert_same_end(r, ref)
    assert r.fault == ref.fault
    if not guest.timed:
        assert_same_state(r, ref)


#: guests that run cli, sti, pushf or popf in interesting states (ring 3, IOPL, pending
#: interrupts, a popf that sets IF)
CALLOUT_FLAGS = {"flags.s", "cli_sti.s", "pushf_popf.s", "hello64.s"} | {
    f"{name}.c[{arch}]" for name in ("usermode", "timer", "exceptions", "osmix")
    for arch in ("x86_32", "x86_64")}


@pytest.mark.parametrize("guest", [g for g in GUESTS if g.name in CALLOUT_FLAGS], ids=str)
def test_bt_without_inline_sequences_agrees(guest: Guest, tmp_path_factory, results_cache):
    """``--no-inline``: bt sends cli/sti/pushf/popf to the monitor's handlers (the path of
    trap-and-emulate, and of their 16-bit forms); the result is the same, instruction
    for instruction."""
    ref = run_all(guest, tmp_path_factory, results_cache)["interp"]
    r = run_variant(guest, tmp_path_factory, "bt", validate=True, inline=False)
    assert_same_end(r, ref)
    assert r.guest_instructions == ref.guest_instructions
    assert_same_state(r, ref)
    assert set(r.stats["callouts"]) & {"cli", "sti", "pushfd", "popfd", "pushfq", "popfq"}
