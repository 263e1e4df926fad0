"""How many unicorn blocks each engine runs for the same guest.

    python3 benchmarks/blocks.py [--insns 3e6] [--guests lzss qsort ...] [--arch x86_32 x86_64]

unicorn pays a block prologue (an exit-request check) and a chained jump for every
translation block it enters, so bt's translated code is only as fast as hw's when it
runs as few blocks for the same guest instructions. This counts the blocks entered
under hw and bt (free clock) with a ``UC_HOOK_BLOCK`` counter, which makes the runs
slow: the counts are the figure, not the times. C guests of guests/c are built to
retire about --insns instructions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from unicorn import UC_HOOK_BLOCK  # noqa: E402

from dbt.bench.measure import config, sized  # noqa: E402
from dbt.bench.suite import BY_NAME  # noqa: E402
from dbt.engines import run_guest  # noqa: E402

GUESTS = ("crc32", "sha256", "sieve", "matmul", "qsort", "lzss", "lexer", "bytecode")


def blocks_run(size, engine: str) -> int:
    count = [0]

    def setup(mon):
        def on_block(uc, address, block_size, _ud):
            count[0] += 1
        mon.uc.hook_add(UC_HOOK_BLOCK, on_block)

    r = run_guest(size.image, engine, config("free"), ram_size=size.ram, setup=setup)
    if r.serial != size.serial:
        sys.exit(f"{engine}: printed {r.serial!r}, hw (sizing) printed {size.serial!r}")
    return count[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--insns", type=float, default=3e6)
    ap.add_argument("--guests", nargs="+", default=list(GUESTS), choices=GUESTS)
    ap.add_argument("--arch", nargs="+", default=["x86_32", "x86_64"])
    args = ap.parse_args()
    print(f"{'guest':9} {'arch':7} {'insns':>11} {'hw blocks':>11} {'bt blocks':>11} "
          f"{'bt/hw':>6} {'insns/block hw':>15} {'bt':>5}")
    for name in args.guests:
        b = BY_NAME[name]
        for arch in args.arch:
            size = sized(b.guest, arch, int(args.insns), b.probe_n)
            hw, bt = (blocks_run(size, e) for e in ("hw", "bt"))
            n = size.instructions
            print(f"{name:9} {arch:7} {n:11,} {hw:11,} {bt:11,} {bt / hw:6.2f} "
                  f"{n / hw:15.2f} {n / bt:5.2f}", flush=True)


if __name__ == "__main__":
    main()
