"""``dbt bench``: the nano- and macrobenchmarks under every engine, with verdicts, JSON, CSV and a plot.

Exit status: 0 when every selected benchmark ran and checked its result; 1 when
a run failed its self-check or ended unexpectedly (the rows that finished are
still written); 2 on bad input (unknown names, an unwritable output path).
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dbt.bench import measure, report, runner
from dbt.bench.suite import ARCHES, BENCHMARKS
from dbt.errors import DbtError, UsageError

EXIT_FAILED = 1
#: column order: the paper's techniques first, any other registered engine after them
ENGINE_ORDER = ("interp", "bt", "hw")


def add_parser(sub) -> None:
    from dbt.cli import at_least_one

    p = sub.add_parser(
        "bench", help="benchmark interp, bt and hw on nano- and macrobenchmarks",
        description="Run the benchmark suite (Adams & Agesen, ASPLOS 2006, on dbt's guests): "
                    "cost per operation of sensitive operations and speed of compute-bound "
                    "programs under each engine, with ratios measured in the same run.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmarks to run (default: all); 'nano' or 'macro' selects a kind")
    p.add_argument("--engines", default=None, metavar="E,E…",
                   help="engines to compare (default: every engine that can run here)")
    p.add_argument("--arch", default=",".join(ARCHES), metavar="A,A",
                   help="architectures for the C guests (default: x86_32,x86_64)")
    p.add_argument("--clock", default="free,exact", metavar="C,C",
                   help="clocks to measure in (default: free,exact; never compared across)")
    p.add_argument("--repeat", type=at_least_one("whole number"), default=None, metavar="N",
                   help="timed runs per measurement, after one warm-up (default 3)")
    p.add_argument("--insns", type=at_least_one("whole number", float_ok=True), default=None,
                   metavar="N", help="instructions a macrobenchmark retires, every engine "
                   "(default 2e8; interp runs a prefix)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, one run each: checks structure and results in under a "
                        "minute, timings meaningless")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="write one JSON object with the results to FILE (or '-': stdout)")
    p.add_argument("--csv", metavar="FILE", help="write one CSV row per measurement")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart per benchmark (needs matplotlib)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.set_defaults(handler=cmd_bench)


def _choose(text: str, allowed: list[str] | tuple[str, ...], what: str) -> list[str]:
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        raise UsageError(f"unknown {what} {', '.join(map(repr, bad)) or repr(text)} "
                         f"(choose from {', '.join(allowed)})")
    return list(dict.fromkeys(chosen))


def select(names: list[str]):
    if not names:
        return list(BENCHMARKS)
    known = {b.name for b in BENCHMARKS}
    bad = [n for n in names if n not in known and n not in ("nano", "macro")]
    if bad:
        raise UsageError(f"unknown benchmark {', '.join(map(repr, bad))} "
                         f"(see dbt bench --list)")
    return [b for b in BENCHMARKS if b.name in names or b.kind.value in names]


def choose_engines(text: str | None) -> list[str]:
    """The engines named in ``--engines`` (each must run here), or every one that can."""
    from dbt.engines import engine_names, unavailable

    known = sorted(engine_names(), key=lambda e: (ENGINE_ORDER.index(e) if e in ENGINE_ORDER
                                                  else len(ENGINE_ORDER), e))
    if not text:
        return [e for e in known if not unavailable(e)]
    engines = _choose(text, known, "engine")
    for e in engines:
        if why := unavailable(e):
            raise UsageError(f"engine {e!r} cannot run here: {why}")
    return engines


def cmd_bench(args) -> int:
    if args.list:
        for b in BENCHMARKS:
            why = b.missing()
            print(f"{b.name:<18}{b.kind.value:<7}{','.join(b.arches):<15}{b.what}"
                  + (f"  [not available: {why}]" if why else ""))
        return 0
    benches = select(args.names)
    engines = choose_engines(args.engines)
    arches = _choose(args.arch, ARCHES, "architecture")
    clocks = tuple(_choose(args.clock, ("free", "exact"), "clock"))
    for path, what in ((args.json, "JSON"), (args.csv, "CSV"), (args.plot, "plot")):
        report.check_writable(path, what)
    plan = measure.Plan.quick(clocks) if args.quick else measure.Plan(clocks=clocks)
    if args.repeat:
        plan = measure.Plan(**{**plan.__dict__, "repeat": args.repeat})
    if args.insns:
        n = int(args.insns)
        plan = measure.Plan(**{**plan.__dict__, "macro_insns": n, "outside_insns": n})

    to_stdout = args.json == "-"
    console = Console(stderr=to_stdout, width=None if sys.stdout.isatty() else 200)
    todo, rows = runner.tasks(benches, engines, arches, plan)
    error = None
    progress = Progress(TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    unavailable = len(rows)
    with progress:
        bar = progress.add_task("bench", total=len(todo))

        def step(t: runner.Task) -> None:
            progress.update(bar, description=t.label, completed=len(rows) - unavailable)
        try:
            runner.run_all(todo, plan, rows, step)
        except (measure.BenchFailure, DbtError) as e:  # the rows that finished are kept
            error = str(e)
        progress.update(bar, completed=len(rows) - unavailable)
    runner.add_ratios(rows)
    if not to_stdout:
        report.print_tables(rows, engines, console)
    status = _write(rows, engines, args, plan, error)
    if error:
        print(f"dbt: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return status


def _command(args) -> str:
    """The command line that asked for these results, for the record."""
    words = ["dbt", "bench", *args.names]
    for flag in ("engines", "arch", "clock", "repeat", "json", "csv", "plot"):
        value = getattr(args, flag)
        if value is not None:
            words += [f"--{flag}", str(value)]
    return " ".join(words + (["--quick"] if args.quick else []))


def _write(rows, engines, args, plan, error) -> int:
    """Write every output asked for; one failing does not stop the others."""
    status = 0
    outputs = []
    if args.json:
        doc = report.document(rows, _command(args), plan, error)
        outputs.append(("JSON", args.json, lambda p: report.write_json(doc, p)))
    if args.csv:
        outputs.append(("CSV", args.csv, lambda p: report.write_csv(rows, p)))
    if args.plot:
        outputs.append(("plot", args.plot, lambda p: report.write_plot(rows, engines, p)))
    for what, path, write in outputs:
        try:
            write(path)
        except (OSError, UsageError) as e:
            print(f"dbt: error: cannot write the {what} to {path}: "
                  f"{getattr(e, 'strerror', None) or e}", file=sys.stderr)
            status = EXIT_FAILED
    return status

