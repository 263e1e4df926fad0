"""Binary translation against trap-and-emulate and interpretation, measured in one run.

    python3 benchmarks/bt.py [--insns 50e6] [--interp-insns 2e5] [--repeat 3] [--quick]

Compute-bound guests (guests/c: CRC-32, sieve, recursive quicksort, a bytecode
interpreter with a jump table), 32- and 64-bit, in both clocks: bt against hw
(targets: >= 0.9 in each clock) and against interp (target >= 200, interp
timed on a prefix of the run). Then the sensitive-instruction loops
(guests/bench: cli/sti, pushf/popf, in from the UART LSR): cost per operation
with the empty loop subtracted. Then translation cost per block.

The suite of `dbt bench` (dbt/bench) shares this script's sizing and loop patching.

Times are engine run times (``stats.run_seconds``: set-up, loading and the final
memory digest excluded), best of --repeat. Ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbt.bench.measure import sized, with_iterations  # noqa: E402
from dbt.engines import run_guest  # noqa: E402
from dbt.loader import load  # noqa: E402
from dbt.monitor.monitor import RunConfig  # noqa: E402
from dbt.toolchain import build_c  # noqa: E402

C_GUESTS = ("crc32", "sieve", "qsort", "bytecode")
NANO = ("cli_sti", "pushf_popf", "in_lsr")


def best(image, engine, clock, repeat, max_insns=10**12):
    runs = [run_guest(image, engine, RunConfig(clock=clock, max_insns=max_insns))
            for _ in range(repeat)]
    r = min(runs, key=lambda r: r.stats["run_seconds"])
    return r, r.stats["run_seconds"]


def scaled(name: str, arch: str, insns: float):
    """guests/c/NAME.c built to retire about ``insns`` instructions, and its N."""
    s = sized(ROOT / "guests" / "c" / f"{name}.c", arch, int(insns), 1000)
    return s.image, s.n


def compute(args) -> None:
    print(f"{'guest':<10}{'arch':<8}{'clock':<7}{'insns':>12}{'hw MIPS':>10}{'bt MIPS':>10}"
          f"{'bt/hw':>8}{'interp':>9}{'bt/interp':>11}")
    ratios = {"exact": [], "free": []}
    for arch in args.arch:
        for name in C_GUESTS:
            image, n = scaled(name, arch, args.insns)
            interp_r, interp_s = best(image, "interp", "exact", 1, int(args.interp_insns))
            interp_mips = interp_r.guest_instructions / interp_s / 1e6
            for clock in ("exact", "free"):
                hw_r, hw_s = best(image, "hw", clock, args.repeat)
                bt_r, bt_s = best(image, "bt", clock, args.repeat)
                assert hw_r.exit_code == 0 and bt_r.exit_code == 0, (name, hw_r.serial, bt_r.serial)
                count = hw_r.guest_instructions or bt_r.guest_instructions or \
                    best(image, "hw", "exact", 1)[0].guest_instructions
                hw_m, bt_m = count / hw_s / 1e6, count / bt_s / 1e6
                ratios[clock].append(bt_m / hw_m)
                print(f"{name:<10}{arch:<8}{clock:<7}{count:>12,}{hw_m:>10.1f}{bt_m:>10.1f}"
                      f"{bt_m / hw_m:>8.2f}{interp_mips:>9.3f}{bt_m / interp_mips:>11.0f}")
    for clock, rs in ratios.items():
        if rs:
            print(f"geomean bt/hw, {clock} clock: {statistics.geometric_mean(rs):.2f} "
                  f"(min {min(rs):.2f})")


def nano(args) -> None:
    print(f"\n{'loop':<12}{'engine':<8}{'ns/op':>10}   (empty loop subtracted; {args.iters:,} iterations)")
    images = {}
    for name in ("empty",) + NANO:
        text = (ROOT / "guests" / "bench" / f"{name}.s").read_text()
        path = Path(args.tmp) / f"{name}.s"
        path.write_text(with_iterations(text, args.iters))
        images[name] = load(str(path))
    per_op = {}
    for engine in ("hw", "bt", "interp"):
        iters = args.iters if engine != "interp" else min(args.iters, 20_000)
        base = None
        for name in ("empty",) + NANO:
            image = images[name]
            if engine == "interp" and iters != args.iters:
                text = (ROOT / "guests" / "bench" / f"{name}.s").read_text()
                path = Path(args.tmp) / f"{name}-interp.s"
                path.write_text(with_iterations(text, iters))
                image = load(str(path))
            _, secs = best(image, engine, "exact", args.repeat)
            ns = secs / iters * 1e9
            if name == "empty":
                base = ns
                continue
            per_op[(name, engine)] = ns - base
            print(f"{name:<12}{engine:<8}{ns - base:>10.1f}")
    for name in NANO:
        hw, bt = per_op[(name, "hw")], per_op[(name, "bt")]
        print(f"{name:<12}bt/hw speed {hw / bt if bt > 0 else float('inf'):.2f}, "
              f"bt/interp speed {per_op[(name, 'interp')] / bt if bt > 0 else float('inf'):.0f}")


def translation(args) -> None:
    rows = []
    for arch in args.arch:
        for name in C_GUESTS:
            image = load(str(build_c(ROOT / "guests" / "c" / f"{name}.c", arch)))
            r = run_guest(image, "bt", RunConfig())
            s = r.stats
            rows.append((name, arch, s["blocks_translated"], s["translate_seconds"],
                         s["translate_median_us"], s["keystone_calls"],
                         s["ident_instructions"], s["rewritten_instructions"]))
    print(f"\n{'guest':<10}{'arch':<8}{'traces':>8}{'us mean':>9}{'us median':>11}"
          f"{'keystone':>10}{'ident':>8}{'rewritten':>11}")
    for name, arch, blocks, secs, median, ks, ident, rew in rows:
        print(f"{name:<10}{arch:<8}{blocks:>8}{secs / blocks * 1e6:>9.0f}{median:>11.0f}{ks:>10}"
              f"{ident:>8}{rew:>11}")
    print("keystone runs only for the templates, once per process (the first run above); "
          "no block needs it: 0 % of blocks.")


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--insns", type=float, default=50e6)
    ap.add_argument("--interp-insns", type=float, default=2e5)
    ap.add_argument("--iters", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=["x86_32", "x86_64"])
    ap.add_argument("--quick", action="store_true", help="small sizes: checks the script runs")
    args = ap.parse_args()
    if args.quick:
        args.insns, args.interp_insns, args.iters, args.repeat = 2e6, 2e4, 20_000, 1
    args.tmp = tempfile.mkdtemp(prefix="dbt-bench-")
    compute(args)
    nano(args)
    translation(args)


if __name__ == "__main__":
    main()
