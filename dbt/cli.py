"""The ``dbt`` command line: run, scan (and, as engines grow, translate, bench, coverage).

Exit status of ``dbt run``: the guest's exit code when it ends through the
debug-exit port; 0 when it halts; 124 when the instruction budget runs out;
125 when it faults. ``dbt`` itself exits 2 on bad input (a one-line error on
stderr) and 70 on an internal error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from dbt.errors import DbtError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70
STATUS = {"halt": 0, "budget": 124, "fault": 125, "triple-fault": 125}

#: modules that add a subcommand of their own: each has ``add_parser(subparsers)``,
#: which calls ``set_defaults(handler=...)`` on the parser it adds
SUBCOMMANDS: tuple[str, ...] = ("dbt.doctor", "dbt.bench.cli", "dbt.coverage.cli")


def _count(text: str) -> int:
    try:
        value = float(text) if any(c in text for c in "eE.") and not text.startswith("0x") \
            else int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of instructions: {text!r}") from None
    if value != int(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number: {text!r}")
    return int(value)


def at_least_one(what: str, float_ok: bool = False):
    """An argparse type for a whole number >= 1; ``what`` names it in the error;
    ``float_ok``: also written like 2e8 or 5.5e7 (it must still be whole)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            try:
                x = float(text) if float_ok else None
            except ValueError:
                x = None
            if x is None or not x.is_integer():
                raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
            n = int(x)
        if n < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
        return n
    return parse


def _ram(text: str) -> int:
    try:
        mib = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in MiB: {text!r}") from None
    if not 1 <= mib <= 3072:
        raise argparse.ArgumentTypeError(f"guest RAM must be 1..3072 MiB, not {mib}")
    return mib << 20


