"""The virtual CPU: the guest's privileged state as the guest believes it to be.

Under ``interp`` (and ``bt``) the real unicorn CPU belongs to the monitor; the
guest's IF, IOPL, control registers, descriptor-table registers, selectors and
MSRs live here and sensitive instructions read and write these fields. Under
``hw`` the guest owns the unicorn CPU, and a VCpu is only a snapshot of it
(:meth:`VCpu.from_unicorn`). General registers always live in unicorn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from unicorn import x86_const as U

from dbt.monitor.machine import EFER_MSR, START_CR0, START_CR4, START_EFLAGS, Machine

FLAG_IF = 1 << 9
FLAG_IOPL = 3 << 12
#: EFLAGS bits the virtual CPU owns (the rest are the real CPU's arithmetic/status flags)
VIRTUAL_FLAGS = FLAG_IF | FLAG_IOPL


@dataclass
class DescTable:
    base: int = 0
    limit: int = 0


@dataclass
class VCpu:
    bits: int
    eflags_virtual: int = START_EFLAGS & VIRTUAL_FLAGS  # IF and IOPL
    cr0: int = START_CR0
    cr2: int = 0
    cr3: int = 0
    cr4: int = START_CR4
    cr8: int = 0
    efer: int = 0
    xcr0: int = 1
    gdtr: DescTable = field(default_factory=DescTable)
    idtr: DescTable = field(default_factory=DescTable)
    ldtr: int = 0
    tr: int = 0
    cs: int = 0
    ds: int = 0
    es: int = 0
    fs: int = 0
    gs: int = 0
    ss: int = 0
    dr: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400])
    msrs: dict[int, int] = field(default_factory=dict)

    @property
    def IF(self) -> bool:
        return bool(self.eflags_virtual & FLAG_IF)

    @property
    def iopl(self) -> int:
        return (self.eflags_virtual >> 12) & 3

    @property
    def cpl(self) -> int:
        return self.cs & 3

    @classmethod
    def start(cls, machine: Machine) -> VCpu:
        """The virtual CPU at reset: equal to the machine's start state."""
        return cls.from_unicorn(machine)

    @classmethod
    def from_unicorn(cls, machine: Machine) -> VCpu:
        """Snapshot the privileged state of the unicorn CPU (what ``hw`` guests own)."""
        uc = machine.uc
        rd = uc.reg_read
        g, i = rd(U.UC_X86_REG_GDTR), rd(U.UC_X86_REG_IDTR)
        return cls(
            bits=machine.bits,
            eflags_virtual=rd(U.UC_X86_REG_EFLAGS) & VIRTUAL_FLAGS,
            cr0=rd(U.UC_X86_REG_CR0), cr2=rd(U.UC_X86_REG_CR2), cr3=rd(U.UC_X86_REG_CR3),
            cr4=rd(U.UC_X86_REG_CR4), cr8=rd(U.UC_X86_REG_CR8) if machine.bits == 64 else 0,
            efer=rd(U.UC_X86_REG_MSR, EFER_MSR),
            gdtr=DescTable(g[1], g[2]), idtr=DescTable(i[1], i[2]),
            ldtr=rd(U.UC_X86_REG_LDTR)[0], tr=rd(U.UC_X86_REG_TR)[0],
            cs=rd(U.UC_X86_REG_CS), ds=rd(U.UC_X86_REG_DS), es=rd(U.UC_X86_REG_ES),
            fs=rd(U.UC_X86_REG_FS), gs=rd(U.UC_X86_REG_GS), ss=rd(U.UC_X86_REG_SS),
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["msrs"] = {f"{k:#x}": v for k, v in sorted(self.msrs.items())}
        return d
