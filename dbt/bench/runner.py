"""Running the suite: one row per benchmark, architecture, engine, clock and MMU mode, then ratios within the run."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dbt.bench import measure
from dbt.bench.suite import Benchmark, Kind, paging_modes
from dbt.engines import clocks


@dataclass
class Row:
    benchmark: str
    kind: str
    arch: str
    engine: str
    clock: str
    mmu: str | None
    status: str = "ok"  # ok | unavailable
    note: str = ""
    per_op_ns: dict | None = None  # nano: {median, min, max}, calibration subtracted
    seconds: dict | None = None  # macro: {median, min, max} for the whole run
    #: macro, hw and bt: {seconds, instructions, mips} of the run beyond a shorter build
    #: (measure.Sample.steady): its steady state, one-off costs cancelled out
    steady: dict | None = None
    mips: float | None = None
    instructions: int | None = None  # guest instructions of one run (macro) or one loop (nano)
    size: int | None = None  # nano: iterations; macro: the guest's N
    stats: dict = field(default_factory=dict)
    ratios: dict = field(default_factory=dict)

    @property
    def time(self) -> float | None:
        """The figure that ratios compare: ns per operation, or seconds per run."""
        d = self.per_op_ns or self.seconds
        return d["median"] if d else None

    def as_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        if self.per_op_ns is None:
            d.pop("per_op_ns")
        if self.seconds is None:
            d.pop("seconds")
        if self.steady is None:
            d.pop("steady")
        return d


@dataclass(frozen=True)
class Task:
    bench: Benchmark
    arch: str
    engine: str
    clock: str
    mmu: str | None

    @property
    def label(self) -> str:
        mmu = f" --mmu {self.mmu}" if self.mmu else ""
        return f"{self.bench.name}[{self.arch}] {self.engine} {self.clock}{mmu}"


def tasks(benches: Iterable[Benchmark], engines: list[str], arches: list[str],
          plan: measure.Plan) -> tuple[list[Task], list[Row]]:
    """What to run, and the rows of benchmarks that cannot run yet.

    ``arches`` selects the C guests' builds; a nanobenchmark runs in the mode it is written for.
    """
    todo, unavailable = [], []
    for b in benches:
        for arch in (a for a in b.arches if b.kind is Kind.NANO or a in arches):
            why = b.missing()
            if why:
                unavailable.append(Row(b.name, b.kind.value, arch, "-", "-", None,
                                       status="unavailable", note=f"not available: {why}"))
                continue
            for mmu in (paging_modes() if b.paging else ()) or (None,):
                for clock in plan.clocks:
                    todo += [Task(b, arch, e, clock, mmu) for e in engines
                             if _runs(e, mmu) and clock in clocks(e)]
                    if b.trap_variant and "bt" in engines:
                        todo.append(Task(b, arch, measure.TRAP, clock, mmu))
    return todo, unavailable


def _runs(engine: str, mmu: str | None) -> bool:
    """Can ``engine`` run with ``--mmu mmu``? (bt only shadows; an engine outside dbt
    pages its own way, reported once, beside nested.)"""
    from dbt.engines import ENGINES, _load_all

    _load_all()
    cls = ENGINES[engine]
    if mmu is None:
        return True
    return mmu in cls.mmus if cls.monitor else mmu == "nested"


def run(task: Task, plan: measure.Plan) -> Row:
    b = task.bench
    row = Row(b.name, b.kind.value, task.arch, task.engine, task.clock, task.mmu)
    if b.kind is Kind.NANO:
        sample, per_op, row.size = measure.nano_sample(b, task.arch, task.engine, task.clock,
                                                       plan, task.mmu)
        row.per_op_ns = _spread([max(v, 0.0) for v in per_op])
        if statistics.median(per_op) <= 0:
            row.note = "below the timing resolution: the loop cost no more than the empty loop"
    else:
        sample = measure.macro_sample(b, task.arch, task.engine, task.clock, plan, task.mmu)
        size = measure.sized(b.guest, task.arch, plan.macro_insns, b.probe_n)
        # interp ran a prefix: scale its time to the whole run at the speed it showed
        scale = size.instructions / sample.instructions
        row.seconds = _spread([s * scale for s in sample.seconds])
        row.size = size.n
        if task.engine == "interp" and scale > 1:
            row.note = f"timed on the first {sample.instructions:,} instructions"
        elif scale < 1:
            row.note = (f"timed on a run of {sample.instructions:,} instructions, "
                        f"start-up subtracted")
    row.instructions = sample.instructions
    row.mips = sample.instructions / sample.median / 1e6 if sample.median > 0 else None
    if sample.steady is not None:
        secs, insns = sample.steady
        row.steady = {"seconds": secs, "instructions": insns,
                      "mips": insns / secs / 1e6 if secs > 0 else None}
    row.stats = summarize(sample.result.stats, sample.instructions,
                          row.size if b.kind is Kind.NANO else None)
    return row


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(stats: dict, instructions: int, iterations: int | None) -> dict:
    """The statistics that explain a time: bt's translation figures, exits per operation."""
    out: dict = {"run_seconds": stats.get("run_seconds")}
    exits = stats.get("exits")
    if exits is not None:  # hw
        n = sum(v for k, v in exits.items() if k != "hlt")
        out["exits"] = n
        if iterations:
            out["exits_per_op"] = n / iterations
    if "blocks_translated" in stats:  # bt
        callouts = sum(v for k, v in stats["callouts"].items() if k != "hlt")
        run_s = stats.get("run_seconds") or 0
        out.update({
            "blocks": stats["blocks_translated"],
            "translate_share": stats["translate_seconds"] / run_s if run_s else None,
            "translate_median_us": stats.get("translate_median_us"),  # one trace, median
            "chained_exits": stats["chained_exits"],
            "indirect_misses": stats["indirect_misses"],
            "callouts_per_kinsn": callouts * 1000 / instructions if instructions else None,
            "invalidations": stats["invalidations"],
        })
        if iterations:
            out["callouts_per_op"] = callouts / iterations
            out["invalidations_per_op"] = stats["invalidations"] / iterations
    return out