def build_parser() -> argparse.ArgumentParser:
    from dbt.engines import engine_names

    p = argparse.ArgumentParser(prog="dbt", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def guest_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", metavar="FILE", help="guest: ELF, PE, raw image (.bin), assembly (.s/.asm) or freestanding C (.c, built with gcc)")
        sp.add_argument("--arch", choices=["x86_32", "x86_64"],
                        help="architecture of a raw image or assembly (ELF and PE say their own)")
        sp.add_argument("--ram", type=_ram, default=64 << 20, metavar="MIB",
                        help="guest RAM in MiB (default 64)")
        sp.add_argument("--json", action="store_true", help="print one JSON object")

    r = sub.add_parser("run", help="run a guest under one engine",
                       description="Run a guest; its serial output goes to stdout byte for byte.")
    guest_args(r)
    r.set_defaults(handler=cmd_run)
    r.add_argument("--engine", choices=engine_names(), default="interp")
    r.add_argument("--max-insns", type=_count, default=None, metavar="N",
                   help="instruction budget (default 2e9): the run ends with reason 'budget'")
    r.add_argument("--clock", choices=["exact", "free"], default="exact",
                   help="exact: count every guest instruction (deterministic); free: host time")
    r.add_argument("--memory", choices=["fast", "default"], default="fast",
                   help="fast: the monitor's TLB over guest RAM; default: unicorn's own mapping")
    r.add_argument("--mmu", choices=["nested", "shadow"], default=None,
                   help="once the guest pages: nested (unicorn walks the guest's page tables, "
                        "like EPT) or shadow (the monitor walks them on each TLB miss); "
                        "default: nested for interp and hw, shadow for bt")
    r.add_argument("--validate", action="store_true",
                   help="bt: re-decode every fragment and check it holds no unsanctioned "
                        "sensitive instruction")
    r.add_argument("--no-inline", dest="inline", action="store_false",
                   help="bt: translate cli/sti/pushf/popf as callouts into the monitor (as "
                        "trap-and-emulate handles them) instead of inline sequences")

    t = sub.add_parser("translate", help="show each guest block beside its bt translation",
                       description="Translate the blocks reachable from the entry point as the "
                                   "bt engine would, and print guest and host code side by side.")
    guest_args(t)
    t.set_defaults(handler=cmd_translate)
    t.add_argument("--clock", choices=["exact", "free"], default="exact")
    t.add_argument("--max-blocks", type=_count, default=10_000, metavar="N")
    t.add_argument("--no-inline", dest="inline", action="store_false",
                   help="cli/sti/pushf/popf as callouts instead of inline sequences")

    s = sub.add_parser("scan", help="decode and classify the guest's code, block by block",
                       description="Follow the guest's code from its entry point and print each "
                                   "block's instructions with their ISA-table class and action.")
    guest_args(s)
    s.set_defaults(handler=cmd_scan)
    s.add_argument("--max-blocks", type=_count, default=10_000, metavar="N")

    for name in SUBCOMMANDS:  # each adds its parser and sets its handler
        importlib.import_module(name).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = False
    try:
        return args.handler(args)
    except DbtError as e:
        print(f"dbt: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("dbt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in dbt: one line, not a traceback
        if debug:
            raise
        print(f"dbt: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def cmd_run(args) -> int:
    from dbt.engines import run_guest
    from dbt.loader import load
    from dbt.monitor.monitor import DEFAULT_MAX_INSNS, RunConfig

    image = load(args.file, args.arch, args.ram)
    config = RunConfig(max_insns=args.max_insns or DEFAULT_MAX_INSNS, clock=args.clock,
                       memory=args.memory, mmu=args.mmu, validate=args.validate,
                       inline=args.inline)
    result = run_guest(image, args.engine, config, ram_size=args.ram)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        sys.stdout.buffer.write(result.serial)
        sys.stdout.flush()
        if result.fault:
            print(f"dbt: guest fault: {result.fault.describe()}", file=sys.stderr)
        elif result.reason.value == "fault":  # engine qemu: a triple fault, vector unknown
            print(f"dbt: guest fault at {result.pc:#x} (a triple fault; the engine does not "
                  f"say which exception)", file=sys.stderr)
        elif result.reason.value == "budget":
            print(f"dbt: instruction budget of {config.max_insns} ran out at {result.pc:#x}",
                  file=sys.stderr)
    if result.reason.value == "exit":
        return result.exit_code
    return STATUS[result.reason.value]


def cmd_scan(args) -> int:
    from dbt.loader import load
    from dbt.scanner.explore import explore

    image = load(args.file, args.arch, args.ram)
    blocks = explore(image, max_blocks=args.max_blocks)
    if args.json:
        print(json.dumps({"file": args.file, "arch": image.arch.value, "entry": image.entry,
                          "blocks": [b.as_json() for b in blocks]}, indent=1))
        return 0
    for b in blocks:
        print(f"block {b.pc:#x} ({len(b.insns)} instructions, ends: {b.stop.value}"
              + (f", faults {b.fault}" if b.fault else "") + ")")
        for i in b.insns:
            r = i.rule
            print(f"  {i.address:#010x}  {i.raw.hex():<24} {i.mnemonic:<10} {i.op_str:<34}"
                  f" {r.klass.value:<10} {r.action.value}")
    return 0


def cmd_translate(args) -> int:
    from dbt.loader import load
    from dbt.translator.show import translate_image

    image = load(args.file, args.arch, args.ram)
    rows = translate_image(image, exact=args.clock == "exact", max_blocks=args.max_blocks,
                           ram_size=args.ram, inline=args.inline)
    if args.json:
        print(json.dumps({"file": args.file, "arch": image.arch.value, "blocks": rows}, indent=1))
        return 0
    for b in rows:
        print(f"block {b['address']:#x}: {len(b['guest'])} guest instructions, "
              f"{b['guest_bytes']} -> {b['host_bytes']} bytes")
        for g in b["guest"]:
            print(f"  guest {g['address']:#010x}  {g['mnemonic']:<10} {g['op_str']:<32} {g['action']}")
        for h in b["host"]:
            print(f"    host {h['address']:#010x}  {h['bytes']:<24} {h['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
