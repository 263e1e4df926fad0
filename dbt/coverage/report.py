"""The research tables, exports and plots, computed from the coverage database alone.

Tables (each answers one question directly):

* ``overview``: files by status, binaries by format/bits/kind, instructions and bytes;
* ``instructions``: for each privileged or sensitive instruction (mnemonic, class and
  action as the ISA table gives them), the share of binaries that contain it and its
  share of all instructions, found by the linear sweep and by recursive descent;
* ``trap_and_emulate``: the binaries that would break a classical trap-and-emulate
  VMM: they contain sensitive but unprivileged instructions (Robin & Irvine 2000),
  ordered by how many of them recursive descent reaches (padding between functions,
  such as Go's ``int3`` fill, is found by the sweep only);
* ``unsupported``: instructions the binary translator marks ``unsupported``;
* ``failures``: files not scanned, grouped by reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from dbt.coverage.store import Store
from dbt.errors import UsageError

_SENSITIVE = ("privileged", "sensitive")


@dataclass
class Tables:
    overview: dict
    instructions: list[dict]
    trap_and_emulate: list[dict]
    unsupported: list[dict]
    failures: list[dict]
    dynamic: list[dict]

    def as_json(self) -> dict:
        return dict(self.__dict__)


def tables(store: Store) -> Tables:
    db = store.db
    status = dict(db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())
    ok = db.execute("SELECT COUNT(*), COALESCE(SUM(instructions), 0), "
                    "COALESCE(SUM(exec_bytes), 0), COALESCE(SUM(undecodable_bytes), 0), "
                    "COALESCE(SUM(reached_instructions), 0) FROM binaries WHERE status = 'ok'"
                    ).fetchone()
    n_ok, n_insns = ok[0], ok[1]
    kinds = [{"format": f, "bits": b, "kind": k, "binaries": n} for f, b, k, n in db.execute(
        "SELECT format, bits, kind, COUNT(*) FROM binaries WHERE status = 'ok' "
        "GROUP BY format, bits, kind ORDER BY COUNT(*) DESC")]
    overview = {"files": sum(status.values()), "by_status": status, "binaries": n_ok,
                "instructions": n_insns, "exec_bytes": ok[2], "undecodable_bytes": ok[3],
                "reached_instructions": ok[4], "kinds": kinds}
    insns = []
    for mnemonic, klass, action, nbin, nlin, nreach, nbin_reached in db.execute(
            "SELECT c.mnemonic, c.class, c.action, COUNT(DISTINCT c.sha256), SUM(c.linear), "
            "SUM(c.reached), COUNT(DISTINCT CASE WHEN c.reached > 0 THEN c.sha256 END) "
            "FROM counts c JOIN binaries b ON b.sha256 = c.sha256 AND b.status = 'ok' "
            "WHERE c.class IN (?, ?) AND c.linear > 0 GROUP BY c.mnemonic, c.class, c.action "
            "ORDER BY COUNT(DISTINCT c.sha256) DESC, c.mnemonic", _SENSITIVE):
        insns.append({"mnemonic": mnemonic, "class": klass, "action": action,
                      "binaries": nbin, "binary_share": nbin / n_ok if n_ok else 0.0,
                      "binaries_reached": nbin_reached, "instructions": nlin,
                      "instruction_share": nlin / n_insns if n_insns else 0.0,
                      "reached": nreach})
    breaking = []
    for sha, n, mnemonics, nreach in db.execute(
            "SELECT c.sha256, SUM(c.linear), GROUP_CONCAT(DISTINCT c.mnemonic), SUM(c.reached) "
            "FROM counts c JOIN binaries b ON b.sha256 = c.sha256 AND b.status = 'ok' "
            "WHERE c.class = 'sensitive' AND c.linear > 0 GROUP BY c.sha256 "
            "ORDER BY SUM(c.reached) DESC, SUM(c.linear) DESC"):
        paths = [p for (p,) in db.execute("SELECT path FROM files WHERE sha256 = ? ORDER BY path",
                                           (sha,))]
        robin_irvine = [m for (m,) in db.execute(
            "SELECT DISTINCT mnemonic FROM sites WHERE sha256 = ? AND robin_irvine = 1 "
            "ORDER BY mnemonic", (sha,))]
        breaking.append({"path": paths[0] if paths else None, "paths": len(paths), "sha256": sha,
                         "sensitive_instructions": n, "reached": nreach,
                         "mnemonics": sorted(mnemonics.split(",")),
                         "robin_irvine": robin_irvine})
    unsupported = [{"mnemonic": m, "class": k, "binaries": nb, "instructions": n, "reached": r}
                   for m, k, nb, n, r in db.execute(
                       "SELECT c.mnemonic, c.class, COUNT(DISTINCT c.sha256), SUM(c.linear), "
                       "SUM(c.reached) FROM counts c JOIN binaries b ON b.sha256 = c.sha256 "
                       "AND b.status = 'ok' WHERE c.action = 'unsupported' AND c.linear > 0 "
                       "GROUP BY c.mnemonic, c.class ORDER BY COUNT(DISTINCT c.sha256) DESC")]
    failures = [{"status": s, "reason": r, "files": n} for s, r, n in db.execute(
        "SELECT status, reason, COUNT(*) FROM files WHERE status != 'ok' "
        "GROUP BY status, reason ORDER BY COUNT(*) DESC")]
    # executed against present: a run of a binary the static scan also recorded
    dynamic = [{"run": i, "guest": g, "engine": e, "reason": r, "guest_instructions": n,
                "addresses": a, "static_instructions": s, "static_reached": sr}
               for i, g, e, r, n, a, s, sr in db.execute(
        "SELECT r.id, r.guest, r.engine, r.reason, r.guest_instructions, "
        "(SELECT COUNT(*) FROM run_counts WHERE run_id = r.id), b.instructions, "
        "b.reached_instructions FROM runs r LEFT JOIN binaries b ON b.sha256 = r.sha256 "
        "AND b.status = 'ok' ORDER BY r.id")]
    return Tables(overview, insns, breaking, unsupported, failures, dynamic)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x >= 0.0001 or x == 0 else f"{100 * x:.4f}%"


def render(t: Tables, top: int = 40) -> str:
    """The tables as text."""
    o = t.overview
    status = ", ".join(f"{k} {v}" for k, v in sorted(o["by_status"].items()))
    lines = [f"files: {o['files']} ({status})",
             f"binaries scanned: {o['binaries']}; instructions {o['instructions']:,} "
             f"(reached by descent {o['reached_instructions']:,}); executable bytes "
             f"{o['exec_bytes']:,}, undecodable {o['undecodable_bytes']:,}"]
    for k in o["kinds"]:
        lines.append(f"  {k['format']:<4} {k['bits'] or '':>2}-bit {k['kind'] or '':<12} "
                     f"{k['binaries']}")
    lines += ["", f"privileged and sensitive instructions (of {o['binaries']} binaries, "
                  f"{o['instructions']:,} instructions):",
              f"  {'mnemonic':<14} {'class':<11} {'action':<12} {'binaries':>9} {'share':>8} "
              f"{'reached':>8} {'insns':>10} {'share':>10}"]
    for r in t.instructions[:top]:
        lines.append(f"  {r['mnemonic']:<14} {r['class']:<11} {r['action']:<12} "
                     f"{r['binaries']:>9} {_pct(r['binary_share']):>8} {r['binaries_reached']:>8} "
                     f"{r['instructions']:>10} {_pct(r['instruction_share']):>10}")
    if len(t.instructions) > top:
        lines.append(f"  ... {len(t.instructions) - top} more")
    lines += ["", f"binaries that would break trap-and-emulate (sensitive unprivileged "
                  f"instructions): {len(t.trap_and_emulate)} of {o['binaries']}"]
    for r in t.trap_and_emulate[:top]:
        ri = f"; Robin & Irvine: {', '.join(r['robin_irvine'])}" if r["robin_irvine"] else ""
        lines.append(f"  {r['sensitive_instructions']:>7} ({r['reached'] or 0} reached)  "
                     f"{r['path']}  [{', '.join(r['mnemonics'])}{ri}]")
    lines += ["", f"instructions the translator marks unsupported: {len(t.unsupported)}"]
    for r in t.unsupported[:top]:
        lines.append(f"  {r['mnemonic']:<14} {r['class']:<11} in {r['binaries']} binaries, "
                     f"{r['instructions']} instructions ({r['reached'] or 0} reached)")
    if t.failures:
        lines += ["", "files not scanned:"]
        for r in t.failures[:top]:
            lines.append(f"  {r['files']:>6}  {r['status']:<8} {r['reason']}")
    if t.dynamic:
        lines += ["", "guest runs:"]
        for r in t.dynamic:
            present = (f" of {r['static_instructions']} present ({r['static_reached']} reached "
                       f"by descent)" if r["static_instructions"] is not None else "")
            lines.append(f"  run {r['run']}: {r['guest']} under {r['engine']}: {r['reason']}, "
                         f"{r['guest_instructions']} instructions at {r['addresses']} "
                         f"addresses{present}")
    return "\n".join(lines)


# --- exports ----------------------------------------------------------------------------------
_FILE_COLUMNS = ("path", "sha256", "status", "reason", "format", "bits", "kind", "size",
                 "exec_bytes", "instructions", "undecodable_bytes", "reached_instructions",
                 "privileged", "sensitive", "control", "innocuous", "unsupported")


def file_rows(store: Store) -> list[tuple]:
    """One row per file: identity, status and the per-class counts."""
    return store.db.execute(
        "SELECT f.path, f.sha256, f.status, f.reason, b.format, b.bits, b.kind, f.size, "
        "b.exec_bytes, b.instructions, b.undecodable_bytes, b.reached_instructions, "
        + ", ".join(f"(SELECT COALESCE(SUM(linear), 0) FROM counts c WHERE c.sha256 = f.sha256 "
                    f"AND c.{col} = '{val}')"
                    for col, val in (("class", "privileged"), ("class", "sensitive"),
                                     ("class", "control"), ("class", "innocuous"),
                                     ("action", "unsupported")))
        + " FROM files f LEFT JOIN binaries b ON b.sha256 = f.sha256 ORDER BY f.path").fetchall()


def write_csv(store: Store, path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(_FILE_COLUMNS)
        w.writerows(file_rows(store))


def write_parquet(store: Store, path: str) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("--parquet needs pyarrow: pip install pyarrow") from None
    rows = file_rows(store)
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(_FILE_COLUMNS)})
    pq.write_table(table, path)


def plot(t: Tables, path: str, top: int = 30) -> None:
    """A bar chart: the share of binaries containing each privileged/sensitive instruction."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'dbt[plot]'") from None
    rows = t.instructions[:top][::-1]
    n = t.overview["binaries"] or 1
    fig, ax = plt.subplots(figsize=(10, max(3, 0.3 * len(rows) + 1.5)))
    colors = {"privileged": "#4c72b0", "sensitive": "#dd8452"}
    y = range(len(rows))
    ax.barh(y, [100 * r["binary_share"] for r in rows], color=[colors[r["class"]] for r in rows],
            alpha=0.45, label="linear sweep")
    ax.barh(y, [100 * r["binaries_reached"] / n for r in rows],
            color=[colors[r["class"]] for r in rows], label="reached by recursive descent")
    ax.set_yticks(list(y), [f"{r['mnemonic']} ({r['action']})" for r in rows])
    ax.set_xlabel(f"binaries containing it (% of {t.overview['binaries']})")
    ax.set_title("Privileged (blue) and sensitive unprivileged (orange) instructions")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
