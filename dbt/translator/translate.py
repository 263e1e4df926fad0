"""Translation: one guest trace (a block and the blocks linked after it, see
:mod:`dbt.translator.trace`) -> one fragment of host code.

Per instruction, by the ISA table's action:

- ``ident``: the bytes are copied unchanged; in 64-bit mode a RIP-relative
  displacement is re-aimed at the same guest address from the new location.
- ``inline``: ``cli``, ``sti``, ``pushf`` and ``popf`` become templates that work on
  the virtual flags in the vCPU area (32/64-bit operand size; other forms take the
  callout path). The monitor keeps in the vCPU area which of IF and IOPL the
  guest's CPL lets it change: ``popf`` changes only those, and ``cli``/``sti``
  leave for their callout (a #GP) when IF may not change.
- ``callout``/``unsupported``: ``int3; jmp [jump_slot]`` - the monitor runs the
  instruction's handler and says where translated code goes on.
- ``branch``: direct jumps and calls leave through exit stubs that the code
  cache later chains to their targets; ``call`` pushes the *guest* return
  address; ``ret``, ``jmp r/m`` and ``call r/m`` jump through the indirect-branch
  map (:mod:`dbt.cache.iblmap`).

A branch whose next block the trace holds is *linked* instead: a ``jmp`` becomes
a ``nop``, a ``call`` only pushes, a conditional branch leaves only when taken.

Every fragment starts with its *ibl entry*, where indirect branches arrive: it
puts back the two registers the map's walk used, and falls into the fragment
proper (``tc``, where direct branches arrive). In the exact clock each segment of
the trace starts with a prologue that takes its instruction count from the budget
chunk and leaves to the monitor when the chunk is spent (see
:mod:`dbt.translator.templates`).

None of this uses ``jecxz``/``loop`` on a hot path: unicorn (QEMU) ends its block
after them with a return to its main loop, not a chained jump (``gen_eob``).
"""

from __future__ import annotations

import struct

from dbt.cache.layout import Layout
from dbt.errors import TranslationError
from dbt.isa import Action
from dbt.scanner import Decoder, Insn, StopReason
from dbt.scanner.block import STRING_OPS
from dbt.scanner.explore import direct_target
from dbt.translator.fragment import Fragment, Segment, Site, SiteKind
from dbt.translator.rmw import Rmw, may_read_modify_write
from dbt.translator.rmw import find as find_rmw
from dbt.translator.templates import (
    INT3,
    NOP,
    Templates,
    jcc_rel32,
    jecxz_rel8,
    jmp_rel32,
    split_prefixes,
)
from dbt.translator.trace import Link, Trace

_LOOPS = {"loop", "loope", "loopne", "jecxz", "jcxz", "jrcxz"}
_STRING_OPCODES = frozenset({0xA4, 0xA5, 0xA6, 0xA7, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF})


def _signed64(v: int) -> int:
    return ((v + 2**63) % 2**64) - 2**63


def aimed(code: bytes, off: int, at: int, target: int, insn: Insn, what: str = "operand") -> bytes:
    """``code`` placed at host address ``at`` with its RIP-relative displacement (the 4
    bytes at ``off``) aimed at guest address ``target``."""
    disp = _signed64(target - (at + len(code)))
    if not -2**31 <= disp < 2**31:
        raise TranslationError(f"{insn.address:#x}: RIP-relative {what} out of reach of the "
                               "code cache")
    return code[:off] + struct.pack("<i", disp) + code[off + 4:]


def retarget(jump: bytes, at: int, target: int) -> bytes:
    """A jmp rel32 (E9) or jcc rel32 (0F 8x) at ``at``, aimed at ``target`` (6 bytes in, 6 out)."""
    if jump[0] == 0x0F:
        return jcc_rel32(jump[1] & 0xF, at, target)
    return jmp_rel32(at, target) + jump[5:6]


def segments(trace: Trace) -> list[Segment]:
    """The trace's segments: a new one after each conditional branch it goes on past."""
    insns = trace.insns
    firsts = [0] + sorted(i + 1 for i, link in trace.links.items() if link is Link.JCC)
    ends = firsts[1:] + [len(insns)]
    return [Segment(a, b - a, insns[a].address) for a, b in zip(firsts, ends) if a < b]


