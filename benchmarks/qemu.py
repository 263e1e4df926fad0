"""dbt's hw and bt beside QEMU's full-system TCG, on the compute guests, measured in one run.

    python3 benchmarks/qemu.py [--insns 200e6] [--repeat 3] [--arch x86_32 x86_64]

For each compute guest of guests/c (scaled with -DN to retire about --insns
instructions), 32- and 64-bit: the exact instruction count (engine hw, exact
clock), then hw and bt in the free clock, then QEMU (engine qemu). QEMU's time
is its run time less its start-up: the same measure for a guest that exits at
once (BIOS, the boot stub zeroing guest RAM, QEMU's exit), best of --repeat.
MIPS are dbt's exact count divided by each time; the ratios bt/QEMU and hw/QEMU
per guest and their geometric means are what to read (another issue's target:
bt >= 0.4x QEMU).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file's name would hide the qemu.qmp package: take its directory off the path
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("bench_bt", HERE / "bt.py")
bench_bt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_bt)
C_GUESTS, best, scaled = bench_bt.C_GUESTS, bench_bt.best, bench_bt.scaled

from dbt.engines import unavailable  # noqa: E402
from dbt.loader import load  # noqa: E402


def startup(arch: str, repeat: int) -> float:
    """QEMU's run time for a guest that exits at once: what every qemu run pays."""
    bits = 64 if arch == "x86_64" else 32
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exit.s"
        path.write_text(f"bits {bits}\n xor eax, eax\n out 0xf4, al\n")
        return best(load(str(path)), "qemu", "free", repeat)[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--insns", type=float, default=200e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=["x86_32", "x86_64"])
    args = ap.parse_args()
    if why := unavailable("qemu"):
        print(f"qemu.py: {why}", file=sys.stderr)
        return 2
    print(f"{'guest':<10}{'arch':<8}{'insns':>12}{'hw MIPS':>10}{'bt MIPS':>10}"
          f"{'QEMU MIPS':>11}{'bt/QEMU':>9}{'hw/QEMU':>9}")
    bt_ratio, hw_ratio = [], []
    for arch in args.arch:
        t0 = startup(arch, args.repeat)
        print(f"(QEMU start-up, {arch}: {t0 * 1e3:.0f} ms, subtracted)")
        for name in C_GUESTS:
            image, _ = scaled(name, arch, args.insns)
            insns = best(image, "hw", "exact", 1)[0].guest_instructions
            t_hw = best(image, "hw", "free", args.repeat)[1]
            t_bt = best(image, "bt", "free", args.repeat)[1]
            r, t_q = best(image, "qemu", "free", args.repeat)
            if r.reason.value != "exit" or r.exit_code != 0:
                raise SystemExit(f"{name} [{arch}] under qemu: {r.reason.value} {r.exit_code}")
            t_q = max(t_q - t0, 1e-6)
            bt_ratio.append(t_q / t_bt)
            hw_ratio.append(t_q / t_hw)
            print(f"{name:<10}{arch:<8}{insns:>12,}{insns / t_hw / 1e6:>10.0f}"
                  f"{insns / t_bt / 1e6:>10.0f}{insns / t_q / 1e6:>11.0f}"
                  f"{bt_ratio[-1]:>9.2f}{hw_ratio[-1]:>9.2f}")
    print(f"geomean bt/QEMU {statistics.geometric_mean(bt_ratio):.2f}  "
          f"hw/QEMU {statistics.geometric_mean(hw_ratio):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
