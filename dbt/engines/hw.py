"""Engine ``hw``: trap-and-emulate, as KVM runs a guest with VT-x and nested paging.

The guest owns the unicorn CPU and runs unmodified, its privileged state
included. The monitor sees only exits: port I/O and CPUID (instruction hooks),
``hlt`` (emu_start returns), exceptions (the interrupt hook), accesses outside
guest RAM, and ``syscall``/``sysenter``, which unicorn 2.1.4 does not run
itself (its helpers only call instruction hooks): the hook stops the run and the
monitor performs them (:mod:`dbt.monitor.fastcalls`). There is never a
per-instruction hook of dbt's own.

Port I/O at CPL > IOPL: unicorn 2.1.4 checks neither IOPL nor the TSS's I/O
permission bit map, so the I/O hooks do (:func:`dbt.monitor.privilege.check_io`).
A denied access stops the run; the monitor puts back the CPU state saved in the
hook (and the bytes an ``ins`` stored) and delivers #GP(0) at the instruction.
Known gap: in the free clock unicorn stops only at the end of the translation
block, so the block's later instructions have run by then; their register
effects are undone with the rest, their stores to memory are not (their port
I/O is dropped).

Counting (DESIGN §3): in the ``exact`` clock, ``emu_start(count=budget)`` makes
unicorn count instructions in C; the monitor reads that counter after each
exit. In the ``free`` clock nothing is counted and the budget becomes a time
limit. Known gap: unicorn 2.1.4 cannot hook ``rdtsc``, so under ``hw`` it reads
the host-derived TSC, not virtual time.
"""

from __future__ import annotations

import time

from unicorn import UcError
from unicorn import unicorn_const as C
from unicorn import x86_const as U

from dbt.engines import REPORTS, register
from dbt.engines.faults import FaultWatch
from dbt.monitor import handlers, privilege
from dbt.monitor.exits import Reason, RunResult
from dbt.monitor.monitor import GuestException, Monitor
from dbt.monitor.vcpu import VCpu
from dbt.monitor.watchdog import Watchdog

COUNT_SLICE = 4_000_000  # exact clock: instructions per emu_start


