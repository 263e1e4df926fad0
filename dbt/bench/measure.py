"""Timing benchmark guests: sizing, warm-up, repetitions, calibration, and the self-check of every run.

A run's time is the engine's own run time (``stats.run_seconds``: loading, set-up
and the final memory digest excluded). An engine outside dbt (qemu: its run time
includes the firmware's boot) or one that does not report its run time is timed
less its start-up: the time of a guest that ends at once, the same way (exit or
halt), with the same RAM and bits (:func:`startup_seconds`).

Every run is checked before it counts: a nanobenchmark loop must halt, a C guest
must exit 0 with what its self-check printed; ``interp``, timed on a prefix of a
C guest, must stop at its budget. Anything else raises :class:`BenchFailure`.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dbt.engines import run_guest
from dbt.errors import DbtError
from dbt.loader import Image, load
from dbt.monitor.exits import RunResult
from dbt.monitor.monitor import RunConfig
from dbt.toolchain import build_c

RAM = 32 << 20  # enough for every C guest at benchmark sizes; less RAM to digest per run
MAX_RAM = 1 << 30  # the most a C guest sized for a long run may be given
RAM_SLACK = 8 << 20  # room above a larger image (stack, heap), and the rounding
LOOP_RAM = 4 << 20  # a nanobenchmark loop needs only its code and a stack
_ITERATIONS = re.compile(r"(mov \w+, )\d+(\s*; iterations)")


class BenchFailure(DbtError):
    """A benchmark run did something other than what its guest promises."""


@dataclass(frozen=True)
class Plan:
    """How much to run: sizes, repetitions and the clocks to compare."""

    nano_iterations: int = 50_000  # the first try; autorange grows it
    interp_iterations: int = 2_000  # interp is ~1000x slower: per-op cost on fewer iterations
    target_seconds: float = 0.25  # nano: autorange grows a loop until one run takes this long
    max_iterations: int = 50_000_000
    # a C guest retires this many instructions: long enough that bt's one-off translation
    # (about 10 ms a guest, a few hundred us a trace) is amortised as in a real run, and
    # that QEMU's start-up jitter (tens of milliseconds) is small beside its run
    macro_insns: int = 200_000_000
    interp_insns: int = 100_000  # interp runs this prefix of a C guest
    outside_insns: int = 200_000_000  # an engine outside dbt (qemu) runs a C guest this long
    # hw and bt also run a build this much shorter: the difference of the two times is the
    # steady-state cost of the rest of the run (0: not measured)
    short_fraction: float = 0.25
    repeat: int = 3
    warmup: int = 1
    clocks: tuple[str, ...] = ("free", "exact")

    @classmethod
    def quick(cls, clocks: tuple[str, ...] = ("free", "exact")) -> Plan:
        return cls(nano_iterations=2_000, interp_iterations=200, target_seconds=0.0,
                   macro_insns=300_000, interp_insns=10_000, outside_insns=300_000,
                   repeat=1, warmup=0, clocks=clocks)

    def iterations(self, engine: str, bench=None) -> int:
        n = self.interp_iterations if engine == "interp" else self.nano_iterations
        cap = bench.max_iterations if bench is not None else None
        return min(n, cap) if cap else n


@dataclass
class Sample:
    """The timed runs of one guest under one engine, clock and MMU mode."""

    seconds: list[float]
    result: RunResult  # the median run
    instructions: int  # guest instructions one run retires (counted in the exact clock)
    #: (seconds, instructions) the run takes beyond a shorter build of the same guest: its
    #: steady state, one-off costs (translation, TLB fills, start-up) cancelled out
    steady: tuple[float, int] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Sizing:
    """A C guest built to retire about a requested number of instructions."""

    image: Image
    n: int
    instructions: int
    serial: bytes  # what the self-checking guest printed under hw, for the other engines
    per_n: float = field(default=0.0)
    ram: int = RAM  # guest RAM for the runs: RAM, or more for an image that outgrows it


def with_iterations(text: str, n: int) -> str:
    """A nanobenchmark's source with its loop count (``mov REG, N ; iterations``) set to n."""
    out, count = _ITERATIONS.subn(rf"\g<1>{n}\g<2>", text)
    if count != 1:
        raise DbtError(f"nanobenchmark source needs one 'mov REG, N ; iterations' line, has {count}")
    return out


@cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="dbt-bench-"))


@cache
def loop_image(path: Path, iterations: int) -> Image:
    """Load a nanobenchmark loop with its iteration count patched."""
    out = _scratch() / f"{path.stem}-{iterations}.s"
    out.write_text(with_iterations(path.read_text(), iterations))
    return load(str(out), ram_size=LOOP_RAM)


#: the engines whose steady state a macrobenchmark measures (see Plan.short_fraction)
STEADY_ENGINES = ("hw", "bt")

#: bt with inline sequences turned off (their instructions become callouts): not an engine
#: of its own, a variant the suite runs for the operations bt inlines
TRAP = "bt-trap"