def add_ratios(rows: list[Row]) -> None:
    """Speed ratios within the run: ``a/b`` is how many times faster a is than b.

    Between engines for the same benchmark, architecture, clock and MMU mode
    (``bt/hw``, ``bt/interp`` …), and between MMU modes for the same engine
    (``shadow/nested``). A clock is never compared with the other (DESIGN §3).
    """
    ok = [r for r in rows if r.status == "ok" and r.time]
    groups: dict[tuple, list[Row]] = {}
    for r in ok:
        groups.setdefault((r.benchmark, r.arch, r.clock, r.mmu), []).append(r)
    for group in groups.values():
        for r in group:
            for other in group:
                if other is not r and r.time > 0 and other.time > 0:
                    r.ratios[f"{r.engine}/{other.engine}"] = other.time / r.time
                if other is not r and r.steady and other.steady and r.steady["mips"] \
                        and other.steady["mips"]:
                    r.ratios[f"{r.engine}/{other.engine} steady"] = \
                        r.steady["mips"] / other.steady["mips"]
    by_mmu: dict[tuple, dict[str, Row]] = {}
    for r in ok:
        if r.mmu:
            by_mmu.setdefault((r.benchmark, r.arch, r.clock, r.engine), {})[r.mmu] = r
    for modes in by_mmu.values():
        if {"shadow", "nested"} <= modes.keys():
            s, n = modes["shadow"], modes["nested"]
            if s.time > 0 and n.time > 0:
                s.ratios["shadow/nested"] = n.time / s.time


def run_all(todo: list[Task], plan: measure.Plan, rows: list[Row],
            step: Callable[[Task], None] = lambda t: None) -> None:
    """Run every task in order, appending to ``rows`` (which keeps what finished on failure)."""
    for t in todo:
        step(t)
        rows.append(run(t, plan))
