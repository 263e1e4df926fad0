"""Ring transitions and privilege checks of the monitor, on the virtual CPU of ``interp``.

The differential test runs whole ring-3 guests (``guests/sys/usermode.c``,
``guests/asm/ring3_*.s``) under every engine; these tests pin the rules one at a
time, each with the state the hardware must leave when a check fails.
"""

from __future__ import annotations

import struct

import pytest
from unicorn import x86_const as U

from dbt.loader import Arch, Image, Segment
from dbt.monitor import cpustate, privilege
from dbt.monitor.handlers import handler_for
from dbt.monitor.monitor import GuestException, Monitor, RunConfig

RAM = 2 << 20
GDT, TSS, CODE = 0x1000, 0x2000, 0x100000
KERNEL_CS, KERNEL_DS, USER_CS, USER_DS, TSS_SEL = 0x08, 0x10, 0x1B, 0x23, 0x28


def _tss_descriptor(base: int, limit: int) -> int:
    return (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89 << 40) | ((base >> 24) << 56)


def monitor(tss_limit: int = 103, io_map: int = 104) -> Monitor:
    """A 32-bit interp monitor at ring 0 with ring-3 segments and a TSS (TR loaded)."""
    image = Image("<test>", "raw", Arch.X86_32, CODE, (Segment(CODE, b"\x90", 1),))
    mon = Monitor(image, "interp", RunConfig(), RAM)
    gdt = [0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF, 0x00CFFB000000FFFF, 0x00CFF3000000FFFF,
           _tss_descriptor(TSS, tss_limit)]
    mon.uc.mem_write(GDT, struct.pack(f"<{len(gdt)}Q", *gdt))
    mon.uc.reg_write(U.UC_X86_REG_GDTR, (0, GDT, 8 * len(gdt) - 1, 0))
    mon.vcpu.gdtr.base, mon.vcpu.gdtr.limit = GDT, 8 * len(gdt) - 1
    mon.uc.mem_write(TSS + 4, struct.pack("<II", 0x90000, KERNEL_DS))  # ESP0, SS0
    mon.uc.mem_write(TSS + 0x66, struct.pack("<H", io_map))
    for seg, sel in (("cs", KERNEL_CS), ("ss", KERNEL_DS), ("ds", KERNEL_DS)):
        mon.uc.reg_write(privilege.SEGMENT_REGS[seg], sel)
        setattr(mon.vcpu, seg, sel)
    mon.vcpu.tr = TSS_SEL
    mon.uc.reg_write(U.UC_X86_REG_ESP, 0x80000)
    return mon


def run(mon: Monitor, code: str):
    insn = mon.decoder.decode(CODE, bytes.fromhex(code), detail=True)
    return handler_for(insn)(mon, insn)


def push_frame(mon: Monitor, *words: int) -> None:
    """Words as iret pops them (ip first) at the stack pointer."""
    sp = mon.uc.reg_read(U.UC_X86_REG_ESP)
    mon.uc.mem_write(sp, struct.pack(f"<{len(words)}I", *words))


def test_cpl_field_is_found_once():
    """The probe of unicorn's CPL field checks itself (a wrong field would leave cli
    faulting at ring 0); it is found once per process and differs from the others."""
    assert cpustate.cpl_offset() == cpustate.cpl_offset()
    assert cpustate.cpl_offset() not in cpustate.offsets()


@pytest.mark.parametrize("cpl, iopl, mask", [
    (0, 0, 0x3200), (0, 3, 0x3200), (1, 2, 0x200), (3, 3, 0x200), (3, 0, 0), (2, 1, 0)])
def test_popf_mask(cpl, iopl, mask):
    """popf and iret change IOPL only at CPL 0, and IF only while CPL <= IOPL."""
    assert privilege.popf_mask(cpl, iopl) == mask


def test_iret_to_ring3_loads_ss_esp_and_nulls_ring0_data_segments():
    mon = monitor()
    push_frame(mon, 0x123456, USER_CS, 0x3202, 0x70000, USER_DS)  # IOPL 3, IF
    assert run(mon, "cf") == 0x123456
    assert (mon.vcpu.cs, mon.vcpu.ss, mon.cpl()) == (USER_CS, USER_DS, 3)
    assert mon.uc.reg_read(U.UC_X86_REG_ESP) == 0x70000
    assert mon.vcpu.ds == 0 and mon.uc.reg_read(U.UC_X86_REG_DS) == 0  # DPL 0 < CPL 3
    assert mon.guest_eflags() & 0x3200 == 0x3200  # loaded at CPL 0


