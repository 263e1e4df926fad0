"""Engine ``interp``: decode-and-dispatch, as QEMU-style pure emulation does.

The monitor fetches and decodes every guest instruction itself. Innocuous ones
and near branches run one at a time on unicorn (``emu_start(count=1)``);
privileged and sensitive ones never reach the CPU: the monitor's handlers
emulate them on the virtual CPU. Every dispatch retires one instruction, so
the count is exact (a ``rep`` string instruction counts once per iteration,
and once when its count is zero, as unicorn's counter does).
"""

from __future__ import annotations

from unicorn import UcError

from dbt.engines import REPORTS, register
from dbt.engines.faults import FaultWatch, invalid_detail
from dbt.isa import Action
from dbt.monitor.exits import Reason, RunResult
from dbt.monitor.handlers import handler_for
from dbt.monitor.monitor import GuestException, Monitor
from dbt.monitor.pagefault import fetch_exception, fetch_fault_detail
from dbt.scanner.block import runs_past_end
from dbt.scanner.decoder import MAX_INSN_LEN

_NATIVE = (Action.IDENT, Action.BRANCH)


@register
class Interp:
    name = "interp"
    exec_ram = True
    owns_cpu = False  # see Monitor.owns_cpu
    monitor = True
    reports = REPORTS
    mmus = ("nested", "shadow")
    mmu_note = ""

    def __init__(self, mon: Monitor):
        self.mon = mon
        self.watch = FaultWatch(mon)
        self.on_dispatch = None  # coverage: called with each instruction dispatched
        if mon.machine.memory:
            # a stop requested by a fill would end a one-instruction run before the
            # instruction (see GuestMemory.fill): interp flushes between instructions
            mon.machine.memory.resize_stops = False
        if mon.coverage is not None:
            mon.coverage.attach(self)

    def run(self) -> RunResult:
        mon, machine, decoder = self.mon, self.mon.machine, self.mon.decoder
        budget = mon.config.max_insns
        mon.start_clock(stop_cpu=False)
        while not mon.stopped:
            if mon.icount >= budget:
                mon.stop(Reason.BUDGET)
                break
            if mon.event_due():
                mon.resume_at(mon.poll_interrupts(machine.pc))
                if mon.stopped:
                    break
            pc = machine.pc
            window = mon.fetch_code(pc, MAX_INSN_LEN)
            insn = decoder.decode(pc, window)
            if self.on_dispatch is not None and insn is not None:
                self.on_dispatch(insn)
            if insn is None:
                self._undecodable(pc, window)
            elif insn.rule.action in _NATIVE:
                self._execute(pc, insn.rule.action is Action.BRANCH or insn.rep)
            else:
                self._emulate(pc, window)
        return mon.result(mon.vcpu, mon.guest_eflags(), mon.icount, {"dispatches": mon.icount})

    def _execute(self, pc: int, may_stay: bool) -> None:
        """Run one innocuous instruction on the CPU."""
        watch, mon = self.watch, self.mon
        watch.reset()
        err = None
        try:
            mon.uc.emu_start(pc, 0, count=1)
            if not may_stay and mon.machine.pc == pc and watch.vector is None:
                # A store into its own translation block: unicorn invalidates the
                # block and restarts the store in a one-instruction block, so its
                # count hook fires twice and count=1 stops before the store is done.
                mon.uc.emu_start(pc, 0, count=2)
        except UcError as e:
            err = e
        watch.collect(err)
        memory = mon.machine.memory
        if memory:
            memory.flush_if_busy()
        if err is not None or watch.vector is not None:
            if watch.last_insn_retired(err):
                mon.icount += 1
            watch.report(pc, err)
            return
        mon.icount += 1

    def _emulate(self, pc: int, window: bytes) -> None:
        """Hand a sensitive instruction to the monitor's handler."""
        mon = self.mon
        insn = mon.decoder.decode(pc, window, detail=True)
        mon.count("emulated")
        try:
            next_pc = handler_for(insn)(mon, insn)
        except GuestException as e:
            if e.trap:
                mon.icount += 1
            mon.resume_at(mon.exception(e.vector, insn.next if e.trap else pc, e.detail,
                                   e.error_code, e.address, soft=e.trap))
            return
        mon.icount += 1
        mon.machine.pc = insn.next if next_pc is None else next_pc

    def _undecodable(self, pc: int, window: bytes) -> None:
        mon = self.mon
        short = not window or runs_past_end(mon.decoder, pc, window)
        if short and (why := fetch_exception(mon, pc, len(window))) is not None:
            mon.resume_at(mon.exception(why.vector, pc, why.detail, why.error_code, why.address))
        elif window and short:
            mon.fault(14, pc, "instruction runs past the end of guest RAM")
        elif not window:
            mon.fault(14, pc, fetch_fault_detail(mon.bits, pc), address=pc)
        else:
            mon.resume_at(mon.exception(6, pc, invalid_detail(mon, pc)))
