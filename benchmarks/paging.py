"""Shadow vs nested paging on the page-table churn guest (guests/sys/ptchurn.c), in one run.

Free clock, best of two runs, N=200 rounds (about 3 M instructions): hw under
--mmu nested and shadow, bt (shadow only), and interp on a 300,000-instruction
prefix. Prints the times, the shadow MMU's fills and flushes, and the ratios.

    python3 benchmarks/paging.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbt.engines import run_guest  # noqa: E402
from dbt.loader import load  # noqa: E402
from dbt.monitor.monitor import RunConfig  # noqa: E402
from dbt.toolchain import build_c  # noqa: E402

RUNS = (("hw", "nested"), ("hw", "shadow"), ("bt", "shadow"), ("interp", "nested"),
        ("interp", "shadow"))
INTERP_PREFIX = 300_000


def main() -> int:
    for arch in ("x86_32", "x86_64"):
        image = load(str(build_c(ROOT / "guests" / "sys" / "ptchurn.c", arch, extra=["-DN=200"])))
        best = {}
        for engine, mmu in RUNS:
            cfg = RunConfig(clock="free", mmu=mmu,
                            **({"max_insns": INTERP_PREFIX} if engine == "interp" else {}))
            times = []
            for _ in range(2):
                r = run_guest(image, engine, cfg)
                times.append(r.stats["run_seconds"])
            expected = "budget" if engine == "interp" else "exit"
            if r.reason.value != expected:
                print(f"{arch} {engine} {mmu}: ended with {r.reason.value}", file=sys.stderr)
                return 1
            best[engine, mmu] = min(times)
            print(f"{arch} {engine:6} {mmu:6} {min(times):8.3f} s  shadow fills "
                  f"{r.stats.get('shadow_fills', 0):7,}  TLB flushes by the guest "
                  f"{r.stats.get('shadow_flushes', 0):6,}"
                  + ("  (prefix)" if engine == "interp" else ""))
        print(f"{arch}: hw shadow/nested {best['hw', 'shadow'] / best['hw', 'nested']:.1f}x "
              f"slower; bt (shadow)/hw nested {best['bt', 'shadow'] / best['hw', 'nested']:.1f}x; "
              f"interp shadow/nested {best['interp', 'shadow'] / best['interp', 'nested']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