class Emitter:
    """Host code being built at a known address, with sites and sanctioned addresses."""

    def __init__(self, at: int):
        self.at = at
        self.buf = bytearray()
        self.cold: Emitter | None = None  # where rarely run code goes

    @property
    def here(self) -> int:
        return self.at + len(self.buf)

    def emit(self, code: bytes) -> int:
        start = self.here
        self.buf += code
        return start


class Translator:
    def __init__(self, layout: Layout, templates: Templates, decoder: Decoder, exact: bool,
                 inline: bool = True):
        self.layout = layout
        self.inline = inline  # False: inline instructions take the callout path
        self.t = templates
        self.decoder = decoder
        self.bits = layout.bits
        self.exact = exact
        self.blocks = 0
        self.linked = 0  # blocks translated into a trace after the first
        self.guest_bytes = 0
        self.host_bytes = 0
        self.ident = 0
        self.rewritten = 0
        self.rmw_split = 0  # read-modify-write instructions split (dbt/translator/rmw.py)
        self.rmw_alone = 0  # ... and those left to the monitor to run alone
        # addresses (offsets) of the sensitive instructions each template is allowed to hold
        pushf = "pushfq" if self.bits == 64 else "pushfd"
        popf = "popfq" if self.bits == 64 else "popfd"
        self._sanctioned = {"pushf": ((0, pushf),),
                            "popf": ((self._offset("popf", "popf"), popf),)}
        self._probe = self._offset("count", "mov", "*8")  # the prologue's probe load

    def _offset(self, template: str, mnemonic: str, operand: str = "") -> int:
        """Byte offset of the first instruction ``mnemonic...`` (with ``operand`` in its
        operands) in a template."""
        for a, _, m, o in self.decoder.disasm(self.t[template].code, 0):
            if m.startswith(mnemonic) and operand in o:
                return a
        raise TranslationError(f"template {template} has no {mnemonic} {operand}")

    # --- the trace --------------------------------------------------------------------------
    def translate(self, trace: Trace, at: int, cold_at: int,
                  table: tuple[int, list[int], tuple[int, int]] | None = None) -> Fragment:
        """Translate ``trace`` with its hot code at ``at`` and its cold code (exit stubs,
        lookup slow paths, the budget exit) at ``cold_at``: keeping the rarely run
        parts apart keeps hot loops on few code-cache pages, and unicorn chains
        translated blocks directly only within a page. ``table``: the trace ends in a
        jump through a guest jump table (see :mod:`dbt.translator.jumptable`) to go
        through the host table at this address instead, entry k to guest target k."""
        e = Emitter(at)
        e.cold = Emitter(cold_at)
        e.emit(self.t["restore_cd"].code)  # the ibl entry
        frag = Fragment(trace.pc, trace, e.here, b"", start=at, cold_tc=cold_at,
                        insns=trace.insns, segments=segments(trace), counted=self.exact,
                        table=table)
        if trace.fault:
            frag.segments, frag.counted = [], False
            self._site(e, frag, Site(SiteKind.FAULT, frag), jump=True)
            return self._done(e, frag)
        firsts = {seg.first: seg for seg in frag.segments} if self.exact else {}
        last = len(frag.insns) - 1
        branched = False
        links, starts, buf, at = trace.links, frag.starts, e.buf, e.at
        no_rip = self.bits == 32  # (64-bit: a copy is plain unless RIP-relative)
        ident = Action.IDENT
        for idx, insn in enumerate(frag.insns):
            action = insn.rule.action
            if action is ident and idx not in firsts and idx not in links \
                    and (no_rip or "rip" not in insn.op_str) \
                    and not (self.exact and insn.name in STRING_OPS) \
                    and not may_read_modify_write(insn):
                starts.append(at + len(buf))  # the common case, inline: a plain copy
                buf += insn.raw
                self.ident += 1
                continue
            if idx in firsts:
                self._prologue(e, frag, firsts[idx])
                if trace.stop is StopReason.REP_STRING and len(frag.insns) == 1:
                    self._rep_guard(e, frag)
            starts.append(e.here)
            if idx in links:
                self._link(e, frag, idx, insn, links[idx])
            elif action is Action.IDENT:
                if self.exact and self._is_rep_string(insn):
                    self._rep_string(e, frag, insn)
                elif (rmw := find_rmw(insn, self.bits)) is not None:
                    self._read_modify_write(e, frag, idx, insn, rmw)
                else:
                    self._ident(e, insn)
            elif action is Action.INLINE and self.inline and self._inline(e, frag, idx, insn):
                pass
            elif action is Action.BRANCH and idx == last:
                self._branch(e, frag, idx, insn)
                branched = True
            else:
                self._site(e, frag, Site(SiteKind.CALLOUT, frag, idx, insn))
        if not branched:
            self._exit(e, frag, last, trace.end)
        self._place_exit_stubs(e, frag)
        frag.entries = self.side_entries(frag)
        return self._done(e, frag)

    def side_entries(self, frag: Fragment) -> dict[int, int]:
        """Where direct branches may enter the trace after its first block, so that a block
        already translated inside a trace is not translated again as the head of another:
        in the free clock, the start of every block linked in; in the exact clock, only
        the prologue of a segment (a block after a conditional branch), since entering
        in the middle of a segment would skip or double its count. Never a block of a
        callee whose ``ret`` the trace inlined: that ret returns to this trace's call."""
        links = frag.trace.links
        inlined: set[int] = set()  # indices of instructions between a call and its inlined ret
        for r, link in links.items():
            if link is Link.RET:
                call = max(i for i, k in links.items() if k is Link.CALL and i < r)
                inlined.update(range(call + 1, r + 1))
        if self.exact:
            return {seg.pc: seg.entry for seg in frag.segments[1:] if seg.first not in inlined}
        return {frag.insns[i + 1].address: frag.starts[i + 1] for i in links
                if i + 1 not in inlined}

    def _done(self, e: Emitter, frag: Fragment) -> Fragment:
        frag.code = bytes(e.buf)
        frag.cold_code = bytes(e.cold.buf)
        self.blocks += 1
        self.linked += len(frag.trace.links)
        self.guest_bytes += frag.trace.guest_bytes
        self.host_bytes += len(frag.code)
        return frag

    # --- pieces -----------------------------------------------------------------------------
    def _prologue(self, e: Emitter, frag: Fragment, seg: Segment) -> None:
        """The count template: its probe load faults when the chunk is spent, with ecx
        saved (the monitor finds the segment's budget site by the load's address)."""
        seg.entry = e.here
        probe = e.emit(self.t["count"].fill(-seg.ninsns)) + self._probe
        site = Site(SiteKind.BUDGET, frag, seg.first, key=probe)
        frag.sites.append(site)
        frag.scratch.append((probe, probe + 1, 1))

    def _rep_guard(self, e: Emitter, frag: Fragment) -> None:
        """Before a rep string instruction (a block of its own): leave to the monitor
        unless the budget chunk covers its count (which must be below 2**24 to check):

                save rcx, rdx
                [64-bit: ecx = high half of the count; jecxz +5; jmp out]
                ecx = count >> 24;                  jecxz +5; jmp out
                ecx = sign of (rem - count - 1);    jecxz +5; jmp out
                restore rcx, rdx
        out:    (cold) restore rcx, rdx; int3     the monitor runs it with count= budget
        """
        e.emit(self.t["save_cd"].code)
        out = e.cold.here
        e.cold.emit(self.t["restore_cd"].code)
        self._site(e.cold, frag, Site(SiteKind.REP_GUARD, frag, 0, frag.insns[0]))
        checks = (["guard_hi"] if self.bits == 64 else []) + ["guard_top", "guard_diff"]
        for name in checks:
            e.emit(self.t[name].code)
            e.emit(jecxz_rel8(5))
            e.emit(jmp_rel32(e.here, out))
        e.emit(self.t["restore_cd"].code)

    def _site(self, e: Emitter, frag: Fragment, site: Site, jump: bool = True) -> Site:
        frag.sanctioned[e.here] = "int3"
        e.emit(INT3)
        site.key = e.here
        if jump:
            e.emit(self.t["jump_slot"].code)
        site.resume = e.here
        frag.sites.append(site)
        return site

    def _read_modify_write(self, e: Emitter, frag: Fragment, idx: int, insn: Insn,
                           rmw: Rmw) -> None:
        """An instruction that reads and writes back memory, split into moves around its
        register form (see :mod:`dbt.translator.rmw`), or else run alone by the monitor:

                int3; jmp [jump_slot]    (the site)
                (cold) the instruction   (stepped by the monitor, never jumped to)
        """
        self.rewritten += 1
        if rmw.splittable:
            self.rmw_split += 1
            s = rmw.scratch
            e.emit(self.t[f"save_r{s}"].code)
            first = e.here
            target = insn.next + struct.unpack("<i", rmw.memory[-4:])[0] if rmw.rip else 0
            store = rmw.store()
            for piece, move in ((rmw.load(), True), (store, True), (rmw.on_register(), False),
                                (store, True)):
                if rmw.rip and move:  # aim it at the guest's operand from where it is
                    piece = aimed(piece, len(piece) - 4, e.here, target, insn)
                e.emit(piece)
            frag.scratch.append((first, e.here, s))
            e.emit(self.t[f"restore_r{s}"].code)
            return
        self.rmw_alone += 1
        site = self._site(e, frag, Site(SiteKind.ALONE, frag, idx, insn))
        site.alone = e.cold.here
        self._ident(e.cold, insn)

    def _ident(self, e: Emitter, insn: Insn) -> None:
        self.ident += 1
        if self.bits == 64 and "rip" in insn.op_str:
            off = self.decoder.decode(insn.address, insn.raw, detail=True).disp_offset
            target = insn.next + struct.unpack_from("<i", insn.raw, off)[0]
            e.emit(aimed(insn.raw, off, e.here, target, insn))
        else:
            e.emit(insn.raw)

    def _is_rep_string(self, insn: Insn) -> bool:
        prefixes, _, pos = split_prefixes(insn.raw, self.bits)
        return bool({0xF2, 0xF3} & set(prefixes)) and insn.raw[pos] in _STRING_OPCODES

    def _rep_string(self, e: Emitter, frag: Fragment, insn: Insn) -> None:
        """Copy a rep string instruction and charge its extra starts to the budget.

                jecxz done           (count 0: one start, the prologue's)
                mov [rep_c], rcx
                rep op               (the guest instruction, unchanged)
                edx = 1 - iterations
                jecxz final          (ended on a count of 0 ...)
                jmp short apply
        final:  edx -= 1             (... one more start, unless cmps/scas's condition
                                      stopped it: sete/setne decides, flags-free)
        apply:  rem += edx
        done:
        """
        prefixes, _, pos = split_prefixes(insn.raw, self.bits)
        size_prefix = b"\x67" if 0x67 in prefixes else b""
        op = insn.raw[pos]
        if op in (0xA6, 0xA7, 0xAE, 0xAF):  # cmps, scas: repe (F3) or repne (F2)
            last_rep = [p for p in prefixes if p in (0xF2, 0xF3)][-1]
            final = self.t["rep_final_e" if last_rep == 0xF3 else "rep_final_ne"].code
        else:
            final = self.t["rep_final"].code
        head = self.t["save_rep"].code + insn.raw + self.t["rep_head"].code
        tail = (size_prefix + jecxz_rel8(2) + bytes([0xEB, len(final)]) + final
                + self.t["rep_apply"].code)
        e.emit(size_prefix + jecxz_rel8(len(head) + len(tail)))
        e.emit(head)
        e.emit(tail)
        self.rewritten += 1

    def _inline(self, e: Emitter, frag: Fragment, idx: int, insn: Insn) -> bool:
        """Emit the inline sequence for cli/sti/pushf/popf; False for forms it does not cover.

        cli/sti:    mov [save_c], rcx; rcx = vmask
                    jrcxz +2; jmp short ok; jmp out      (IF may not change)
            ok:     mov rcx, [save_c]; the template
            out:    (cold) mov rcx, [save_c]; int3       (the callout raises #GP)
        """
        if 0x66 in split_prefixes(insn.raw, self.bits)[0]:
            return False  # 16-bit pushf/popf: the callout handles them
        name = {"cli": "cli", "sti": "sti", "pushf": "pushf", "pushfd": "pushf", "pushfq": "pushf",
                "popf": "popf", "popfd": "popf", "popfq": "popf"}.get(insn.name)
        if name is None:
            return False
        self.rewritten += 1
        site = None
        if name in ("cli", "sti"):
            out = e.cold.here
            e.cold.emit(self.t["restore_c"].code)
            site = self._site(e.cold, frag, Site(SiteKind.CALLOUT, frag, idx, insn))
            e.emit(self.t["save_c"].code + self.t["vmask"].code + jecxz_rel8(2) + b"\xeb\x05")
            e.emit(jmp_rel32(e.here, out))
            e.emit(self.t["restore_c"].code)
        start = e.emit(self.t[name].code)
        if site is not None:
            site.resume = e.here
        for off, mnemonic in self._sanctioned.get(name, ()):
            frag.sanctioned[start + off] = mnemonic
        if name == "popf":  # its first load from the stack may fault, ecx saved
            frag.scratch.append((start + len(self.t["save_c"].code), e.here, 1))
        return True

    def _branch(self, e: Emitter, frag: Fragment, idx: int, insn: Insn) -> None:
        self.rewritten += 1
        prefixes, rex, pos = split_prefixes(insn.raw, self.bits)
        if 0x66 in prefixes:
            raise TranslationError(f"{insn.address:#x}: 16-bit near branch {insn.mnemonic} "
                                   "is not supported by the translator")
        target = direct_target(insn)
        name = insn.name
        op = insn.raw[pos]
        if name in _LOOPS:
            # loop/jecxz rel8 -> a short hop over the fall-through jump to the taken jump
            e.emit(prefixes + bytes([op, 5]))
            self._exit(e, frag, idx, insn.next)
            self._exit(e, frag, idx, target)
        elif name == "jmp" and target is not None:
            self._exit(e, frag, idx, target)
        elif name == "call" and target is not None:
            self._push_return(e, insn.next)
            self._exit(e, frag, idx, target)
        elif name.startswith("j") and name != "jmp" and target is not None:
            self._jcc(e, frag, idx, insn, target)
            self._exit(e, frag, idx, insn.next)
        elif frag.table is not None:
            self._jump_table(e, frag, idx, insn)
        else:
            self._indirect(e, frag, idx, insn, prefixes, rex, pos)

    def _jump_table(self, e: Emitter, frag: Fragment, idx: int, insn: Insn) -> None:
        """The guest's ``jmp [idx*S + T]`` with the host table's address for T; each
        entry an exit to its guest target (chaining writes the entry)."""
        host, targets, _ = frag.table
        d = self.decoder.decode(insn.address, insn.raw, detail=True)
        size = self.bits // 8
        code = bytearray(insn.raw)
        struct.pack_into("<I", code, d.disp_offset, host & 0xFFFF_FFFF)
        e.emit(bytes(code))
        for k, target in enumerate(targets):
            self._exit_site(frag, idx, target).slot_at = host + k * size

    def _jcc(self, e: Emitter, frag: Fragment, idx: int, insn: Insn, target: int) -> None:
        """A jcc rel32 aimed at its exit stub (placed after the body)."""
        _, _, pos = split_prefixes(insn.raw, self.bits)
        op = insn.raw[pos]
        cc = (insn.raw[pos + 1] if op == 0x0F else op) & 0xF
        site = self._exit_site(frag, idx, target)
        site.jump_at = e.here
        e.emit(jcc_rel32(cc, e.here, e.here))

    def _link(self, e: Emitter, frag: Fragment, idx: int, insn: Insn, link: Link) -> None:
        """A branch whose next block follows in the trace: a jmp becomes a nop (it keeps
        a host address of its own, for faults and coverage), a call pushes the guest
        return address, a ret only drops it, a jcc leaves only when taken."""
        self.rewritten += 1
        if link is Link.JMP:
            e.emit(NOP)
        elif link is Link.CALL:
            self._push_return(e, insn.next)
        elif link is Link.RET:
            e.emit(self.t["drop"].fill(self.bits // 8))
        else:
            self._jcc(e, frag, idx, insn, direct_target(insn))

    def _push_return(self, e: Emitter, ret: int) -> None:
        if self.bits == 32 or ret < 2**31:
            e.emit(self.t["push_imm"].fill(ret))
        else:
            e.emit(self.t["push_imm64"].fill(ret, ret >> 32))

    def _indirect(self, e: Emitter, frag: Fragment, idx: int, insn: Insn, prefixes: bytes,
                  rex: int | None, pos: int) -> None:
        """ret / jmp r/m / call r/m: the target into ecx, then the walk of the map.

                mov [save_c], rcx
                rcx = target             (pop rcx | mov rcx, r/m; may fault: rcx restored)
                [push return address]    (call)   [lea rsp, [rsp + n]] (ret n)
                the ibl template         (saves rdx, jumps to the target's ibl entry
                                          or to the map's miss routine)
        """
        start = e.emit(self.t["save_c"].code)
        if insn.name == "ret":
            e.emit(self.t["pop_target"].code)
            if insn.op_str:
                e.emit(self.t["drop"].fill(int(insn.op_str, 0)))
        elif insn.name in ("jmp", "call") and insn.raw[pos] == 0xFF:
            e.emit(self._load_target(e.here, insn, prefixes, rex, pos))
            if insn.name == "call":
                self._push_return(e, insn.next)
        else:
            raise TranslationError(f"{insn.address:#x}: cannot translate branch "
                                   f"{insn.mnemonic} {insn.op_str}")
        frag.scratch.append((start + len(self.t["save_c"].code), e.here, 1))
        e.emit(self.t["ibl"].code)

    def _load_target(self, at: int, insn: Insn, prefixes: bytes, rex: int | None,
                     pos: int) -> bytes:
        """``jmp/call r/m`` (FF /4, FF /2) -> ``mov ecx/rcx, r/m`` (8B /r, reg = ecx)."""
        raw = insn.raw
        modrm = raw[pos + 1]
        head = bytearray(prefixes)
        if self.bits == 64:
            head.append(((rex or 0x40) | 0x08) & ~0x04)  # REX.W, REX.R clear (ecx)
        head += bytes([0x8B, (modrm & 0xC7) | (1 << 3)])
        code = bytes(head) + raw[pos + 2:]
        if self.bits == 64 and modrm & 0xC7 == 0x05:  # RIP-relative: re-aim the displacement
            target = insn.next + struct.unpack_from("<i", raw, pos + 2)[0]
            code = aimed(code, len(head), at, target, insn, "branch operand")
        return code

    def _exit_site(self, frag: Fragment, idx: int, target: int) -> Site:
        site = Site(SiteKind.EXIT, frag, idx, frag.insns[idx], target=target)
        frag.exits.append(site)
        return site

    def _exit(self, e: Emitter, frag: Fragment, idx: int, target: int) -> None:
        """A jmp rel32 to the exit stub for ``target`` (placed after the body)."""
        site = self._exit_site(frag, idx, target)
        site.jump_at = e.here
        e.emit(jmp_rel32(e.here, e.here))

    def _place_exit_stubs(self, e: Emitter, frag: Fragment) -> None:
        """Each exit's stub goes to the cold code; its jump in the hot code is aimed at it."""
        c = e.cold
        for site in frag.exits:
            site.stub = c.here
            self._site(c, frag, site)
            if site.slot_at:
                continue  # (the code cache writes the table)
            off = site.jump_at - e.at
            e.buf[off:off + 6] = retarget(bytes(e.buf[off:off + 6]), site.jump_at, site.stub)