def test_retf_to_ring3_releases_parameters_on_both_stacks():
    """retf imm16 to an outer ring adds imm16 to the inner stack pointer before popping
    SS:ESP and to the outer one after (SDM Vol. 2B, RET)."""
    mon = monitor()
    push_frame(mon, 0x1000, USER_CS, 0xAAAA, 0xBBBB, 0x70000, USER_DS)  # 8 bytes of params
    assert run(mon, "ca0800") == 0x1000
    assert (mon.vcpu.cs, mon.vcpu.ss) == (USER_CS, USER_DS)
    assert mon.uc.reg_read(U.UC_X86_REG_ESP) == 0x70008


def test_iret_at_ring3_keeps_if_and_iopl():
    mon = monitor()
    push_frame(mon, 0x1000, USER_CS, 0x202, 0x70000, USER_DS)
    run(mon, "cf")
    push_frame(mon, 0x2000, USER_CS, 0x3001, 0x60000, USER_DS)  # IF clear, IOPL 3, CF
    assert run(mon, "cf") == 0x2000
    assert mon.guest_eflags() & 0x3201 == 0x201


@pytest.mark.parametrize("ss, code", [(0x20, 0x20), (USER_CS, 0x18), (KERNEL_DS | 3, 0x10),
                                      (0, 0)])
def test_iret_to_ring3_with_a_bad_ss_faults_and_changes_nothing(ss, code):
    """SS must be a writable data segment whose DPL and RPL are the new CPL (#GP(ss)):
    not RPL 0, not a code segment, not a ring-0 segment; a null SS is #GP(0). Nothing
    is popped or loaded."""
    mon = monitor()
    push_frame(mon, 0x1000, USER_CS, 0x202, 0x70000, ss)
    with pytest.raises(GuestException) as e:
        run(mon, "cf")
    assert (e.value.vector, e.value.error_code) == (13, code)
    assert mon.uc.reg_read(U.UC_X86_REG_ESP) == 0x80000
    assert (mon.vcpu.cs, mon.vcpu.ss, mon.vcpu.ds) == (KERNEL_CS, KERNEL_DS, KERNEL_DS)


def _to_ring3(mon: Monitor, flags: int = 0x202) -> None:
    push_frame(mon, 0x1000, USER_CS, flags, 0x70000, USER_DS)
    run(mon, "cf")


@pytest.mark.parametrize("code, what", [
    ("f4", "hlt"), ("0f20c0", "mov from cr0"), ("0f30", "wrmsr"), ("0f32", "rdmsr"),
    ("0f01 15 00000000", "lgdt"), ("0f35", "sysexit"), ("fa", "cli"), ("fb", "sti"),
    ("e421", "in"), ("e621", "out"), ("6c", "insb"), ("0f09", "wbinvd"), ("0f00d8", "ltr")])
def test_privileged_and_iopl_sensitive_instructions_fault_at_ring3(code, what):
    mon = monitor()
    _to_ring3(mon)
    with pytest.raises(GuestException) as e:
        run(mon, code.replace(" ", ""))
    assert (e.value.vector, e.value.error_code) == (13, 0), what


