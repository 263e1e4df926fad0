"""Before and after: the compute guests under this tree and under another revision, in one run.

    python3 benchmarks/ab.py BASE_REV [--insns 50e6] [--repeat 3] [--engines hw bt]
                             [--clock free] [--arch x86_32 x86_64] [--guests sieve ...]

BASE_REV (any git revision) is exported to a temporary directory. For each guest of
guests/c, sized to about --insns instructions (by this tree), each engine runs it
under the base tree and under this tree in turn, each in a fresh process, best of
--repeat; the speed ratio new/base per guest and its geometric mean are what to
read, with the TLB fills and resize flushes of both.
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


def run(tree: Path, path: str, engine: str, clock: str, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    p = subprocess.run([sys.executable, "-c", ONE_RUN, path, engine, clock, str(repeat), str(RAM)],
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
    args = ap.parse_args()
    ratios: dict[str, list[float]] = {e: [] for e in args.engines}
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
                    b = run(base, s.image.path, engine, args.clock, args.repeat)
                    n = run(ROOT, s.image.path, engine, args.clock, args.repeat)
                    ratios[engine].append(b["seconds"] / n["seconds"])
                    insns = s.instructions
                    print(f"{name:<10}{arch:<8}{engine:<8}{insns:>13,}"
                          f"{insns / b['seconds'] / 1e6:>11.0f}{insns / n['seconds'] / 1e6:>10.0f}"
                          f"{ratios[engine][-1]:>10.2f}{b['fills']:>9}->{n['fills']:<8}"
                          f"{b['flushes']:>4}->{n['flushes']:<4}", flush=True)
    for engine, rs in ratios.items():
        print(f"geomean new/base speed, {engine}, {args.clock} clock: "
              f"{statistics.geometric_mean(rs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
