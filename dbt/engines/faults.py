"""Turning what unicorn reports (hook vectors, UcError codes) into guest exceptions."""

from __future__ import annotations

from unicorn import UcError
from unicorn import unicorn_const as C
from unicorn import x86_const as U

from dbt.monitor.monitor import Monitor
from dbt.monitor.pagefault import fault_detail, inject
from dbt.monitor.paging import FETCH

#: unicorn error -> (vector, what happened)
UC_ERRORS = {
    C.UC_ERR_READ_UNMAPPED: (14, "read of unmapped memory"),
    C.UC_ERR_WRITE_UNMAPPED: (14, "write to unmapped memory"),
    C.UC_ERR_FETCH_UNMAPPED: (14, "instruction fetch from unmapped memory"),
    C.UC_ERR_READ_PROT: (14, "read of protected memory"),
    C.UC_ERR_WRITE_PROT: (14, "write to protected memory"),
    C.UC_ERR_FETCH_PROT: (14, "instruction fetch from non-executable memory"),
    C.UC_ERR_INSN_INVALID: (6, "invalid instruction"),
    C.UC_ERR_READ_UNALIGNED: (17, "unaligned read"),
    C.UC_ERR_WRITE_UNALIGNED: (17, "unaligned write"),
    C.UC_ERR_FETCH_UNALIGNED: (17, "unaligned fetch"),
}

_TRAP_FORMS = {3: (b"\xcc",), 4: (b"\xce",), 1: (b"\xf1",)}


class FaultWatch:
    """Hooks that catch guest exceptions and unmapped accesses (bounded above guest RAM,
    so they never slow down ordinary loads and stores, DESIGN §5)."""

    def __init__(self, mon: Monitor):
        self.mon = mon
        self.vector: int | None = None
        self.vector_pc = 0
        self.bad_address: int | None = None
        self.hooks_fired = 0  # unicorn's instruction counter when the fault was seen
        uc = mon.uc
        uc.hook_add(C.UC_HOOK_INTR, self._on_intr)
        uc.hook_add(C.UC_HOOK_MEM_READ_UNMAPPED | C.UC_HOOK_MEM_WRITE_UNMAPPED
                    | C.UC_HOOK_MEM_FETCH_UNMAPPED, self._on_unmapped, None,
                    mon.machine.ram_size, (1 << 64) - 1)

    def reset(self) -> None:
        self.vector = None
        self.bad_address = None
        self.fetch_fault = False
        self.page_fault = None
        if self.mon.machine.memory:
            self.mon.machine.memory.take_page_fault()  # (one left by a probe)

    def collect(self, err: UcError | None) -> None:
        """After emu_start: pick up a #PF the shadow MMU's fill refused (unicorn then
        reports UC_ERR_EXCEPTION at the faulting instruction)."""
        self.page_fault = self.mon.machine.fill_fault(err)

    def _on_intr(self, uc, intno: int, _ud) -> None:
        self.vector = intno
        self.vector_pc = uc.reg_read(self.mon.machine.pc_reg)
        self.hooks_fired = self.mon.machine.executed_count()
        uc.emu_stop()

    def _on_unmapped(self, uc, access, address, size, value, _ud) -> bool:
        self.bad_address = address
        self.fetch_fault = access == C.UC_MEM_FETCH_UNMAPPED
        self.hooks_fired = self.mon.machine.executed_count()
        return False

    def is_trap(self) -> bool:
        """Did the last vector come from int n / int3 / into (pc already past it)?

        unicorn reports only the vector; an int instruction leaves the pc after
        itself, a fault at the faulting instruction, so look at the bytes before.
        """
        pc, v = self.vector_pc, self.vector
        fetch = self.mon.peek
        if fetch(pc - 2, 2) == bytes([0xCD, v]):
            return True
        return fetch(pc - 1, 1) in _TRAP_FORMS.get(v, ())

    def last_insn_retired(self, err: UcError | None) -> bool:
        """Did the last instruction unicorn started complete before the exception?

        True for traps (int n) and for a fetch fault, which belongs to the next
        instruction (the branch that led there retired); False for faults.
        """
        if self.page_fault is not None:  # an instruction fetch belongs to the next one
            return self.page_fault[1] == FETCH
        if self.vector is not None:
            if self.is_trap():
                return True
            return self.vector == 14 and self.mon.uc.reg_read(U.UC_X86_REG_CR2) == self.vector_pc
        return self.fetch_fault or (err is not None and err.errno == C.UC_ERR_FETCH_UNMAPPED)

    def report(self, pc: int, err: UcError | None) -> None:
        """End the run with the fault that stopped the last emu_start."""
        mon = self.mon
        if self.page_fault is not None:
            mon.resume_at(inject(mon, *self.page_fault, pc))
            return
        if self.vector is not None:
            address = mon.uc.reg_read(U.UC_X86_REG_CR2) if self.vector == 14 else None
            detail = "" if address is None else fault_detail(mon.bits, address, self.vector_pc)
            mon.resume_at(mon.exception(self.vector, self.vector_pc, detail, address=address,
                                   soft=self.is_trap(), from_cpu=True))
            return
        vector, what = UC_ERRORS.get(err.errno if err else -1, (13, f"unicorn error: {err}"))
        if vector == 6:
            mon.resume_at(mon.exception(6, pc, invalid_detail(mon, pc), from_cpu=True))
            return
        if self.bad_address is not None:
            what = f"{what} at {self.bad_address:#x}"
        if self.fetch_fault or (err is not None and err.errno == C.UC_ERR_FETCH_UNMAPPED):
            pc = mon.machine.pc  # a fetch fault is reported at the address fetched
        mon.fault(vector, pc, what, address=self.bad_address)  # outside guest RAM: a bus error


def invalid_detail(mon: Monitor, pc: int) -> str:
    """How an instruction the CPU cannot run is described (the same in every engine)."""
    return f"invalid instruction (bytes {mon.peek(pc, 4).hex(' ')})"
