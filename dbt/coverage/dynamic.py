"""Dynamic coverage: which guest instructions a run executed, and how often, under any engine.

A :class:`Recorder` is put on the monitor before the engine starts
(``run_guest(..., setup=...)``); the engine attaches it (``mon.coverage``):

* ``interp``: the engine calls it with every instruction it dispatches;
* ``hw``: a ``UC_HOOK_CODE`` over guest RAM (slow, and only on coverage runs);
* ``bt``: guest RAM never runs, the code cache does: a ``UC_HOOK_CODE`` over the
  code cache counts the host address where each guest instruction's
  translation starts (``Fragment.starts``), found from the fragment that holds
  the address. A ``rep`` string instruction, which the exact clock wraps in
  ``jecxz`` and count bookkeeping, is counted at the copied instruction itself
  (once per start, as unicorn counts it), plus one when ``jecxz`` skips it.

Counts are architectural: a ``rep`` string instruction counts once per
iteration start, as every engine's instruction count does, so the sum of the
counts is the run's ``guest_instructions`` and the count at every address is
the same under every engine. A hook sees an instruction start, the engines
count it when it retires: an instruction that faults is seen but not counted,
so the monitor's exception delivery takes its start back (``faulted``), and so
is the one at which the budget stops the run (taken back at the end).

Known gaps: the instruction text is decoded from guest memory as it is when the
run ends, so code the guest rewrote shows its last version.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import defaultdict

from unicorn import unicorn_const as C

from dbt.coverage.drcov import Module, write_drcov
from dbt.coverage.tally import summarize
from dbt.isa import classify
from dbt.scanner import Decoder
from dbt.scanner.decoder import MAX_INSN_LEN
from dbt.scanner.explore import NO_FALLTHROUGH


class Recorder:
    """Executions per guest address, fed by whichever engine runs."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = defaultdict(int)
        self.engine = None
        # bt: host address -> (guest address, weight); None for host code that starts no
        # guest instruction
        self._host: dict[int, tuple[int, int] | None] = {}
        self._epoch = -1
        self._last = -1  # bt: the last host address seen starting
        self._last_guest: int | None = None  # the guest instruction seen starting last

    def setup(self, mon) -> None:
        """``run_guest(..., setup=recorder.setup)``."""
        mon.coverage = self

    def attach(self, engine) -> None:
        self.engine = engine
        if engine.name == "interp":
            engine.on_dispatch = self._dispatched
        elif engine.name == "hw":
            engine.mon.uc.hook_add(C.UC_HOOK_CODE, self._guest_code, None, 0,
                                   engine.mon.machine.ram_size - 1)
        elif engine.name == "bt":
            lay = engine.layout
            engine.mon.uc.hook_add(C.UC_HOOK_CODE, self._host_code, None, lay.cache,
                                   lay.cache + _cache_size() - 1)
        else:
            raise NotImplementedError(f"coverage does not know engine {engine.name!r}")

    # --- the engines' feeds -----------------------------------------------------------------
    def _dispatched(self, insn) -> None:
        self.counts[insn.address] += 1
        self._last_guest = insn.address

    def _guest_code(self, uc, address: int, size: int, _ud) -> None:
        self.counts[address] += 1
        self._last_guest = address

    def _host_code(self, uc, address: int, size: int, _ud) -> None:
        self._last = address
        cache = self.engine.cache
        if cache.epoch != self._epoch:  # fragments were dropped: host addresses change meaning
            self._host.clear()
            self._epoch = cache.epoch
        hit = self._host.get(address, ())
        if hit == ():
            hit = self._index(address)
        if hit is not None:
            self.counts[hit[0]] += hit[1]
            if hit[1] > 0:
                self._last_guest = hit[0]

    def _index(self, address: int) -> tuple[int, int] | None:
        """Map the host code of the fragment holding ``address`` (or the lone rep)."""
        bt = self.engine
        frag = bt.cache.fragment_at(address)
        if frag is None:
            scratch = bt.rep_scratch
            if scratch is not None and scratch[0] == address:
                return (scratch[1].address, 1)
            self._host[address] = None
            return None
        code_at = frag.start
        for i, insn in enumerate(frag.insns):
            start = frag.starts[i]
            self._host.setdefault(start, (insn.address, 1))
            if bt.exact and bt.translator._is_rep_string(insn):
                # jecxz skip (+1) | head: save ... (-1) | the rep itself (+1 per start)
                end = frag.starts[i + 1] if i + 1 < len(frag.starts) else frag.tc_end
                host = list(bt.mon.decoder.disasm(frag.code[start - code_at:end - code_at],
                                                  start))
                self._host[host[1][0]] = (insn.address, -1)
                rep = next(a for a, s, _m, _o in host
                           if frag.code[a - code_at:a - code_at + s] == insn.raw)
                self._host[rep] = (insn.address, 1)
        return self._host.setdefault(address, None)

    def faulted(self, pc: int) -> None:
        """The monitor delivers a fault raised by the instruction at guest ``pc``: if its
        start was seen, it did not retire (the handler may restart it): take it back."""
        if pc == self._last_guest and self.counts.get(pc, 0) > 0:
            self.counts[pc] -= 1
            self._last_guest = None

    def stopped_at(self, host: int) -> None:
        """bt: unicorn stopped with its pc at host address ``host``, and translated code
        goes on from there (after a store into a write-protected page, or a stop to let
        the TLB grow). If the instruction there was the last one seen starting, it did
        not retire and will start again: take back that start."""
        if host == self._last:
            hit = self._host.get(host)
            if hit is not None:
                self.counts[hit[0]] -= hit[1]
            self._last = -1

    # --- after the run ----------------------------------------------------------------------
    def settle(self, result) -> dict[int, int]:
        """The counts, with the instruction the run stopped at taken back if it was seen
        starting but did not retire (see the module docstring)."""
        counts = {a: n for a, n in self.counts.items() if n}
        excess = sum(counts.values()) - (result.guest_instructions or 0)
        if result.guest_instructions is not None and excess > 0 and \
                counts.get(result.pc, 0) >= excess:
            counts[result.pc] -= excess
            if not counts[result.pc]:
                del counts[result.pc]
        return counts


