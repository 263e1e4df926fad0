"""What ``dbt bench`` shows and writes: the terminal tables with verdicts, JSON, CSV and the plot."""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dbt.bench.measure import TRAP
from dbt.bench.runner import Row
from dbt.bench.suite import BY_NAME
from dbt.errors import UsageError

#: the targets the suite reports (never asserts): every macrobenchmark's (ratio, at least),
#: and (nanobenchmark, ratio, at least)
MACRO_TARGETS = (("bt/hw", 0.9), ("bt/hw steady", 0.9), ("bt/interp", 200.0))
NANO_TARGETS = (("cli_sti", "bt/hw", 10.0), ("pushf_popf", "bt/hw", 10.0),
                ("cli_sti", f"bt/{TRAP}", 10.0), ("pushf_popf", f"bt/{TRAP}", 10.0))


# --- verdicts --------------------------------------------------------------------------------
def why(row: Row) -> str:
    """One line on what an engine did per operation, from its statistics."""
    s = row.stats
    if row.engine == "bt":
        if s.get("invalidations_per_op", 0) >= 0.5:
            return "bt: retranslation per operation"
        if s.get("callouts_per_op", 0) >= 0.5:
            return "bt: callout per operation"
        return "bt: inline, no exit"
    if row.engine == "hw":
        return "hw: exit per operation" if s.get("exits_per_op", 0) >= 0.5 else \
            "hw: native, no exit"
    if row.engine == "interp":
        return "interp: every instruction dispatched"
    if row.engine == TRAP:
        return f"{TRAP}: a callout (trap into the monitor) per operation"
    return f"{row.engine}: outside dbt, run time less its boot"


def verdicts(rows: list[Row]) -> list[dict]:
    """For each nanobenchmark row group: the winner, the paper's winner and why.

    The contest is between dbt's own techniques, as in the paper; an engine that runs
    outside dbt (qemu) is a peer column, not a contender.
    """
    from dbt.engines import engine_names

    own = set(engine_names(outside=False))
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        if r.status == "ok" and r.kind == "nano" and r.engine in own and r.time:
            groups.setdefault((r.benchmark, r.arch, r.clock, r.mmu), []).append(r)
    out = []
    for (name, arch, clock, mmu), group in groups.items():
        ranked = sorted(group, key=lambda r: r.time)
        win = ranked[0]
        reason = why(win) + (f" vs {why(ranked[1])}" if len(ranked) > 1 else "")
        out.append({"benchmark": name, "arch": arch, "clock": clock, "mmu": mmu,
                    "winner": win.engine, "paper_winner": BY_NAME[name].paper_winner,
                    "agrees": None if BY_NAME[name].paper_winner is None
                    else BY_NAME[name].paper_winner == win.engine,
                    "reason": reason})
    return out


def targets(rows: list[Row]) -> list[dict]:
    """The issue's targets, as measured in this run (reported, never asserted). The macro
    targets are for compute-bound programs; the small kernels (an OS workload taking
    timer ticks, page-table churn) get the same ratios reported with ``met`` None."""
    out = []
    for clock in sorted({r.clock for r in rows if r.status == "ok"}):
        macro = [r for r in rows if r.kind == "macro" and r.engine == "bt" and r.clock == clock]
        for compute, label in ((True, "macro"), (False, "system kernels")):
            for ratio, goal in MACRO_TARGETS:
                values = {f"{r.benchmark}[{r.arch}]": r.ratios[ratio] for r in macro
                          if ratio in r.ratios and BY_NAME[r.benchmark].compute_bound == compute}
                if not values:
                    continue
                worst = min(values, key=values.get)
                out.append({"target": f"{label} {ratio} >= {goal:g}" if compute
                            else f"{label} {ratio} (no target)", "clock": clock,
                            "geomean": statistics.geometric_mean(values.values()),
                            "min": values[worst], "worst": worst,
                            "met": values[worst] >= goal if compute else None})
        for name, ratio, goal in NANO_TARGETS:
            for r in rows:
                if (r.benchmark, r.engine, r.clock) == (name, "bt", clock) and ratio in r.ratios:
                    out.append({"target": f"{name} {ratio} >= {goal:g}", "clock": clock,
                                "value": r.ratios[ratio], "met": r.ratios[ratio] >= goal})
    return out


