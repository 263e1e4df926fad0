"""Static coverage at scale: throughput against raw capstone, the --jobs speed-up, and the
findings over the binaries of this machine.

    python3 benchmarks/coverage.py [--debs] [--sample N] [--json]

The corpus is what a fresh machine has: /usr/bin, the shared libraries in
/usr/lib/x86_64-linux-gnu and the Python interpreter; with ``--debs``, also the
kernel modules, GRUB modules and EFI applications of three Debian packages
(``linux-image-<version>-cloud-amd64``, ``grub-efi-amd64-bin``,
``shim-unsigned``) fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` into a temporary directory, never kept.

1. **Throughput per core**: for a sample of the corpus's binaries, the linear
   sweep of :mod:`dbt.coverage.sweep` (decode, count, classify through the ISA
   table, keep the addresses of sensitive instructions) against a bare
   ``Cs.disasm_lite`` loop over exactly the same bytes, in the same chunks,
   skipping undecodable bytes the same way. Both timed in one process,
   alternately, best of three. The full per-file scan (hashing, lief,
   sweep and descent) is timed too.
2. **Speed-up from --jobs**: the whole scan of 150 binaries under 4 MiB with 1 job and
   with all cores (the machine's other load shows in this figure).
3. **Findings**: the report tables over the whole corpus.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dbt.coverage import report  # noqa: E402
from dbt.coverage.binary import mapped, read_binary, sniff  # noqa: E402
from dbt.coverage.runner import run_static  # noqa: E402
from dbt.coverage.static import scan_file  # noqa: E402
from dbt.coverage.store import Store  # noqa: E402
from dbt.coverage.sweep import CHUNK, sweep  # noqa: E402
from dbt.coverage.tally import Tally  # noqa: E402
from dbt.errors import CorpusFileError  # noqa: E402
from dbt.scanner import Decoder  # noqa: E402

DEBS = ["linux-image-{kernel}-cloud-amd64", "grub-efi-amd64-bin", "shim-unsigned"]


def fetch_debs(into: Path) -> list[str]:
    """Download and unpack the packages; the paths to scan (empty if apt cannot)."""
    kernel = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"],
                            capture_output=True, text=True).stdout
    names = [line.split("linux-image-")[1].split("-cloud-amd64")[0]
             for line in kernel.splitlines() if "Depends: linux-image-" in line]
    pkgs = [p.format(kernel=names[0]) for p in DEBS] if names else DEBS[1:]
    debs = into / "debs"
    debs.mkdir()
    r = subprocess.run(["apt-get", "download", *pkgs], cwd=debs, capture_output=True, text=True)
    if r.returncode:
        print(f"apt-get download failed: {r.stderr.strip()}", file=sys.stderr)
        return []
    root = into / "root"
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return [str(p) for p in (root / "lib" / "modules", root / "usr" / "lib") if p.exists()]


def corpus(extra: list[str]) -> list[str]:
    return ["/usr/bin", "/usr/lib/x86_64-linux-gnu", os.path.realpath(sys.executable), *extra]


def _regions(path: str):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        fmt = sniff(f.read(4))
    if fmt is None or size == 0:
        return None
    try:
        return read_binary(path, fmt, size), size
    except CorpusFileError:
        return None


def _bare(decoder: Decoder, code: memoryview, address: int) -> int:
    """The baseline: disasm_lite over the same chunks, skipping bad bytes the same way."""
    disasm, size, off, n = decoder.disasm, len(code), 0, 0
    while off < size:
        end = min(size, off + CHUNK)
        base = address + off
        a = s = -1
        n0 = n
        for a, s, _m, _o in disasm(code[off:end], base):
            n += 1
        done = a + s - base if n > n0 else 0
        off += done
        if off < end and (end == size or end - off > 15):
            off += 1
    return n


def throughput(files: list[str], repeat: int = 3) -> dict:
    base_t = ours_t = 0.0
    base_n = ours_n = 0
    for path in files:
        got = _regions(path)
        if got is None:
            continue
        binary, size = got
        decoder = Decoder(binary.bits)
        with mapped(path, size) as view:
            for r in binary.regions:
                code = view[r.offset:r.offset + r.size]
                best_b = best_o = float("inf")
                for _ in range(repeat):
                    t = time.perf_counter()
                    nb = _bare(decoder, code, r.address)
                    best_b = min(best_b, time.perf_counter() - t)
                    tally = Tally()
                    t = time.perf_counter()
                    sweep(decoder, code, r.address, r.name, tally, {})
                    best_o = min(best_o, time.perf_counter() - t)
                assert tally.instructions == nb, (path, r.name, tally.instructions, nb)
                base_t += best_b
                ours_t += best_o
                base_n += nb
                ours_n += tally.instructions
                code.release()
    full_t, full_n = 0.0, 0
    for path in files:
        t = time.perf_counter()
        rec = scan_file(path)
        full_t += time.perf_counter() - t
        full_n += rec.get("instructions") or 0
    return {"files": len(files), "instructions": ours_n,
            "disasm_lite_insns_per_s": base_n / base_t, "sweep_insns_per_s": ours_n / ours_t,
            "ratio": (ours_n / ours_t) / (base_n / base_t),
            "full_scan_insns_per_s": full_n / full_t,
            "full_scan_ratio": (full_n / full_t) / (base_n / base_t)}


def jobs_speedup(paths: list[str], tmp: Path) -> dict:
    out = {}
    for jobs in (1, os.cpu_count() or 1):
        db = tmp / f"jobs{jobs}.sqlite"
        store = Store(str(db))
        t = time.perf_counter()
        s = run_static(paths, store, jobs=jobs)
        out[jobs] = {"seconds": time.perf_counter() - t, "instructions": s.instructions}
        store.close()
    one, many = out[1], out[max(out)]
    return {"jobs": max(out), "cores": os.cpu_count(), "seconds_1": one["seconds"],
            "seconds_n": many["seconds"], "speedup": one["seconds"] / many["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--debs", action="store_true", help="also fetch kernel modules and EFI "
                                                        "binaries (apt-get download)")
    ap.add_argument("--sample", type=int, default=40,
                    help="binaries in the throughput sample (default 40)")
    ap.add_argument("--db", default=None, help="keep the corpus database here")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--throughput-only", action="store_true",
                    help="measure the throughput ratio only (no --jobs run, no corpus scan)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dbt-coverage-bench-"))
    try:
        extra = fetch_debs(tmp) if args.debs else []
        paths = corpus(extra)
        # throughput sample: every k-th ELF of /usr/bin and the libraries, plus the interpreter
        elves = sorted(p for p in glob.glob("/usr/bin/*") + glob.glob(
            "/usr/lib/x86_64-linux-gnu/*.so*") if os.path.isfile(p) and not os.path.islink(p))
        step = max(1, len(elves) // args.sample)
        sample = elves[::step][:args.sample] + [os.path.realpath(sys.executable)]
        tp = throughput(sample)
        if args.throughput_only:
            print(json.dumps({"throughput": tp}, indent=1))
            return
        # --jobs: files of moderate size (one huge file would bound the parallel run)
        moderate = [p for p in elves if os.path.getsize(p) < 4 << 20]
        sub = moderate[::max(1, len(moderate) // 150)][:150]
        sp = jobs_speedup(sub, tmp)
        db = args.db or str(tmp / "corpus.sqlite")
        store = Store(db)
        t = time.perf_counter()
        summary = run_static(paths, store)
        seconds = time.perf_counter() - t
        tables = report.tables(store)
        result = {"throughput": tp, "jobs": sp,
                  "corpus": {"paths": paths, "files": summary.files, "ok": summary.ok,
                             "skipped": summary.skipped, "error": summary.error,
                             "instructions": summary.instructions, "seconds": seconds,
                             "reasons": summary.reasons},
                  "tables": tables.as_json()}
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            print(json.dumps({k: result[k] for k in ("throughput", "jobs", "corpus")}, indent=1))
            print(report.render(tables, top=25))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
