"""Privilege levels: ring transitions, the TSS stacks, returns to an outer ring, IOPL.

Shared by interrupt delivery (:mod:`dbt.monitor.interrupts`), ``iret``/``retf``
(:mod:`dbt.monitor.handlers`) and the fast system calls
(:mod:`dbt.monitor.fastcalls`). The rules are the SDM's: Vol. 3A §5.5-5.8
(privilege checks, transfers between code segments), §6.12.1 (the stack
switch of an interrupt to an inner ring), §7.7 (the 64-bit TSS: RSP0-2, IST);
Vol. 1 §19.5 (I/O privilege level and the I/O permission bit map). Where
unicorn (QEMU) settles a case the SDM leaves open, this module does the same,
so that ``hw`` (where unicorn runs ``iret``, ``sysexit`` and ``sysret`` itself)
and the monitor agree.

Where the CPL lives
-------------------
* ``hw``: the guest owns unicorn's CPU, which really runs at ring 3 and checks
  privilege itself. QEMU keeps the CPL in ``hflags`` and sets it only when SS is
  loaded (from the descriptor's DPL); unicorn's register write refuses an SS
  whose DPL is not already the CPL, and a CS of DPL 0 at CPL 3. So to take the
  guest to another ring the monitor sets the CPL in the saved CPU context first
  (:meth:`dbt.monitor.cpustate.CpuState.set_cpl`), then loads CS and SS through
  the API; loading SS then sets the same CPL again.
* ``interp`` and ``bt``: the real CPU stays at CPL 0 (under ``bt`` it runs the
  monitor's code cache); the guest's CPL is the RPL of the virtual CS, and every
  check is the monitor's. unicorn's CS holds the guest's CS (a code segment of
  DPL 3 loads at CPL 0); its SS holds the guest's SS while that is a ring-0
  segment, and keeps the last ring-0 one while the guest runs in an outer ring.

Known gaps: under ``interp`` and ``bt`` the guest's memory accesses at CPL 3 are
made at CPL 0, so a user-mode access to a supervisor page does not fault there,
and an outer ring's stack segment is assumed to have the base and size of the
ring-0 one (flat, as every guest of this project and every 64-bit guest has).
Call gates, task gates and task switches are not emulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from unicorn import UcError
from unicorn import x86_const as U

from dbt.monitor.monitor import BusError, GuestException, Monitor

TS, NP, SS_FAULT, GP = 10, 11, 12, 13

FLAG_TF, FLAG_IF, FLAG_DF, FLAG_NT = 1 << 8, 1 << 9, 1 << 10, 1 << 14
FLAG_IOPL = 3 << 12
FLAG_RF, FLAG_VM, FLAG_AC, FLAG_ID = 1 << 16, 1 << 17, 1 << 18, 1 << 21
#: the status flags, and DF: what every popf and iret loads
ARITH = 0x8D5 | FLAG_DF
#: what iret loads at any CPL besides ARITH; IF and IOPL depend on CPL (popf_mask)
IRET_ALWAYS = FLAG_TF | FLAG_NT | FLAG_AC | FLAG_ID

_P, _S, _CODE, _CONFORMING, _RW, _ACCESSED = 1 << 47, 1 << 44, 1 << 43, 1 << 42, 1 << 41, 1 << 40
_G = 1 << 55
SEGMENT_REGS = {"cs": U.UC_X86_REG_CS, "ds": U.UC_X86_REG_DS, "es": U.UC_X86_REG_ES,
                "fs": U.UC_X86_REG_FS, "gs": U.UC_X86_REG_GS, "ss": U.UC_X86_REG_SS}
TSS_32, TSS_32_BUSY, TSS_16, TSS_16_BUSY = 9, 11, 1, 3


# --- descriptors (SDM Vol. 3A §3.4.5) ---------------------------------------------------------
def dpl(desc: int) -> int:
    return (desc >> 45) & 3


def present(desc: int) -> bool:
    return bool(desc & _P)


def is_code(desc: int) -> bool:
    return bool(desc & _S and desc & _CODE)


def is_conforming_code(desc: int) -> bool:
    return is_code(desc) and bool(desc & _CONFORMING)


def is_writable_data(desc: int) -> bool:
    return bool(desc & _S and not desc & _CODE and desc & _RW)


def is_readable(desc: int) -> bool:
    """A data segment, or a code segment that may be read."""
    return bool(desc & _S and (not desc & _CODE or desc & _RW))


def limit(desc: int) -> int:
    value = (desc & 0xFFFF) | ((desc >> 32) & 0xF0000)
    return (value << 12) | 0xFFF if desc & _G else value


def selector(mon: Monitor, seg: str) -> int:
    """The selector in segment register ``seg`` as the guest sees it."""
    if mon.owns_cpu:
        return mon.uc.reg_read(SEGMENT_REGS[seg])
    return getattr(mon.vcpu, seg)


def load_real_segment(mon: Monitor, seg: str, sel: int) -> None:
    """Load a segment register of unicorn's CPU (checked by the caller), leaving the
    descriptor's accessed bit as it was: the CPU's own ring transitions (what ``hw``
    runs) do not set it, unicorn's register write does."""
    try:
        if seg == "cs":
            mon.load_cs(sel)  # (keeps the accessed bit itself)
            return
        with mon.accessed_bit_kept(sel):
            mon.uc.reg_write(SEGMENT_REGS[seg], sel)
    except UcError:
        raise GuestException(GP, f"cannot load {seg} with {sel:#x}", error_code=sel & ~3) from None