def test_io_bitmap_allows_its_ports_at_ring3():
    mon = monitor(tss_limit=104 + 0x400 // 8, io_map=104)
    mon.uc.mem_write(TSS + 104, b"\xff" * (0x400 // 8 + 1))
    mon.uc.mem_write(TSS + 104 + 0x3FD // 8, bytes([0xFF & ~(1 << (0x3FD % 8))]))
    _to_ring3(mon)
    privilege.check_io(mon, 0x3FD, 1, "in")  # allowed by the map
    for port, size in ((0x3FC, 1), (0x3FD, 2), (0x21, 1)):
        with pytest.raises(GuestException):
            privilege.check_io(mon, port, size, "in")


def test_popf_at_ring3_keeps_if_and_iopl():
    mon = monitor()
    _to_ring3(mon)
    sp = mon.uc.reg_read(U.UC_X86_REG_ESP) - 4
    mon.uc.mem_write(sp, struct.pack("<I", 0x3001))
    mon.uc.reg_write(U.UC_X86_REG_ESP, sp)
    run(mon, "9d")
    assert mon.guest_eflags() & 0x3201 == 0x201


def test_interrupt_from_ring3_switches_to_the_tss_stack():
    from dbt.monitor import interrupts

    mon = monitor()
    idt = 0x3000
    mon.uc.mem_write(idt + 0x80 * 8, struct.pack("<II", (KERNEL_CS << 16) | 0x4000, 0xEE00))
    mon.uc.reg_write(U.UC_X86_REG_IDTR, (0, idt, 0x7FF, 0))
    _to_ring3(mon)
    assert interrupts.deliver(mon, 0x80, 0x1002, None, soft=True) == 0x4000
    assert (mon.vcpu.cs, mon.vcpu.ss, mon.cpl()) == (KERNEL_CS, KERNEL_DS, 0)
    sp = mon.uc.reg_read(U.UC_X86_REG_ESP)
    assert sp == 0x90000 - 20
    assert struct.unpack("<5I", mon.read_mem(sp, 20)) == (0x1002, USER_CS, 0x202, 0x70000,
                                                          USER_DS)
    assert not mon.guest_eflags() & 0x200  # an interrupt gate


@pytest.mark.parametrize("tss_limit, ss0, vector, code", [
    (7, KERNEL_DS, 10, TSS_SEL), (103, 0, 10, 0), (103, USER_DS, 10, USER_DS & ~3),
    (103, KERNEL_CS, 10, KERNEL_CS)])
def test_a_bad_tss_stack_is_a_guest_fault(tss_limit, ss0, vector, code):
    """A TSS too short to hold ESP0/SS0, or an SS0 that cannot be ring 0's stack, is
    #TS with the selector at fault (SDM Vol. 3A §6.12.1), never a monitor error."""
    mon = monitor(tss_limit=tss_limit)
    mon.uc.mem_write(TSS + 8, struct.pack("<I", ss0))
    _to_ring3(mon)
    with pytest.raises(GuestException) as e:
        privilege.inner_stack(mon, 0, 0)
    assert (e.value.vector, e.value.error_code) == (vector, code)


def test_sysenter_and_sysexit():
    mon = monitor()
    _to_ring3(mon)
    with pytest.raises(GuestException) as e:  # IA32_SYSENTER_CS still 0
        run(mon, "0f34")
    assert (e.value.vector, e.value.error_code) == (13, 0)
    for msr, value in ((0x174, KERNEL_CS), (0x175, 0x88000), (0x176, 0x5000)):
        mon.uc.reg_write(U.UC_X86_REG_MSR, (msr, value))
    assert run(mon, "0f34") == 0x5000
    assert (mon.vcpu.cs, mon.vcpu.ss, mon.cpl()) == (KERNEL_CS, KERNEL_DS, 0)
    assert mon.uc.reg_read(U.UC_X86_REG_ESP) == 0x88000 and not mon.guest_eflags() & 0x200
    mon.set_reg("ecx", 0x71000)
    mon.set_reg("edx", 0x1234)
    assert run(mon, "0f35") == 0x1234
    assert (mon.vcpu.cs, mon.vcpu.ss, mon.cpl()) == (USER_CS, USER_DS, 3)
    assert mon.uc.reg_read(U.UC_X86_REG_ESP) == 0x71000


def test_sysenter_to_segments_the_gdt_lacks_is_a_gp_and_changes_nothing():
    """The monitor loads sysenter's CS and SS from the guest's GDT: a selector past its
    end is #GP, with the old segments put back."""
    mon = monitor()
    _to_ring3(mon)
    mon.uc.reg_write(U.UC_X86_REG_MSR, (0x174, 0x40))
    with pytest.raises(GuestException) as e:
        run(mon, "0f34")
    assert e.value.vector == 13
    assert (mon.vcpu.cs, mon.vcpu.ss, mon.cpl()) == (USER_CS, USER_DS, 3)
    assert mon.uc.reg_read(U.UC_X86_REG_CS) == USER_CS


def test_syscall_outside_64_bit_mode_is_invalid():
    mon = monitor()
    with pytest.raises(GuestException) as e:
        run(mon, "0f05")
    assert e.value.vector == 6