def config(clock: str, mmu: str | None = None, max_insns: int = 10**12) -> RunConfig:
    kw = {"mmu": mmu} if mmu else {}
    return RunConfig(clock=clock, max_insns=max_insns, **kw)


def run_once(image: Image, engine: str, cfg: RunConfig,
             ram: int = RAM) -> tuple[float, RunResult]:
    if engine == TRAP:
        engine, cfg = "bt", dataclasses.replace(cfg, inline=False)
    # no pass of the collector over the objects alive before the run (the image, earlier
    # runs' results): one costs milliseconds and lands inside a translation or a handler.
    # Earlier runs' garbage is collected first, or freezing would keep it
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    try:
        r = run_guest(image, engine, cfg, ram_size=ram)
    finally:
        wall = time.perf_counter() - t
        gc.unfreeze()
    secs = r.stats.get("run_seconds")
    if secs is None or outside(engine):
        start = startup_seconds(engine, image.arch.bits, ram, r.reason.value)
        secs = max((wall if secs is None else secs) - start, 0.0)
    return secs, r


def outside(engine: str) -> bool:
    """Whether ``engine`` runs outside dbt (its run includes a firmware boot)."""
    from dbt.engines import engine_names

    return engine not in engine_names(outside=False) and engine != TRAP


@cache
def startup_seconds(engine: str, bits: int = 32, ram: int = LOOP_RAM,
                    ends: str = "halt") -> float:
    """Start-up of an engine outside dbt or one that cannot time its own run loop: the
    best of three times (its ``run_seconds``, else the wall time) of a guest that ends at
    once (by ``exit`` or ``halt``) with ``bits`` and ``ram``."""
    end = "xor eax, eax\n out 0xf4, al" if ends == "exit" else "cli\n hlt"
    path = _scratch() / f"startup-{bits}-{ends}.s"
    path.write_text(f"bits {bits}\n {end}\n")
    image = load(str(path), ram_size=ram)
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        r = run_guest(image, engine, config("free"), ram_size=ram)
        wall = time.perf_counter() - t
        walls.append(r.stats.get("run_seconds") or wall)
    return min(walls)


def expect(label: str, r: RunResult, reason: str, exit_code: int | None = None,
           serial: bytes | None = None) -> None:
    """Check one run ended as its guest promises; raise BenchFailure naming what went wrong."""
    if r.reason.value != reason:
        why = r.fault.describe() if r.fault else f"pc {r.pc:#x}"
        raise BenchFailure(f"{label}: ended with {r.reason.value} ({why}), expected {reason}")
    if exit_code is not None and r.exit_code != exit_code:
        raise BenchFailure(f"{label}: self-check failed, exit code {r.exit_code}: "
                           f"{r.serial.decode('latin-1').strip()!r}")
    if serial is not None and r.serial != serial:
        raise BenchFailure(f"{label}: printed {r.serial!r}, hw printed {serial!r}")


