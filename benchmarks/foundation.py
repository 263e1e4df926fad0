"""Foundation speed: hw against bare unicorn, interp against unicorn single-stepping.

    python3 benchmarks/foundation.py [--insns 50e6] [--interp-insns 2e5] [--arch x86_32|x86_64|both]

All figures of one table come from one run on one machine, so read the ratios,
not the absolute times. The guest is guests/c/crc32.c built with N chosen so a
run retires about --insns instructions.

  hw free   / bare unicorn (no hooks but port I/O, no count)       target >= 0.8
  hw exact  / bare unicorn with emu_start(count=N)                 target >= 0.8
  interp    / unicorn single-stepping (emu_start(count=1) per insn) target >= 0.5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from unicorn import UC_HOOK_INSN  # noqa: E402
from unicorn import x86_const as U  # noqa: E402

from dbt.engines import run_guest  # noqa: E402
from dbt.loader import load  # noqa: E402
from dbt.monitor.machine import Machine  # noqa: E402
from dbt.monitor.monitor import RunConfig  # noqa: E402
from dbt.toolchain import build_c  # noqa: E402

CRC = ROOT / "guests" / "c" / "crc32.c"
RAM = 64 << 20


def bare_machine(image):
    m = Machine(image.arch.bits, RAM)  # the same memory layer as the engines
    m.load(image.segments)

    def on_out(uc, port, size, value, _):
        if port == 0xF4:
            uc.emu_stop()
    m.uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, U.UC_X86_INS_OUT)
    m.uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, _: 0x20 if port == 0x3FD else 0, None, 1, 0,
                  U.UC_X86_INS_IN)
    return m


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bare_run(image, count: int | None):
    m = bare_machine(image)
    return timed(lambda: m.uc.emu_start(image.entry, 0, count=count or 0))[0]


def bare_step(image, steps: int):
    m = bare_machine(image)
    uc, pc_reg = m.uc, m.pc_reg

    def loop():
        pc = image.entry
        for _ in range(steps):
            uc.emu_start(pc, 0, count=1)
            pc = uc.reg_read(pc_reg)
    return timed(loop)[0]


def engine_run(image, engine: str, clock: str, max_insns: int | None = None):
    cfg = RunConfig(clock=clock, max_insns=max_insns or 10**12)
    r = run_guest(image, engine, cfg, ram_size=RAM)
    return r.stats["run_seconds"], r  # the engine's run loop: set-up and digest excluded


def bench(arch: str, insns: float, interp_insns: int, repeat: int) -> None:
    probe = load(str(build_c(CRC, arch, extra=["-DN=1024"])))
    n_small = run_guest(probe, "hw", RunConfig()).guest_instructions
    probe2 = load(str(build_c(CRC, arch, extra=["-DN=2048"])))
    per_byte = (run_guest(probe2, "hw", RunConfig()).guest_instructions - n_small) / 1024
    n = max(1024, int((insns - n_small) / per_byte) + 1024)
    image = load(str(build_c(CRC, arch, extra=[f"-DN={n}"])))

    def best(fn):
        return min(fn() for _ in range(repeat))

    _, r = engine_run(image, "hw", "exact")
    assert r.reason.value == "exit" and r.exit_code == 0, r.serial
    count = r.guest_instructions
    hw_exact = best(lambda: engine_run(image, "hw", "exact")[0])
    hw_free = best(lambda: engine_run(image, "hw", "free")[0])
    bare_free = best(lambda: bare_run(image, None))
    bare_count = best(lambda: bare_run(image, count + 10))
    interp = best(lambda: engine_run(image, "interp", "exact", interp_insns)[0])
    step = best(lambda: bare_step(image, interp_insns))

    def mips(secs, k=count):
        return k / secs / 1e6

    print(f"\n{arch}: crc32 over {n} bytes, {count:,} guest instructions "
          f"(interp measured on the first {interp_insns:,})")
    print(f"  {'run':<36}{'seconds':>10}{'MIPS':>10}{'ratio':>9}  target")
    rows = [
        ("bare unicorn, free", bare_free, mips(bare_free), None, ""),
        ("hw --clock free", hw_free, mips(hw_free), bare_free / hw_free, ">= 0.8"),
        ("bare unicorn, count=N", bare_count, mips(bare_count), None, ""),
        ("hw --clock exact", hw_exact, mips(hw_exact), bare_count / hw_exact, ">= 0.8"),
        ("bare unicorn, count=1 steps", step, mips(step, interp_insns), None, ""),
        ("interp", interp, mips(interp, interp_insns), step / interp, ">= 0.5"),
    ]
    for name, secs, m, ratio, target in rows:
        rs = f"{ratio:>9.2f}" if ratio is not None else " " * 9
        print(f"  {name:<36}{secs:>10.3f}{m:>10.2f}{rs}  {target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--insns", type=float, default=50e6)
    ap.add_argument("--interp-insns", type=float, default=2e5)
    ap.add_argument("--arch", choices=["x86_32", "x86_64", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for arch in (["x86_32", "x86_64"] if a.arch == "both" else [a.arch]):
        bench(arch, a.insns, int(a.interp_insns), a.repeat)


if __name__ == "__main__":
    main()
