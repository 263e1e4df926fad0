"""Emulation of privileged and sensitive instructions on the virtual CPU.

One handler per capstone instruction name, shared by every engine that needs
it (``interp`` dispatches to them, ``bt`` reaches them through callouts). A
handler gets the monitor and the instruction decoded with operands, does what
the instruction does to the *virtual* CPU, and returns the guest pc to continue
at (None: the next instruction). It raises :class:`GuestException` for a fault.

Behaviour follows the Intel SDM Vol. 2 instruction pages; where unicorn (QEMU)
resolves an SDM "undefined" case, the handler does the same, so that ``hw``
(where unicorn runs the instruction itself) and the monitor agree.

Privilege: every handler checks the guest's CPL (the virtual CPU's under
``interp`` and ``bt``, whose real CPU stays at ring 0): a privileged instruction
at CPL > 0 raises #GP(0), the IOPL-sensitive ones (``cli``, ``sti``, port I/O)
compare CPL with IOPL, and ``popf``/``iret`` keep IF and IOPL where the CPL does
not allow changing them. Ring transitions (``iret``/``retf`` to an outer ring)
are in :mod:`dbt.monitor.privilege`; ``sysenter``/``sysexit``,
``syscall``/``sysret`` and ``swapgs`` in :mod:`dbt.monitor.fastcalls`.

Not emulated yet (the guest gets a #GP or #UD naming the instruction): task
switches, call gates, far jumps and calls that change privilege, VMX/SVM/SGX.
"""

from __future__ import annotations

from collections.abc import Callable

from unicorn import UcError
from unicorn import x86_const as U

from dbt.monitor import cpuid as cpuid_model
from dbt.monitor import privilege
from dbt.monitor.machine import CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR4_PAE, CR4_PSE, EFER_MSR
from dbt.monitor.monitor import GuestException, Monitor
from dbt.scanner import Insn

Handler = Callable[[Monitor, Insn], "int | None"]
HANDLERS: dict[str, Handler] = {}

_UD, _GP = 6, 13
FLAG_DF = 1 << 10
FLAG_ZF = 1 << 6
# EFLAGS bits popf may change at any CPL besides the arithmetic ones (SDM Vol. 2B, POPF);
# IF and IOPL depend on CPL and IOPL (privilege.popf_mask)
_ARITH = privilege.ARITH  # CF PF AF ZF SF OF, DF
_POPF_ANY = privilege.IRET_ALWAYS  # TF NT AC ID


