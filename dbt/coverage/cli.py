"""``dbt coverage``: static and dynamic instruction coverage, recorded in a database.

    dbt coverage static PATH... [--db FILE] [--jobs N] [--json] [--csv FILE] [--plot FILE.png]
    dbt coverage run GUEST [--engine E] [--db FILE] [--drcov FILE] [--json] [--compare]
    dbt coverage report [--db FILE] [--json] [--csv FILE] [--plot FILE.png]
"""

from __future__ import annotations

import json
import sys

DEFAULT_DB = "dbt-coverage.sqlite"


def add_parser(sub) -> None:
    from dbt.cli import _count, _ram, at_least_one

    jobs = at_least_one("number of jobs")
    from dbt.engines import engine_names

    p = sub.add_parser("coverage", help="instruction coverage of binaries (static) and of "
                                        "guest runs (dynamic)",
                       description=__doc__.split("\n")[0])
    csub = p.add_subparsers(dest="coverage_command", required=True, metavar="MODE")

    def outputs(sp, db_default: str | None = DEFAULT_DB) -> None:
        sp.add_argument("--db", default=db_default, metavar="FILE",
                        help=f"SQLite database (default {DEFAULT_DB})")
        sp.add_argument("--json", action="store_true", help="print one JSON object")
        sp.add_argument("--csv", metavar="FILE", help="write one row per file as CSV")
        sp.add_argument("--parquet", metavar="FILE", help="the same as Parquet (needs pyarrow)")
        sp.add_argument("--plot", metavar="FILE.png", help="draw the instruction shares")

    s = csub.add_parser("static", help="decode and classify every instruction of binaries",
                        description="Sweep and descend the code of ELF and PE files (directories "
                                    "are recursed) and record per-binary counts.")
    s.add_argument("paths", nargs="+", metavar="PATH")
    outputs(s)
    s.add_argument("--jobs", type=jobs, default=None, metavar="N",
                   help="processes (default: all cores)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster instead (needs the dask extra)")
    s.add_argument("--no-descent", dest="descent", action="store_false",
                   help="linear sweep only (no recursive descent)")
    s.add_argument("--rescan", action="store_true", help="scan files already in the database")
    s.add_argument("--no-progress", dest="progress", action="store_false")
    s.set_defaults(handler=cmd_static)

    r = csub.add_parser("run", help="run a guest and count the instructions it executes",
                        description="Run a guest under one engine, count each executed guest "
                                    "instruction, and export the blocks as a drcov file.")
    r.add_argument("file", metavar="GUEST")
    r.add_argument("--engine", choices=engine_names(outside=False), default="bt")
    r.add_argument("--arch", choices=["x86_32", "x86_64"])
    r.add_argument("--ram", type=_ram, default=64 << 20, metavar="MIB")
    r.add_argument("--max-insns", type=_count, default=None, metavar="N")
    r.add_argument("--db", default=None, metavar="FILE", help="also record the run here")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--drcov", metavar="FILE", help="write the executed blocks as a drcov file")
    r.add_argument("--compare", action="store_true",
                   help="also decode the guest statically and compare executed with present")
    r.set_defaults(handler=cmd_run)

    t = csub.add_parser("report", help="print the tables again from the database",
                        description="Print the tables and draw the plots from a coverage "
                                    "database without rescanning.")
    outputs(t)
    t.add_argument("--top", type=jobs, default=40, metavar="N", help="rows per table")
    t.set_defaults(handler=cmd_report)


def _open(path: str):
    import sqlite3

    from dbt.coverage.store import Store
    from dbt.errors import UsageError

    try:
        return Store(path)
    except sqlite3.OperationalError as e:
        raise UsageError(f"{path}: cannot open the database ({e})") from None
    except sqlite3.DatabaseError as e:
        raise UsageError(f"{path}: not a coverage database ({e})") from None


def _exports(args, store) -> None:
    from dbt.coverage import report
    from dbt.errors import UsageError

    for path, write in ((args.csv, report.write_csv), (args.parquet, report.write_parquet),
                        (args.plot, lambda s, p: report.plot(report.tables(s), p))):
        if path:
            try:
                write(store, path)
            except OSError as e:
                raise UsageError(f"{path}: cannot write: {e.strerror or e}") from None


def cmd_static(args) -> int:
    from dbt.coverage import report
    from dbt.coverage.progress import Progress
    from dbt.coverage.runner import run_static

    store = _open(args.db)
    try:
        with Progress(enabled=args.progress and not args.json) as bar:
            summary = run_static(args.paths, store, args.jobs, args.descent, args.scheduler,
                                 bar.update, rescan=args.rescan)
        _exports(args, store)
        if args.json:
            print(json.dumps(static_json(store, summary), indent=1))
        else:
            print(report.render(report.tables(store)))
            print(f"\nthis run: {summary.files} files, {summary.scanned} scanned, "
                  f"{summary.cached} already in {args.db}; ok {summary.ok}, skipped "
                  f"{summary.skipped}, error {summary.error}; {summary.instructions:,} "
                  f"instructions in {summary.seconds:.1f} s", file=sys.stderr)
    finally:
        store.close()
    return 0


def static_json(store, summary) -> dict:
    """DESIGN §4: one record per input file, and totals."""
    files = []
    totals = {"files": 0, "ok": 0, "skipped": 0, "error": 0, "instructions": 0,
              "classes": {}, "actions": {}, "scanned": summary.scanned, "cached": summary.cached,
              "seconds": round(summary.seconds, 3)}
    for path in summary.paths:
        rec = store.record(path)
        if rec is None:
            continue
        files.append(rec)
        totals["files"] += 1
        totals[rec["status"]] += 1
        totals["instructions"] += rec["instructions"]
        for table in ("classes", "actions"):
            for k, n in rec[table].items():
                totals[table][k] = totals[table].get(k, 0) + n
    return {"files": files, "totals": totals}


def cmd_report(args) -> int:
    import os

    from dbt.coverage import report
    from dbt.errors import UsageError

    if not os.path.exists(args.db):
        raise UsageError(f"{args.db}: no such coverage database")
    store = _open(args.db)
    try:
        t = report.tables(store)
        _exports(args, store)
        if args.json:
            print(json.dumps(t.as_json(), indent=1))
        else:
            print(report.render(t, args.top))
    finally:
        store.close()
    return 0


def cmd_run(args) -> int:
    from dbt.coverage.dynamic import main_run

    return main_run(args)
