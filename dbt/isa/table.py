"""The ISA table: what each x86 instruction means to a virtual machine monitor.

One :class:`~dbt.isa.model.Rule` per capstone 5 instruction name
(``capstone.Cs.insn_name(id)``; the 1523 ``X86_INS_*`` ids have distinct
names).  A rule gives the instruction's class in the sense of Popek & Goldberg
1974 (privileged, sensitive, control, innocuous), what the binary translator
does with it (copy it, expand it inline, call out to the monitor, rewrite it as
a branch, or refuse it), a one-line reason and a citation.

Where the rules come from
-------------------------
* **Explicit rows** (``_ROWS`` below) for every instruction that is
  privileged, sensitive or a control transfer, and for a few ordinary ones
  whose classification deserves a sentence (UD0-2, RDRAND, ENDBR, TSX ...).
* **Group rules** (:mod:`dbt.isa.groups`): reviewed, explicit name lists of
  ordinary instructions -- integer ALU, x87, MMX/SSE, AVX/AVX-512, crypto and
  bit-manipulation extensions -- each with one reason and reference.  A name
  may appear in exactly one row or group; building the table fails otherwise.
* Nothing is covered by a default.  :func:`rule_for_name` answers an unknown
  name (a newer capstone, a typo) with :data:`UNKNOWN_RULE`: privileged and
  unsupported, the conservative answer for a monitor.

Operand-dependent instructions
------------------------------
Capstone uses one id for ``mov eax, ebx`` and ``mov cr0, eax``, for ``push
eax`` and ``push cs``, for near and far indirect ``jmp``/``call``.  For the
names in :data:`OPERAND_DEPENDENT` the row in :data:`RULES` describes the
ordinary form and :func:`classify` picks a different rule from the operand
text (all possibilities are listed in :data:`OPERAND_RULES`).

Sources and citation conventions
--------------------------------
"Intel SDM" is the Intel 64 and IA-32 Architectures Software Developer's
Manual (order no. 325462).  Instruction pages are cited by volume and
mnemonic (Vol. 2A: A-L, 2B: M-U, 2C: V, 2D: W-Z; VMX instructions in Vol. 3C,
SGX in Vol. 3D), which is stable across editions.  Chapters whose numbers moved
between editions (I/O, VMX, SMM, TSX, MPX) are cited by title; section numbers
are given only for the long-stable parts of Vol. 3A (§2.5 control registers,
§2.6 XCR0, §2.8 system instruction summary, §5.6-5.10 protection checks, §6.12
exception and interrupt handling).  "AMD APM" is the AMD64 Architecture
Programmer's Manual (Vol. 2 system programming, Vol. 3 general-purpose and
system instructions).  The sensitive-but-unprivileged instructions are those
of Robin & Irvine, "Analysis of the Intel Pentium's Ability to Support a
Secure Virtual Machine Monitor", USENIX Security 2000, and carry
``robin_irvine=True``; the class terms are those of Popek & Goldberg,
"Formal Requirements for Virtualizable Third Generation Architectures",
CACM 17(7), 1974.

Actions: CALLOUT is used where the monitor emulates the instruction (port I/O,
HLT, CPUID, time stamp, MSRs, control/debug registers, descriptor tables,
segment loads and stores, far transfers, software interrupts, IRET, fast
system calls, SWAPGS, cache/TLB maintenance, XSETBV/XGETBV, MONITOR/MWAIT, the
FS/GS base instructions).  Privileged or sensitive instructions for which the
monitor has no emulation (VMX, SVM, SGX, SMX, RSM, CET shadow-stack writes,
...) are UNSUPPORTED: the guest sees #UD, as on a CPU whose CPUID does not
report the feature.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from dbt.isa.groups import GROUPS
from dbt.isa.model import Action, InsnClass, Rule

_PRIV = InsnClass.PRIVILEGED
_SENS = InsnClass.SENSITIVE
_CTRL = InsnClass.CONTROL
_INNO = InsnClass.INNOCUOUS
_IDENT = Action.IDENT
_INLINE = Action.INLINE
_CALLOUT = Action.CALLOUT
_BRANCH = Action.BRANCH
_UNSUP = Action.UNSUPPORTED

_RI = True  # the robin_irvine column, for readability
_NO = False

# fmt: off
#: Explicit rows: (names sharing the rule, class, action, robin_irvine, reason, ref).
_ROWS: tuple[tuple[str, InsnClass, Action, bool, str, str], ...] = (
    # --- near control transfers ---------------------------------------------------------
    ("jmp", _CTRL, _BRANCH, _NO,
     "near jump, direct or through a register/memory: the target must be mapped into the code"
     " cache (far forms are picked out by operands, see OPERAND_DEPENDENT)",
     "Intel SDM Vol. 2A, JMP"),
    ("call", _CTRL, _BRANCH, _NO,
     "near call: pushes the guest return address and jumps; the target must be mapped into the"
     " code cache (far indirect forms are picked out by operands)",
     "Intel SDM Vol. 2A, CALL"),
    ("ret", _CTRL, _BRANCH, _NO,
     "near return (also RET imm16): pops a guest address that must be mapped into the code cache",
     "Intel SDM Vol. 2B, RET"),

    # --- ordinary forms of the operand-dependent names ----------------------------------
    ("mov", _INNO, _IDENT, _NO,
     "register/memory/immediate move; the control-, debug- and segment-register forms are"
     " decided from the operands (OPERAND_DEPENDENT)",
     "Intel SDM Vol. 2B, MOV"),
    ("push", _INNO, _IDENT, _NO,
     "push of a general register, memory operand or immediate; PUSH of a segment register is"
     " decided from the operand (OPERAND_DEPENDENT)",
     "Intel SDM Vol. 2B, PUSH"),
    ("pop", _INNO, _IDENT, _NO,
     "pop into a general register or memory; POP into a segment register is decided from the"
     " operand (OPERAND_DEPENDENT)",
     "Intel SDM Vol. 2B, POP"),

    # --- interrupt flag and EFLAGS ------------------------------------------------------
    ("cli", _PRIV, _INLINE, _NO,
     "IOPL-sensitive: #GP(0) when CPL > IOPL; the translator clears the virtual IF instead",
     "Intel SDM Vol. 2A, CLI; Vol. 3A §2.8 (system instruction summary)"),
    ("sti", _PRIV, _INLINE, _NO,
     "IOPL-sensitive: #GP(0) when CPL > IOPL; the translator sets the virtual IF (and its"
     " one-instruction interrupt shadow) instead",
     "Intel SDM Vol. 2B, STI; Vol. 3A §2.8 (system instruction summary)"),
    ("pushf pushfd pushfq", _SENS, _INLINE, _RI,
     "pushes EFLAGS including IF and IOPL without trapping at CPL > 0, so a deprivileged kernel"
     " would see the real rather than the virtual interrupt flag",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, PUSHF/PUSHFD/PUSHFQ"),
    ("popf popfd popfq", _SENS, _INLINE, _RI,
     "does not trap at CPL > 0: IOPL is left unchanged, and IF too when CPL > IOPL, so a"
     " deprivileged kernel's interrupt-flag changes would be silently lost",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, POPF/POPFD/POPFQ"),

    # --- port I/O -----------------------------------------------------------------------
    ("in", _PRIV, _CALLOUT, _NO,
     "port input: #GP(0) when CPL > IOPL unless the TSS I/O permission bitmap allows the port;"
     " the monitor emulates the device",
     "Intel SDM Vol. 1, Input/Output ch., Protected-Mode I/O; Vol. 2A, IN"),
    ("out", _PRIV, _CALLOUT, _NO,
     "port output: #GP(0) when CPL > IOPL unless the TSS I/O permission bitmap allows the port;"
     " the monitor emulates the device",
     "Intel SDM Vol. 1, Input/Output ch., Protected-Mode I/O; Vol. 2B, OUT"),
    ("insb insw insd", _PRIV, _CALLOUT, _NO,
     "string port input (REP forms share the rule): IOPL/I/O-bitmap checked like IN",
     "Intel SDM Vol. 1, Input/Output ch., Protected-Mode I/O; Vol. 2A, INS/INSB/INSW/INSD"),
    ("outsb outsw outsd", _PRIV, _CALLOUT, _NO,
     "string port output (REP forms share the rule): IOPL/I/O-bitmap checked like OUT",
     "Intel SDM Vol. 1, Input/Output ch., Protected-Mode I/O; Vol. 2B, OUTS/OUTSB/OUTSW/OUTSD"),

    # --- processor identification, time, counters, MSRs --------------------------------
    ("hlt", _PRIV, _CALLOUT, _NO,
     "#GP(0) at CPL > 0; the monitor idles the virtual CPU until the next virtual interrupt",
     "Intel SDM Vol. 2A, HLT; Vol. 3A §2.8 (system instruction summary)"),
    ("cpuid", _SENS, _CALLOUT, _NO,
     "unprivileged (unless CPUID faulting is enabled) yet reveals the host processor's identity"
     " and features; the monitor returns the virtual CPU's leaves",
     "Intel SDM Vol. 2A, CPUID"),
    ("rdtsc", _SENS, _CALLOUT, _NO,
     "reads the host time-stamp counter at any CPL unless CR4.TSD = 1; the monitor returns"
     " virtual time",
     "Intel SDM Vol. 2B, RDTSC"),
    ("rdtscp", _SENS, _CALLOUT, _NO,
     "as RDTSC, and also returns the host's IA32_TSC_AUX (typically its processor number)",
     "Intel SDM Vol. 2B, RDTSCP"),
    ("rdpmc", _SENS, _CALLOUT, _NO,
     "reads host performance counters; traps at CPL > 0 only while CR4.PCE = 0, which the host"
     " controls, so it cannot be relied on to trap",
     "Intel SDM Vol. 2B, RDPMC"),
    ("rdmsr", _PRIV, _CALLOUT, _NO,
     "model-specific register read, CPL 0 only; the monitor keeps the virtual MSRs",
     "Intel SDM Vol. 2B, RDMSR"),
    ("wrmsr", _PRIV, _CALLOUT, _NO,
     "model-specific register write, CPL 0 only; the monitor keeps the virtual MSRs",
     "Intel SDM Vol. 2D, WRMSR"),

    # --- system registers, descriptor tables, TLB and caches ---------------------------
    ("lgdt lidt", _PRIV, _CALLOUT, _NO,
     "loads GDTR/IDTR, CPL 0 only; the monitor records the guest's virtual table register",
     "Intel SDM Vol. 2A, LGDT/LIDT; Vol. 3A §2.8 (system instruction summary)"),
    ("lldt", _PRIV, _CALLOUT, _NO,
     "loads LDTR, CPL 0 only; the monitor records the guest's virtual LDT",
     "Intel SDM Vol. 2A, LLDT; Vol. 3A §2.8 (system instruction summary)"),
    ("ltr", _PRIV, _CALLOUT, _NO,
     "loads the task register, CPL 0 only; the monitor records the guest's virtual TSS",
     "Intel SDM Vol. 2A, LTR; Vol. 3A, Task Management ch."),
    ("lmsw", _PRIV, _CALLOUT, _NO,
     "writes CR0[3:0] (PE, MP, EM, TS), CPL 0 only",
     "Intel SDM Vol. 2A, LMSW; Vol. 3A §2.5 (control registers)"),
    ("clts", _PRIV, _CALLOUT, _NO,
     "clears CR0.TS, CPL 0 only",
     "Intel SDM Vol. 2A, CLTS; Vol. 3A §2.5 (control registers)"),
    ("invlpg", _PRIV, _CALLOUT, _NO,
     "invalidates a TLB entry, CPL 0 only; the monitor updates its shadow page tables",
     "Intel SDM Vol. 2A, INVLPG; Vol. 3A §2.8 (system instruction summary)"),
    ("invpcid", _PRIV, _CALLOUT, _NO,
     "PCID-tagged TLB invalidation, CPL 0 only; the monitor updates its shadow page tables",
     "Intel SDM Vol. 2A, INVPCID"),
    ("invd", _PRIV, _CALLOUT, _NO,
     "invalidates caches without write-back, CPL 0 only; the monitor must not let a guest"
     " discard host data, so it emulates it",
     "Intel SDM Vol. 2A, INVD"),
    ("wbinvd", _PRIV, _CALLOUT, _NO,
     "writes back and invalidates caches, CPL 0 only; the monitor emulates it",
     "Intel SDM Vol. 2D, WBINVD"),
    ("wbnoinvd", _PRIV, _UNSUP, _NO,
     "writes back caches without invalidating, CPL 0 only; not emulated (the virtual CPU does"
     " not report WBNOINVD)",
     "Intel SDM Vol. 2D, WBNOINVD"),
    ("xsetbv", _PRIV, _CALLOUT, _NO,
     "writes an extended control register (XCR0), CPL 0 only",
     "Intel SDM Vol. 2D, XSETBV; Vol. 3A §2.6 (extended control registers)"),
    ("xgetbv", _SENS, _CALLOUT, _NO,
     "reads XCR0 at any CPL once CR4.OSXSAVE = 1, revealing the host's enabled state components",
     "Intel SDM Vol. 2D, XGETBV; Vol. 3A §2.6 (extended control registers)"),
    ("monitor mwait", _PRIV, _CALLOUT, _NO,
     "address-monitored wait, #UD at CPL > 0 unless ring-3 MONITOR/MWAIT is enabled; the"
     " monitor treats MWAIT like HLT",
     "Intel SDM Vol. 2B, MONITOR, MWAIT"),

    # --- Robin & Irvine: stores of system registers -----------------------------------
    ("sgdt sidt", _SENS, _CALLOUT, _RI,
     "stores GDTR/IDTR at any CPL (unless CR4.UMIP = 1), revealing the monitor's tables instead"
     " of the guest's",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, SGDT, SIDT"),
    ("sldt", _SENS, _CALLOUT, _RI,
     "stores the LDTR selector at any CPL (unless CR4.UMIP = 1)",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, SLDT"),
    ("smsw", _SENS, _CALLOUT, _RI,
     "stores CR0[15:0] (PE, TS, ...) at any CPL (unless CR4.UMIP = 1)",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, SMSW"),
    ("str", _SENS, _CALLOUT, _RI,
     "stores the task-register selector at any CPL (unless CR4.UMIP = 1)",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, STR"),

    # --- Robin & Irvine: protection-system references ----------------------------------
    ("lar lsl", _SENS, _CALLOUT, _RI,
     "reads descriptor access rights/limit after privilege checks against CPL and RPL, without"
     " trapping: results differ for a deprivileged kernel",
     "Robin & Irvine 2000; Intel SDM Vol. 2A, LAR, LSL; Vol. 3A §5.10 (pointer validation)"),
    ("verr verw", _SENS, _CALLOUT, _RI,
     "checks segment readability/writability against CPL and RPL, without trapping: results"
     " differ for a deprivileged kernel",
     "Robin & Irvine 2000; Intel SDM Vol. 2C, VERR/VERW; Vol. 3A §5.10 (pointer validation)"),
    ("ljmp lcall", _SENS, _CALLOUT, _RI,
     "far transfer: loads CS with privilege checks against CPL, possibly through a call or task"
     " gate; the monitor performs it on the virtual segment state",
     "Robin & Irvine 2000; Intel SDM Vol. 2A, JMP, CALL; Vol. 3A §5.8 (transfers between code"
     " segments)"),
    ("retf retfq", _SENS, _CALLOUT, _RI,
     "far return: pops CS and compares its RPL with CPL to decide whether privilege changes",
     "Robin & Irvine 2000; Intel SDM Vol. 2B, RET; Vol. 3A §5.8 (transfers between code"
     " segments)"),
    ("int", _SENS, _CALLOUT, _RI,
     "INT n vectors through the IDT after checking the gate's DPL against CPL; the monitor"
     " delivers it through the guest's virtual IDT",
     "Robin & Irvine 2000; Intel SDM Vol. 2A, INT n/INTO/INT3/INT1; Vol. 3A §6.12 (exception"
     " and interrupt handling)"),

    # --- other interrupts and returns ---------------------------------------------------
    ("int3 into", _SENS, _CALLOUT, _NO,
     "breakpoint/overflow trap through the IDT with the same gate-DPL check as INT n; the"
     " monitor delivers it through the guest's virtual IDT",
     "Intel SDM Vol. 2A, INT n/INTO/INT3/INT1; Vol. 3A §6.12 (exception and interrupt handling)"),
    ("int1", _SENS, _CALLOUT, _NO,
     "ICEBP: debug trap through IDT vector 1 (no gate-DPL check); the monitor delivers it"
     " through the guest's virtual IDT",
     "Intel SDM Vol. 2A, INT n/INTO/INT3/INT1; Vol. 3A §6.12 (exception and interrupt handling)"),
    ("iret iretd iretq", _SENS, _CALLOUT, _NO,
     "interrupt return: at CPL > 0 it does not trap, but IOPL (and IF when CPL > IOPL) in the"
     " popped EFLAGS are silently ignored and privilege checks use the real CPL",
     "Intel SDM Vol. 2A, IRET/IRETD/IRETQ; Vol. 3A §6.12 (exception and interrupt handling)"),

    # --- fast system calls and GS swap -----------------------------------------------------
    ("syscall sysenter", _SENS, _CALLOUT, _NO,
     "fast system call from any CPL into CPL 0 at an address taken from host MSRs (IA32_LSTAR,"
     " IA32_SYSENTER_EIP); the monitor enters the guest kernel at its virtual MSRs",
     "Intel SDM Vol. 2B, SYSCALL, SYSENTER"),
    ("sysret sysretq sysexit sysexitq", _PRIV, _CALLOUT, _NO,
     "fast return to user mode, #GP(0) at CPL > 0",
     "Intel SDM Vol. 2B, SYSRET, SYSEXIT"),
    ("swapgs", _PRIV, _CALLOUT, _NO,
     "exchanges the GS base with IA32_KERNEL_GS_BASE, CPL 0 only",
     "Intel SDM Vol. 2B, SWAPGS"),

    # --- segment bases and segment loads ------------------------------------------------
    ("rdfsbase rdgsbase", _SENS, _CALLOUT, _NO,
     "reads the FS/GS base at any CPL when CR4.FSGSBASE = 1 (#UD otherwise); the monitor owns"
     " the real segment bases",
     "Intel SDM Vol. 2B, RDFSBASE/RDGSBASE"),
    ("wrfsbase wrgsbase", _SENS, _CALLOUT, _NO,
     "writes the FS/GS base at any CPL when CR4.FSGSBASE = 1 (#UD otherwise); the monitor owns"
     " the real segment bases",
     "Intel SDM Vol. 2D, WRFSBASE/WRGSBASE"),
    ("lds les lfs lgs lss", _SENS, _CALLOUT, _NO,
     "loads a far pointer into a segment register, with the descriptor privilege checks of a"
     " segment-register load",
     "Intel SDM Vol. 2A, LDS/LES/LFS/LGS/LSS; Vol. 3A §5.6-5.7 (privilege checks on segment"
     " loads)"),

    # --- architecturally undefined ------------------------------------------------------
    ("ud0 ud1 ud2", _INNO, _IDENT, _NO,
     "defined to raise #UD at every CPL; the fault is precise and the monitor reflects it like"
     " any other guest fault, so the bytes are copied",
     "Intel SDM Vol. 2B, UD"),
    ("rsm", _PRIV, _UNSUP, _NO,
     "resume from system-management mode: #UD outside SMM, which is what the monitor (with no"
     " SMM) delivers",
     "Intel SDM Vol. 2B, RSM; Vol. 3C, System Management Mode ch."),

    # --- VMX ----------------------------------------------------------------------------
    ("vmxon vmxoff vmlaunch vmresume vmptrld vmptrst vmclear vmread vmwrite invept invvpid",
     _PRIV, _UNSUP, _NO,
     "VMX instruction: #UD outside VMX operation, #GP(0) at CPL > 0; the monitor offers no"
     " nested virtualization",
     "Intel SDM Vol. 3C, VMX Instruction Reference ch."),
    ("vmcall", _SENS, _UNSUP, _NO,
     "hypercall: exits to the hypervisor at any CPL when run as a guest, #UD outside VMX"
     " operation; the monitor offers no hypercall interface",
     "Intel SDM Vol. 3C, VMX Instruction Reference ch., VMCALL"),
    ("vmfunc", _SENS, _UNSUP, _NO,
     "VM function (EPTP switching): valid only in VMX non-root operation, at any CPL",
     "Intel SDM Vol. 3C, VMX Instruction Reference ch., VMFUNC"),

    # --- SVM ----------------------------------------------------------------------------
    ("vmrun vmload vmsave stgi clgi skinit invlpga", _PRIV, _UNSUP, _NO,
     "SVM instruction: #UD unless SVM is enabled (EFER.SVME; for STGI/SKINIT also the SKINIT"
     " feature), #GP(0) at CPL > 0; the monitor offers no nested virtualization",
     "AMD APM Vol. 3, VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA; AMD APM Vol. 2, Secure"
     " Virtual Machine ch."),
    ("vmmcall", _SENS, _UNSUP, _NO,
     "SVM hypercall, not restricted to CPL 0 (#UD unless intercepted); the monitor offers no"
     " hypercall interface",
     "AMD APM Vol. 3, VMMCALL"),

    # --- SGX, SMX, PCONFIG --------------------------------------------------------------
    ("encls", _PRIV, _UNSUP, _NO,
     "SGX supervisor leaf functions, CPL 0 only; the virtual CPU has no SGX",
     "Intel SDM Vol. 3D, SGX instruction references, ENCLS"),
    ("enclu", _SENS, _UNSUP, _NO,
     "SGX user leaf functions (CPL 3 only) on enclave pages the host owns; the virtual CPU has"
     " no SGX",
     "Intel SDM Vol. 3D, SGX instruction references, ENCLU"),
    ("enclv", _PRIV, _UNSUP, _NO,
     "SGX virtualization leaf functions, CPL 0 only; the virtual CPU has no SGX",
     "Intel SDM Vol. 3D, SGX instruction references, ENCLV"),
    ("getsec", _PRIV, _UNSUP, _NO,
     "SMX leaf functions: #UD unless CR4.SMXE = 1, most leaves CPL 0 only, and it always exits"
     " in VMX non-root operation",
     "Intel SDM Vol. 2D, Safer Mode Extensions Reference ch., GETSEC"),
    ("pconfig", _PRIV, _UNSUP, _NO,
     "platform configuration (memory-encryption keys), CPL 0 only",
     "Intel SDM Vol. 2B, PCONFIG"),

    # --- supervisor features the virtual CPU does not report -------------------------------
    ("clac stac", _PRIV, _UNSUP, _NO,
     "changes EFLAGS.AC for SMAP, #UD at CPL > 0; the virtual CPU does not report SMAP",
     "Intel SDM Vol. 2A, CLAC; Vol. 2B, STAC"),
    ("xsaves xsaves64 xrstors xrstors64", _PRIV, _UNSUP, _NO,
     "saves/restores supervisor state components (IA32_XSS), CPL 0 only",
     "Intel SDM Vol. 2D, XSAVES, XRSTORS"),
    ("rdpid", _SENS, _UNSUP, _NO,
     "reads IA32_TSC_AUX (the host processor number) at any CPL; not emulated, the virtual CPU"
     " does not report RDPID",
     "Intel SDM Vol. 2B, RDPID"),
    ("rdpkru wrpkru", _SENS, _UNSUP, _NO,
     "protection-key rights register: #UD unless CR4.PKE = 1, and the keys would act on the"
     " host's page tables rather than the guest's",
     "Intel SDM Vol. 2B, RDPKRU; Vol. 2D, WRPKRU"),
    ("ptwrite", _SENS, _UNSUP, _NO,
     "writes a guest value into the host's Intel PT trace when IA32_RTIT_CTL enables it",
     "Intel SDM Vol. 2B, PTWRITE"),
    ("umonitor umwait tpause", _SENS, _UNSUP, _NO,
     "user-level wait bounded by IA32_UMWAIT_CONTROL, #UD at CPL > 0 when CR4.TSD = 1, deadline"
     " in host TSC units",
     "Intel SDM Vol. 2B, UMONITOR, UMWAIT, TPAUSE"),
    ("monitorx mwaitx", _SENS, _UNSUP, _NO,
     "AMD user-level monitor/wait, usable at any CPL when enabled, optionally timed against the"
     " host clock",
     "AMD APM Vol. 3, MONITORX, MWAITX"),
    ("llwpcb slwpcb lwpins lwpval", _SENS, _UNSUP, _NO,
     "AMD lightweight profiling: configured by the LWP_CFG MSR and XSAVE state that the host"
     " owns",
     "AMD Lightweight Profiling Specification (pub. 43724)"),

    # --- CET ----------------------------------------------------------------------------
    ("endbr32 endbr64", _INNO, _IDENT, _NO,
     "indirect-branch target marker; a NOP when indirect-branch tracking is off",
     "Intel SDM Vol. 2A, ENDBR32, ENDBR64"),
    ("rdsspd rdsspq", _SENS, _IDENT, _NO,
     "reads the shadow-stack pointer, but is a hint NOP (F3 0F 1E /1) while shadow stacks are"
     " off, and the virtual CPU never enables them (see IDENT_ALLOWED)",
     "Intel SDM Vol. 2B, RDSSPD/RDSSPQ"),
    ("incsspd incsspq rstorssp saveprevssp wrssd wrssq", _SENS, _UNSUP, _NO,
     "shadow-stack operation: #UD unless shadow stacks are enabled (CR4.CET, IA32_U_CET/"
     "IA32_S_CET), which the virtual CPU never does",
     "Intel SDM Vol. 2A, INCSSPD/INCSSPQ; Vol. 2B, RSTORSSP, SAVEPREVSSP; Vol. 2D, WRSSD/WRSSQ"),
    ("setssbsy clrssbsy wrussd wrussq", _PRIV, _UNSUP, _NO,
     "supervisor shadow-stack operation, CPL 0 only",
     "Intel SDM Vol. 2A, CLRSSBSY; Vol. 2B, SETSSBSY; Vol. 2D, WRUSSD/WRUSSQ"),

    # --- TSX ----------------------------------------------------------------------------
    ("xbegin", _CTRL, _UNSUP, _NO,
     "starts an RTM transaction whose abort path is a relative fallback address the translator"
     " does not relocate; the virtual CPU does not report RTM, so #UD is the architected result",
     "Intel SDM Vol. 2D, XBEGIN; Vol. 1, Intel TSX ch."),
    ("xend xabort xtest", _INNO, _IDENT, _NO,
     "outside a transaction (the guest can never start one) XEND faults, XABORT is a NOP and"
     " XTEST reports none; no privilege or system state is involved",
     "Intel SDM Vol. 2D, XEND, XABORT, XTEST"),

    # --- ordinary instructions that deserve a sentence ------------------------------------
    ("rdrand rdseed", _INNO, _IDENT, _NO,
     "hardware random numbers: unprivileged and reveal no machine configuration (a VMM may"
     " intercept them, but need not)",
     "Intel SDM Vol. 2B, RDRAND, RDSEED"),
    ("bound", _INNO, _IDENT, _NO,
     "array bounds check: raises #BR, a precise fault the monitor reflects like any other",
     "Intel SDM Vol. 2A, BOUND"),
    ("arpl", _INNO, _IDENT, _NO,
     "raises the RPL field of a selector held in a register or memory: arithmetic on a 16-bit"
     " value, no descriptor is read",
     "Intel SDM Vol. 2A, ARPL; Vol. 3A §5.10 (pointer validation)"),
)
# fmt: on

#: Privileged or sensitive instructions that are nonetheless copied unchanged,
#: with the justification.  The tests require this to be exactly the set of
#: PRIVILEGED/SENSITIVE rules whose action is IDENT.
IDENT_ALLOWED: dict[str, str] = {
    "rdsspd": "hint-NOP encoding that only reads SSP once CET shadow stacks are enabled; the"
    " virtual CPU does not enumerate CET, so the architected guest behaviour is a NOP",
    "rdsspq": "64-bit form of RDSSPD; same justification",
}


def _build_explicit() -> dict[str, Rule]:
    rows: dict[str, Rule] = {}
    for names, klass, action, robin_irvine, reason, ref in _ROWS:
        rule = Rule(klass, action, reason, ref, robin_irvine)
        for name in names.split():
            if name in rows:
                raise ValueError(f"ISA table: {name!r} has two explicit rows")
            rows[name] = rule
    return rows


#: name -> rule for the explicit rows.
EXPLICIT: dict[str, Rule] = _build_explicit()


def _build_rules() -> tuple[dict[str, Rule], dict[str, str]]:
    rules = dict(EXPLICIT)
    source = {name: "explicit" for name in EXPLICIT}
    for group in GROUPS:
        for name in group.names:
            if name in source:
                raise ValueError(f"ISA table: {name!r} is in {source[name]} and {group.key}")
            rules[name] = group.rule
            source[name] = group.key
    return rules, source


#: The ISA table: capstone instruction name -> rule.
RULES: dict[str, Rule]
#: Where each rule came from: "explicit" or the key of a group in dbt.isa.groups.
RULE_SOURCE: dict[str, str]
RULES, RULE_SOURCE = _build_rules()

#: The answer for a name the table does not know: the conservative choice.
UNKNOWN_RULE = Rule(
    InsnClass.PRIVILEGED,
    Action.UNSUPPORTED,
    "not in the ISA table",
    "dbt ISA table (dbt/isa/table.py): unknown names are refused, never assumed innocuous",
)


def rule_for_name(name: str) -> Rule:
    """The rule for a capstone instruction name; :data:`UNKNOWN_RULE` if there is none."""
    return RULES.get(name, UNKNOWN_RULE)


# --------------------------------------------------------------------------------------
# Operand-dependent rules
# --------------------------------------------------------------------------------------

#: Names whose rule depends on the operands, and how :func:`classify` decides.
#: For each, RULES holds the ordinary form; OPERAND_RULES lists the others.
OPERAND_DEPENDENT: dict[str, str] = {
    "mov": "a control register (cr0-cr15) or debug register (dr0-dr15) operand makes it"
    " privileged; a segment register as destination (mov ds, eax) or as source (mov eax, cs)"
    " makes it sensitive; any other mov is innocuous",
    "push": "push cs/ds/es/ss/fs/gs is sensitive (the selector's RPL reveals CPL); pushes of"
    " general registers, memory and immediates are innocuous",
    "pop": "pop ds/es/ss/fs/gs loads a segment register and is sensitive; pops into general"
    " registers or memory are innocuous",
    "jmp": "capstone prints a far indirect jump (FF /5, m16:16 or m16:32) as 'jmp' with a"
    " size-less 'ptr [...]' operand (REX.W or 66h forms print as 'ljmp'): it gets the ljmp rule",
    "call": "capstone prints a far indirect call (FF /3) as 'call' with a size-less 'ptr [...]'"
    " operand (REX.W or 66h forms print as 'lcall'): it gets the lcall rule",
}

MOV_CONTROL_REGISTER = Rule(
    _PRIV,
    _CALLOUT,
    "MOV to/from a control register, CPL 0 only; the monitor keeps the virtual CR0/CR2/CR3/CR4/CR8",
    "Intel SDM Vol. 2B, MOV (move to/from control registers); Vol. 3A §2.5 (control registers)",
)
MOV_DEBUG_REGISTER = Rule(
    _PRIV,
    _CALLOUT,
    "MOV to/from a debug register, CPL 0 only; the monitor keeps the virtual DR0-DR7",
    "Intel SDM Vol. 2B, MOV (move to/from debug registers)",
)
MOV_TO_SEGMENT = Rule(
    _SENS,
    _CALLOUT,
    "loads a segment register, checking the descriptor's DPL against CPL and RPL without"
    " trapping: a deprivileged kernel cannot load its own DPL-0 segments",
    "Robin & Irvine 2000; Intel SDM Vol. 2B, MOV; Vol. 3A §5.6-5.7 (privilege checks on segment"
    " loads)",
    robin_irvine=True,
)
MOV_FROM_SEGMENT = Rule(
    _SENS,
    _CALLOUT,
    "stores a segment selector; the RPL bits of CS and SS are the CPL, so a deprivileged kernel"
    " would see that it is not at CPL 0",
    "Robin & Irvine 2000; Intel SDM Vol. 2B, MOV",
    robin_irvine=True,
)
PUSH_SEGMENT = Rule(
    _SENS,
    _CALLOUT,
    "pushes a segment selector; the RPL bits of CS and SS are the CPL, so a deprivileged kernel"
    " would see that it is not at CPL 0",
    "Robin & Irvine 2000; Intel SDM Vol. 2B, PUSH",
    robin_irvine=True,
)
POP_SEGMENT = Rule(
    _SENS,
    _CALLOUT,
    "loads a segment register from the stack with the same DPL/CPL/RPL checks as MOV to a"
    " segment register, without trapping",
    "Robin & Irvine 2000; Intel SDM Vol. 2B, POP; Vol. 3A §5.6-5.7 (privilege checks on segment"
    " loads)",
    robin_irvine=True,
)

#: Every rule classify() can return for an OPERAND_DEPENDENT name besides RULES[name].
OPERAND_RULES: dict[str, tuple[Rule, ...]] = {
    "mov": (MOV_CONTROL_REGISTER, MOV_DEBUG_REGISTER, MOV_TO_SEGMENT, MOV_FROM_SEGMENT),
    "push": (PUSH_SEGMENT,),
    "pop": (POP_SEGMENT,),
    "jmp": (RULES["ljmp"],),
    "call": (RULES["lcall"],),
}

#: Names flagged as Robin & Irvine's sensitive unprivileged instructions, by
#: their base rule or by one of their operand-dependent rules.
ROBIN_IRVINE: frozenset[str] = frozenset(
    [name for name, rule in RULES.items() if rule.robin_irvine]
    + [name for name, rules in OPERAND_RULES.items() if any(r.robin_irvine for r in rules)]
)

_SEGMENT_REGISTERS = frozenset(("cs", "ds", "es", "fs", "gs", "ss"))
_SEGMENT_SOURCE_TAILS = frozenset(", " + reg for reg in _SEGMENT_REGISTERS)
_CONTROL_OR_DEBUG = re.compile(r"\b([cd])r(?:1[0-5]|[0-9])\b")

_MOV, _PUSH, _POP = RULES["mov"], RULES["push"], RULES["pop"]
_JMP, _CALL, _LJMP, _LCALL = RULES["jmp"], RULES["call"], RULES["ljmp"], RULES["lcall"]


def _mov(op_str: str) -> Rule:
    # No general-register name, size keyword or hex number contains "cr" or "dr",
    # so the regex runs only for real control/debug-register moves.
    if "cr" in op_str or "dr" in op_str:
        match = _CONTROL_OR_DEBUG.search(op_str)
        if match is not None:
            return MOV_CONTROL_REGISTER if match.group(1) == "c" else MOV_DEBUG_REGISTER
    # Segment registers appear as whole operands ("ds, eax", "word ptr [eax], ds");
    # a segment override ("dword ptr fs:[0x28]") matches neither test.
    if op_str[2:3] == "," and op_str[:2] in _SEGMENT_REGISTERS:
        return MOV_TO_SEGMENT
    if op_str[-4:] in _SEGMENT_SOURCE_TAILS:
        return MOV_FROM_SEGMENT
    return _MOV


def _push(op_str: str) -> Rule:
    return PUSH_SEGMENT if op_str in _SEGMENT_REGISTERS else _PUSH


def _pop(op_str: str) -> Rule:
    return POP_SEGMENT if op_str in _SEGMENT_REGISTERS else _POP


def _jmp(op_str: str) -> Rule:
    # Near indirect operands always carry a size ("qword ptr [rax]"); far ones do not.
    return _LJMP if op_str.startswith("ptr ") else _JMP


def _call(op_str: str) -> Rule:
    return _LCALL if op_str.startswith("ptr ") else _CALL


_BY_OPERANDS: dict[str, Callable[[str], Rule]] = {
    "mov": _mov,
    "push": _push,
    "pop": _pop,
    "jmp": _jmp,
    "call": _call,
}
assert _BY_OPERANDS.keys() == OPERAND_DEPENDENT.keys() == OPERAND_RULES.keys()

# --------------------------------------------------------------------------------------
# Printed mnemonics that are not instruction names
# --------------------------------------------------------------------------------------

#: Prefix words capstone prints in front of a mnemonic ("rep movsb", "lock add",
#: "xacquire lock add", "bnd jmp", "notrack call", "repz ret").
PREFIXES: frozenset[str] = frozenset(
    "lock rep repe repz repne repnz bnd notrack xacquire xrelease data16 addr32 rex64".split()
)

_SSE_PREDICATES = "eq lt le unord neq nlt nle ord".split()
_AVX_PREDICATES = _SSE_PREDICATES + (
    "eq_uq nge ngt false neq_oq ge gt true eq_os lt_oq le_oq unord_s neq_us nlt_uq nle_uq"
    " ord_s eq_us nge_uq ngt_uq false_os neq_os ge_oq gt_oq true_us"
).split()
_VPCMP_PREDICATES = "eq lt le false neq nlt nle true".split()
_VPCOM_PREDICATES = "lt le gt ge eq neq false true".split()
_INT_SUFFIXES = "b w d q ub uw ud uq".split()


def _build_aliases() -> dict[str, str]:
    """Printed mnemonic -> instruction name, for mnemonics that are not names.

    Capstone prints compare-predicate pseudo-ops ("cmpltps", "vcmpneq_oqpd",
    "vpcmpnltub", "vpcomgeb") instead of the instruction with an immediate, and
    prints FADDP under the name fadd.  (Capstone 5 also attaches wrong ids to
    some predicate forms, e.g. cmpleps decodes with the id of cmpsb; classify()
    goes by the printed mnemonic, which is right.)
    """
    aliases: dict[str, str] = {"faddp": "fadd"}
    for suffix in ("ps", "pd", "ss", "sd"):
        for pred in _SSE_PREDICATES:
            aliases[f"cmp{pred}{suffix}"] = f"cmp{suffix}"
        for pred in _AVX_PREDICATES:
            aliases[f"vcmp{pred}{suffix}"] = f"vcmp{suffix}"
    for suffix in _INT_SUFFIXES:
        for pred in _VPCMP_PREDICATES:
            aliases[f"vpcmp{pred}{suffix}"] = f"vpcmp{suffix}"
        for pred in _VPCOM_PREDICATES:
            aliases[f"vpcom{pred}{suffix}"] = f"vpcom{suffix}"
    # A real instruction name always wins (vpcmpeqb is the AVX2 compare).
    return {alias: name for alias, name in aliases.items() if alias not in RULES}


#: Printed mnemonic -> instruction name for mnemonics that are not names.
MNEMONIC_ALIASES: dict[str, str] = _build_aliases()

# Printed mnemonic -> rule, for everything not operand-dependent.  Prefixed
# mnemonics ("rep movsb", "lock add") are resolved by _resolve_prefixed().
_BY_MNEMONIC: dict[str, Rule] = {n: r for n, r in RULES.items() if n not in OPERAND_DEPENDENT}
_BY_MNEMONIC.update((alias, RULES[name]) for alias, name in MNEMONIC_ALIASES.items())


def _base_name(mnemonic: str) -> str:
    words = mnemonic.lower().split()
    start = 0
    while start < len(words) - 1 and words[start] in PREFIXES:
        start += 1
    return " ".join(words[start:])


@functools.lru_cache(maxsize=1024)  # capstone prints a few hundred prefixed mnemonics
def _resolve_prefixed(mnemonic: str) -> tuple[Rule, Callable[[str], Rule] | None]:
    """(rule, None) for a fixed rule, or (unused, operand check) for OPERAND_DEPENDENT."""
    base = _base_name(mnemonic)
    check = _BY_OPERANDS.get(base)
    if check is not None:
        return UNKNOWN_RULE, check
    return _BY_MNEMONIC.get(base, UNKNOWN_RULE), None


def operand_check(mnemonic: str) -> Callable[[str], Rule] | None:
    """For a printed mnemonic whose rule depends on the operands, the function that
    :func:`classify` applies to ``op_str``; None for every other mnemonic, whose rule is
    the same for any operands (callers that classify millions of instructions, like the
    coverage harness, may then cache the rule by mnemonic alone)."""
    check = _BY_OPERANDS.get(mnemonic)
    if check is None and mnemonic not in _BY_MNEMONIC:
        check = _resolve_prefixed(mnemonic)[1]
    return check


def classify(mnemonic: str, op_str: str) -> Rule:
    """The rule for one decoded instruction.

    ``mnemonic`` and ``op_str`` are capstone's Intel-syntax text
    (``CsInsn.mnemonic``/``op_str`` or a ``Cs.disasm_lite`` tuple).  Printed
    prefixes ("rep", "lock", "bnd", "notrack", ...) are stripped, compare
    pseudo-ops are mapped to their instruction, and for the names in
    :data:`OPERAND_DEPENDENT` the operands choose the rule.  Unknown mnemonics
    get :data:`UNKNOWN_RULE`.

    The common case is one dict lookup; prefixed mnemonics add an LRU-cache
    hit; the operand checks are string tests, with a regular expression only
    for moves that mention "cr"/"dr".
    """
    rule = _BY_MNEMONIC.get(mnemonic)
    if rule is not None:
        return rule
    check = _BY_OPERANDS.get(mnemonic)
    if check is not None:
        return check(op_str)
    rule, check = _resolve_prefixed(mnemonic)
    return rule if check is None else check(op_str)
