"""Before and after: the compute guests under this tree and under another revision, in one run.

    python3 benchmarks/ab.py BASE_REV [--insns 50e6] [--repeat 3] [--engines hw bt]
                             [--clock free] [--arch x86_32 x86_64] [--guests sieve ...]
                             [--nano call_ret ...] [--nano-iters 1000000]

BASE_REV (any git revision) is exported to a temporary directory. For each guest of
guests/c, sized to about --insns instructions (by this tree), each engine runs it
under the base tree and under this tree in turn, each in a fresh process, best of
--repeat; the speed ratio new/base per guest and its geometric mean are what to
read, with the TLB fills and resize flushes of both. With hw and bt both among the
engines, a second table gives bt/hw (speed) under each tree, with its geometric
mean. ``--nano`` adds nanobenchmark loops of guests/bench (this tree's files, run
by both trees): ns an iteration with the empty loop's time subtracted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbt.bench.measure import RAM, sized
from dbt.errors import LoadError

ONE_RUN = """
import json, sys
from dbt.engines import run_guest
from dbt.loader import load
from dbt.monitor.monitor import RunConfig
path, engine, clock, repeat, ram = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
image = load(path, ram_size=ram)
runs = [run_guest(image, engine, RunConfig(clock=clock, max_insns=10**12), ram_size=ram)
        for _ in range(repeat)]
r = min(runs, key=lambda r: r.stats["run_seconds"])
print(json.dumps({"exit": r.exit_code, "seconds": r.stats["run_seconds"],
                  "fills": r.stats.get("tlb_fills"), "flushes": r.stats.get("tlb_resize_flushes")}))
"""


def export(rev: str, into: Path) -> None:
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(tar.stdout)) as t:
        t.extractall(into, filter="data")


def run(tree: Path, path: str, engine: str, clock: str, repeat: int, ram: int = RAM) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    p = subprocess.run([sys.executable, "-c", ONE_RUN, path, engine, clock, str(repeat), str(ram)],
                       check=False, env=env, cwd=tree, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{tree}: {p.stderr.strip().splitlines()[-1]}")
    out = json.loads(p.stdout)
    if out["exit"] != 0:
        raise SystemExit(f"{path} under {engine} in {tree}: exit code {out['exit']}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("--insns", type=float, default=50e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engines", nargs="+", default=["hw", "bt"])
    ap.add_argument("--clock", default="free", choices=["free", "exact"])
    ap.add_argument("--arch", nargs="+", default=["x86_32", "x86_64"])
    ap.add_argument("--guests", nargs="+",
                    default=sorted(p.stem for p in (ROOT / "guests" / "c").glob("*.c")))
    ap.add_argument("--nano", nargs="*", default=[])
    ap.add_argument("--nano-iters", type=float, default=1e6)
    args = ap.parse_args()
    ratios: dict[str, list[float]] = {e: [] for e in args.engines}
    speeds: dict[tuple, float] = {}  # (guest, arch, engine, tree) -> MIPS
    with tempfile.TemporaryDirectory(prefix="dbt-base-") as tmp:
        base = Path(tmp)
        export(args.base, base)
        print(f"{'guest':<10}{'arch':<8}{'engine':<8}{'insns':>13}{'base MIPS':>11}{'new MIPS':>10}"
              f"{'new/base':>10}{'fills':>18}{'flushes':>10}")
        for arch in args.arch:
            for name in args.guests:
                want = args.insns
                while True:  # guests whose data grows with N may not fit: ask for fewer
                    try:
                        s = sized(ROOT / "guests" / "c" / f"{name}.c", arch, int(want), 1000)
                        break
                    except LoadError:
                        want /= 4
                for engine in args.engines:
                    b = run(base, s.image.path, engine, args.clock, args.repeat, s.ram)
                    n = run(ROOT, s.image.path, engine, args.clock, args.repeat, s.ram)
                    ratios[engine].append(b["seconds"] / n["seconds"])
                    insns = s.instructions
                    speeds[name, arch, engine, "base"] = insns / b["seconds"] / 1e6
                    speeds[name, arch, engine, "new"] = insns / n["seconds"] / 1e6
                    print(f"{name:<10}{arch:<8}{engine:<8}{insns:>13,}"
                          f"{insns / b['seconds'] / 1e6:>11.0f}{insns / n['seconds'] / 1e6:>10.0f}"
                          f"{ratios[engine][-1]:>10.2f}{b['fills']:>9}->{n['fills']:<8}"
                          f"{b['flushes']:>4}->{n['flushes']:<4}", flush=True)
        for name in args.nano:
            nano(base, name, args)
    for engine, rs in ratios.items():
        if rs:
            print(f"geomean new/base speed, {engine}, {args.clock} clock: "
                  f"{statistics.geometric_mean(rs):.2f}")
    if {"hw", "bt"} <= set(args.engines) and speeds:
        bt_over_hw(speeds, args.clock)
    return 0


def bt_over_hw(speeds: dict, clock: str) -> None:
    """bt's speed over hw's, per guest, under each tree."""
    print(f"\n{'guest':<10}{'arch':<8}{'base bt/hw':>11}{'new bt/hw':>11}   ({clock} clock)")
    out = {"base": [], "new": []}
    for name, arch in sorted({(g, a) for g, a, _e, _t in speeds}, key=lambda k: (k[1], k[0])):
        row = [speeds[name, arch, "bt", t] / speeds[name, arch, "hw", t] for t in out]
        for t, r in zip(out, row):
            out[t].append(r)
        print(f"{name:<10}{arch:<8}{row[0]:>11.2f}{row[1]:>11.2f}")
    print(f"{'geomean':<18}" + "".join(f"{statistics.geometric_mean(v):>11.2f}"
                                      for v in out.values()))


NANO_RUN = """
import json, sys
from dbt.engines import run_guest
from dbt.loader import load
from dbt.monitor.monitor import RunConfig
path, engine, clock, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
image = load(path, ram_size=4 << 20)
runs = [run_guest(image, engine, RunConfig(clock=clock, max_insns=10**12), ram_size=4 << 20)
        for _ in range(repeat)]
print(json.dumps({"seconds": min(r.stats["run_seconds"] for r in runs)}))
"""


def nano(base: Path, name: str, args) -> None:
    """ns an iteration of a nanobenchmark loop under each tree (empty loop subtracted)."""
    from dbt.bench.measure import with_iterations

    n = int(args.nano_iters)
    files = {}
    for stem in (name, "empty"):
        out = Path(tempfile.mkdtemp(prefix="dbt-ab-")) / f"{stem}.s"
        out.write_text(with_iterations((ROOT / "guests" / "bench" / f"{stem}.s").read_text(), n))
        files[stem] = str(out)
    for engine in args.engines:
        ns = {}
        for tree, label in ((base, "base"), (ROOT, "new")):
            t = {}
            for stem, path in files.items():
                env = dict(os.environ, PYTHONPATH=str(tree))
                p = subprocess.run([sys.executable, "-c", NANO_RUN, path, engine, args.clock,
                                    str(args.repeat)], env=env, cwd=tree, capture_output=True,
                                   text=True, check=True)
                t[stem] = json.loads(p.stdout)["seconds"]
            ns[label] = (t[name] - t["empty"]) / n * 1e9
        print(f"{name:<14}{engine:<6}{args.clock:<7}base {ns['base']:7.1f} ns  "
              f"new {ns['new']:7.1f} ns  new/base speed {ns['base'] / ns['new']:5.2f}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