def _cache_size() -> int:
    from dbt.cache.codecache import CACHE_SIZE

    return CACHE_SIZE


# --- what the counts mean -------------------------------------------------------------------
def describe(counts: dict[int, int], ram: bytes, bits: int) -> list[tuple]:
    """(address, size, mnemonic, op_str, class, action, count) of each executed address."""
    decoder = Decoder(bits)
    rows = []
    for address in sorted(counts):
        window = ram[address:address + MAX_INSN_LEN]
        insn = next(iter(decoder.disasm(window, address)), None)
        if insn is None:
            rows.append((address, 1, "(undecodable)", "", "privileged", "unsupported",
                         counts[address]))
            continue
        _a, size, mnemonic, op_str = insn
        rule = classify(mnemonic, op_str)
        rows.append((address, size, mnemonic, op_str, rule.klass.value, rule.action.value,
                     counts[address]))
    return rows


def blocks(rows: list[tuple]) -> list[tuple[int, int]]:
    """Executed basic blocks (start, size): runs of contiguous executed instructions with
    the same count, each ending at an instruction that transfers control."""
    out: list[tuple[int, int]] = []
    start = end = count = None
    for address, size, mnemonic, _op, _k, action, n in rows:
        if start is not None and (address != end or n != count):
            out.append((start, end - start))
            start = None
        if start is None:
            start, count = address, n
        end = address + size
        if action == "branch" or mnemonic.rsplit(" ", 1)[-1] in NO_FALLTHROUGH:
            out.append((start, end - start))
            start = None
    if start is not None:
        out.append((start, end - start))
    return [(a, min(s, 0xFFFF)) for a, s in out]


def record(image, result, rows: list[tuple]) -> dict:
    """The run in the shape of a static record (DESIGN §4): counts are executions."""
    key = {(m, k, a): 0 for _ad, _s, m, _o, k, a, _n in rows}
    for _ad, _s, m, _o, k, a, n in rows:
        key[(m, k, a)] += n
    totals = summarize(key)
    sha = _sha256(image.path)
    return {"path": image.path, "sha256": sha,
            "format": image.format if image.format in ("ELF", "PE") else None,
            "bits": image.arch.bits, "status": "ok", "reason": None,
            "engine": result.engine, "run_reason": result.reason.value,
            "exit_code": result.exit_code, "guest_instructions": result.guest_instructions,
            "instructions": sum(n for *_, n in rows), "addresses": len(rows),
            "classes": totals["classes"], "actions": totals["actions"],
            "mnemonics": totals["mnemonics"]}


