"""Guest memory: the monitor's TLB (``--memory fast``) against unicorn's default mapping.

    python3 benchmarks/memory.py [--insns 20e6] [--repeat 3] [--quick]

For each compute guest (guests/c), 32- and 64-bit, hw and bt in the free clock
(no counting, so the memory system is what differs): run time with the fast
layer and with the default mapping, the speed-up, and its geometric mean per
engine (target >= 2.4). Also the TLB fills the fast layer took. Ratios come
from one run on one machine; read them, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bt import C_GUESTS, scaled  # noqa: E402

from dbt.engines import run_guest  # noqa: E402
from dbt.monitor.monitor import RunConfig  # noqa: E402


def run_time(image, engine: str, memory: str, repeat: int):
    runs = [run_guest(image, engine, RunConfig(clock="free", memory=memory, max_insns=10**12))
            for _ in range(repeat)]
    r = min(runs, key=lambda r: r.stats["run_seconds"])
    assert r.exit_code == 0, (engine, memory, r.serial, r.fault)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--insns", type=float, default=20e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=["x86_32", "x86_64"])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.insns, args.repeat = 1e6, 1
    speedups: dict[str, list[float]] = {"hw": [], "bt": []}
    print(f"{'guest':<10}{'arch':<8}{'engine':<8}{'default s':>11}{'fast s':>9}{'speed-up':>10}"
          f"{'fills':>8}")
    for arch in args.arch:
        for name in C_GUESTS:
            image, _ = scaled(name, arch, args.insns)
            for engine in ("hw", "bt"):
                slow = run_time(image, engine, "default", args.repeat)
                fast = run_time(image, engine, "fast", args.repeat)
                s = slow.stats["run_seconds"] / fast.stats["run_seconds"]
                speedups[engine].append(s)
                print(f"{name:<10}{arch:<8}{engine:<8}{slow.stats['run_seconds']:>11.3f}"
                      f"{fast.stats['run_seconds']:>9.3f}{s:>10.2f}{fast.stats['tlb_fills']:>8}")
    for engine, values in speedups.items():
        print(f"geomean speed-up of the fast layer, {engine}: "
              f"{statistics.geometric_mean(values):.2f} (target >= 2.4)")


if __name__ == "__main__":
    main()