@register
class Hw:
    name = "hw"
    exec_ram = True
    owns_cpu = True  # see Monitor.owns_cpu
    monitor = True
    reports = REPORTS
    mmus = ("nested", "shadow")
    mmu_note = ""

    def __init__(self, mon: Monitor):
        self.mon = mon
        self.watch = FaultWatch(mon)
        self.exits: dict[str, int] = {}
        self.stop_count: int | None = None  # unicorn's count when an out hook stopped it
        self.running = False  # inside emu_start
        self.fastcall: int | None = None  # address of a syscall/sysenter the hook stopped at
        self.denied = None  # (pc, GuestException, CPU context, (address, bytes) an ins stored over)
        uc = mon.uc
        uc.hook_add(C.UC_HOOK_INSN, self._on_in, None, 1, 0, U.UC_X86_INS_IN)
        uc.hook_add(C.UC_HOOK_INSN, self._on_out, None, 1, 0, U.UC_X86_INS_OUT)
        uc.hook_add(C.UC_HOOK_INSN, self._on_cpuid, None, 1, 0, U.UC_X86_INS_CPUID)
        for insn in (U.UC_X86_INS_SYSCALL, U.UC_X86_INS_SYSENTER):
            uc.hook_add(C.UC_HOOK_INSN, self._on_fastcall, None, 1, 0, insn)
        if mon.coverage is not None:  # (a per-instruction hook: only when coverage is asked)
            mon.coverage.attach(self)

    def _loop(self, exact: bool, dog: Watchdog | None) -> None:
        mon, machine, watch = self.mon, self.mon.machine, self.watch
        budget = mon.config.max_insns
        while not mon.stopped:
            remaining = budget - mon.icount
            if remaining <= 0 or (dog is not None and dog.fired):
                mon.stop(Reason.BUDGET)
                break
            if mon.event_due():
                mon.resume_at(mon.poll_interrupts(machine.pc))
                if mon.stopped:
                    break
            pc = machine.pc
            watch.reset()
            err = None
            self.stop_count = None
            self.fastcall = self.denied = None
            # exact: run in slices, so the monitor regains control now and then (to let
            # the TLB grow, see GuestMemory.fill) without a stop in the middle of a block;
            # and stop exactly where the next interrupt is due
            step = min(remaining, COUNT_SLICE) if exact else 0
            if exact and mon.event_at is not None:
                step = min(step, mon.event_at - mon.icount)
            self.running = True
            began = time.perf_counter()
            try:
                mon.uc.emu_start(pc, 0, count=step)
            except UcError as e:
                err = e
            ended = time.perf_counter()
            self.running = False
            watch.collect(err)
            hooks_fired = machine.executed_count() if exact else 0
            if err is not None or watch.vector is not None:
                self._exit("exception")
                seen = watch.hooks_fired if (watch.vector is not None
                                             or watch.bad_address is not None) else hooks_fired
                mon.icount += seen - (0 if watch.last_insn_retired(err) else 1)
                watch.report(machine.pc, err)
            elif self.stop_count is not None:  # an out or a fast system call stopped it
                mon.icount += self.stop_count
                if self.fastcall is not None:
                    self._fastcall(self.fastcall)
                elif self.denied is not None:
                    self._deny_io()
            elif exact and hooks_fired > step:
                mon.icount += step
                if step == remaining:
                    mon.stop(Reason.BUDGET)
            elif dog is not None and dog.fired and dog.at <= ended:
                mon.stop(Reason.BUDGET)  # the free clock's time limit ran out
            elif mon.kick is not None and mon.kick.stopped(began, ended):
                # the timer is due (the loop polls next). Not taken for a hlt: a stop that
                # lands just after a byte F4 would look like one (say, after jne -12)
                self._exit("timer")
            elif mon.peek(machine.pc - 1, 1) == b"\xf4":
                self._exit("hlt")
                mon.icount += hooks_fired
                mon.resume_at(mon.halt(machine.pc))
            else:
                mon.icount += hooks_fired  # stopped for another reason: go on
            if machine.memory and exact:
                machine.memory.flush_if_busy()
            elif machine.memory:
                machine.memory.flush_if_wanted()

    def _exit(self, kind: str) -> None:
        self.exits[kind] = self.exits.get(kind, 0) + 1

    def _on_in(self, uc, port: int, size: int, _ud) -> int:
        self._exit("io")
        if self._io_denied(uc, port, size, "in"):
            return 0
        return self.mon.io_in(port, size)

    def _io_denied(self, uc, port: int, size: int, what: str) -> bool:
        """Check the guest's I/O permission in an I/O hook (unicorn's pc is at the
        instruction); on a denial, save what is needed to undo it and stop."""
        mon = self.mon
        if self.denied is not None:
            return True  # (free clock: the rest of the block runs on, its I/O dropped)
        if mon.cpl() <= privilege.iopl(mon):
            return False
        try:
            privilege.check_io(mon, port, size, what)
            return False
        except GuestException as e:
            pc = uc.reg_read(mon.machine.pc_reg)
            stored = None
            code = mon.peek(pc, 16).lstrip(bytes(range(0x40, 0x50)) + b"\x66\x67\xf2\xf3")
            if code[:1] in (b"\x6c", b"\x6d"):  # ins stores the value it reads at [rdi]
                rdi = mon.reg("rdi" if mon.bits == 64 else "edi")
                phys = mon.translate(rdi, 0, update=False)
                stored = (phys, mon.machine.fetch(phys, size)) if phys >= 0 else None
            self.denied = (pc, e, uc.context_save(), stored)
        self.stop_count = mon.machine.executed_count() if self.exact else 0
        uc.emu_stop()
        return True

    def _deny_io(self) -> None:
        """Undo the port access the hook refused and raise #GP(0) at it (not retired)."""
        mon = self.mon
        pc, e, context, stored = self.denied
        mon.uc.context_restore(context)
        if stored is not None:
            mon.uc.mem_write(*stored)
        if self.exact:
            mon.icount -= 1
        mon.resume_at(mon.exception(e.vector, pc, e.detail, e.error_code, e.address))

    def _on_out(self, uc, port: int, size: int, value: int, _ud) -> None:
        self._exit("io")
        if self._io_denied(uc, port, size, "out"):
            return
        mon = self.mon
        event = mon.event_at
        mon.io_out(port, size, value)
        if mon.stopped or (mon.event_at != event and self.exact):
            # the counter includes this out; read it now, as unicorn may count the
            # next instruction's start before the stop takes effect
            self.stop_count = self.mon.machine.executed_count()
            uc.emu_stop()

    def _on_cpuid(self, uc, _ud) -> bool:
        self._exit("cpuid")
        handlers.cpuid(self.mon, None)
        return True  # skip unicorn's own CPUID

    def _on_fastcall(self, uc, _ud) -> None:
        # unicorn has put the pc back at the instruction; it steps over it after this
        self._exit("fastcall")
        self.fastcall = uc.reg_read(self.mon.machine.pc_reg)
        self.stop_count = self.mon.machine.executed_count() if self.exact else 0
        uc.emu_stop()

    def _fastcall(self, pc: int) -> None:
        """Perform the syscall/sysenter at ``pc`` (counted as retired) on the guest's CPU."""
        mon = self.mon
        insn = mon.decoder.decode(pc, mon.peek(pc, 16), detail=True)
        try:
            mon.machine.pc = handlers.handler_for(insn)(mon, insn)
        except GuestException as e:  # a fault: it did not retire
            mon.icount -= 1
            mon.resume_at(mon.exception(e.vector, pc, e.detail, e.error_code, e.address))

    def run(self) -> RunResult:
        mon = self.mon
        exact = self.exact = mon.config.clock == "exact"
        if exact:  # within emu_start, unicorn's counter holds what retired since it began
            mon.icount_now = lambda: mon.icount + (
                max(0, mon.machine.executed_count() - 1) if self.running else 0)
        mon.start_clock()
        if exact and mon.machine.memory:
            mon.machine.memory.resize_stops = False  # see GuestMemory.fill
        if exact:
            self._loop(exact, None)
        else:
            with Watchdog.for_budget(mon.uc, mon.config.max_insns, mon.stop_lock) as dog:
                self._loop(exact, dog)
        eflags = mon.uc.reg_read(U.UC_X86_REG_EFLAGS)
        return mon.result(VCpu.from_unicorn(mon.machine), eflags, mon.icount if exact else None,
                          {"exits": dict(self.exits)})