# --- the terminal ------------------------------------------------------------------------------
def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _spread(d: dict) -> str:
    """Median, and half the min-max range as a share of it."""
    m = d["median"]
    half = (d["max"] - d["min"]) / 2
    return _num(m) + (f" ±{100 * half / abs(m):.0f}%" if m and half else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _with_trap(engines: list[str], rows: list[Row]) -> list[str]:
    """The engine columns, with bt-trap last when the run measured it."""
    return [*engines, TRAP] if any(r.engine == TRAP for r in rows) else engines


def _label(key: tuple) -> str:
    """A table row's benchmark, with its MMU mode when it has page tables."""
    return key[0] + (f" ({key[3]})" if key[3] else "")


def print_tables(rows: list[Row], engines: list[str], console: Console) -> None:
    ok = [r for r in rows if r.status == "ok"]
    cell = {(r.benchmark, r.arch, r.clock, r.mmu, r.engine): r for r in ok}
    keys = list(dict.fromkeys((r.benchmark, r.arch, r.clock, r.mmu) for r in ok))
    verdict = {(v["benchmark"], v["arch"], v["clock"], v["mmu"]): v for v in verdicts(rows)}
    nano = [k for k in keys if BY_NAME[k[0]].kind.value == "nano"]
    macro = [k for k in keys if BY_NAME[k[0]].kind.value == "macro"]
    if nano:
        t = Table(title="Nanobenchmarks: ns per operation (median ±half the min-max range), "
                        "empty loop subtracted; ratios are speed-ups", title_justify="left")
        columns = _with_trap(engines, ok)  # (the macro table has no bt-trap)
        for col in ("benchmark", "arch", "clock", *columns, "bt/hw", "bt/interp", "winner",
                    "paper", "why"):
            t.add_column(col, justify="right" if col in columns or "/" in col else "left")
        for k in nano:
            rs = [cell.get((*k, e)) for e in columns]
            bt = cell.get((*k, "bt"))
            v = verdict.get(k, {})
            t.add_row(_label(k), k[1], k[2],
                      *[_spread(r.per_op_ns) if r else "-" for r in rs],
                      _num(bt and bt.ratios.get("bt/hw")), _num(bt and bt.ratios.get("bt/interp")),
                      v.get("winner", "-"), v.get("paper_winner") or "(not in paper)",
                      v.get("reason", ""))
        console.print(t)
    if macro:
        t = Table(title="Macrobenchmarks: guest MIPS (median of the runs); ratios are speed-ups; "
                        "steady: bt/hw on the run beyond a build 4x shorter (one-off costs "
                        "such as translation cancelled out)",
                  title_justify="left")
        for col in ("benchmark", "arch", "clock", "insns", *engines, "bt/hw", "steady",
                    "bt/interp", "blocks", "xlate", "us/trace", "chained", "ind. misses",
                    "callouts/kinsn"):
            t.add_column(col, justify="left" if col in ("benchmark", "arch", "clock") else "right")
        for k in macro:
            rs = [cell.get((*k, e)) for e in engines]
            bt = cell.get((*k, "bt"))
            s = bt.stats if bt else {}
            full = next((r for r in rs if r and r.engine != "interp"), None)
            t.add_row(_label(k), k[1], k[2], f"{full.instructions:,}" if full else "-",
                      *[_num(r.mips) if r else "-" for r in rs],
                      _num(bt and bt.ratios.get("bt/hw")),
                      _num(bt and bt.ratios.get("bt/hw steady")),
                      _num(bt and bt.ratios.get("bt/interp")),
                      str(s.get("blocks", "-")), _pct(s.get("translate_share")),
                      _num(s.get("translate_median_us")), str(s.get("chained_exits", "-")),
                      str(s.get("indirect_misses", "-")),
                      _num(s.get("callouts_per_kinsn")))
        console.print(t)
    for r in rows:
        if r.status == "unavailable":
            console.print(f"{r.benchmark}[{r.arch}]: {r.note}", markup=False)
    for tg in targets(rows):
        value = f"{tg['value']:.2f}" if "value" in tg else \
            f"geomean {tg['geomean']:.2f}, min {tg['min']:.2f} ({tg['worst']})"
        if tg["met"] is None:
            console.print(f"{tg['target']} ({tg['clock']} clock): {value}", markup=False)
            continue
        console.print(f"target {tg['target']} ({tg['clock']} clock): {value} -> "
                      f"{'met' if tg['met'] else 'not met'}", markup=False)


# --- files ------------------------------------------------------------------------------------
def check_writable(path: str | None, what: str) -> None:
    """Refuse an output path before hours of running, not after."""
    if path is None or path == "-":
        return
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"{path}: is a directory, cannot write the {what} there")
    if not parent.is_dir():
        raise UsageError(f"{path}: directory {parent} does not exist ({what})")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{path}: not writable ({what})")


