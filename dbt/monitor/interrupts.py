"""Delivering exceptions and interrupts through the guest's own IDT, as the CPU would.

unicorn reports an exception by vector and stops (DESIGN §5, trap 1); the
monitor then does what the processor does on every engine — the equivalent of
VT-x event injection (SDM Vol. 3A §6.12 "Exception and interrupt handling",
§6.14 for IA-32e mode):

1. read the gate for the vector from the IDT (8-byte gates in protected mode,
   16-byte gates in long mode); a vector past the IDT limit, a gate of the
   wrong type or a bad code-segment selector raises #GP with the IDT error code
   ``vector*8 + 2 + EXT``; a non-present gate raises #NP with that code; a
   software ``int n`` through a gate whose DPL is below the CPL raises #GP (any
   fault while delivering an ``int n`` is a fault of that instruction: it does
   not retire, and the pc saved is its own);
2. from an outer ring to a more privileged handler (CPL 3 to ring 0), switch
   to that ring's stack from the TSS (§6.12.1): SS:ESP from the 32-bit TSS
   (#TS for a selector that cannot be that stack, #SS for one not present),
   RSP0-2 from the 64-bit TSS with SS a null selector; the old SS:ESP is
   pushed first (:mod:`dbt.monitor.privilege`);
3. push the frame: EFLAGS, CS, EIP and the error code for the vectors that have
   one; in long mode always SS:RSP as well, RSP first aligned down to 16 bytes,
   or switched to an IST stack named by the gate;
4. clear TF, NT and RF, and IF for an interrupt gate (not for a trap gate);
   load CS:EIP from the gate, CS with the handler's privilege level as RPL.

A fault while delivering is combined with the one being delivered by the rules
of SDM Vol. 3A Table 6-5: two contributory faults, or a page fault followed by
a contributory fault or a page fault, become a double fault (#DF, error code 0);
a contributory fault or page fault while delivering #DF is a triple fault,
which ends the run with reason ``triple-fault`` (a real PC would reset).
"""

from __future__ import annotations

import struct

from unicorn import x86_const as U

from dbt.monitor import privilege
from dbt.monitor.monitor import BusError, GuestException, Monitor

DF, NP, GP, PF = 8, 11, 13, 14
#: faults that combine into #DF (SDM Vol. 3A Table 6-4): #DE #TS #NP #SS #GP
CONTRIBUTORY = frozenset({0, 10, 11, 12, 13})
#: vectors whose frame has an error code (SDM Vol. 3A §6.13, Table 6-1)
HAS_ERROR_CODE = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})

INTERRUPT_GATE, TRAP_GATE, TASK_GATE = 0xE, 0xF, 0x5
FLAG_TF, FLAG_IF, FLAG_NT, FLAG_RF, FLAG_VM = 1 << 8, 1 << 9, 1 << 14, 1 << 16, 1 << 17
_DESC_P, _DESC_S, _DESC_CODE, _DESC_L = 1 << 47, 1 << 44, 1 << 43, 1 << 53


def soft_int_start(fetch, pc: int, vector: int) -> int:
    """The address of the ``int n`` / ``int3`` / ``into`` / ``int1`` that ends at ``pc``."""
    if fetch(pc - 2, 2) == bytes([0xCD, vector]):
        return pc - 2
    return pc - 1


class TripleFault(Exception):
    """A fault while delivering #DF: the processor shuts down."""


class NotEmulated(Exception):
    """Delivery needs something the monitor does not do yet (task gates)."""


def combine(first: int, second: int) -> int | None:
    """The vector to deliver when ``second`` faults while ``first`` is being delivered;
    None for a triple fault (SDM Vol. 3A Table 6-5)."""
    serious = second in CONTRIBUTORY or second == PF
    if first == DF and serious:
        return None
    if (first in CONTRIBUTORY and second in CONTRIBUTORY) or (first == PF and serious):
        return DF
    return second


def deliver(mon: Monitor, vector: int, saved_pc: int, error_code: int | None,
            soft: bool, external: bool = False) -> int:
    """Deliver ``vector`` to the guest, escalating faults met on the way; returns the
    handler's address, where the guest goes on (the caller sets the pc: a hook must
    not write it, DESIGN §5). Raises :class:`TripleFault` or :class:`NotEmulated`."""
    for _ in range(4):  # #X -> #DF -> triple fault, at most
        try:
            return _deliver_once(mon, vector, saved_pc, error_code, soft, external)
        except BusError as e:
            raise NotEmulated(f"delivering vector {vector:#x}: {e.detail}") from None
        except GuestException as e:  # a fault while delivering
            if soft:  # the int instruction faults (a gate it may not use ...): not retired
                saved_pc = soft_int_start(mon.peek, saved_pc, vector)
                mon.icount -= 1
            nxt = combine(vector, e.vector)
            if nxt is None:
                raise TripleFault(f"{e.detail} while delivering a double fault") from None
            vector, error_code = nxt, (0 if nxt == DF else e.error_code)
            soft = external = False
    raise TripleFault("exception delivery did not converge")