def repeated(label: str, image: Image, engine: str, cfg: RunConfig, plan: Plan,
             check, ram: int = RAM) -> tuple[list[float], RunResult]:
    """Warm up, then time ``plan.repeat`` runs, each checked; returns times and the median run."""
    warmup = 0 if engine == "interp" else plan.warmup
    runs = []
    for i in range(warmup + plan.repeat):
        secs, r = run_once(image, engine, cfg, ram)
        check(label, r)
        if i >= warmup:
            runs.append((secs, r))
    runs.sort(key=lambda sr: sr[0])
    return [s for s, _ in runs], runs[len(runs) // 2][1]


def guest_instructions(image: Image, ram: int = RAM) -> int:
    """Instructions a run retires, counted exactly (hw, exact clock)."""
    r = run_guest(image, "hw", config("exact"), ram_size=ram)
    return r.guest_instructions


def _halts(label: str, r: RunResult) -> None:
    expect(label, r, "halt")


MIN_ITERATIONS = 1_000  # an autoranged loop never runs fewer operations than this


@cache
def autorange(bench, engine: str, clock: str, plan: Plan, mmu: str | None = None) -> int:
    """Iterations for a loop so that one run lasts about ``plan.target_seconds``.

    A cheap operation (a native ``cli`` under hw: about a nanosecond) needs
    millions of iterations to stand out of the per-run noise; an expensive one
    (a retranslation under bt: milliseconds) needs a thousand.
    """
    n = plan.iterations(engine, bench)
    if plan.target_seconds <= 0:
        return n
    cap = min(plan.max_iterations, bench.max_iterations or plan.max_iterations)
    cfg = config(clock, mmu)
    # grow at most tenfold a step: a run whose time is lost in start-up noise (an engine
    # outside dbt, its start-up subtracted) must not jump straight to the cap
    for _ in range(6):
        secs, r = run_once(loop_image(bench.guest, n), engine, cfg, LOOP_RAM)
        _halts(f"{bench.name} {engine} {clock} (sizing)", r)
        if secs > 4 * plan.target_seconds:  # an expensive operation: fewer will do
            n = max(MIN_ITERATIONS, int(n * plan.target_seconds / secs))
            break
        if secs >= plan.target_seconds or n >= cap:
            break
        grow = min(plan.target_seconds / max(secs, 1e-5), 10.0)
        n = int(n * grow)
        if grow < 10.0:
            break
    return max(1, min(n, cap))


def nano_sample(bench, arch: str, engine: str, clock: str, plan: Plan,
                mmu: str | None = None) -> tuple[Sample, list[float], int]:
    """Time a loop and its calibration loop; returns the loop sample, per-op ns samples and
    the iteration count."""
    n = autorange(bench, engine, clock, plan, mmu)
    label = f"{bench.name}[{arch}] {engine} {clock}"
    cfg = config(clock, mmu)
    empty, _ = repeated(label + " (empty loop)", loop_image(bench.calibration[arch], n),
                        engine, cfg, plan, _halts, LOOP_RAM)
    image = loop_image(bench.guest, n)
    times, r = repeated(label, image, engine, cfg, plan, _halts, LOOP_RAM)
    # the calibration's fastest run: timing noise only ever adds, so its minimum is the
    # best estimate of the loop overhead (a median would let noise push costs below 0)
    base = min(empty)
    per_op = [(t - base) / n * 1e9 for t in times]
    count = r.guest_instructions or _loop_count(bench.guest, n)
    return Sample(times, r, count), per_op, n


@cache
def _loop_count(path: Path, n: int) -> int:
    """Instructions of an ``n``-iteration loop, for an engine that does not count them:
    exact counts of 100 and 200 iterations extrapolated (every iteration retires the same
    instructions; counting 10^6 system calls under hw would take minutes)."""
    k = 100
    if n <= 2 * k:
        return guest_instructions(loop_image(path, n), LOOP_RAM)
    one, two = (guest_instructions(loop_image(path, i), LOOP_RAM) for i in (k, 2 * k))
    return one + (two - one) * (n - k) // k


@cache
def sized(path: Path, arch: str, insns: int, probe_n: int) -> Sizing:
    """Build guests/c/NAME.c with N chosen so that a run retires about ``insns`` instructions.

    Two sizing runs (N = probe_n and 2·probe_n, hw, exact clock) give the
    instructions per unit of N; the work of every C guest grows linearly with N.
    """
    counts = []
    for n in (probe_n, 2 * probe_n):
        counts.append(guest_instructions(load(str(build_c(path, arch, extra=[f"-DN={n}"])))))
    per_n = (counts[1] - counts[0]) / probe_n
    n = max(1, round(probe_n + (insns - counts[0]) / per_n)) if per_n > 0 else probe_n
    image = load(str(build_c(path, arch, extra=[f"-DN={n}"])), ram_size=MAX_RAM)
    end = max(seg.end for seg in image.segments)
    ram = max(RAM, -(-(end + RAM_SLACK) // RAM_SLACK) * RAM_SLACK)  # a guest's data grows with N
    r = run_guest(image, "hw", config("exact"), ram_size=ram)
    expect(f"{path.stem}[{arch}] hw exact (sizing)", r, "exit", 0)
    return Sizing(image, n, r.guest_instructions, r.serial, per_n, ram)


def macro_sample(bench, arch: str, engine: str, clock: str, plan: Plan,
                 mmu: str | None = None) -> Sample:
    # an engine outside dbt runs a longer build of the guest, its start-up subtracted
    insns = plan.outside_insns if outside(engine) else plan.macro_insns
    size = sized(bench.guest, arch, insns, bench.probe_n)

    def label(build: Sizing) -> str:
        return f"{bench.name}[{arch}] N={build.n} {engine} {clock}"

    if engine == "interp":  # a prefix: interp's speed per instruction is flat across a run
        budget = min(plan.interp_insns, size.instructions)
        ends = "budget" if budget < size.instructions else "exit"
        times, r = repeated(label(size), size.image, engine, config(clock, mmu, budget), plan,
                            lambda lab, r: expect(lab, r, ends), size.ram)
        return Sample(times, r, r.guest_instructions or budget)

    def timed(build: Sizing) -> tuple[list[float], RunResult]:
        return repeated(label(build), build.image, engine, config(clock, mmu), plan,
                        lambda lab, r: expect(lab, r, "exit", 0, build.serial), build.ram)

    sample = Sample(*timed(size), size.instructions)
    if plan.short_fraction and engine in STEADY_ENGINES:
        short = sized(bench.guest, arch, int(insns * plan.short_fraction), bench.probe_n)
        if short.instructions < size.instructions:
            sample.steady = (sample.median - statistics.median(timed(short)[0]),
                             size.instructions - short.instructions)
    return sample
