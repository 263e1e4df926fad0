"""The monitor (VMM): one per run. It owns the machine, the virtual CPU and the devices,
counts guest instructions, and turns exits into the run's result.

Engines drive it: they run guest code and call back into the monitor for port
I/O, CPUID, sensitive-instruction emulation (:mod:`dbt.monitor.handlers`),
faults and the end of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass

from unicorn import x86_const as U

from dbt.devices import DebugExit, PortBus, Uart16550
from dbt.devices.debugexit import DEBUG_EXIT_PORT
from dbt.devices.pic import MASTER, SLAVE, PicPair
from dbt.devices.pit import PIT_BASE, PIT_HZ, Pit8254
from dbt.devices.uart import COM1_BASE
from dbt.loader import Image
from dbt.monitor.exits import VECTORS, Fault, Reason, RunResult
from dbt.monitor.machine import Machine, reg_id
from dbt.monitor.paging import ERR_U, FETCH, PROT_W, READ, WRITE, PageFault
from dbt.monitor.vcpu import VIRTUAL_FLAGS, VCpu
from dbt.monitor.watchdog import Kick
from dbt.scanner import Decoder, Insn, Mem

DEFAULT_MAX_INSNS = 2_000_000_000
REGS32 = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp")
REGS64 = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
          "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


#: registers the fast accessors handle (their natural width, zero-extended)
_GPR = frozenset(REGS32 + REGS64 + ("eip", "rip", "eflags", "rflags", "ax", "bx", "cx", "dx",
                                    "si", "di", "bp", "sp", "al", "bl", "cl", "dl"))


class GuestException(Exception):
    """Raised by handlers to make the guest take an exception (internal control flow)."""

    def __init__(self, vector: int, detail: str = "", error_code: int | None = None,
                 address: int | None = None, trap: bool = False):
        super().__init__(detail)
        self.vector, self.detail, self.error_code, self.address = vector, detail, error_code, address
        self.trap = trap  # True: the saved pc is the next instruction (int n, into, int3)


class BusError(GuestException):
    """An access to a physical address outside guest RAM: not a page fault the guest can
    handle (a PC has no memory there); the run ends with reason ``fault``."""

    def __init__(self, detail: str, address: int):
        super().__init__(14, detail, address=address)


@dataclass
class RunConfig:
    max_insns: int = DEFAULT_MAX_INSNS
    clock: str = "exact"  # "exact" | "free"
    keep_ram: bool = False
    memory: str = "fast"  # "fast": the monitor's TLB; "default": unicorn's own mapping
    mmu: str | None = None  # "nested" | "shadow" (None: the engine's default)
    validate: bool = False  # bt: re-decode every fragment and check it (tests)
    #: bt: cli/sti/pushf/popf as inline sequences (False: callouts, trapping into the
    #: monitor each time as trap-and-emulate would: what the inline sequences save)
    inline: bool = True


class Monitor:
    def __init__(self, image: Image, engine: str, config: RunConfig, ram_size: int,
                 exec_ram: bool = True, owns_cpu: bool = False, mmu: str = "nested"):
        self.image = image
        self.engine = engine
        #: True when the guest owns the unicorn CPU (hw): its IF, IOPL and CPL are the
        #: real CPU's; otherwise they live in the virtual CPU
        self.owns_cpu = owns_cpu
        self.config = config
        self.bits = image.arch.bits
        self.mmu = mmu
        self.machine = Machine(self.bits, ram_size, exec_ram=exec_ram, memory=config.memory,
                               mmu=mmu)
        self.uc = self.machine.uc
        # (an engine that owns the CPU runs the guest's own writes of control registers)
        self.machine.keep_paging = not owns_cpu
        self.walker = self.machine.walker
        #: the monitor's own translations of guest linear pages: (page, access, user) ->
        #: physical page; dropped by mapping_changed() (never used when the guest owns
        #: the CPU: its CR3 writes and invlpg do not reach the monitor)
        self._tlb: dict[tuple[int, int, bool], int] = {}
        self.on_mapping_change = None  # the code cache's coherence check (engine bt)
        if self.machine.memory:
            self.machine.memory.user = lambda: self.cpl() == 3
        self.machine.load(image.segments)
        self.machine.pc = image.entry
        self.vcpu = VCpu.start(self.machine)
        self.decoder = Decoder(self.bits)
        self.bus = PortBus()
        self.uart = Uart16550()
        self.debug_exit = DebugExit()
        self.bus.attach(COM1_BASE, 8, self.uart)
        self.bus.attach(DEBUG_EXIT_PORT, 1, self.debug_exit)
        self.pic = PicPair()
        self.pit = Pit8254(lambda: self.pic.raise_irq(0))
        self.bus.attach(MASTER, 2, self.pic)
        self.bus.attach(SLAVE, 2, self.pic)
        self.bus.attach(PIT_BASE, 4, self.pit)
        self.icount = 0  # retired guest instructions (exact clock)
        #: engines whose count lags while the guest runs (hw) replace this
        self.icount_now = lambda: self.icount
        self.idle_ns = 0  # virtual time skipped by hlt
        #: the instruction count at which the engine must call poll_interrupts() (None:
        #: no interrupt can come); ``resched`` is set whenever it changes
        self.event_at: int | None = None
        self.resched = False
        #: free clock: the timer thread that says when to look (instead of event_at)
        self.kick: Kick | None = None
        #: held by the free clock's threads while they stop the CPU (see Kick)
        self.stop_lock = threading.Lock()
        self._stepping_pc: int | None = None  # see poll_interrupts()
        self.on_guest_write = None  # the code cache's SMC check (engine bt)
        self.coverage = None  # a dynamic-coverage recorder: engines attach it (dbt.coverage)
        self.reason: Reason | None = None
        self.fault_info: Fault | None = None
        self.stats: dict[str, int] = {}
        self.exceptions: dict[str, int] = {}  # delivered to the guest, by vector name
        self._cpustate = None
        self._loop_pc: int | None = None  # see exception(): a handler that faults at once
        self._loop_n = 0
        self.mask = (1 << self.bits) - 1
        self.regs = REGS64 if self.bits == 64 else REGS32
        self._t0 = self._t_run = time.perf_counter()

    # --- stopping -------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def stop(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason

    def fault(self, vector: int, pc: int, detail: str = "", error_code: int | None = None,
              address: int | None = None, reason: Reason = Reason.FAULT) -> None:
        """End the run with a guest exception that is not delivered."""
        self.fault_info = Fault(vector, pc, detail, error_code, address)
        self.machine.pc = pc
        self.stop(reason)

    def exception(self, vector: int, pc: int, detail: str = "", error_code: int | None = None,
                  address: int | None = None, soft: bool = False,
                  from_cpu: bool = False, external: bool = False) -> int | None:
        """The guest raised exception ``vector``; ``pc`` is the pc to save (the faulting
        instruction, or the next one for ``int n``, ``int3``, ``into``: ``soft``).

        It is delivered through the guest's IDT (:mod:`dbt.monitor.interrupts`), and
        the guest goes on at the handler, whose address is returned (the engine sets
        the pc, or leaves it to translated code) — unless the guest has no IDT (IDTR still
        at its reset value 0:0), or it is a #PF with no guest paging: an access
        outside guest RAM is a bus error, not a page fault. Those end the run with
        reason ``fault``. ``from_cpu``: unicorn raised it (its error code is read,
        and QEMU's exception state reset, DESIGN §5 traps 3 and 4).
        """
        from dbt.monitor import interrupts

        if self.coverage is not None and not (soft or external):  # it did not retire
            self.coverage.faulted(pc)
        if from_cpu:
            if vector in interrupts.HAS_ERROR_CODE and not soft:
                error_code = self.cpu_state().error_code()
                if vector == 14 and not self.owns_cpu:
                    # the real CPU ran the access at CPL 0 (nested paging under interp):
                    # the U/S bit is the virtual CPL's (SDM Vol. 3A §4.7)
                    error_code = error_code & ~ERR_U | (ERR_U if self.cpl() == 3 else 0)
            self.cpu_state().forget_exception()
            if vector == 14 and address is not None:  # the CPU's CR2 is the virtual CPU's too
                self.set_cr2(address)
        _, idt_base, idt_limit, _ = self.machine.fast.mmr(U.UC_X86_REG_IDTR)
        if soft:  # undelivered, it leaves the pc at the int instruction (as a PC does)
            at = interrupts.soft_int_start(self.peek, pc, vector)
        bus_error = vector == 14 and not from_cpu and (error_code is None
                                                       or not self.guest_paging())
        if (idt_base, idt_limit) == (0, 0) or bus_error:
            if soft:
                detail = f"interrupt {vector:#x} with no IDT to deliver it"
            self.fault(vector, at if soft else pc, detail, error_code, address)
            return None
        self._loop_n = self._loop_n + 1 if pc == self._loop_pc else 0
        if self._loop_n >= 16:
            self.fault(vector, pc, f"exception loop: the handler at {pc:#x} faults before "
                                   "its first instruction completes", error_code, address)
            return None
        try:
            handler = interrupts.deliver(self, vector, pc, error_code, soft, external)
        except interrupts.TripleFault as e:
            self.fault(vector, at if soft else pc, f"triple fault: {e}", error_code, address,
                       reason=Reason.TRIPLE_FAULT)
            return None
        except interrupts.NotEmulated as e:
            self.fault(vector, at if soft else pc, str(e), error_code, address)
            return None
        name = VECTORS.get(vector, f"vector {vector:#x}")
        self.exceptions[name] = self.exceptions.get(name, 0) + 1
        self._loop_pc = handler
        return handler

    def cpu_state(self):
        """unicorn's hidden CPU state (:class:`dbt.monitor.cpustate.CpuState`), made on first use."""
        if self._cpustate is None:
            from dbt.monitor.cpustate import CpuState

            self._cpustate = CpuState(self.uc)
        return self._cpustate

    def resume_at(self, handler: int | None) -> None:
        """Set the pc to a handler that exception() or poll_interrupts() returned (outside
        emu_start only: a hook must never write the pc)."""
        if handler is not None:
            self.machine.pc = handler

    def guest_paging(self) -> bool:
        """Has the guest turned on paging of its own (beyond dbt's 64-bit boot tables)?"""
        return self.machine.guest_paging()

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    # --- exits shared by every engine -----------------------------------------------------
    def io_in(self, port: int, size: int) -> int:
        self.count("io_in")
        if port in TIMER_PORTS:
            self.pit.advance(self.pit_tick())
        return self.bus.read(port, size)

    def io_out(self, port: int, size: int, value: int) -> None:
        self.count("io_out")
        timer = port in TIMER_PORTS
        if timer:
            self.pit.advance(self.pit_tick())
        self.bus.write(port, size, value)
        if self.debug_exit.code is not None:
            self.stop(Reason.EXIT)
        elif timer:  # the timer or interrupt controller changed: look again after this
            self._schedule(self.icount_now() + 1)

    def virtual_tsc(self) -> int:
        """Virtual time in ns: one per retired guest instruction (a 1 GHz CPU retiring one
        instruction per cycle) plus the time skipped in ``hlt`` (exact clock)."""
        if self.config.clock == "free":
            return int((time.perf_counter() - self._t0) * 1e9)
        return self.icount_now() + self.idle_ns

    def pit_tick(self) -> int:
        return self.virtual_tsc() * PIT_HZ // 1_000_000_000

    # --- external interrupts (the PIT through the PICs) -------------------------------------
    def _schedule(self, icount: int | None) -> None:
        if self.kick is not None:  # free clock: host time decides, whatever the count
            self._arm_kick()
        elif icount != self.event_at:
            self.event_at, self.resched = icount, True

    def _reschedule(self) -> None:
        """Ask to be polled when the timer next expires."""
        if self.kick is not None:
            self._arm_kick()
            return
        tick = self.pit.next_expiry()
        self._schedule(None if tick is None
                       else max(_tick_ns(tick) - self.idle_ns, self.icount_now() + 1))

    def _arm_kick(self) -> None:
        """Free clock: be kicked when the timer next expires in host time, or soon when an
        interrupt is already pending (it waits for IF: look again then)."""
        if self.pic.pending():
            self.kick.arm(time.perf_counter() + Kick.RETRY)
            return
        tick = self.pit.next_expiry()
        self.kick.arm(None if tick is None else self._t0 + _tick_ns(tick) / 1e9)

    def event_due(self) -> bool:
        """Must the engine call poll_interrupts() before it runs the next instruction?"""
        if self.kick is not None:
            return self.kick.due
        return self.event_at is not None and self.icount >= self.event_at

    def interrupts_enabled(self) -> bool:
        return bool(self.guest_eflags() & (1 << 9))

    def poll_interrupts(self, pc: int) -> int | None:
        """At an instruction boundary (``pc`` is the next instruction): deliver a pending
        external interrupt if the guest accepts one now; returns the handler's address.

        Interrupts are recognised at the first boundary at or after the timer's
        deadline where IF is set and the previous instruction was not ``sti`` (its
        one-instruction shadow). While one waits for IF, the engine is asked to stop
        after every instruction (event_at = count + 1), so every engine recognises
        it at the same instruction."""
        self.pit.advance(self.pit_tick())
        if not self.pic.pending():
            self._stepping_pc = None
            self._reschedule()
            return None
        if self.kick is not None:  # free clock: polls are not one instruction apart
            shadow = self.peek(pc - 1, 1) == b"\xfb"  # (an sti, or a byte like it: later)
        else:
            shadow = self._stepping_pc is not None and \
                self.peek(self._stepping_pc, 1) == b"\xfb"  # sti
        if not self.interrupts_enabled() or shadow:
            self._stepping_pc = pc
            self._schedule(self.icount_now() + 1)
            return None
        self._stepping_pc = None
        vector = self.pic.acknowledge()
        self.count("interrupts")
        handler = None if vector is None else self.exception(
            vector, pc, f"external interrupt {vector:#x}", external=True)
        self._reschedule()
        return handler

    def halt(self, next_pc: int) -> int | None:
        """``hlt`` retired (counted); with IF set, wait for the next interrupt: virtual
        time jumps to the timer's deadline. Returns the handler to go on at, or None
        when the run ends (IF clear, or nothing can ever interrupt the wait)."""
        if not self.interrupts_enabled():
            self.stop(Reason.HALT)
            return None
        self.pit.advance(self.pit_tick())
        if not self.pic.pending():
            tick = self.pit.next_expiry()
            if tick is not None and self.config.clock == "exact":
                self.idle_ns += max(0, _tick_ns(tick) - self.virtual_tsc())
                self.pit.advance(tick)
            elif tick is not None:  # free clock: really wait
                time.sleep(max(0.0, tick / PIT_HZ - self.virtual_tsc() / 1e9))
                self.pit.advance(self.pit_tick())
        if not self.pic.pending():
            self.stop(Reason.HALT)  # waiting for an interrupt that cannot come
            return None
        self._stepping_pc = None
        return self.poll_interrupts(next_pc)

    # --- registers and memory for handlers --------------------------------------------------
    def reg(self, name: str) -> int:
        return self.machine.fast.read(reg_id(name)) if name in _GPR else \
            self.uc.reg_read(reg_id(name))

    def set_reg(self, name: str, value: int) -> None:
        if name in _GPR:
            self.machine.fast.write(reg_id(name), value)
        else:
            self.uc.reg_write(reg_id(name), value)

    def guest_eflags(self) -> int:
        """EFLAGS as the guest sees them: the real arithmetic flags, the virtual IF and IOPL."""
        real = self.machine.fast.read(U.UC_X86_REG_EFLAGS)
        if self.owns_cpu:
            return real
        return (real & ~VIRTUAL_FLAGS) | self.vcpu.eflags_virtual | 2

    def set_guest_eflags(self, value: int) -> None:
        if self.owns_cpu:
            self.uc.reg_write(U.UC_X86_REG_EFLAGS, value | 2)
            return
        self.vcpu.eflags_virtual = value & VIRTUAL_FLAGS
        self.uc.reg_write(U.UC_X86_REG_EFLAGS, (value & ~VIRTUAL_FLAGS) | 2)

    # --- segments and descriptor tables ---------------------------------------------------
    def cpl(self) -> int:
        return (self.uc.reg_read(U.UC_X86_REG_CS) if self.owns_cpu else self.vcpu.cs) & 3

    def descriptor(self, sel: int) -> int | None:
        """The 8-byte GDT descriptor a selector names, or None (null, LDT, past the limit)."""
        if sel & 4:
            return None  # LDT descriptors are not looked up yet
        _, base, limit, _ = self.machine.fast.mmr(U.UC_X86_REG_GDTR)
        index = sel & ~7
        if index == 0 or index + 7 > limit:
            return None
        return self.read_int(base + index, 8, system=True)

    def load_cs(self, sel: int) -> None:
        """Load CS with a selector of the current privilege level (checked by the caller).

        unicorn's register write loads CS as ``mov`` loads a data segment and sets the
        descriptor's accessed bit in the GDT; its own far transfers, ``iret`` and
        interrupt delivery (what ``hw`` runs) leave the bit alone, so it is put back.
        """
        with self.accessed_bit_kept(sel):
            self.uc.reg_write(U.UC_X86_REG_CS, sel)
        if not self.owns_cpu:
            self.vcpu.cs = sel

    @contextlib.contextmanager
    def accessed_bit_kept(self, sel: int):
        """Around a segment register write through unicorn: put the accessed byte of the
        GDT descriptor that ``sel`` names back as it was (see load_cs)."""
        if not sel & ~3:
            yield  # a null selector: no descriptor
            return
        _, base, _, _ = self.machine.fast.mmr(U.UC_X86_REG_GDTR)
        access = self.translate(base + (sel & ~7) + 5, READ, system=True)
        ram = self.machine.ram_mem.buf
        before = ram[access] if access < self.machine.ram_size else None
        yield
        if before is not None:
            ram[access] = before

    def tss_base(self) -> int | None:
        """Base address of the task-state segment TR names (None with no TR loaded)."""
        if self.owns_cpu:
            sel, base, _, _ = self.machine.fast.mmr(U.UC_X86_REG_TR)
            return base if sel else None
        desc = self.descriptor(self.vcpu.tr)
        if desc is None:
            return None
        base = ((desc >> 16) & 0xFFFFFF) | (((desc >> 56) & 0xFF) << 24)
        if self.bits == 64:  # a 16-byte system descriptor: bits 63..32 follow
            base |= self.read_int(self.machine.fast.mmr(U.UC_X86_REG_GDTR)[1]
                                  + (self.vcpu.tr & ~7) + 8, 4, system=True) << 32
        return base

    # --- guest linear memory (through the guest's page tables once it has its own) -------------
    def translate(self, addr: int, access: int, system: bool = False,
                  update: bool = True) -> int:
        """The guest-physical address of linear ``addr`` for an access (paging.READ, WRITE,
        FETCH) at the current privilege (``system``: an implicit supervisor access, such
        as reading the IDT or pushing an exception frame). Raises GuestException #PF
        (CR2 set, as the CPU does when it detects one) or #GP for a non-canonical address.
        ``update=False`` probes without setting accessed/dirty bits and never faults
        (returns -1)."""
        addr &= self.mask
        if not self.guest_paging():
            return addr
        user = not system and self.cpl() == 3
        page = addr & ~0xFFF
        key = (page, access, user)
        cached = self._tlb.get(key) if not self.owns_cpu else None
        if cached is not None:
            return cached | (addr & 0xFFF)
        try:
            phys, _, prot = self.walker.translate(self.machine.paging_mode(), addr, access, user,
                                                  update)
        except PageFault as e:
            if not update:
                return -1
            if e.vector == 14:
                self.set_cr2(e.address)
            raise GuestException(e.vector, e.why, error_code=e.error_code,
                                 address=e.address if e.vector == 14 else None) from None
        if update and (access != WRITE or prot & PROT_W):  # (a write allowed: D is now set)
            self._tlb[key] = phys & ~0xFFF
        return phys

    def set_cr2(self, value: int) -> None:
        self.uc.reg_write(U.UC_X86_REG_CR2, value)
        self.vcpu.cr2 = value

    def mapping_changed(self, page: int | None = None) -> None:
        """The guest's translations may have changed (CR0/CR3/CR4/EFER written, or
        ``invlpg page``): forget the monitor's, and let the code cache check its own."""
        self._tlb.clear()
        self.machine.forget_paging()
        if self.machine.memory:
            self.machine.memory.shadow_flushes += 1
        elif self.mmu == "shadow" and self.guest_paging():
            from dbt.errors import EngineError

            raise EngineError("the guest turned paging on: --mmu shadow needs the monitor's "
                              "TLB (--memory fast); with unicorn's own mapping only nested "
                              "paging exists")
        if self.on_mapping_change is not None:
            self.on_mapping_change(page)

    def _physical(self, addr: int, n: int, access: int, system: bool):
        """The physical pieces of the linear range [addr, addr+n): (physical, length)."""
        addr &= self.mask
        pieces = []
        while n:
            chunk = min(n, 0x1000 - (addr & 0xFFF))
            phys = self.translate(addr, access, system)
            if phys + chunk > self.machine.ram_size:
                kind = ("read of", "write of", "fetch of")[access]
                where = f"{addr:#x}" if phys == addr else f"{addr:#x} (physical {phys:#x})"
                raise BusError(f"{kind} {n} bytes at {where} outside guest RAM", addr)
            pieces.append((phys, chunk))
            addr, n = (addr + chunk) & self.mask, n - chunk
        return pieces

    # (guest RAM is host memory: see dbt/monitor/hostmem.py; _physical refuses the rest)
    def read_mem(self, addr: int, n: int, system: bool = False) -> bytes:
        ram = self.machine.ram_mem.buf
        return b"".join(ram[p:p + k] for p, k in self._physical(addr, n, READ, system))

    def write_mem(self, addr: int, data: bytes, system: bool = False) -> None:
        at, ram = 0, self.machine.ram_mem.buf
        for phys, k in self._physical(addr, len(data), WRITE, system):
            ram[phys:phys + k] = data[at:at + k]
            at += k
            memory = self.machine.memory
            if self.machine.exec_ram and (memory is None or phys & ~0xFFF in memory.code_pages):
                # unicorn 2.1.4 keeps translated blocks of memory written by uc.mem_write:
                # drop them, or a guest that rewrites code through a handler runs stale
                # code. (Not under bt: unicorn never runs guest RAM there.) unicorn looks
                # the range up as an instruction fetch at the linear address it ran at.
                lin = (addr + at - k) & self.mask
                self.uc.ctl_remove_cache(lin, lin + k)
            if self.on_guest_write:
                self.on_guest_write(phys, phys + k)

    def fetch_code(self, addr: int, n: int, update: bool = True) -> bytes:
        """Up to ``n`` bytes of guest code at linear ``addr``, as an instruction fetch
        sees them: fewer where the next page cannot be fetched (or RAM ends), b"" if
        none can. ``update=False`` only looks (no accessed bit is set)."""
        if not self.guest_paging():
            return self.machine.fetch(addr & self.mask, n)
        out = b""
        addr &= self.mask
        while n:
            chunk = min(n, 0x1000 - (addr & 0xFFF))
            try:
                phys = self.translate(addr, FETCH, update=update)
            except GuestException:
                break
            if phys < 0:
                break
            got = self.machine.fetch(phys, chunk)
            out += got
            if len(got) < chunk:
                break
            addr, n = (addr + chunk) & self.mask, n - chunk
        return out

    def code_page(self, page: int) -> int:
        """The physical page instructions at linear ``page`` are fetched from now (-1 if
        none), only looked up: no accessed bit is set, no fault raised."""
        return self.translate(page, FETCH, update=False) & ~0xFFF

    def peek(self, addr: int, n: int) -> bytes:
        """Guest code bytes at a linear address, only looked at (no fault, no accessed bit)."""
        return self.fetch_code(addr, n, update=False)

    def fetch_fault(self, pc: int, length: int = 1) -> GuestException | None:
        """Why the instruction at ``pc`` (at least ``length`` bytes) cannot be fetched:
        the #PF to deliver (CR2 set), a BusError, or None if it can."""
        if not self.guest_paging():
            return None
        for addr in sorted({pc & self.mask, (pc + length - 1) & self.mask}):
            try:
                phys = self.translate(addr, FETCH)
            except GuestException as e:
                return e
            if phys >= self.machine.ram_size:
                return BusError(f"instruction fetch at {addr:#x} from physical {phys:#x} "
                                f"outside guest RAM", addr)
        return None

    def read_int(self, addr: int, size: int, system: bool = False) -> int:
        return int.from_bytes(self.read_mem(addr, size, system), "little")

    def write_int(self, addr: int, size: int, value: int, system: bool = False) -> None:
        self.write_mem(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"),
                       system)

    def effective_address(self, insn: Insn, m: Mem) -> int:
        addr = m.disp
        if m.base:
            addr += insn.next if m.base == "rip" else self.reg(m.base)
        if m.index:
            addr += self.reg(m.index) * m.scale
        if m.seg in ("fs", "gs") and self.bits == 64:
            addr += self.uc.reg_read(U.UC_X86_REG_FS_BASE if m.seg == "fs" else U.UC_X86_REG_GS_BASE)
        return addr & self.mask

    def read_operand(self, insn: Insn, i: int) -> int:
        op = insn.operands[i]
        if op.kind == "reg":
            return self.reg(op.reg)
        if op.kind == "imm":
            return op.imm & ((1 << (8 * op.size)) - 1) if op.size else op.imm
        return self.read_int(self.effective_address(insn, op.mem), op.size)

    def write_operand(self, insn: Insn, i: int, value: int) -> None:
        op = insn.operands[i]
        if op.kind == "reg":
            if op.size == 4 and self.bits == 64:  # a 32-bit destination zero-extends
                self.set_reg(_full64(op.reg), value & 0xFFFFFFFF)
            else:
                self.set_reg(op.reg, value & ((1 << (8 * op.size)) - 1))
        elif op.kind == "mem":
            self.write_int(self.effective_address(insn, op.mem), op.size, value)
        else:
            raise GuestException(6, f"{insn.mnemonic} {insn.op_str}: cannot write an immediate")

    def push(self, value: int, size: int) -> None:
        sp = (self.uc.reg_read(self.machine.sp_reg) - size) & self.mask
        self.write_int(sp, size, value)
        self.uc.reg_write(self.machine.sp_reg, sp)

    def pop(self, size: int) -> int:
        sp = self.uc.reg_read(self.machine.sp_reg)
        value = self.read_int(sp, size)
        self.uc.reg_write(self.machine.sp_reg, (sp + size) & self.mask)
        return value

    # --- the result -------------------------------------------------------------------------
    def start_clock(self, stop_cpu: bool = True) -> None:
        """Engines call this as their run loop starts: ``run_seconds`` excludes set-up.
        In the free clock this starts the timer thread (run_guest closes it); ``stop_cpu=False``
        for an engine that polls between every two instructions (it only needs event_due())."""
        self._t_run = time.perf_counter()
        if self.config.clock == "free" and self.kick is None:
            self.kick = Kick(self.uc if stop_cpu else None, self.stop_lock)
            self._reschedule()

    def result(self, vcpu: VCpu, eflags: int, guest_instructions: int | None,
               stats: dict | None = None) -> RunResult:
        run_seconds = time.perf_counter() - self._t_run
        ram = self.machine.ram()
        registers = {name: self.reg(name) for name in self.regs}
        registers["rip" if self.bits == 64 else "eip"] = self.machine.pc
        registers["rflags" if self.bits == 64 else "eflags"] = eflags
        system = vcpu.as_dict()
        for k in ("bits", "dr", "msrs", "xcr0", "cr8"):
            system.pop(k, None)
        s = dict(self.stats)
        s.update(stats or {})
        s["io_reads"], s["io_writes"] = self.bus.reads, self.bus.writes
        s["exceptions"] = dict(self.exceptions)
        s["page_faults"] = self.exceptions.get("#PF", 0)
        s["mmu"] = self.mmu
        s["idle_ns"] = self.idle_ns
        s["memory"] = self.config.memory
        if self.machine.memory:
            s.update(self.machine.memory.stats())
        s["seconds"] = round(time.perf_counter() - self._t0, 6)
        s["run_seconds"] = round(run_seconds, 6)
        reason = self.reason or Reason.HALT
        return RunResult(
            engine=self.engine, arch=self.image.arch.value, clock=self.config.clock,
            reason=reason,
            exit_code=self.debug_exit.code if reason is Reason.EXIT else None,
            serial=bytes(self.uart.output), guest_instructions=guest_instructions,
            pc=self.machine.pc, registers=registers, system=system,
            memory_sha256=hashlib.sha256(ram).hexdigest(), fault=self.fault_info, stats=s,
            ram=ram if self.config.keep_ram else None)


#: ports whose accesses depend on, or change, when the next interrupt comes
TIMER_PORTS = frozenset((MASTER, MASTER + 1, SLAVE, SLAVE + 1, *range(PIT_BASE, PIT_BASE + 4)))


def _tick_ns(tick: int) -> int:
    """The first virtual ns at which PIT tick ``tick`` has been reached."""
    return -(-tick * 1_000_000_000 // PIT_HZ)


def _full64(reg32: str) -> str:
    if reg32.startswith("r"):  # r8d -> r8
        return reg32[:-1]
    return "r" + reg32[1:]