def _deliver_once(mon: Monitor, vector: int, saved_pc: int, error_code: int | None,
                  soft: bool, external: bool) -> int:
    long_mode = mon.bits == 64
    idt_err = vector * 8 + 2 + (0 if soft else 1)  # IDT bit, and EXT for an external event
    _, base, limit, _ = mon.machine.fast.mmr(U.UC_X86_REG_IDTR)
    size = 16 if long_mode else 8
    if vector * size + size - 1 > limit:
        raise GuestException(GP, f"vector {vector:#x} is past the IDT limit {limit:#x}",
                             error_code=idt_err)
    gate = _read(mon, base + vector * size, size, idt_err)
    lo, hi = struct.unpack_from("<II", gate)
    kind, dpl, present = (hi >> 8) & 0x1F, (hi >> 13) & 3, hi & (1 << 15)
    if kind == TASK_GATE and not long_mode:
        raise NotEmulated(f"vector {vector:#x} goes through a task gate (task switches are "
                          "not emulated)")
    if kind not in (INTERRUPT_GATE, TRAP_GATE):
        raise GuestException(GP, f"IDT entry {vector:#x} is not an interrupt or trap gate "
                                 f"(type {kind:#x})", error_code=idt_err)
    cpl = mon.cpl()
    if soft and dpl < cpl:
        raise GuestException(GP, f"int {vector:#x} through a gate of DPL {dpl} at CPL {cpl}",
                             error_code=idt_err)
    if not present:
        raise GuestException(NP, f"IDT entry {vector:#x} is not present", error_code=idt_err)
    selector = lo >> 16
    offset = (lo & 0xFFFF) | (hi & 0xFFFF0000)
    if long_mode:
        offset |= struct.unpack_from("<I", gate, 8)[0] << 32
    ext = 0 if soft else 1
    new_cpl = _check_code_segment(mon, selector, cpl, long_mode, vector, ext)

    eflags = mon.guest_eflags()
    sp_reg = mon.machine.sp_reg
    sp = mon.uc.reg_read(sp_reg)
    word = 8 if long_mode else 4
    old_cs, old_ss = privilege.selector(mon, "cs"), privilege.selector(mon, "ss")
    frame = [eflags, old_cs, saved_pc]
    new_ss = None  # None: the stack segment stays
    if new_cpl < cpl or long_mode:
        frame = [old_ss, sp] + frame
    ist = hi & 7 if long_mode else 0  # the gate's IST field
    if new_cpl < cpl and not long_mode:
        new_ss, sp = privilege.inner_stack(mon, new_cpl, ext)
    elif long_mode:
        if new_cpl < cpl:
            new_ss = new_cpl  # a null selector whose RPL is the new CPL
        if new_cpl < cpl or ist:
            sp = privilege.inner_rsp(mon, new_cpl, ist, ext)
        sp &= ~0xF
    if vector in HAS_ERROR_CODE and not soft and not external:
        frame.append(error_code or 0)
    data = b"".join(struct.pack("<Q" if long_mode else "<I", v & mon.mask) for v in reversed(frame))
    sp = (sp - len(frame) * word) & mon.mask
    try:
        mon.write_mem(sp, data, system=True)
    except BusError as e:  # no memory behind the stack (a page fault goes on as it is)
        raise GuestException(12, f"pushing the exception frame at {sp:#x}: {e.detail}",
                             error_code=0 if new_ss is None else (new_ss & ~3) | ext) from None
    mon.uc.reg_write(sp_reg, sp)
    cleared = FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM | (FLAG_IF if kind == INTERRUPT_GATE else 0)
    mon.set_guest_eflags(eflags & ~cleared)
    new_cs = (selector & ~3) | new_cpl
    if new_ss is not None:
        privilege.enter(mon, new_cs, new_ss)
    elif new_cs != old_cs:
        mon.load_cs(new_cs)
    return offset & mon.mask


def _read(mon: Monitor, addr: int, n: int, error_code: int) -> bytes:
    try:
        return mon.read_mem(addr, n, system=True)
    except BusError:
        raise GuestException(GP, f"IDT entry at {addr:#x} is outside guest memory",
                             error_code=error_code) from None


def _check_code_segment(mon: Monitor, selector: int, cpl: int, long_mode: bool,
                        vector: int, ext: int) -> int:
    """Check the gate's code segment; returns the handler's privilege level."""
    desc = mon.descriptor(selector)
    if desc is None:
        raise GuestException(GP, f"IDT entry {vector:#x}: selector {selector:#x} is outside "
                                 "the GDT", error_code=(selector & ~3) | ext)
    if not desc & _DESC_S or not desc & _DESC_CODE or (long_mode and not desc & _DESC_L):
        raise GuestException(GP, f"IDT entry {vector:#x}: selector {selector:#x} is not a "
                                 f"{'64-bit ' if long_mode else ''}code segment",
                             error_code=(selector & ~3) | ext)
    if not desc & _DESC_P:
        raise GuestException(NP, f"IDT entry {vector:#x}: code segment {selector:#x} is not "
                                 "present", error_code=(selector & ~3) | ext)
    dpl = (desc >> 45) & 3
    if dpl > cpl:
        raise GuestException(GP, f"IDT entry {vector:#x}: code segment DPL {dpl} above CPL "
                                 f"{cpl}", error_code=(selector & ~3) | ext)
    return cpl if privilege.is_conforming_code(desc) else dpl
