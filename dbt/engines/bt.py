"""Engine ``bt``: VMware-style scan-and-patch binary translation into a code cache.

The run loop reads as the pipeline: look up the guest pc in the code cache,
(scan -> translate -> place) on a miss, run translated code in unicorn, handle
the exit. Translated code leaves to the monitor through ``int3`` sites (callouts,
unchained exits, misses of the indirect-branch map), reported by unicorn's
interrupt hook; the hook runs the monitor's handler and tells translated code
where to go on by writing ``jump_slot`` (never the pc). Two exits are faults
instead, because they must be flags-free and a fault costs nothing until it
happens: the budget check (the prologue's probe load) and, in 64-bit mode, a map
entry made for a pc with another high half (the walk jumps outside the code
cache, where bt refuses every fetch).

Guest RAM is mapped read/write without execute: if control ever left the code
cache, unicorn would refuse to fetch (no escape, DESIGN §3 invariant 3).

Counting (exact clock): every fragment's prologue subtracts its instruction
count from a chunk of the budget kept below 2**24 in the vCPU area; when the
chunk goes negative the prologue's probe load faults. The monitor's count is then
``base + (chunk - rem) + extra``, corrected at faults and callouts for the
instructions of the current segment (see :mod:`dbt.translator.trace`) that did not
run yet.
"""

from __future__ import annotations

import statistics
import struct
import time

from unicorn import UcError
from unicorn import unicorn_const as C
from unicorn import x86_const as U

from dbt.cache.codecache import CodeCache
from dbt.cache.layout import CACHE_SIZE, VCPU_OFFSET, VCPU_SIZE, Layout
from dbt.engines import REPORTS, register
from dbt.engines.faults import UC_ERRORS, invalid_detail
from dbt.errors import CacheFull, TranslationError
from dbt.monitor.exits import Reason, RunResult
from dbt.monitor.handlers import handler_for
from dbt.monitor.machine import MONITOR_BASE, MONITOR_SIZE
from dbt.monitor.monitor import GuestException, Monitor
from dbt.monitor.pagefault import fetch_exception, fetch_fault_detail, inject
from dbt.monitor.privilege import popf_mask
from dbt.monitor.watchdog import Watchdog
from dbt.scanner import StopReason
from dbt.scanner.decoder import MAX_INSN_LEN
from dbt.translator import jumptable
from dbt.translator.fragment import Fragment, Site, SiteKind
from dbt.translator.templates import Templates
from dbt.translator.trace import BlockCache, build_trace
from dbt.translator.translate import Translator

CHUNK = (1 << 24) - 1  # budget chunk: the prologue's sign test needs rem < 2**24
MIXED_STORES_PER_TABLE_PAGE = 64
#: free clock: host instructions stepped at most to reach a guest instruction boundary
#: (the longest template or map walk is a few dozen)
MAX_STEPS = 10_000
TF = 0x100  # EFLAGS.TF: how bt single-steps translated code (see Bt._step)


def _pages(address: int, size: int) -> range:
    """The guest pages a store of ``size`` bytes at ``address`` touches."""
    return range(address & ~0xFFF, address + size, 0x1000)