def enter(mon: Monitor, cs: int, ss: int) -> None:
    """Make ``cs`` and ``ss`` current, the CPL becoming the RPL of ``cs`` (both checked
    by the caller, SS for the new CPL). Should unicorn refuse one (a fast system call
    names segments the guest's GDT does not hold), the old ones are put back and the
    guest gets #GP."""
    old_cs, old_ss = selector(mon, "cs"), selector(mon, "ss")
    try:
        _enter(mon, cs, ss)
    except GuestException:
        _enter(mon, old_cs, old_ss)
        raise


def _enter(mon: Monitor, cs: int, ss: int) -> None:
    cpl = cs & 3
    if mon.owns_cpu:
        if cpl != mon.cpl():
            mon.cpu_state().set_cpl(cpl)  # before the loads: unicorn checks them against it
        load_real_segment(mon, "cs", cs)
        load_real_segment(mon, "ss", ss)
        return
    if (mon.vcpu.cpl == 3) != (cpl == 3) and mon.guest_paging():
        # the real CPU stays at ring 0, so unicorn keeps one TLB for both: entries the
        # shadow MMU filled for one privilege must not serve the other
        mon.machine.flush_tlb()
    if cs != mon.vcpu.cs:
        load_real_segment(mon, "cs", cs)
    mon.vcpu.cs = cs
    mon.vcpu.ss = ss
    if ss & 3 == 0:  # the real CPU stays at CPL 0: only a ring-0 stack segment loads there
        load_real_segment(mon, "ss", ss)


def null_outer_data_segments(mon: Monitor, cpl: int) -> None:
    """On a return to an outer ring, DS, ES, FS and GS that hold a data or non-conforming
    code segment more privileged than the new CPL become null (SDM Vol. 2A IRET,
    Vol. 2B RET). Null selectors stay as they are, their FS/GS base too (as QEMU)."""
    for seg in ("es", "ds", "fs", "gs"):
        sel = selector(mon, seg)
        desc = mon.descriptor(sel) if sel & ~3 else None
        if desc is None or is_conforming_code(desc) or dpl(desc) >= cpl:
            continue
        load_real_segment(mon, seg, 0)
        if not mon.owns_cpu:
            setattr(mon.vcpu, seg, 0)


# --- EFLAGS and I/O (SDM Vol. 2B POPF, Vol. 2A IRET, Vol. 1 §19.5) --------------------------
def popf_mask(cpl: int, iopl: int) -> int:
    """The bits of IF and IOPL that popf and iret may change: IOPL only at CPL 0, IF only
    while CPL <= IOPL (elsewhere they are kept, silently)."""
    return (FLAG_IOPL if cpl == 0 else 0) | (FLAG_IF if cpl <= iopl else 0)