def machine() -> dict:
    import capstone
    import unicorn

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform(),
            "python": platform.python_version(), "unicorn": unicorn.__version__,
            "capstone": capstone.__version__}


def document(rows: list[Row], command: str, plan, error: str | None = None) -> dict:
    return {"command": command, "machine": machine(), "plan": plan.__dict__,
            "results": [r.as_json() for r in rows], "verdicts": verdicts(rows),
            "targets": targets(rows), "error": error}


def write_json(doc: dict, path: str) -> None:
    text = json.dumps(doc, indent=1, default=str)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")


def write_csv(rows: list[Row], path: str) -> None:
    ratio_keys = sorted({k for r in rows for k in r.ratios})
    stat_keys = sorted({k for r in rows for k in r.stats})
    fields = ["benchmark", "kind", "arch", "engine", "clock", "mmu", "status", "note",
              "per_op_ns", "per_op_ns_min", "per_op_ns_max", "seconds", "seconds_min",
              "seconds_max", "mips", "instructions", "size", "steady_mips"] + \
        [f"ratio {k}" for k in ratio_keys] + [f"stat {k}" for k in stat_keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            d = {k: getattr(r, k) for k in fields[:8]}
            d.update(mips=r.mips, instructions=r.instructions, size=r.size,
                     steady_mips=r.steady and r.steady["mips"])
            for name in ("per_op_ns", "seconds"):
                spread = getattr(r, name)
                if spread:
                    d.update({name: spread["median"], f"{name}_min": spread["min"],
                              f"{name}_max": spread["max"]})
            d.update({f"ratio {k}": v for k, v in r.ratios.items()})
            d.update({f"stat {k}": v for k, v in r.stats.items()})
            w.writerow(d)


def write_plot(rows: list[Row], engines: list[str], path: str) -> None:
    """One group per benchmark, one bar per engine, log scale; a panel per kind and clock."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'dbt[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.status == "ok"]
    panels = [(kind, clock) for kind in ("nano", "macro")
              for clock in dict.fromkeys(r.clock for r in ok) if any(
                  r.kind == kind and r.clock == clock for r in ok)]
    if not panels:
        raise UsageError(f"{path}: no finished rows to plot")
    engines = _with_trap(engines, ok)
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 4.2 * len(panels)), squeeze=False)
    width = 0.8 / max(len(engines), 1)
    for ax, (kind, clock) in zip(axes[:, 0], panels):
        mine = [r for r in ok if r.kind == kind and r.clock == clock]
        groups = list(dict.fromkeys(f"{r.benchmark}" + ("" if kind == "nano" else
                                                        f"\n{r.arch[4:]}") for r in mine))
        for i, engine in enumerate(engines):
            xs, ys = [], []
            for r in mine:
                if r.engine != engine:
                    continue
                value = r.time if kind == "nano" else r.mips
                if value and value > 0:  # a log scale has no room for <= 0 (inline, in noise)
                    label = r.benchmark + ("" if kind == "nano" else f"\n{r.arch[4:]}")
                    xs.append(groups.index(label) + (i - (len(engines) - 1) / 2) * width)
                    ys.append(value)
            if xs:  # (an engine keeps its colour in every panel, and has no empty entry)
                ax.bar(xs, ys, width, label=engine, color=f"C{i}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(groups)), groups, fontsize=8, rotation=30 if kind == "nano" else 0)
        ax.set_ylabel("ns per operation (lower is better)" if kind == "nano"
                      else "guest MIPS (higher is better)")
        ax.set_title(f"{'Nanobenchmarks' if kind == 'nano' else 'Macrobenchmarks'}, "
                     f"{clock} clock")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)