def _sha256(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def modules(image, ram_size: int) -> list[Module]:
    """The guest image as drcov module 0 (its lowest to highest loaded address), and the
    rest of guest RAM as module 1 for code that runs outside it."""
    lo = min(s.addr for s in image.segments)
    hi = max(s.addr + s.memsz for s in image.segments)
    return [Module(0, lo, hi, image.entry, os.path.abspath(image.path)),
            Module(1, 0, ram_size, image.entry, "[guest RAM]")]


def module_blocks(mods: list[Module], bbs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    out = []
    for start, size in bbs:
        m = mods[0] if mods[0].base <= start < mods[0].end else mods[1]
        out.append((start - m.base, size, m.id))
    return out


def run_with_coverage(image, engine: str, config, ram_size: int):
    """Run the guest with a recorder; (result, rows as :func:`describe` gives them)."""
    from dbt.engines import run_guest

    rec = Recorder()
    config.keep_ram = True
    result = run_guest(image, engine, config, ram_size=ram_size, setup=rec.setup)
    counts = rec.settle(result)
    return result, describe(counts, result.ram, image.arch.bits)


def compare(image, rows: list[tuple]) -> dict:
    """Executed against present: per class, the instructions the static sweep finds in the
    guest and how many of them ran."""
    from dbt.coverage.static import scan_file

    static = scan_file(image.path) if image.format in ("ELF", "PE") else None
    if static is not None and static["status"] == "ok":
        present = static["classes"]
        sites = static["sites"]
    else:
        present, sites = _sweep_image(image)
    executed: dict[str, int] = {}
    for _a, _s, _m, _o, klass, _act, _n in rows:
        executed[klass] = executed.get(klass, 0) + 1
    ran = {r[0] for r in rows}
    return {"classes": {k: {"present": present.get(k, 0), "executed": executed.get(k, 0)}
                        for k in sorted(set(present) | set(executed))},
            "sensitive_not_executed": [s for s in sites if s["address"] not in ran]}


def _sweep_image(image) -> tuple[dict, list]:
    from dbt.coverage.sweep import sweep
    from dbt.coverage.tally import Tally

    decoder = Decoder(image.arch.bits)
    tally = Tally()
    found: dict = {}
    for seg in image.segments:
        sweep(decoder, memoryview(bytearray(seg.data)), seg.addr, "image", tally, found)
    return summarize(tally.by_rule())["classes"], [s.as_json() for s in found.values()]


def main_run(args) -> int:
    """``dbt coverage run``."""
    from dbt.cli import STATUS
    from dbt.loader import load
    from dbt.monitor.monitor import DEFAULT_MAX_INSNS, RunConfig

    image = load(args.file, args.arch, args.ram)
    config = RunConfig(max_insns=args.max_insns or DEFAULT_MAX_INSNS)
    result, rows = run_with_coverage(image, args.engine, config, args.ram)
    out = record(image, result, rows)
    bbs = blocks(rows)
    out["blocks"] = len(bbs)
    if args.drcov:
        mods = modules(image, args.ram)
        write_drcov(args.drcov, mods, module_blocks(mods, bbs))
    if args.compare:
        out["compare"] = compare(image, rows)
    if args.db:
        from dbt.coverage.cli import _open

        store = _open(args.db)
        try:
            out["run_id"] = store.save_run(
                image.path, out["sha256"],
                {**out, "reason": result.reason.value, "arch": image.arch.value},
                [(a, m, o, k, act, n) for a, _s, m, o, k, act, n in rows])
        finally:
            store.close()
    if args.json:
        out["files"] = [dict(out)]
        print(json.dumps({"files": out.pop("files"), "totals": _totals(out)}, indent=1))
    else:
        _print(out, rows)
    if result.reason.value == "exit":
        return result.exit_code
    return STATUS[result.reason.value]


def _totals(out: dict) -> dict:
    keep = ("engine", "run_reason", "exit_code", "guest_instructions", "instructions",
            "addresses", "blocks", "classes", "actions", "compare", "run_id")
    return {k: out[k] for k in keep if k in out}


def _print(out: dict, rows: list[tuple]) -> None:
    w = sys.stdout.write
    w(f"{out['path']} under {out['engine']}: {out['run_reason']}, "
      f"{out['guest_instructions']} instructions at {out['addresses']} addresses in "
      f"{out['blocks']} blocks\n")
    for table in ("classes", "actions"):
        w(f"  {table}: " + ", ".join(f"{k} {n}" for k, n in sorted(out[table].items())) + "\n")
    sens = [r for r in rows if r[4] in ("privileged", "sensitive")]
    if sens:
        w("  privileged and sensitive instructions executed:\n")
        for a, _s, m, o, k, act, n in sens:
            w(f"    {a:#010x}  {m} {o:<30} {k:<10} {act:<11} x{n}\n")
    if "compare" in out:
        w("  executed / present (static sweep):\n")
        for k, v in out["compare"]["classes"].items():
            w(f"    {k:<10} {v['executed']:>8} / {v['present']}\n")
        for s in out["compare"]["sensitive_not_executed"]:
            w(f"    never executed: {s['address']:#x} {s['mnemonic']} {s['op_str']}\n")