def iopl(mon: Monitor) -> int:
    return (mon.guest_eflags() >> 12) & 3


def check_io(mon: Monitor, port: int, size: int, what: str) -> None:
    """#GP(0) unless I/O at ``port`` (``size`` bytes) is allowed: CPL <= IOPL, or else every
    bit of the port's range clear in the TSS's I/O permission bit map."""
    cpl, level = mon.cpl(), iopl(mon)
    if cpl <= level:
        return
    why = f"{what} at CPL {cpl} > IOPL {level}"
    tss = current_tss(mon)
    if tss is None or tss.kind not in (TSS_32, TSS_32_BUSY) or tss.limit < 103:
        raise GuestException(GP, f"{why}, with no I/O permission bit map", error_code=0)
    try:
        at = mon.read_int(tss.base + 0x66, 2, system=True) + port // 8
        bits = mon.read_int(tss.base + at, 2, system=True) if at + 1 <= tss.limit else None
    except BusError:
        bits = None
    if bits is None:
        raise GuestException(GP, f"{why}, port {port:#x} past the I/O permission bit map",
                             error_code=0)
    if (bits >> (port & 7)) & ((1 << size) - 1):
        raise GuestException(GP, f"{why}, port {port:#x} not allowed by the I/O permission "
                                 "bit map", error_code=0)


# --- the task-state segment (SDM Vol. 3A §7.2.1, §7.7) -----------------------------------------
@dataclass(frozen=True)
class Tss:
    selector: int
    base: int
    limit: int
    kind: int  # the descriptor type (9 available 32-bit/64-bit TSS, 11 busy, 1/3 16-bit)


def current_tss(mon: Monitor) -> Tss | None:
    """The TSS that TR names, or None with no TR loaded."""
    if mon.owns_cpu:
        sel, base, lim, flags = mon.machine.fast.mmr(U.UC_X86_REG_TR)
        return Tss(sel, base, lim, (flags >> 8) & 0xF) if sel & ~3 else None
    sel = mon.vcpu.tr
    desc = mon.descriptor(sel) if sel & ~3 else None
    base = mon.tss_base() if desc is not None else None
    if desc is None or base is None:
        return None
    return Tss(sel, base, limit(desc), (desc >> 40) & 0xF)


def _tss_read(mon: Monitor, tss: Tss | None, offset: int, size: int, what: str, ext: int) -> int:
    if tss is None:
        raise GuestException(TS, f"{what}: no task register loaded", error_code=ext)
    if offset + size - 1 > tss.limit:
        raise GuestException(TS, f"{what}: offset {offset:#x} is past the TSS limit "
                                 f"{tss.limit:#x}", error_code=(tss.selector & ~3) | ext)
    try:
        return mon.read_int(tss.base + offset, size, system=True)
    except BusError as e:  # (a page fault goes on as it is)
        raise GuestException(TS, f"{what}: {e.detail}",
                             error_code=(tss.selector & ~3) | ext) from None


def inner_stack(mon: Monitor, cpl: int, ext: int) -> tuple[int, int]:
    """(SS, ESP) for ring ``cpl`` from the 32-bit (or 16-bit) TSS, SS checked: #TS for a
    selector that cannot be that ring's stack, #SS for one not present."""
    what = f"stack for ring {cpl}"
    tss = current_tss(mon)
    if tss is not None and tss.kind in (TSS_16, TSS_16_BUSY):
        sp = _tss_read(mon, tss, 2 + 4 * cpl, 2, what, ext)
        ss = _tss_read(mon, tss, 4 + 4 * cpl, 2, what, ext)
    else:
        sp = _tss_read(mon, tss, 4 + 8 * cpl, 4, what, ext)
        ss = _tss_read(mon, tss, 8 + 8 * cpl, 2, what, ext)
    err = (ss & ~3) | ext
    if ss & ~3 == 0:
        raise GuestException(TS, f"{what}: the TSS holds a null SS", error_code=ext)
    desc = mon.descriptor(ss)
    if ss & 3 != cpl or desc is None or not is_writable_data(desc) or dpl(desc) != cpl:
        raise GuestException(TS, f"{what}: SS {ss:#x} in the TSS is not a writable data "
                                 f"segment of ring {cpl}", error_code=err)
    if not present(desc):
        raise GuestException(SS_FAULT, f"{what}: SS {ss:#x} is not present", error_code=err)
    return ss, sp


