"""Injecting a #PF that the shadow MMU's TLB fill found, with the CR2 the CPU would set.

A TLB fill (see :mod:`dbt.monitor.memory`) learns only the *page* an access
missed on, but CR2 must hold the exact linear address (SDM Vol. 3A §4.7). The
monitor rebuilds it as KVM's instruction emulator would: decode the faulting
instruction and compute the addresses it accesses — its memory operands, and
the implicit ones (the stack for push/pop/call/ret/enter/leave, ESI/EDI for
string instructions, EBX+AL for ``xlat``) — and take the one on the faulting
page. An access that starts on the page before and runs into the faulting one
faults at the page's first byte. For an instruction fetch, CR2 is the pc, or
the start of the next page for an instruction that straddles into it.
"""

from __future__ import annotations

from dbt.monitor.monitor import BusError, GuestException, Monitor
from dbt.monitor.paging import FETCH, PageFault
from dbt.scanner.decoder import MAX_INSN_LEN

_PUSHES = frozenset({"push", "pushf", "pushfd", "pushfq", "call", "enter", "pushal", "pushaw"})
_POPS = frozenset({"pop", "popf", "popfd", "popfq", "ret", "retf", "retfq", "iret", "iretd",
                   "iretq", "popal", "popaw"})
_SRC = ("movs", "lods", "outs", "cmps")
_DST = ("movs", "stos", "ins", "scas", "cmps")


def accesses(mon: Monitor, insn) -> list[tuple[int, int]]:
    """(linear address, size) of every memory access ``insn`` (decoded with detail)
    makes, as far as the monitor can tell from the registers now."""
    out = []
    word = mon.bits // 8
    opsize = 2 if 0x66 in insn.prefixes else word
    for op in insn.operands or ():
        if op.kind == "mem" and insn.name != "lea" and not insn.name.startswith("nop"):
            out.append((mon.effective_address(insn, op.mem), max(op.size, 1)))
    name = insn.name
    sp = mon.reg("rsp" if mon.bits == 64 else "esp")
    if name in _PUSHES:
        n = 8 * word if name.startswith("pusha") else opsize
        out.append(((sp - n) & mon.mask, n))
    elif name in _POPS:
        n = 8 * word if name.startswith("popa") else opsize
        out.append((sp, n * (5 if name.startswith("iret") and mon.bits == 64 else
                             3 if name.startswith("iret") else 1)))
    elif name == "leave":
        out.append((mon.reg("rbp" if mon.bits == 64 else "ebp"), opsize))
    elif name.startswith("xlat"):
        out.append(((mon.reg("rbx" if mon.bits == 64 else "ebx") + mon.reg("al")) & mon.mask, 1))
    string = name.rstrip("bwdq")
    if string in _SRC or string in _DST:
        size = {"b": 1, "w": 2, "d": 4, "q": 8}.get(name[-1], 1)
        regs = ("rsi", "rdi") if mon.bits == 64 else ("esi", "edi")
        if string in _SRC:
            out.append((mon.reg(regs[0]), size))
        if string in _DST:
            out.append((mon.reg(regs[1]), size))
    return out


def fault_address(mon: Monitor, pc: int, page: int, access: int) -> int | None:
    """The linear address CR2 gets for a fault on ``page`` by the instruction at ``pc``
    (None when no access of it is on that page: the caller then uses the page)."""
    if access == FETCH:
        return pc if pc & ~0xFFF == page else page
    window = mon.fetch_code(pc, MAX_INSN_LEN, update=False)
    insn = mon.decoder.decode(pc, window, detail=True) if window else None
    if insn is None:
        return None
    for addr, size in accesses(mon, insn):
        if addr & ~0xFFF == page:
            return addr
        if addr & ~0xFFF != page and (addr + size - 1) & ~0xFFF == page:
            return page
    return None


def inject(mon: Monitor, fault: PageFault, access: int, pc: int) -> int | None:
    """Deliver the #PF (or #GP) a refused TLB fill recorded for the instruction at ``pc``;
    returns the handler's address (None: the run ended)."""
    if fault.vector != 14:
        return mon.exception(fault.vector, pc, fault.why, error_code=fault.error_code)
    page = fault.address & ~0xFFF & mon.mask
    cr2 = fault_address(mon, pc, page, access)
    if cr2 is None:
        mon.count("cr2_page_only")  # the access was not found: CR2 holds the page
        cr2 = page
    mon.set_cr2(cr2)
    return mon.exception(14, pc, fault_detail(mon.bits, cr2, pc), error_code=fault.error_code,
                         address=cr2)


def fetch_fault_detail(bits: int, address: int) -> str:
    """How an instruction fetch that faults is described (the same in every engine,
    arch, memory and MMU mode)."""
    return f"instruction fetch from unmapped memory at {address:#x}"


def fault_detail(bits: int, cr2: int, pc: int) -> str:
    """How a #PF is described: a fetch fault at the pc, or a fault at CR2."""
    return fetch_fault_detail(bits, cr2) if cr2 == pc else f"page fault at address {cr2:#x}"


def fetch_exception(mon: Monitor, pc: int, fetched: int) -> GuestException | None:
    """The page fault (or #GP, non-canonical) that stops the instruction at ``pc`` after
    ``fetched`` bytes could be read, with the detail every engine gives it; None when
    there is none to deliver (paging off, or a bus error: the caller ends the run)."""
    why = mon.fetch_fault(pc, fetched + 1)
    if why is None or isinstance(why, BusError):
        return None
    if why.vector == 14:
        why.detail = fault_detail(mon.bits, why.address, pc)
    return why
