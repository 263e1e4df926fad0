"""The benchmark registry: every guest of ``dbt bench``, its kind, what it needs, and the paper's verdict.

Nanobenchmarks follow Adams & Agesen, "A Comparison of Software and Hardware
Techniques for x86 Virtualization" (ASPLOS 2006, §6.2, Figure 4), plus the
operations a scan-and-patch translator exists for. Each is a loop in
``guests/bench/`` whose iteration count is the line ``mov REG, N ; iterations``,
patched by the suite; its cost per operation is the loop's time less that of the
calibration loop of the same architecture (``empty.s`` / ``empty64.s``).

Macrobenchmarks are the freestanding C programs in ``guests/c/`` and the small
kernels in ``guests/sys/``, built for both architectures with ``-DN=…`` chosen so a
run retires a requested number of instructions; each checks its own result and exits 0.

A benchmark that needs something the engines cannot do yet (delivery through the
guest's IDT, user mode, guest paging, a timer) names it in ``needs``; it is listed
and reported as not available until its guest exists and the feature is there.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_DIR = ROOT / "guests" / "bench"
C_DIR = ROOT / "guests" / "c"
SYS_DIR = ROOT / "guests" / "sys"
ARCHES = ("x86_32", "x86_64")


class Kind(enum.Enum):
    NANO = "nano"  # a loop around one operation: cost per operation
    MACRO = "macro"  # a whole program: run time and guest MIPS


#: what a requirement means, for the "not available" line
FEATURES = {
    "idt": "exception and interrupt delivery through the guest's IDT",
    "user": "user mode (CPL 3) and privilege-changing transfers",
    "syscall": "system-call round trips (int 0x80, sysenter, syscall)",
    "paging": "guest page tables (--mmu nested|shadow)",
    "timer": "a timer and interrupt controller (PIT/PIC)",
}


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Kind
    guest: Path
    arches: tuple[str, ...]
    what: str  # one line: the operation measured
    paper_winner: str | None = None  # "bt" (the software VMM) or "hw", Figure 4; None: not in it
    needs: frozenset[str] = frozenset()
    probe_n: int = 1000  # macro: the -DN of the smaller of the two sizing runs
    max_iterations: int | None = None  # nano: a cap for loops whose operation costs milliseconds
    #: nano: also run bt with the operation as a callout (``bt-trap``: bt --no-inline), the
    #: trap-and-emulate its inline sequence replaces
    trap_variant: bool = False

    @property
    def calibration(self) -> dict[str, Path]:
        """Nano: the empty loop of each architecture, whose time is subtracted."""
        return {"x86_32": BENCH_DIR / "empty.s", "x86_64": BENCH_DIR / "empty64.s"}

    @property
    def compute_bound(self) -> bool:
        """A compute-bound program (guests/c), which the issue's speed targets are for; the
        small kernels of guests/sys are reported beside them without a target."""
        return self.kind is Kind.MACRO and self.guest.parent == C_DIR

    @property
    def paging(self) -> bool:
        return "paging" in self.needs

    def missing(self) -> str | None:
        """Why this benchmark cannot run yet (None: it can).

        A benchmark's guest is added once the engines can run it, so a missing
        guest file means a missing feature, named from ``needs``.
        """
        if self.guest.exists():
            return None
        return "needs " + ", ".join(FEATURES[f] for f in sorted(self.needs)) if self.needs \
            else f"no guest {self.guest.relative_to(ROOT)}"


def paging_modes() -> tuple[str, ...]:
    """The ``--mmu`` modes the monitor offers (none until RunConfig has an ``mmu`` field)."""
    from dbt.monitor.monitor import RunConfig

    return ("nested", "shadow") if "mmu" in {f.name for f in dataclasses.fields(RunConfig)} \
        else ()


def _nano(name: str, what: str, winner: str | None = None, arch: str = "x86_32",
          needs: tuple[str, ...] = (), max_iterations: int | None = None,
          trap_variant: bool = False) -> Benchmark:
    return Benchmark(name, Kind.NANO, BENCH_DIR / f"{name}.s", (arch,), what, winner,
                     frozenset(needs), max_iterations=max_iterations,
                     trap_variant=trap_variant)


def _macro(name: str, what: str, probe_n: int = 1000, needs: tuple[str, ...] = (),
           directory: Path = C_DIR) -> Benchmark:
    return Benchmark(name, Kind.MACRO, directory / f"{name}.c", ARCHES, what, None,
                     frozenset(needs), probe_n)


BENCHMARKS: tuple[Benchmark, ...] = (
    # --- the paper's nanobenchmarks (Figure 4) ---------------------------------------------
    _nano("syscall_int80", "user->kernel->user round trip by int 0x80", "hw",
          needs=("idt", "user", "syscall")),
    _nano("syscall_sysenter", "user->kernel->user round trip by sysenter/sysexit", "hw",
          needs=("user", "syscall")),
    _nano("syscall_syscall", "user->kernel->user round trip by syscall/sysret", "hw",
          arch="x86_64", needs=("user", "syscall")),
    _nano("in_lsr", "in: read the UART line status register", "bt"),
    _nano("cr8wr", "mov cr8, reg: the task-priority register write (64-bit)", "bt",
          arch="x86_64"),
    _nano("cr0wr", "mov cr0, reg setting CR0.TS: the 32-bit stand-in for cr8wr", "bt"),
    _nano("call_ret", "call to a function that returns", "hw"),
    _nano("pgfault", "a page fault taken and fixed by the guest kernel", "bt",
          needs=("idt", "paging")),
    _nano("divzero", "#DE delivered to and handled by the guest", "hw", needs=("idt",)),
    _nano("ptemod", "modify a live page-table entry and invlpg it", "bt", needs=("paging",)),
    # --- what a scan-and-patch translator is about ----------------------------------------
    _nano("call_ret_push", "call to a function that pushes and pops a register, then returns"),
    _nano("cli_sti", "cli; sti", trap_variant=True),
    _nano("pushf_popf", "pushfd; popfd", trap_variant=True),
    _nano("cpuid", "cpuid leaf 0"),
    _nano("rdtsc", "rdtsc"),
    _nano("out_uart", "out to the UART scratch register"),
    _nano("smc", "store into the immediate of code that then runs", max_iterations=1000),
    # --- compute-bound programs (guests/c) --------------------------------------------------
    _macro("crc32", "table-driven CRC-32 of a buffer"),
    _macro("sha256", "SHA-256 of a buffer, whole and in pieces", probe_n=1000),
    _macro("sieve", "sieve of Eratosthenes"),
    _macro("matmul", "16x16 integer matrix multiply, N rounds", probe_n=20),
    _macro("qsort", "recursive quicksort (call/ret heavy)"),
    _macro("lzss", "LZSS compress and decompress"),
    _macro("lexer", "table-driven lexer state machine (store-heavy)"),
    _macro("bytecode", "bytecode interpreter with a jump table"),
    _macro("repmovs", "rep movsb/movsd block copies", probe_n=20),
    # --- small kernels (guests/sys) --------------------------------------------------------
    _macro("ptchurn", "page-table churn: remap 128 pages with invlpg, touch them, switch CR3",
           probe_n=8, needs=("paging",), directory=SYS_DIR),
    _macro("osmix", "an OS workload: a sieve, CRC-32 and sort at ring 3 with timer "
           "interrupts, system calls and demand paging", probe_n=20,
           needs=("idt", "user", "syscall", "paging", "timer"), directory=SYS_DIR),
)

BY_NAME = {b.name: b for b in BENCHMARKS}