def inner_rsp(mon: Monitor, cpl: int, ist: int, ext: int) -> int:
    """The 64-bit TSS's RSP for ring ``cpl``, or its IST entry ``ist`` (1-7) when not 0."""
    tss = current_tss(mon)
    if ist:
        return _tss_read(mon, tss, 0x24 + 8 * (ist - 1), 8, f"IST stack {ist}", ext)
    return _tss_read(mon, tss, 4 + 8 * cpl, 8, f"stack for ring {cpl}", ext)


# --- returns: iret, retf (SDM Vol. 2A IRET, Vol. 2B RET) --------------------------------------
def far_return(mon: Monitor, size: int, iret: bool, release: int = 0) -> int:
    """``iret``/``retf`` in protected or long mode: pop the return address (and EFLAGS);
    to an outer ring (and for every ``iret`` in 64-bit mode) SS:ESP as well. Nothing
    changes when a check fails. Returns the new pc."""
    long_mode = mon.bits == 64
    sp = mon.uc.reg_read(mon.machine.sp_reg)

    def pop() -> int:
        nonlocal sp
        value = mon.read_int(sp, size)
        sp = (sp + size) & mon.mask
        return value

    ip, cs = pop(), pop() & 0xFFFF
    flags = pop() if iret else 0
    cpl, old_flags = mon.cpl(), mon.guest_eflags()
    name = "iret" if iret else "retf"
    if iret and long_mode and old_flags & FLAG_NT:
        raise GuestException(GP, "iret with NT set in 64-bit mode", error_code=0)
    rpl = cs & 3
    desc = mon.descriptor(cs) if cs & ~3 else None
    if desc is None or not is_code(desc) or rpl < cpl or \
            (dpl(desc) > rpl if is_conforming_code(desc) else dpl(desc) != rpl):
        raise GuestException(GP, f"{name} to CS {cs:#x} at CPL {cpl}: not a code segment it "
                                 "may return to", error_code=cs & ~3)
    if not present(desc):
        raise GuestException(NP, f"{name}: code segment {cs:#x} not present",
                             error_code=cs & ~3)
    sp = (sp + release) & mon.mask
    if rpl == cpl and not (long_mode and iret):
        if cs != selector(mon, "cs"):
            load_real_segment(mon, "cs", cs)
    else:
        new_sp, ss = pop(), pop() & 0xFFFF
        _check_outer_ss(mon, name, ss, rpl, long_mode)
        enter(mon, cs, ss)
        null_outer_data_segments(mon, rpl)
        sp = (new_sp + release) & mon.mask
    mon.uc.reg_write(mon.machine.sp_reg, sp)
    if iret:
        mask = ARITH | IRET_ALWAYS | popf_mask(cpl, (old_flags >> 12) & 3)
        if size == 2:
            mask &= 0xFFFF
        mon.set_guest_eflags((old_flags & ~mask) | (flags & mask))
    return ip & (0xFFFF if size == 2 else mon.mask)


def _check_outer_ss(mon: Monitor, name: str, ss: int, rpl: int, long_mode: bool) -> None:
    if ss & ~3 == 0:
        if long_mode and rpl != 3:  # a null SS is allowed in 64-bit mode below ring 3
            return
        raise GuestException(GP, f"{name} to ring {rpl} with a null SS", error_code=0)
    desc = mon.descriptor(ss)
    if ss & 3 != rpl or desc is None or not is_writable_data(desc) or dpl(desc) != rpl:
        raise GuestException(GP, f"{name}: SS {ss:#x} is not a writable data segment of "
                                 f"ring {rpl}", error_code=ss & ~3)
    if not present(desc):
        raise GuestException(SS_FAULT, f"{name}: stack segment {ss:#x} not present",
                             error_code=ss & ~3)
