"""The timer guest (guests/sys/timer.c) under interp, hw and bt, side by side in one run.

Exact clock: every engine must retire the same instructions and take the same
interrupts; the table prints the best of --repeat run times and their ratios.

    python3 benchmarks/timer.py [--repeat N] [--arch x86_32,x86_64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbt.engines import run_guest  # noqa: E402
from dbt.loader import load  # noqa: E402
from dbt.monitor.monitor import RunConfig  # noqa: E402
from dbt.toolchain import build_c  # noqa: E402

ENGINES = ("interp", "hw", "bt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--arch", default="x86_32,x86_64")
    args = ap.parse_args()
    for arch in args.arch.split(","):
        image = load(str(build_c(ROOT / "guests" / "sys" / "timer.c", arch)))
        best, seen = {}, set()
        for engine in ENGINES:
            for _ in range(args.repeat):
                r = run_guest(image, engine, RunConfig())
                t = r.stats["run_seconds"]
                best[engine] = min(best.get(engine, t), t)
            seen.add((r.reason.value, r.guest_instructions, r.stats.get("interrupts")))
        if len(seen) != 1:
            print(f"{arch}: engines disagree: {seen}", file=sys.stderr)
            return 1
        reason, insns, irqs = seen.pop()
        print(f"{arch}: {insns:,} instructions, {irqs} interrupts, reason {reason}")
        for engine in ENGINES:
            print(f"  {engine:6} {best[engine]:8.3f} s   hw/{engine} {best['hw'] / best[engine]:.3f}")
        print(f"  bt/hw slowdown {best['bt'] / best['hw']:.2f}x, "
              f"interp/bt {best['interp'] / best['bt']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
