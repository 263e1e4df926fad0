"""Fast system calls: ``sysenter``/``sysexit``, ``syscall``/``sysret`` and ``swapgs``.

Handlers on the virtual CPU, as in :mod:`dbt.monitor.handlers` (``interp``
dispatches to them, ``bt`` reaches them through callouts). ``hw`` needs two of
them as well: unicorn 2.1.4 does not run ``syscall`` or ``sysenter`` (its helpers
only call ``UC_HOOK_INSN`` hooks and step over the instruction), so the ``hw``
engine hooks them and has the monitor perform them; ``sysexit``, ``sysret`` and
``swapgs`` it runs itself.

The MSRs are read from unicorn's CPU under every engine (``wrmsr`` writes them
there, see :func:`dbt.monitor.handlers.wrmsr`): IA32_SYSENTER_CS/ESP/EIP
(0x174-0x176), IA32_STAR/LSTAR/FMASK (0xC0000081/82/84), IA32_KERNEL_GS_BASE
(0xC0000102) and EFER.SCE.

The SDM (Vol. 2B SYSCALL, SYSENTER, SWAPGS, SYSRET; Vol. 2C SYSEXIT) loads CS and
SS with fixed flat descriptors and does not read the GDT; the monitor loads the
selectors from the guest's GDT, so a guest whose GDT does not hold the matching
flat segments (as every operating system's does) would see them differ.
"""

from __future__ import annotations

from unicorn import x86_const as U

from dbt.monitor import privilege
from dbt.monitor.handlers import handles
from dbt.monitor.machine import EFER_MSR
from dbt.monitor.monitor import GuestException, Monitor
from dbt.scanner import Insn

_UD, _GP = 6, 13
SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP = 0x174, 0x175, 0x176
STAR, LSTAR, FMASK, KERNEL_GS_BASE = 0xC0000081, 0xC0000082, 0xC0000084, 0xC0000102
EFER_SCE = 1
#: what sysret loads into RFLAGS from R11 (SDM Vol. 2B SYSRET: R11 & 3C7FD7H, bit 1 set)
_SYSRET_FLAGS = 0x3C7FD7


def _msr(mon: Monitor, index: int) -> int:
    return mon.uc.reg_read(U.UC_X86_REG_MSR, index)


def _canonical(addr: int) -> bool:
    return addr < 1 << 47 or addr >= (1 << 64) - (1 << 47)


def _rex_w(insn: Insn) -> bool:
    """The REX.W forms return to 64-bit code (capstone names them sysexitq, sysretq)."""
    return insn.name.endswith("q")


# --- sysenter / sysexit (SDM Vol. 2B SYSENTER, Vol. 2C SYSEXIT) ----------------------------------
@handles("sysenter")
def sysenter(mon: Monitor, insn: Insn):
    cs = _msr(mon, SYSENTER_CS) & 0xFFFC
    if cs == 0:
        raise GuestException(_GP, "sysenter with IA32_SYSENTER_CS null", error_code=0)
    privilege.enter(mon, cs, cs + 8)  # (first: it may fail)
    flags = mon.guest_eflags()
    mon.set_guest_eflags(flags & ~(privilege.FLAG_VM | privilege.FLAG_IF | privilege.FLAG_RF))
    mon.uc.reg_write(mon.machine.sp_reg, _msr(mon, SYSENTER_ESP) & mon.mask)
    return _msr(mon, SYSENTER_EIP) & mon.mask


@handles("sysexit", "sysexitq")
def sysexit(mon: Monitor, insn: Insn):
    base = _msr(mon, SYSENTER_CS) & 0xFFFF
    if base & 0xFFFC == 0 or mon.cpl() != 0:
        raise GuestException(_GP, f"sysexit at CPL {mon.cpl()} or with IA32_SYSENTER_CS null",
                             error_code=0)
    wide = mon.bits == 64 and _rex_w(insn)
    cs, ss = ((base + 32) | 3, (base + 40) | 3) if wide else ((base + 16) | 3, (base + 24) | 3)
    ip, sp = mon.reg("rdx" if wide else "edx"), mon.reg("rcx" if wide else "ecx")
    if wide and not (_canonical(ip) and _canonical(sp)):
        raise GuestException(_GP, "sysexit to a non-canonical address", error_code=0)
    privilege.enter(mon, cs & 0xFFFF, ss & 0xFFFF)  # (no data segment is nulled)
    mon.uc.reg_write(mon.machine.sp_reg, sp)
    return ip


# --- syscall / sysret (SDM Vol. 2B SYSCALL, SYSRET) -----------------------------------------------
def _check_syscall(mon: Monitor, what: str) -> None:
    if mon.bits != 64:  # (compatibility mode is not run by dbt's guests)
        raise GuestException(_UD, f"{what} outside 64-bit mode")
    if not _msr(mon, EFER_MSR) & EFER_SCE:
        raise GuestException(_UD, f"{what} with EFER.SCE clear")


@handles("syscall")
def syscall(mon: Monitor, insn: Insn):
    _check_syscall(mon, "syscall")
    cs = (_msr(mon, STAR) >> 32) & 0xFFFC
    privilege.enter(mon, cs, cs + 8)  # (first: it may fail)
    flags = mon.guest_eflags()
    mon.set_reg("rcx", insn.next)
    mon.set_reg("r11", flags)
    mon.set_guest_eflags(flags & ~_msr(mon, FMASK) & 0xFFFFFFFF)
    return _msr(mon, LSTAR)


@handles("sysret", "sysretq")
def sysret(mon: Monitor, insn: Insn):
    _check_syscall(mon, "sysret")
    if mon.cpl() != 0:
        raise GuestException(_GP, f"sysret at CPL {mon.cpl()}", error_code=0)
    wide = _rex_w(insn)
    ip = mon.reg("rcx") if wide else mon.reg("ecx")
    if not _canonical(ip):
        raise GuestException(_GP, f"sysret to the non-canonical address {ip:#x}", error_code=0)
    base = (_msr(mon, STAR) >> 48) & 0xFFFF
    cs = ((base + 16) if wide else base) | 3
    privilege.enter(mon, cs & 0xFFFF, ((base + 8) | 3) & 0xFFFF)
    mon.set_guest_eflags((mon.reg("r11") & _SYSRET_FLAGS) | 2)
    return ip


# --- swapgs (SDM Vol. 2B SWAPGS) ----------------------------------------------------------------
@handles("swapgs")
def swapgs(mon: Monitor, insn: Insn):
    if mon.bits != 64:
        raise GuestException(_UD, "swapgs outside 64-bit mode")
    if mon.cpl() != 0:
        raise GuestException(_GP, f"swapgs at CPL {mon.cpl()}", error_code=0)
    gs, kernel = mon.uc.reg_read(U.UC_X86_REG_GS_BASE), _msr(mon, KERNEL_GS_BASE)
    mon.uc.reg_write(U.UC_X86_REG_GS_BASE, kernel)
    mon.uc.reg_write(U.UC_X86_REG_MSR, (KERNEL_GS_BASE, gs))