@register
class Bt:
    name = "bt"
    exec_ram = False
    owns_cpu = False  # see Monitor.owns_cpu
    monitor = True
    reports = REPORTS
    mmus = ("shadow",)
    mmu_note = ("the code cache must stay mapped while the guest controls CR3: only the "
                "monitor's shadow translations can keep it there")

    def __init__(self, mon: Monitor):
        self.mon = mon
        m = mon.machine
        self.exact = mon.config.clock == "exact"
        self.layout = Layout.map(m)
        self.fast = m.fast
        self._rem_phys = self.layout.slot_phys("rem")
        self._jump_phys = self.layout.slot_phys("jump_slot")
        self.templates = Templates(self.layout)
        self.translator = Translator(self.layout, self.templates, mon.decoder, self.exact,
                                     mon.config.inline)
        self.cache = CodeCache(m, self.layout, self.translator)
        self.blocks = BlockCache(mon.decoder, mon.fetch_code)
        self.no_tables: set[int] = set()  # pages whose jump tables are not translated
        self._mixed: dict[int, int] = {}  # page -> stores let through beside translations
        self._blocks_epoch = self.cache.epoch
        self.validate = mon.config.validate
        self.mixed_page_stores = 0
        self.callouts: dict[str, int] = {}
        self.misses = 0
        self.translate_seconds = 0.0
        self.translate_times: list[float] = []  # seconds, each translation (for the median)
        self._vflags = 0  # virtual IF/IOPL as last read from the vCPU area
        self._vmask = popf_mask(0, 0)  # what the vmask slot holds (see Translator._inline)
        self.base = 0  # instructions counted before the current chunk
        self.chunk = 0
        self.extra = 0  # instructions the monitor counted itself (rep callout iterations)
        self.next_tc: int | None = None  # where to resume after emu_start returns
        self.pending_rep = None  # (insn, budget left): see _rep_to_budget
        self.pending_alone: Site | None = None  # see _run_alone
        self.alone_steps = 0
        self.fault_eip: int | None = None
        self.fault_vector: int | None = None
        self.bad_address: int | None = None
        self.write_fault: tuple[int, int] | None = None
        #: (host address of a callout's jmp [jump_slot], where the slot sends it), as the
        #: last callout of the current emu_start left them
        self.resume: tuple[int, int] | None = None
        self.stepping = False  # the trap flag is set: see _step
        uc = m.uc
        uc.hook_add(C.UC_HOOK_INTR, self._on_intr)
        # Memory hooks put every access to the addresses they cover on unicorn's slow
        # path (DESIGN §5), so none covers guest RAM or the vCPU area: unmapped-access
        # hooks cover what lies outside both, write-protection hooks the code cache and
        # the lookup table (which translated code never writes) and, one page at a
        # time, the guest pages that hold translated code (see CodeCache.protect).
        # unicorn checks a memory hook's range against the *physical* address of the
        # access. In 64-bit mode translated code sees the monitor's memory at a high
        # alias (machine.monitor_va), but the ranges must be physical, or the one meant
        # to end below the monitor's memory covers the vCPU area (measured: every
        # template store to a vCPU slot on the slow path, returns 2x slower).
        vcpu_end = MONITOR_BASE + VCPU_OFFSET + VCPU_SIZE
        for lo, hi in ((m.ram_size, MONITOR_BASE - 1), (vcpu_end, (1 << 64) - 1)):
            uc.hook_add(C.UC_HOOK_MEM_READ_UNMAPPED | C.UC_HOOK_MEM_WRITE_UNMAPPED
                        | C.UC_HOOK_MEM_FETCH_UNMAPPED, self._on_unmapped, None, lo, hi)
        uc.hook_add(C.UC_HOOK_MEM_WRITE_PROT, self._on_write_prot, None, vcpu_end,
                    MONITOR_BASE + MONITOR_SIZE - 1)
        self.cache.on_write_prot = self._on_write_prot
        mon.on_guest_write = self._guest_written
        mon.on_mapping_change = self._remapped
        self._write_slot("vif", 0)
        self._write_slot("viopl", 0)
        self._write_slot("vmask", self._vmask)
        self._set_count(0)
        self.rep_scratch = None  # (host address, insn) of the rep _rep_to_budget runs alone
        if mon.coverage is not None:  # (a per-instruction hook: only when coverage is asked)
            mon.coverage.attach(self)

    # --- the vCPU area ----------------------------------------------------------------------
    def _read_slot(self, name: str) -> int:
        return struct.unpack("<q", self.fast.mem(self.layout.slot_phys(name), 8))[0]

    def _write_slot(self, name: str, value: int) -> None:
        self.fast.mem_write(self.layout.slot_phys(name), struct.pack("<Q", value % 2**64))

    def _rem(self) -> int:
        return struct.unpack("<i", self.fast.mem(self._rem_phys, 4))[0]

    def _set_count(self, icount: int) -> None:
        """Restart the budget accounting at a known instruction count."""
        self.base, self.extra = icount, 0
        self.mon.resched = False
        left = self._limit() - icount
        self.chunk = max(0, min(CHUNK, left)) if self.exact else CHUNK
        self.mon.uc.mem_write(self.layout.slot_phys("rem"), struct.pack("<i", self.chunk))

    def _limit(self) -> int:
        """The count at which translated code must stop: the budget, or sooner where
        the monitor wants to look for an interrupt (exact clock)."""
        event = self.mon.event_at
        budget = self.mon.config.max_insns
        return budget if event is None or not self.exact else min(budget, event)

    def counted(self) -> int:
        """Instructions counted so far, by prologues and by the monitor."""
        return self.base + (self.chunk - self._rem()) + self.extra

    def _sync_in(self) -> int:
        """Virtual flags from the vCPU area into the monitor's VCpu (before a handler);
        returns the budget chunk's ``rem`` read in the same access (slots rem, vif and
        viopl are adjacent: one unicorn call instead of three on every callout)."""
        rem, vif, viopl = struct.unpack("<i4xqq", self.fast.mem(self._rem_phys, 24))
        self.mon.vcpu.eflags_virtual = self._vflags = (vif & 0x200) | (viopl & 0x3000)
        return rem

    def _sync_out(self) -> None:
        vcpu = self.mon.vcpu
        v = vcpu.eflags_virtual
        if v != self._vflags:
            self.mon.uc.mem_write(self.layout.slot_phys("vif"),
                                  struct.pack("<qq", v & 0x200, v & 0x3000))
        mask = popf_mask(vcpu.cpl, vcpu.iopl)
        if mask != self._vmask:  # the CPL or (outside ring 0) IOPL changed
            self._vmask = mask
            self._write_slot("vmask", mask)

    # --- the run loop -----------------------------------------------------------------------
    def run(self) -> RunResult:
        mon = self.mon
        mon.start_clock()
        self.next_tc = self._enter(mon.image.entry)
        if self.exact:
            self._loop(None)
        else:
            with Watchdog.for_budget(mon.uc, mon.config.max_insns, mon.stop_lock) as dog:
                self._loop(dog)
        return self._result()

    def _loop(self, dog: Watchdog | None) -> None:
        mon = self.mon
        steps = 0  # host instructions stepped towards a guest instruction boundary
        while not mon.stopped:
            tc, self.next_tc = self.next_tc, None
            if dog is not None and (dog.fired or mon.event_due()):
                # free clock: the budget ran out or the timer is due; both need a guest pc
                if self.resume is not None and tc == self.resume[0]:
                    # stopped at a callout's jmp [jump_slot] (a kick that came while the
                    # monitor ran the callout): go on at its target, with no step
                    tc = self.resume[1]
                guest = self._guest_pc_at(tc)
                if guest is None:
                    steps += 1
                    if steps > MAX_STEPS:
                        raise TranslationError(f"no guest instruction boundary within "
                                               f"{MAX_STEPS} host instructions of {tc:#x}")
                else:
                    steps = 0
                    mon.machine.pc = guest
                    if dog.fired:
                        mon.stop(Reason.BUDGET)
                        break
                    handler = self._deliver(lambda: mon.poll_interrupts(guest))
                    if mon.stopped:
                        break
                    if handler is not None:
                        tc = self._enter(handler)
            self._clear_events()
            self.resume = None
            err = None
            try:
                if steps:
                    self._step(tc)
                else:
                    mon.uc.emu_start(tc, 0)
            except UcError as e:
                err = e
            if err is not None and self._fault_exit(err):
                err = None
            if mon.stopped:
                break
            memory = mon.machine.memory
            if memory and memory.flush_if_wanted() and err is None and self.next_tc is None \
                    and self.fault_vector is None and self.write_fault is None \
                    and self.pending_rep is None and self.pending_alone is None:
                self.next_tc = mon.machine.pc  # stopped only for the TLB resize: go on
                if mon.coverage is not None:
                    mon.coverage.stopped_at(self.next_tc)
                continue
            if self.pending_rep is not None:
                self._rep_to_budget()
            elif self.pending_alone is not None:
                self._run_alone()
            elif self.write_fault is not None:
                self._self_modifying_write()
            elif err is not None or self.fault_vector is not None:
                self._guest_fault(err)
            elif self.next_tc is None:
                if dog is None:
                    raise TranslationError("translated code stopped without an exit")
                # free clock: a step, the budget, or the timer thread (whose stop may land
                # after a handler took the interrupt it was for): go on where it stopped
                self.next_tc = mon.machine.pc

    def _step(self, at: int) -> None:
        """Run the one host instruction at ``at`` (a store let through, or a step towards
        a guest instruction boundary), then stop.

        bt steps with the trap flag, not with ``emu_start(count=1)``: unicorn's count
        is a code hook compiled into the blocks it translates while counting, so
        blocks it translated earlier run on uncounted (a whole loop for one "step": see
        the test of this method). The trap flag is part of a block's key, so the step
        gets a block of its own and unicorn reports vector 1 after exactly one
        instruction (see _on_intr). The flag is cleared before the monitor looks at the
        guest's flags; a stepped ``pushf`` of the flag template (only a store let
        through beside code can be one) has it taken out of the image it pushed."""
        pushf = self._pushf_at(at)
        self._trap_flag(True)
        try:
            self.mon.uc.emu_start(at, 0)
        finally:
            self._trap_flag(False)
        if pushf and self.mon.machine.pc != at:  # it ran: take TF out of its image
            mon = self.mon
            sp = mon.reg("rsp" if mon.bits == 64 else "esp")
            mon.write_int(sp, 4, mon.read_int(sp, 4, system=True) & ~TF, system=True)

    def _run_alone(self) -> None:
        """Step a read-modify-write instruction that bt could not split (see
        :mod:`dbt.translator.rmw`) from its copy in the fragment's cold code, where no
        stop can land after its store and run it again. Goes on after its site (or at
        the next instruction afresh, if its store rewrote translated code), or delivers
        its fault at its guest address."""
        site, self.pending_alone = self.pending_alone, None
        self.alone_steps += 1
        mon, insn, frag = self.mon, site.insn, site.fragment
        err = self._step_locked(site.alone)
        if err is not None and self.write_fault is not None:  # a page holding translations
            address, size = self.write_fault
            self.write_fault = None
            if address >= mon.machine.ram_size:  # the code cache or the lookup table
                err = self._store_past_ram(address)
            else:
                if self.cache.overlaps_code(address, address + size):
                    self.cache.invalidate(address, address + size)
                err = self._step_locked(site.alone, _pages(address, size))
        if err is None and self.fault_vector is None:
            if mon.machine.pc != site.alone + len(insn.raw):
                raise TranslationError(f"{insn.address:#x}: the step of {insn.mnemonic} "
                                       f"{insn.op_str} did not end after it")
            self.next_tc = site.resume if frag.valid else self._enter_fresh(
                insn.next, self.counted() - frag.pending(site.index) + 1 if frag.counted else 0)
            return
        self.fault_eip = site.key - 1  # its site: the fault is the guest instruction's
        self._guest_fault(err)

    def _step_locked(self, at: int, pages: range = range(0)) -> UcError | None:
        """:meth:`_step` with the stop lock held (the free clock's threads wait), no
        TLB-resize stop, and the guest ``pages`` not write-protected meanwhile."""
        mon, memory = self.mon, self.mon.machine.memory
        resize = memory.resize_stops if memory else False
        with mon.stop_lock:
            if memory:
                memory.resize_stops = False
            try:
                return self._step_open(at, pages)
            finally:
                if memory:
                    memory.resize_stops = resize

    def _step_open(self, at: int, pages: range) -> UcError | None:
        """:meth:`_step` with the guest ``pages`` not write-protected meanwhile (protected
        again after, where they still hold translations); returns the error that ended
        it, if any."""
        for p in pages:
            self.cache.protect(p, False)
        try:
            self._step(at)
        except UcError as e:
            return e
        finally:
            for p in pages:
                if p in self.cache.by_page:
                    self.cache.protect(p, True)
        return None

    def _store_past_ram(self, address: int) -> UcError:
        """A guest store into the code cache or the lookup table: the guest must not learn
        the monitor's memory exists, so it faults as a store past guest RAM does under
        the other engines."""
        self.bad_address = address
        return UcError(C.UC_ERR_WRITE_UNMAPPED)

    def _pushf_at(self, host: int) -> bool:
        """Is host address ``host`` the pushf of a flag template?"""
        frag = self.cache.fragment_at(host)
        return frag is not None and frag.sanctioned.get(host, "").startswith("pushf")

    def _trap_flag(self, on: bool) -> None:
        """Set or clear the real TF (``stepping`` says which); clearing twice is a no-op."""
        if on != self.stepping:
            self.stepping = on
            flags = self.fast.read(U.UC_X86_REG_EFLAGS)
            self.fast.write(U.UC_X86_REG_EFLAGS, flags | TF if on else flags & ~TF)

    def _guest_pc_at(self, host: int) -> int | None:
        """The guest pc if host address ``host`` is where the translation of a guest
        instruction starts (nothing of it has run, no scratch register is in use); None
        inside a translation, in an exit stub or in the map's walk."""
        frag = self.cache.fragment_at(host)
        if frag is None or not frag.starts:
            return None
        i = frag.insn_index_at(host)
        return frag.insns[i].address if frag.starts[i] == host else None

    def _enter(self, pc: int) -> int:
        """Host address to run guest pc from, translating on a miss."""
        found = self.cache.entry(pc)
        return found[1] if found else self._translate(pc).tc

    def _translate(self, pc: int, max_insns: int | None = None, cached: bool = True) -> Fragment:
        t0 = time.perf_counter()
        mon = self.mon
        if self.cache.epoch != self._blocks_epoch:  # translations were dropped
            self.blocks.forget()
            self._blocks_epoch = self.cache.epoch
        trace = build_trace(self.blocks, pc, max_insns,
                            lambda at: self.cache.entry(at) is not None)
        pages = table = None
        if mon.guest_paging() and trace.ranges:
            pages = tuple((v, mon.code_page(v)) for v in trace.pages())
        elif trace.stop is StopReason.CONTROL:
            table = self._jump_table(trace)
        try:
            frag = self.cache.place(trace, cached, pages, table)
        except CacheFull:
            self.cache.flush()
            frag = self.cache.place(trace, cached, pages, table)
        if cached:
            self.blocks.remember(trace)
        if self.validate:
            from dbt.translator.validate import validate

            validate(frag, self.mon.decoder, self.layout)
        took = time.perf_counter() - t0
        self.translate_seconds += took
        self.translate_times.append(took)
        return frag

    def _jump_table(self, trace) -> tuple[int, list[int]] | None:
        """The jump table a trace ends with, if bt may translate it (guest paging off:
        linear = physical, see dbt/translator/jumptable.py), with its targets."""
        jt = jumptable.find(trace.insns, trace.links, self.mon.decoder)
        if jt is None or jt.table & ~0xFFF in self.no_tables:
            return None
        found = jumptable.targets(jt, self.mon.machine.fetch)
        return None if found is None else (jt.table, found)

    def _clear_events(self) -> None:
        self.fault_eip = self.fault_vector = self.bad_address = None
        self.write_fault = None
        if self.mon.machine.memory:
            self.mon.machine.memory.take_page_fault()

    # --- traps from translated code ---------------------------------------------------------
    def _on_intr(self, uc, intno: int, _ud) -> None:
        if self.stepping:  # a step ended (vector 1) or reached a callout: back to the loop
            self._trap_flag(False)
            uc.emu_stop()
            if intno == 1:
                return
        eip = self.fast.read(self.mon.machine.pc_reg)
        site = self.cache.sites.get(eip) if intno == 3 else None
        if site is None:
            self.fault_vector, self.fault_eip = intno, eip
            uc.emu_stop()
            return
        go = self._handle(site)
        if go is None or self.mon.stopped:
            uc.emu_stop()
        else:
            self.fast.mem_write(self._jump_phys, struct.pack("<Q", go))
            self.resume = (eip, go)

    def _handle(self, site: Site) -> int | None:
        try:
            return self._site(site)
        except CacheFull:
            self.cache.flush()
            return None

    def _fault_exit(self, err: UcError) -> bool:
        """Was the fault that ended emu_start one of translated code's own exits (see the
        module docstring)? If so, handle it (next_tc set unless the run stops)."""
        pc = self.mon.machine.pc
        site = self.cache.sites.get(pc)
        if site is not None and site.kind is SiteKind.BUDGET \
                and err.errno == C.UC_ERR_READ_UNMAPPED:
            self._where(pc)  # ecx back
        elif self._far_target(pc):
            for reg, slot in (("rcx", "save_c"), ("rdx", "save_d")):
                self.mon.set_reg(reg, self._read_slot(slot))
            site = self.cache.sites[self.cache.miss_key]
        else:
            return False
        go = self._handle(site)
        if go is not None and not self.mon.stopped:
            self.next_tc = go
        return True

    def _far_target(self, pc: int) -> bool:
        """64-bit: did the walk of the indirect-branch map just jump 2**32 * k away from a
        fragment entry, because the entry was made for a pc with another high half?"""
        if self.mon.bits != 64 or self.cache.fragment_at(pc) is not None:
            return False
        lay = self.layout
        return (pc - lay.cache) % 2**32 < CACHE_SIZE and self.mon.reg("rdx") == pc

    def _site(self, site: Site) -> int | None:
        """Handle a trap; return the host address to go on at (None: leave emu_start)."""
        kind = site.kind
        if kind is SiteKind.CALLOUT:
            return self._callout(site)
        if kind is SiteKind.EXIT:
            found = self.cache.entry(site.target)
            target, at = found if found else (self._translate(site.target), None)
            self.cache.chain(site, target, at)
            return target.tc if at is None else at
        if kind is SiteKind.MISS:  # (registers are back: go to the plain entry)
            self.misses += 1
            pc = self._read_slot("target") & self.mon.mask
            target = self.cache.lookup(pc) or self._translate(pc)
            self.cache.reached(target)
            return target.tc
        if kind is SiteKind.BUDGET:
            return self._budget(site)
        if kind is SiteKind.ALONE:  # leave emu_start: the monitor steps it (_run_alone)
            self.pending_alone = site
            return None
        if kind is SiteKind.REP_GUARD:  # the rep may outrun the chunk: unicorn counts it
            icount = self._undo_prologue(site)
            self.pending_rep = (site.insn, self._limit() - icount)
            return None
        # FAULT: the block starts with bytes that cannot run
        frag = site.fragment
        self.mon.icount = self.counted()
        self._set_count(self.mon.icount)
        if frag.trace.fault == "#UD":
            return self._raise(6, frag.guest_pc, invalid_detail(self.mon, frag.guest_pc))
        fetched = len(self.mon.peek(frag.guest_pc, MAX_INSN_LEN))
        why = fetch_exception(self.mon, frag.guest_pc, fetched)
        if why is not None:  # a page fault (guest paging)
            return self._raise(why.vector, frag.guest_pc, why.detail, why.error_code,
                               why.address)
        self.mon.fault(14, frag.guest_pc, fetch_fault_detail(self.mon.bits, frag.guest_pc),
                       address=frag.guest_pc)  # outside guest RAM: a bus error
        return None

    def _undo_prologue(self, site: Site) -> int:
        """Give back what the prologue of a site's segment took (its code did not run);
        returns the count so far, with the budget accounting restarted there."""
        seg = site.fragment.segment_of(site.index)
        self.fast.mem_write(self._rem_phys, struct.pack("<i", self._rem() + seg.ninsns))
        icount = self.counted()
        self._set_count(icount)
        return icount

    def _budget(self, site: Site) -> int | None:
        """A prologue found the chunk spent: refill, run a tail, or end the run."""
        icount = self._undo_prologue(site)
        frag, seg = site.fragment, site.fragment.segment_of(site.index)
        mon = self.mon
        if mon.event_at is not None and icount >= mon.event_at and icount < mon.config.max_insns:
            mon.icount = icount
            handler = self._deliver(lambda: mon.poll_interrupts(seg.pc))
            if mon.stopped:
                return None
            if handler is not None:
                return self._enter(handler)
        left = self._limit() - icount
        if left <= 0:
            self.mon.icount = icount
            self.mon.machine.pc = seg.pc
            self.mon.stop(Reason.BUDGET)
            return None
        if left < seg.ninsns:  # the budget ends inside this segment: run just its first part
            insns = frag.insns[seg.first:seg.first + left]
            reps = [i for i, insn in enumerate(insns) if self.translator._is_rep_string(insn)]
            if not reps:
                return self._translate(seg.pc, max_insns=left, cached=False).tc
            if reps[0] > 0:  # up to the rep; its own block will come back here
                return self._translate(seg.pc, max_insns=reps[0], cached=False).tc
            # the block starts with a rep whose iterations may outrun the budget: leave
            # translated code and let unicorn count them (see _rep_to_budget)
            self.pending_rep = (insns[0], left)
            return None
        return seg.entry

    def _rep_to_budget(self) -> None:
        """Run a rep string instruction for at most the budget that is left.

        unicorn counts a rep as dbt does (once per start), so the guest instruction
        copied alone, followed by ``hlt``, and run with ``count=left`` stops exactly
        where interp would: mid-rep (the pc stays on it, ecx shows what is done) or
        after it."""
        insn, left = self.pending_rep
        self.pending_rep = None
        mon, machine = self.mon, self.mon.machine
        at = self.cache.scratch(insn.raw + b"\xf4")
        self.rep_scratch = (at, insn)
        icount = self.counted()
        try:
            mon.uc.emu_start(at, 0, count=left)
        except UcError as e:
            self._rep_fault(insn, icount, e)
            return
        done = machine.executed_count()
        if machine.pc == at:  # the budget ran out in the middle of the rep
            mon.icount = icount + left
            if mon.icount < mon.config.max_insns:  # an interrupt check is due, mid-rep
                handler = self._deliver(lambda: mon.poll_interrupts(insn.address))
                if not mon.stopped:
                    self.next_tc = self._enter(insn.address if handler is None else handler)
                return
            machine.pc = insn.address
            mon.stop(Reason.BUDGET)
            return
        # the rep is done: either the hlt ran (its start is not the guest's) or the
        # budget ran out just before it (the next block's prologue will stop the run)
        hlt = at + len(insn.raw)
        self._set_count(icount + (done - 1 if machine.pc == hlt + 1 else left))
        self.next_tc = self._enter(insn.next)

    def _rep_fault(self, insn, icount: int, err: UcError) -> None:
        pf = self.mon.machine.fill_fault(err)
        if pf is not None:  # some iterations may have run: count them as unicorn did
            self.mon.icount = icount + max(0, self.mon.machine.executed_count() - 1)
            self.next_tc = self._inject(pf, insn.address)
            return
        vector, detail = UC_ERRORS.get(err.errno, (13, f"unicorn error: {err}"))
        self.mon.icount = icount
        self.mon.fault(vector, insn.address, detail, address=self.bad_address)

    def _callout(self, site: Site) -> int | None:
        mon, insn, frag = self.mon, site.insn, site.fragment
        self.callouts[insn.name] = self.callouts.get(insn.name, 0) + 1
        rem = self._sync_in()
        before = (self.base + self.chunk - rem + self.extra - frag.pending(site.index)
                  if frag.counted else 0)
        mon.icount = before
        epoch = self.cache.epoch
        detailed = mon.decoder.decode(insn.address, insn.raw, detail=True)
        try:
            next_pc = handler_for(detailed)(mon, detailed)
        except GuestException as e:
            mon.icount = before + (1 if e.trap else 0)
            self._set_count(mon.icount)
            return self._raise(e.vector, insn.next if e.trap else insn.address, e.detail,
                               e.error_code, e.address, soft=e.trap, sync=False)
        self._sync_out()
        if mon.stopped:
            mon.icount = before + 1
            self._set_count(mon.icount)
            mon.machine.pc = insn.next if next_pc is None else next_pc
            return None
        if mon.resched:  # the handler moved the next interrupt check (timer, PIC, hlt)
            return self._enter_fresh(insn.next if next_pc is None else next_pc, before + 1)
        if next_pc == insn.address:  # a rep string instruction goes round again
            self.extra += 1
            if self.counted() >= mon.config.max_insns and self.exact:
                mon.icount = self.counted()
                mon.machine.pc = insn.address
                mon.stop(Reason.BUDGET)
                return None
            return frag.starts[site.index] if self.cache.epoch == epoch else \
                self._enter_fresh(insn.address, before + 1)
        target = insn.next if next_pc is None else next_pc
        if target == insn.next and self.cache.epoch == epoch:
            return site.resume
        # the handler wrote over translated code, or went elsewhere (the prologue
        # counted the rest of the block, should the callout not have ended it)
        return self._enter_fresh(target, before + 1)

    def _enter_fresh(self, pc: int, icount: int) -> int:
        """Go on at ``pc`` with the count restarted (the current fragment may be stale)."""
        self._set_count(icount)
        return self._enter(pc)

    # --- faults and self-modifying code -----------------------------------------------------
    def _on_unmapped(self, uc, access, address, size, value, _ud) -> bool:
        self.bad_address = address
        return False

    def _on_write_prot(self, uc, access, address, size, value, _ud) -> bool:
        self.write_fault = (address, size)
        return False

    def _where(self, eip: int) -> tuple[Fragment, int]:
        """The fragment and guest instruction index of a host address; restores scratch."""
        frag = self.cache.fragment_at(eip)
        if frag is None:
            raise TranslationError(f"control left the code cache at {eip:#x}")
        reg = frag.scratch_register(eip)
        if reg is not None:  # held in save_c (ecx: it may hold a branch target)
            self.mon.set_reg(("rax", "rcx", "rdx", "rbx")[reg] if self.mon.bits == 64 else
                             ("eax", "ecx", "edx", "ebx")[reg],
                             self._read_slot("save_c") & self.mon.mask)
        return frag, frag.insn_index_at(eip)

    def _guest_fault(self, err: UcError | None) -> None:
        mon = self.mon
        eip = self.fault_eip if self.fault_eip is not None else mon.uc.reg_read(
            mon.machine.pc_reg)
        frag = self.cache.fragment_at(eip)
        if frag is None:  # a fetch outside the code cache: the no-escape check fired
            mon.fault(14, eip, f"control left the code cache at {eip:#x} (no-escape check)")
            return
        frag, index = self._where(eip)
        insn = frag.insns[index]
        mon.icount = self.counted() - frag.pending(index) if frag.counted else 0
        self._set_count(mon.icount)
        pf = self.mon.machine.fill_fault(err)
        if pf is not None:
            self.next_tc = self._inject(pf, insn.address)
            return
        if self.fault_vector is not None:
            vector = self.fault_vector
            address = mon.uc.reg_read(U.UC_X86_REG_CR2) if vector == 14 else None
            detail = f"page fault at address {address:#x}" if address is not None else ""
            self.next_tc = self._raise(vector, insn.address, detail, address=address,
                                       from_cpu=True)
            return
        vector, detail = UC_ERRORS.get(err.errno, (13, f"unicorn error: {err}"))
        if vector == 6:
            self.next_tc = self._raise(6, insn.address, invalid_detail(mon, insn.address),
                                       from_cpu=True)
            return
        address = self.bad_address
        if address is not None:
            detail = f"{detail} at {address:#x}"
        mon.fault(vector, insn.address, detail, address=address)  # a bus error

    def _raise(self, vector: int, pc: int, detail: str, error_code: int | None = None,
               address: int | None = None, soft: bool = False, from_cpu: bool = False,
               sync: bool = True) -> int | None:
        """Deliver a guest exception (mon.icount already counts up to it); returns where
        translated code goes on (None: the run ended)."""
        return self._resume(lambda: self.mon.exception(
            vector, pc, detail, error_code, address, soft=soft, from_cpu=from_cpu), sync)

    def _inject(self, pf, pc: int) -> int | None:
        """Deliver a #PF found by a fill at guest instruction ``pc`` (counted up to it)."""
        return self._resume(lambda: inject(self.mon, *pf, pc))

    def _resume(self, call, sync: bool = True) -> int | None:
        """:meth:`_deliver`, then the host address of the handler (None: the run ended)."""
        handler = self._deliver(call, sync)
        return None if handler is None else self._enter(handler)

    def _remapped(self, page: int | None) -> None:
        """The guest's translations changed: drop fragments whose code moved, and with
        paging on, those that translated a jump table (the guest's own load of an entry
        could now fault or set an accessed bit)."""
        self.cache.remapped(self.mon.code_page, page)
        if self.mon.guest_paging():
            self.cache.drop(set().union(*self.cache.table_pages.values()))

    def _deliver(self, call, sync: bool = True) -> int | None:
        """Run a monitor call that may deliver an exception or interrupt to the guest
        (mon.icount already counts up to it): the virtual flags are synced around it
        and the count restarted. Returns the handler's guest address it chose (None:
        none, or the run ended)."""
        if sync:
            self._sync_in()
        handler = call()
        if self.mon.stopped:
            return None
        self._sync_out()
        self._set_count(self.mon.icount)
        return handler

    def _self_modifying_write(self) -> None:
        """A guest store hit a write-protected page: guest code, or data beside it."""
        mon = self.mon
        address, size = self.write_fault
        eip = mon.uc.reg_read(mon.machine.pc_reg)
        if mon.coverage is not None:  # the store did not retire: it starts again (or faults)
            mon.coverage.stopped_at(eip)
        if address >= mon.machine.ram_size:  # the code cache or the lookup table
            self._guest_fault(self._store_past_ram(address))
            return
        if not self.cache.overlaps_code(address, address + size):
            # data beside code on the page: let this one store through, keep the protection
            err = self._step_open(eip, _pages(address, size))
            if err is not None:
                self._guest_fault(err)
                return
            self.mixed_page_stores += 1
            self._stores_beside(address & ~0xFFF)
            self.next_tc = mon.uc.reg_read(mon.machine.pc_reg)
            return
        frag, index = self._where(eip)
        insn = frag.insns[index]
        icount = self.counted() - frag.pending(index) if frag.counted else 0
        self.cache.invalidate(address, address + size)
        # run the storing instruction alone, so whatever follows is translated afresh
        self._set_count(icount)
        self.next_tc = self._translate(insn.address, max_insns=1, cached=False).tc

    def _stores_beside(self, page: int) -> None:
        """A store went through beside translated bytes: if they keep coming on a page
        that is protected for a jump table, stop translating its tables (each such
        store costs a trap)."""
        self._mixed[page] = self._mixed.get(page, 0) + 1
        if self._mixed[page] >= MIXED_STORES_PER_TABLE_PAGE and self.cache.table_pages.get(page):
            self.no_tables.add(page)
            self.cache.drop(set(self.cache.table_pages[page]))

    def _guest_written(self, start: int, end: int) -> None:
        """The monitor wrote guest memory (a handler): drop translations of that code."""
        if self.cache.overlaps_code(start, end):
            self.cache.invalidate(start, end)

    # --- the result -------------------------------------------------------------------------
    def _result(self) -> RunResult:
        mon = self.mon
        self._sync_in()  # (every way a run stops has set mon.icount already)
        t = self.translator
        stats = {
            "blocks_translated": t.blocks, "blocks_linked": t.linked,
            "guest_bytes_translated": t.guest_bytes,
            "host_bytes": t.host_bytes, "ident_instructions": t.ident,
            "rewritten_instructions": t.rewritten,
            "rmw_split": t.rmw_split, "rmw_alone": t.rmw_alone,
            "rmw_alone_steps": self.alone_steps,
            "keystone_calls": self.templates.keystone_calls,
            "translate_seconds": round(self.translate_seconds, 6),
            "translate_median_us": round(statistics.median(self.translate_times) * 1e6, 1)
            if self.translate_times else None,
            "chained_exits": self.cache.stats["chained"],
            "unchained_exits": self.cache.stats["unchained"],
            "indirect_misses": self.misses, "indirect_map_evictions": self.cache.map.evictions,
            "jump_tables_translated": self.cache.stats["jump_tables"],
            "jump_table_pages_refused": len(self.no_tables),
            "callouts": dict(self.callouts),
            "invalidations": self.cache.stats["invalidations"],
            "invalidated_fragments": self.cache.stats["invalidated_fragments"],
            "mixed_page_stores": self.mixed_page_stores,
            "flushes": self.cache.stats["flushes"],
        }
        return mon.result(mon.vcpu, mon.guest_eflags(), mon.icount if self.exact else None,
                          stats)