def handles(*names: str):
    def register(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn
    return register


def _opsize(insn: Insn, default: int) -> int:
    return 2 if 0x66 in insn.prefixes else default


# --- interrupt flag and EFLAGS (SDM Vol. 2A CLI/STI, Vol. 2B PUSHF/POPF) -----------------------
def _check_iopl(mon: Monitor, insn: Insn) -> None:
    if mon.vcpu.cpl > mon.vcpu.iopl:
        raise GuestException(_GP, f"{insn.mnemonic} at CPL {mon.vcpu.cpl} > IOPL", error_code=0)


@handles("cli")
def cli(mon: Monitor, insn: Insn):
    _check_iopl(mon, insn)
    mon.vcpu.eflags_virtual &= ~(1 << 9)


@handles("sti")
def sti(mon: Monitor, insn: Insn):
    _check_iopl(mon, insn)
    mon.vcpu.eflags_virtual |= 1 << 9


@handles("pushf", "pushfd", "pushfq")
def pushf(mon: Monitor, insn: Insn):
    size = _opsize(insn, 8 if mon.bits == 64 else 4)
    mon.push(mon.guest_eflags() & ~((1 << 16) | (1 << 17)), size)  # RF and VM read as 0


@handles("popf", "popfd", "popfq")
def popf(mon: Monitor, insn: Insn):
    size = _opsize(insn, 8 if mon.bits == 64 else 4)
    value = mon.pop(size)
    vcpu = mon.vcpu
    mask = _POPF_ANY | privilege.popf_mask(vcpu.cpl, vcpu.iopl)
    if size == 2:
        mask &= 0xFFFF
    old = mon.guest_eflags()
    new = (old & ~(mask | _ARITH)) | (value & (mask | _ARITH))
    mon.set_guest_eflags(new)


# --- port I/O (SDM Vol. 1 §19, Vol. 2A IN/INS, Vol. 2B OUT/OUTS) --------------------------------
@handles("in")
def in_(mon: Monitor, insn: Insn):
    dst, src = insn.operands
    port = mon.read_operand(insn, 1) & 0xFFFF
    privilege.check_io(mon, port, dst.size, insn.mnemonic)
    mon.write_operand(insn, 0, mon.io_in(port, dst.size))


@handles("out")
def out(mon: Monitor, insn: Insn):
    port = mon.read_operand(insn, 0) & 0xFFFF
    privilege.check_io(mon, port, insn.operands[1].size, insn.mnemonic)
    mon.io_out(port, insn.operands[1].size, mon.read_operand(insn, 1))


def _string_step(mon: Monitor, insn: Insn, body: Callable[[int], None]) -> int | None:
    """One iteration of a string instruction; with rep, stay on it while the count is not 0.

    unicorn counts every iteration of a rep instruction as one instruction (and a
    rep with a zero count as one), so one call is one iteration in every engine.
    """
    creg = "rcx" if mon.bits == 64 else "ecx"
    step = -1 if mon.guest_eflags() & FLAG_DF else 1
    if insn.rep:
        count = mon.reg(creg)
        if count == 0:
            return None
        body(step)
        mon.set_reg(creg, count - 1)
        return insn.address if count - 1 else None
    body(step)
    return None


@handles("insb", "insw", "insd")
def ins(mon: Monitor, insn: Insn):
    size = insn.operands[0].size
    privilege.check_io(mon, mon.reg("dx"), size, insn.mnemonic)
    di = "rdi" if mon.bits == 64 else "edi"

    def body(step: int) -> None:
        addr = mon.reg(di)
        mon.write_int(addr, size, mon.io_in(mon.reg("dx"), size))
        mon.set_reg(di, (addr + step * size) & mon.mask)
    return _string_step(mon, insn, body)


@handles("outsb", "outsw", "outsd")
def outs(mon: Monitor, insn: Insn):
    size = insn.operands[1].size
    privilege.check_io(mon, mon.reg("dx"), size, insn.mnemonic)
    si = "rsi" if mon.bits == 64 else "esi"

    def body(step: int) -> None:
        addr = mon.effective_address(insn, insn.operands[1].mem)
        mon.io_out(mon.reg("dx"), size, mon.read_int(addr, size))
        mon.set_reg(si, (mon.reg(si) + step * size) & mon.mask)
    return _string_step(mon, insn, body)


# --- halting, identification, time ------------------------------------------------------------
@handles("hlt")
def hlt(mon: Monitor, insn: Insn):
    if mon.vcpu.cpl != 0:
        raise GuestException(_GP, "hlt at CPL > 0", error_code=0)
    # wait for an interrupt; with IF clear (or none to come) the run ends, the pc
    # past the hlt as on hardware. The hlt itself has retired when the wait starts.
    mon.icount += 1
    try:
        handler = mon.halt(insn.next)
    finally:
        mon.icount -= 1
    return handler


@handles("cpuid")
def cpuid(mon: Monitor, insn: Insn):
    a, b, c, d = cpuid_model.cpuid(mon.reg("eax"), mon.reg("ecx"), mon.bits)
    for name, v in (("eax", a), ("ebx", b), ("ecx", c), ("edx", d)):
        _set32(mon, name, v)


def _set32(mon: Monitor, name: str, value: int) -> None:
    """Write a 32-bit result; in 64-bit mode it zero-extends into the full register."""
    mon.set_reg("r" + name[1:] if mon.bits == 64 else name, value & 0xFFFFFFFF)


def _check_tsd(mon: Monitor, insn: Insn) -> None:
    if mon.vcpu.cr4 & (1 << 2) and mon.vcpu.cpl != 0:  # CR4.TSD
        raise GuestException(_GP, f"{insn.mnemonic} at CPL {mon.vcpu.cpl} with CR4.TSD set",
                             error_code=0)


@handles("rdtsc")
def rdtsc(mon: Monitor, insn: Insn):
    _check_tsd(mon, insn)
    tsc = mon.virtual_tsc()
    _set32(mon, "eax", tsc)
    _set32(mon, "edx", tsc >> 32)


@handles("rdtscp")
def rdtscp(mon: Monitor, insn: Insn):
    rdtsc(mon, insn)
    _set32(mon, "ecx", mon.vcpu.msrs.get(0xC0000103, 0))


# --- control and debug registers (SDM Vol. 2B MOV—Move to/from Control Registers) --------------
_CR_REG = {"cr0": U.UC_X86_REG_CR0, "cr2": U.UC_X86_REG_CR2, "cr3": U.UC_X86_REG_CR3,
           "cr4": U.UC_X86_REG_CR4, "cr8": U.UC_X86_REG_CR8}


def _privileged(mon: Monitor, insn: Insn) -> None:
    if mon.vcpu.cpl != 0:
        raise GuestException(_GP, f"{insn.mnemonic} at CPL {mon.vcpu.cpl}", error_code=0)


@handles("mov")
def mov_special(mon: Monitor, insn: Insn):
    """mov to/from CRn, DRn and segment registers (the ISA table sends only those here)."""
    dst, src = insn.operands
    if dst.kind == "reg" and dst.reg in _SEGS:
        return load_segment(mon, insn, dst.reg, mon.read_operand(insn, 1) & 0xFFFF)
    if src.kind == "reg" and src.reg in _SEGS:
        sel = getattr(mon.vcpu, src.reg)
        mon.write_operand(insn, 0, sel if dst.kind == "reg" else sel & 0xFFFF)
        return None
    _privileged(mon, insn)
    if dst.reg.startswith("cr") or src.reg.startswith("cr"):
        if dst.reg.startswith("cr"):
            write_cr(mon, dst.reg, mon.reg(src.reg))
        else:
            mon.set_reg(dst.reg, getattr(mon.vcpu, src.reg))
        return None
    if dst.reg.startswith("dr"):
        mon.vcpu.dr[int(dst.reg[2:])] = mon.reg(src.reg)
    else:
        mon.set_reg(dst.reg, mon.vcpu.dr[int(src.reg[2:])])
    return None


#: control-register bits translations depend on (SDM Vol. 3A §4.1); a CR3 write always
#: flushes. Writes that change none of them (CR0.TS at a context switch, CR2) leave the
#: guest's mappings, and the monitor's copies of them, alone.
_PAGING_BITS = {"cr0": CR0_PE | CR0_WP | CR0_PG,
                "cr4": CR4_PSE | CR4_PAE | (1 << 7) | (1 << 12) | (1 << 20) | (1 << 21)
                | (1 << 22)}  # PSE PAE PGE LA57 SMEP SMAP PKE


def write_cr(mon: Monitor, name: str, value: int) -> None:
    """Set a control register of the virtual CPU and of the machine that runs the guest."""
    if name not in _CR_REG:
        raise GuestException(_UD, f"mov to {name}")
    if name == "cr0" and mon.bits == 64 and not value & (1 << 31):
        raise GuestException(_GP, "clearing CR0.PG in long mode", error_code=0)
    old = getattr(mon.vcpu, name)
    try:
        mon.uc.reg_write(_CR_REG[name], value)
    except UcError as e:
        raise GuestException(_GP, f"mov {name}, {value:#x}: {e}", error_code=0) from None
    setattr(mon.vcpu, name, value)  # unicorn flushes its TLB itself on CR0/CR3/CR4 writes
    mon.machine.forget_paging()
    if name == "cr3" or (old ^ value) & _PAGING_BITS.get(name, 0):
        mon.mapping_changed()


@handles("lmsw")
def lmsw(mon: Monitor, insn: Insn):
    _privileged(mon, insn)
    v = mon.read_operand(insn, 0)
    write_cr(mon, "cr0", (mon.vcpu.cr0 & ~0xE) | (v & 0xF))  # PE can be set, never cleared


@handles("smsw")
def smsw(mon: Monitor, insn: Insn):
    # a register destination receives CR0 at operand size; memory receives 16 bits
    op = insn.operands[0]
    mon.write_operand(insn, 0, mon.vcpu.cr0 if op.kind == "reg" else mon.vcpu.cr0 & 0xFFFF)


@handles("clts")
def clts(mon: Monitor, insn: Insn):
    _privileged(mon, insn)
    write_cr(mon, "cr0", mon.vcpu.cr0 & ~CR0_TS)


# --- descriptor tables (SDM Vol. 2A LGDT/LIDT, Vol. 2B SGDT/SIDT, SLDT, STR, LLDT, LTR) --------
def _table_operand(mon: Monitor, insn: Insn) -> int:
    return mon.effective_address(insn, insn.operands[0].mem)


@handles("lgdt", "lidt")
def lgdt(mon: Monitor, insn: Insn):
    _privileged(mon, insn)
    addr = _table_operand(mon, insn)
    limit = mon.read_int(addr, 2)
    base = mon.read_int(addr + 2, 8 if mon.bits == 64 else 4)
    if mon.bits == 32 and 0x66 in insn.prefixes:
        base &= 0xFFFFFF
    table = mon.vcpu.gdtr if insn.name == "lgdt" else mon.vcpu.idtr
    table.base, table.limit = base, limit
    mon.uc.reg_write(U.UC_X86_REG_GDTR if insn.name == "lgdt" else U.UC_X86_REG_IDTR,
                     (0, base, limit, 0))


@handles("sgdt", "sidt")
def sgdt(mon: Monitor, insn: Insn):
    addr = _table_operand(mon, insn)
    table = mon.vcpu.gdtr if insn.name == "sgdt" else mon.vcpu.idtr
    base = table.base & (0xFFFFFF if (mon.bits == 32 and 0x66 in insn.prefixes) else mon.mask)
    mon.write_int(addr, 2, table.limit)
    mon.write_int(addr + 2, 8 if mon.bits == 64 else 4, base)


@handles("sldt", "str")
def sldt(mon: Monitor, insn: Insn):
    sel = mon.vcpu.ldtr if insn.name == "sldt" else mon.vcpu.tr
    mon.write_operand(insn, 0, sel)


@handles("lldt", "ltr")
def lldt(mon: Monitor, insn: Insn):
    _privileged(mon, insn)
    sel = mon.read_operand(insn, 0) & 0xFFFF
    if sel & ~3 and not mon.descriptor(sel):
        raise GuestException(_GP, f"{insn.name} {sel:#x}: selector outside the GDT",
                             error_code=sel & ~3)
    if insn.name == "lldt":
        mon.vcpu.ldtr = sel
    else:
        _ltr(mon, sel)


def _ltr(mon: Monitor, sel: int) -> None:
    """Load TR with an available TSS and mark it busy in the GDT (SDM Vol. 2A, LTR). A null
    selector loads an unusable TR, as QEMU does (the SDM says #GP(0))."""
    if sel & ~3:
        desc = mon.descriptor(sel)
        kind = (desc >> 40) & 0x1F  # S and type
        if kind not in (privilege.TSS_16, privilege.TSS_32):
            raise GuestException(_GP, f"ltr {sel:#x}: not an available TSS (type {kind:#x})",
                                 error_code=sel & ~3)
        if not privilege.present(desc):
            raise GuestException(11, f"ltr {sel:#x}: TSS not present", error_code=sel & ~3)
        _, base, gdt_limit, _ = mon.machine.fast.mmr(U.UC_X86_REG_GDTR)
        if mon.bits == 64 and ((sel & ~7) + 15 > gdt_limit
                               or mon.read_int(base + (sel & ~7) + 13, 1, system=True) & 0xF):
            raise GuestException(_GP, f"ltr {sel:#x}: not a 16-byte 64-bit TSS descriptor",
                                 error_code=sel & ~3)
        mon.write_int(base + (sel & ~7) + 5, 1, (desc >> 40) | 2, system=True)  # busy
    mon.vcpu.tr = sel


# --- segments (SDM Vol. 3A §3.4, Vol. 2B MOV, PUSH, POP; LAR, LSL, VERR/VERW) --------------------
_SEGS = ("cs", "ds", "es", "fs", "gs", "ss")
_ACCESSED = 1 << 40
_UC_SEG = {"cs": U.UC_X86_REG_CS, "ds": U.UC_X86_REG_DS, "es": U.UC_X86_REG_ES,
           "fs": U.UC_X86_REG_FS, "gs": U.UC_X86_REG_GS, "ss": U.UC_X86_REG_SS}


def load_segment(mon: Monitor, insn: Insn, seg: str, sel: int):
    """A data or stack segment load, with the checks of SDM Vol. 2B MOV (in unicorn's order)."""
    if seg == "cs":
        raise GuestException(_UD, "mov to cs")
    cpl = mon.vcpu.cpl
    null = sel & ~3 == 0
    if null and seg == "ss" and (mon.bits == 32 or cpl == 3):
        raise GuestException(_GP, "null selector loaded into ss", error_code=0)
    if not null:
        desc = mon.descriptor(sel)
        if desc is None or not desc & (1 << 44):
            raise GuestException(_GP, f"selector {sel:#x} is outside the GDT or names a system "
                                      "segment", error_code=sel & ~3)
        rpl, dpl = sel & 3, privilege.dpl(desc)
        if seg == "ss":
            bad = not privilege.is_writable_data(desc) or rpl != cpl or dpl != cpl
        else:
            bad = not privilege.is_readable(desc) or (
                not privilege.is_conforming_code(desc) and (dpl < cpl or dpl < rpl))
        if bad:
            raise GuestException(_GP, f"{seg} cannot be loaded with {sel:#x} at CPL {cpl}",
                                 error_code=sel & ~3)
        if not privilege.present(desc):
            raise GuestException(12 if seg == "ss" else 11, f"segment {sel:#x} not present",
                                 error_code=sel & ~3)
    if seg != "ss" or cpl == 0:  # the real CPU stays at ring 0: see dbt.monitor.privilege
        try:
            mon.uc.reg_write(_UC_SEG[seg], sel)
        except UcError:
            raise GuestException(_GP, f"cannot load {seg} with {sel:#x}",
                                 error_code=sel & ~3) from None
    setattr(mon.vcpu, seg, sel)
    if not null and not desc & _ACCESSED:
        # the CPU marks the descriptor accessed (SDM Vol. 3A §3.4.5.1); unicorn's
        # register write does it in 32-bit mode but not in 64-bit mode
        _, base, _, _ = mon.machine.fast.mmr(U.UC_X86_REG_GDTR)
        mon.write_int(base + (sel & ~7) + 5, 1, (desc >> 40) | 1, system=True)
    return None


@handles("push")
def push_seg(mon: Monitor, insn: Insn):
    size = _opsize(insn, 8 if mon.bits == 64 else 4)
    mon.push(getattr(mon.vcpu, insn.operands[0].reg), size)


@handles("pop")
def pop_seg(mon: Monitor, insn: Insn):
    size = _opsize(insn, 8 if mon.bits == 64 else 4)
    sp = mon.uc.reg_read(mon.machine.sp_reg)
    sel = mon.read_int(sp, size) & 0xFFFF
    load_segment(mon, insn, insn.operands[0].reg, sel)
    mon.uc.reg_write(mon.machine.sp_reg, (sp + size) & mon.mask)


@handles("lar", "lsl", "verr", "verw")
def lar(mon: Monitor, insn: Insn):
    src = 1 if insn.name in ("lar", "lsl") else 0
    sel = mon.read_operand(insn, src) & 0xFFFF
    desc = mon.descriptor(sel)
    ok = desc is not None and bool(desc & (1 << 47))
    if ok and desc & (1 << 44) and not privilege.is_conforming_code(desc):
        # a segment more privileged than CPL or RPL is not visible (SDM Vol. 3A §5.10.1)
        ok = privilege.dpl(desc) >= max(mon.vcpu.cpl, sel & 3)
    eflags = mon.guest_eflags() & ~FLAG_ZF
    if ok:
        eflags |= FLAG_ZF
        if insn.name == "lar":
            mon.write_operand(insn, 0, (desc >> 32) & 0x00F0FF00)
        elif insn.name == "lsl":
            limit = (desc & 0xFFFF) | ((desc >> 32) & 0xF0000)
            if desc & (1 << 55):
                limit = (limit << 12) | 0xFFF
            mon.write_operand(insn, 0, limit)
    mon.set_guest_eflags(eflags)


# --- far transfers, interrupts (SDM Vol. 2A JMP/CALL, Vol. 2B RET, INT n, IRET) -----------------
@handles("ljmp", "lcall")
def far_branch(mon: Monitor, insn: Insn):
    ops = insn.operands
    size = _opsize(insn, 4)
    if ops[0].kind == "imm":  # ptr16:32
        sel, off = ops[0].imm & 0xFFFF, ops[1].imm
    else:  # m16:32
        addr = mon.effective_address(insn, ops[0].mem)
        off = mon.read_int(addr, size)
        sel = mon.read_int(addr + size, 2)
    if insn.name == "lcall":
        mon.push(mon.vcpu.cs, size)
        mon.push(insn.next, size)
    _load_cs(mon, sel)
    return off


def _load_cs(mon: Monitor, sel: int) -> None:
    if sel & 3 != mon.vcpu.cpl:
        raise GuestException(_GP, f"far transfer to {sel:#x} changes privilege (not emulated)",
                             error_code=sel & ~3)
    desc = mon.descriptor(sel)
    if desc is None or not desc & (1 << 43):
        raise GuestException(_GP, f"far transfer to {sel:#x}: not a code segment",
                             error_code=sel & ~3)
    if not desc & (1 << 47):
        raise GuestException(11, f"code segment {sel:#x} not present", error_code=sel & ~3)
    try:
        mon.load_cs(sel)
    except UcError:
        raise GuestException(_GP, f"cannot load cs with {sel:#x}", error_code=sel & ~3) from None


@handles("retf", "retfq")
def retf(mon: Monitor, insn: Insn):
    size = 8 if insn.name == "retfq" else _opsize(insn, 4)
    release = insn.operands[0].imm & 0xFFFF if insn.operands else 0
    return privilege.far_return(mon, size, iret=False, release=release)


@handles("int", "int3", "into", "int1")
def int_n(mon: Monitor, insn: Insn):
    if insn.name == "into":
        if not mon.guest_eflags() & (1 << 11):
            return None
        vector = 4
    else:
        vector = {"int3": 3, "int1": 1}.get(insn.name) or insn.operands[0].imm & 0xFF
    # a trap: the saved pc is the next instruction
    raise GuestException(vector, f"{insn.mnemonic} {insn.op_str}".strip(), trap=True)


@handles("iret", "iretd", "iretq")
def iret(mon: Monitor, insn: Insn):
    size = 8 if insn.name == "iretq" else (2 if insn.name == "iret" and 0x66 in insn.prefixes
                                           else 4)
    return privilege.far_return(mon, size, iret=True)


# --- caches, TLB, MSRs, extended state ------------------------------------------------------
@handles("invlpg")
def invlpg(mon: Monitor, insn: Insn):
    """Invalidate one page's translation. unicorn has no per-page flush for the
    machine's TLB: it is flushed whole (a hardware TLB may always drop more)."""
    _privileged(mon, insn)
    page = mon.effective_address(insn, insn.operands[0].mem) & ~0xFFF
    mon.machine.flush_tlb()
    mon.mapping_changed(page)


@handles("wbinvd", "invd")
def wbinvd(mon: Monitor, insn: Insn):
    _privileged(mon, insn)


#: MSRs the virtual CPU implements (SDM Vol. 4, Table 2-2); others raise #GP
KNOWN_MSRS = {0x10: "IA32_TIME_STAMP_COUNTER", 0x1B: "IA32_APIC_BASE", 0x174: "IA32_SYSENTER_CS",
              0x175: "IA32_SYSENTER_ESP", 0x176: "IA32_SYSENTER_EIP", 0x277: "IA32_PAT",
              EFER_MSR: "IA32_EFER", 0xC0000081: "IA32_STAR", 0xC0000082: "IA32_LSTAR",
              0xC0000083: "IA32_CSTAR", 0xC0000084: "IA32_FMASK", 0xC0000100: "IA32_FS_BASE",
              0xC0000101: "IA32_GS_BASE", 0xC0000102: "IA32_KERNEL_GS_BASE",
              0xC0000103: "IA32_TSC_AUX"}


@handles("rdmsr")
def rdmsr(mon: Monitor, insn: Insn):
    _privileged(mon, insn)
    idx = mon.reg("ecx") & 0xFFFFFFFF
    if idx not in KNOWN_MSRS:
        raise GuestException(_GP, f"rdmsr of unknown MSR {idx:#x}", error_code=0)
    value = mon.virtual_tsc() if idx == 0x10 else mon.uc.reg_read(U.UC_X86_REG_MSR, idx)
    _set32(mon, "eax", value)
    _set32(mon, "edx", value >> 32)


@handles("wrmsr")
def wrmsr(mon: Monitor, insn: Insn):
    _privileged(mon, insn)
    idx = mon.reg("ecx") & 0xFFFFFFFF
    if idx not in KNOWN_MSRS or idx == 0x10:
        raise GuestException(_GP, f"wrmsr of unsupported MSR {idx:#x}", error_code=0)
    value = (mon.reg("edx") & 0xFFFFFFFF) << 32 | (mon.reg("eax") & 0xFFFFFFFF)
    mon.uc.reg_write(U.UC_X86_REG_MSR, (idx, value))
    mon.vcpu.msrs[idx] = value
    if idx == EFER_MSR:
        mon.vcpu.efer = mon.uc.reg_read(U.UC_X86_REG_MSR, EFER_MSR)
        mon.machine.flush_tlb()  # NXE changes what a walk allows
        mon.mapping_changed()


@handles("xgetbv")
def xgetbv(mon: Monitor, insn: Insn):
    if not mon.vcpu.cr4 & (1 << 18):
        raise GuestException(_UD, "xgetbv with CR4.OSXSAVE clear")
    if mon.reg("ecx") & 0xFFFFFFFF != 0:
        raise GuestException(_GP, "xgetbv of an unknown XCR", error_code=0)
    _set32(mon, "eax", mon.vcpu.xcr0)
    _set32(mon, "edx", 0)


def unsupported(mon: Monitor, insn: Insn):
    raise GuestException(_UD, f"{insn.mnemonic} {insn.op_str}".strip()
                         + " is not emulated by the monitor")


def handler_for(insn: Insn) -> Handler:
    return HANDLERS.get(insn.name, unsupported)


from dbt.monitor import fastcalls  # noqa: F401  (registers its handlers)
