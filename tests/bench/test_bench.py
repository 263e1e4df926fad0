"""``dbt bench``: structure of its outputs, self-checks, and bad input (never timings).

The smoke test runs ``--quick`` on a few benchmarks in this process (the whole
quick suite is the slow test). Timings are noise at these sizes: the tests check
that every measurement, ratio, verdict and output file is there and consistent.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from dbt.bench import measure, suite
from dbt.bench.suite import BENCHMARKS, Benchmark, Kind
from dbt.cli import main
from guests import all_guests

SUBSET = ["cli_sti", "cpuid", "crc32", "pgfault"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    paths = {k: out / f"bench.{k}" for k in ("json", "csv", "png")}
    status = main(["bench", "--quick", *SUBSET, "--arch", "x86_32", "--engines", "interp,bt,hw",
                   "--json", str(paths["json"]),
                   "--csv", str(paths["csv"]), "--plot", str(paths["png"])])
    return status, paths


def test_quick_run_succeeds_and_writes_every_output(quick_run):
    status, paths = quick_run
    assert status == 0
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_follows_the_contract(quick_run):
    """DESIGN §4: one object with ``results`` of {benchmark, engine, clock, mmu,
    per_op_ns or seconds, mips, ratios, stats}."""
    doc = json.loads(quick_run[1]["json"].read_text())
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    engines = {"interp", "bt", "hw"}
    # cli_sti also runs as bt-trap: bt with its inline sequences turned into callouts
    assert {(r["benchmark"], r["engine"]) for r in ok} == {
        (b, e) for b in ("cli_sti", "cpuid", "crc32", "pgfault") for e in engines} | {
        ("cli_sti", "bt-trap")}
    # a paging benchmark runs under each MMU mode an engine has (bt: shadow only)
    assert {(r["engine"], r["mmu"]) for r in ok if r["benchmark"] == "pgfault"} == {
        ("interp", "nested"), ("interp", "shadow"), ("hw", "nested"), ("hw", "shadow"),
        ("bt", "shadow")}
    assert all(r["mmu"] is None for r in ok if r["benchmark"] != "pgfault")
    for r in ok:
        assert {"benchmark", "engine", "clock", "mmu", "mips", "ratios", "stats"} <= r.keys()
        assert ("per_op_ns" in r) == (r["kind"] == "nano") != ("seconds" in r)
        spread = r.get("per_op_ns") or r["seconds"]
        assert spread["min"] <= spread["median"] <= spread["max"]
        others = engines - {r["engine"]} | ({"bt-trap"} if r["benchmark"] == "cli_sti" else set())
        # a ratio of a cost lost in the noise (<= 0 after calibration) is left out
        steady = {f"{r['engine']}/{o} steady" for o in others & {"hw", "bt"}} \
            if r["engine"] in ("hw", "bt") and r["kind"] == "macro" else set()
        assert set(r["ratios"]) <= {f"{r['engine']}/{o}" for o in others} | steady | (
            {"shadow/nested"} if r["mmu"] == "shadow" else set())
        # hw and bt also time a shorter build of a C guest: the rest is their steady state
        assert ("steady" in r) == (r["kind"] == "macro" and r["engine"] in ("hw", "bt"))
        if "steady" in r:
            assert 0 < r["steady"]["instructions"] < r["instructions"]
        assert r["clock"] in ("free", "exact") and r["mips"] > 0
    bt = [r for r in ok if r["engine"] == "bt"]
    assert all({"blocks", "translate_share", "chained_exits", "indirect_misses",
                "callouts_per_kinsn"} <= r["stats"].keys() for r in bt)
    cpuid_bt = next(r for r in bt if r["benchmark"] == "cpuid")
    assert cpuid_bt["stats"]["callouts_per_op"] == 1.0  # one callout per cpuid, none else
    cpuid_hw = next(r for r in ok if (r["benchmark"], r["engine"]) == ("cpuid", "hw"))
    assert cpuid_hw["stats"]["exits_per_op"] == 1.0


def test_ratios_are_speedups_within_one_run(quick_run):
    doc = json.loads(quick_run[1]["json"].read_text())
    rows = {(r["benchmark"], r["clock"], r["mmu"], r["engine"]): r for r in doc["results"]
            if r["status"] == "ok"}
    for (name, clock, mmu, engine), r in rows.items():
        for key, value in r["ratios"].items():
            if key.endswith(" steady"):  # speed beyond the shorter build, not whole runs
                other = rows[(name, clock, mmu, key.split("/")[1].split()[0])]
                assert value == pytest.approx(r["steady"]["mips"] / other["steady"]["mips"])
                continue
            other = rows[(name, clock, "nested", engine)] if key == "shadow/nested" else \
                rows[(name, clock, mmu, key.split("/")[1])]
            mine, theirs = (r.get("per_op_ns") or r["seconds"]), \
                (other.get("per_op_ns") or other["seconds"])
            assert value == pytest.approx(theirs["median"] / mine["median"])
        for other in ("interp", "bt", "hw"):
            theirs = rows.get((name, clock, mmu, other))
            if theirs is None:  # (bt has no nested paging)
                continue
            if other != engine and (r.get("per_op_ns") or r["seconds"])["median"] > 0 \
                    and (theirs.get("per_op_ns") or theirs["seconds"])["median"] > 0:
                assert f"{engine}/{other}" in r["ratios"]


def test_unavailable_benchmark_is_listed_with_what_it_needs(tmp_path, monkeypatch, capsys):
    """A registered benchmark whose guest does not exist yet is a row saying what it needs
    (and in --list), never an error."""
    future = Benchmark("future", Kind.MACRO, tmp_path / "future.c", ("x86_32",),
                       "a benchmark whose guest is not written yet",
                       needs=frozenset({"user", "timer"}))
    monkeypatch.setattr("dbt.bench.cli.BENCHMARKS", (future,))
    out = tmp_path / "future.json"
    assert main(["bench", "--quick", "future", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 1 and rows[0]["status"] == "unavailable"
    assert "user mode" in rows[0]["note"] and "timer" in rows[0]["note"]
    capsys.readouterr()
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("future") and "[not available: needs" in listed


def test_each_nanobenchmark_gets_a_verdict_with_a_reason(quick_run):
    doc = json.loads(quick_run[1]["json"].read_text())
    verdicts = {(v["benchmark"], v["clock"], v["mmu"]): v for v in doc["verdicts"]}
    assert set(verdicts) == {(b, c, m) for b, m in (("cli_sti", None), ("cpuid", None),
                                                    ("pgfault", "nested"), ("pgfault", "shadow"))
                             for c in ("free", "exact")}
    for (name, _, _), v in verdicts.items():
        assert v["winner"] in ("interp", "bt", "hw")
        # (the runner-up is named unless every other engine's cost was lost in the noise)
        first, *second = v["reason"].split(" vs ")
        assert first.startswith(v["winner"] + ": ")
        assert all(re.match(r"\w+: \w", x) for x in second) and len(second) <= 1
        # only pgfault is in the paper's Figure 4 (the software VMM won it)
        assert v["paper_winner"] == ("bt" if name == "pgfault" else None)
    assert verdicts[("cpuid", "free", None)]["reason"].count("per operation") >= 1


def test_csv_has_one_row_per_measurement(quick_run):
    with open(quick_run[1]["csv"]) as f:
        rows = list(csv.DictReader(f))
    doc = json.loads(quick_run[1]["json"].read_text())
    assert len(rows) == len(doc["results"])
    assert {"ratio bt/hw", "stat blocks", "per_op_ns_min", "seconds_max"} <= rows[0].keys()


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["bench", "nosuchbench"], "unknown benchmark 'nosuchbench'"),
    (["bench", "cli_sti", "--engines", "hw,warp"], "unknown engine 'warp'"),
    (["bench", "cli_sti", "--arch", "arm"], "unknown architecture 'arm'"),
    (["bench", "cli_sti", "--json", "/nonexistent-dir/out.json"], "does not exist"),
    (["bench", "cli_sti", "--csv", "/"], "is a directory"),
])
def test_bad_input_is_one_line_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dbt: error: ") and says in err and err.count("\n") == 1


def test_failed_self_check_exits_1_and_keeps_finished_rows(tmp_path, monkeypatch, capsys):
    """A guest whose self-check fails must stop the suite with a one-line error, and the
    rows measured before it must still be written."""
    bad = tmp_path / "wrong.c"
    bad.write_text('#include "rt.h"\nint main(void) { puts_serial("wrong\\n"); return 3; }\n')
    (tmp_path / "rt.h").write_text((suite.C_DIR / "rt.h").read_text())
    wrong = Benchmark("wrong", Kind.MACRO, bad, ("x86_32",), "always fails its self-check")
    monkeypatch.setattr("dbt.bench.cli.BENCHMARKS", (suite.BY_NAME["cli_sti"], wrong))
    monkeypatch.setitem(suite.BY_NAME, "wrong", wrong)
    out = tmp_path / "partial.json"
    assert main(["bench", "--quick", "--engines", "hw", "--clock", "free", "--json", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dbt: error: wrong[x86_32]") and "exit code 3" in err[-1]
    doc = json.loads(out.read_text())
    assert [r["benchmark"] for r in doc["results"]] == ["cli_sti"]
    assert doc["error"] and "self-check failed" in doc["error"]


# --- the registry ----------------------------------------------------------------------------
def test_every_runnable_benchmark_is_in_the_differential_test():
    """Correctness first: a benchmark never measures a guest the engines disagree on."""
    differential = {g.path for g in all_guests()}
    for b in BENCHMARKS:
        if b.missing() is None:
            assert b.guest in differential, b.name
            if b.kind is Kind.NANO:
                for cal in b.calibration.values():
                    assert cal in differential


def test_nanobenchmark_loops_have_a_patchable_count():
    for b in BENCHMARKS:
        if b.kind is Kind.NANO and b.guest.exists():
            text = measure.with_iterations(b.guest.read_text(), 1234)
            assert re.search(r"mov \w+, 1234\s*; iterations", text), b.name


def test_patching_refuses_a_loop_without_a_count():
    with pytest.raises(Exception, match="iterations"):
        measure.with_iterations("nop\nhlt\n", 5)


def test_paper_winners_only_for_the_papers_benchmarks():
    paper = {"syscall_int80", "syscall_sysenter", "syscall_syscall", "in_lsr", "cr8wr", "cr0wr",
             "call_ret", "pgfault", "divzero", "ptemod"}
    assert {b.name for b in BENCHMARKS if b.paper_winner} == paper


@pytest.mark.slow
def test_whole_quick_suite(tmp_path):
    out = tmp_path / "all.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {r["benchmark"] for r in doc["results"]} == {b.name for b in BENCHMARKS}


def test_guest_files_referenced_exist():
    for b in BENCHMARKS:
        if not b.needs:
            assert Path(b.guest).exists(), b.name


def test_autorange_grows_cheap_loops_and_respects_caps():
    """A loop of a nanosecond operation is run long enough to measure; a loop of a
    millisecond operation (SMC under bt) never beyond its cap."""
    plan = measure.Plan(nano_iterations=100, target_seconds=0.05, max_iterations=10**6,
                        repeat=1, warmup=0)
    assert 100 < measure.autorange(suite.BY_NAME["cli_sti"], "hw", "free", plan) <= 10**6
    assert measure.autorange(suite.BY_NAME["smc"], "hw", "free", plan) <= 1000


def test_a_new_engine_is_another_column_timed_by_wall_clock_less_startup(tmp_path, monkeypatch):
    """An engine registered later (say, one that runs the guest in another process and
    cannot time its own run loop) joins the suite as a column; its runs are timed by the
    wall clock less its start-up, measured with the empty guest."""
    from dbt import engines
    from dbt.engines.hw import Hw

    class Untimed(Hw):
        name = "untimed"

        def run(self):
            r = super().run()
            del r.stats["run_seconds"]
            return r

    monkeypatch.setitem(engines.ENGINES, "untimed", Untimed)
    out = tmp_path / "four.json"
    assert main(["bench", "--quick", "cpuid", "--clock", "free", "--engines",
                 "interp,bt,hw,untimed", "--json", str(out)]) == 0
    rows = {r["engine"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"interp", "bt", "hw", "untimed"}
    assert rows["untimed"]["stats"]["run_seconds"] is None
    assert "per_op_ns" in rows["untimed"]  # (its value is noise at --quick sizes)
    assert measure.startup_seconds("untimed") > 0


def _outside_engine(stats):
    """A stand-in for an engine outside dbt (like qemu): hw underneath, free clock only,
    its statistics replaced by ``stats(hw's statistics)``."""
    from dbt import engines

    class Outside:
        name, monitor, clocks = "outside", False, ("free",)
        reports = frozenset({"serial", "reason", "exit_code"})

        @staticmethod
        def unavailable():
            return None

        def __init__(self, image, config, ram_size):
            self.args = image, config, ram_size

        def run(self):
            image, config, ram_size = self.args
            r = engines.run_guest(image, "hw", config, ram_size=ram_size)
            r.stats = stats(r.stats)
            return r

    return Outside


def test_an_outside_engine_runs_only_in_its_clocks_and_is_a_peer_not_a_contender(
        tmp_path, monkeypatch):
    """An engine outside dbt (qemu) that has no exact clock is measured in the free clock
    only, and the nanobenchmark verdict stays between dbt's own techniques."""
    from dbt import engines

    monkeypatch.setitem(engines.ENGINES, "outside", _outside_engine(lambda stats: {}))
    out = tmp_path / "peer.json"
    assert main(["bench", "--quick", "cpuid", "--engines", "hw,outside",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    clocks = {(r["engine"], r["clock"]) for r in doc["results"]}
    assert clocks == {("hw", "free"), ("hw", "exact"), ("outside", "free")}
    assert all(v["winner"] == "hw" for v in doc["verdicts"])
    assert all(r["per_op_ns"]["min"] >= 0 for r in doc["results"])


def test_an_outside_engine_runs_a_longer_c_guest_with_its_start_up_subtracted(monkeypatch):
    """QEMU's start-up (firmware, boot stub) jitters by as much as 20M instructions take
    it: an outside engine runs the C guest ``outside_insns`` long and its time is its
    run time less that of a guest that exits at once."""
    from dbt import engines
    from dbt.bench.runner import Task, run

    # every run "boots" for a second; the guest's own time is what remains
    monkeypatch.setitem(engines.ENGINES, "outside", _outside_engine(
        lambda stats: {"run_seconds": 1.0 + stats["run_seconds"]}))
    measure.startup_seconds.cache_clear()
    plan = measure.Plan.quick(("free",))
    plan = measure.Plan(**{**plan.__dict__, "outside_insns": 4 * plan.macro_insns})
    row = run(Task(suite.BY_NAME["crc32"], "x86_32", "outside", "free", None), plan)
    assert row.instructions > 3 * plan.macro_insns  # the longer run
    assert row.seconds["median"] < 0.5  # the second of "boot" is gone
    assert "start-up subtracted" in row.note


def test_an_engine_that_cannot_run_here_is_left_out_by_default_and_refused_by_name(
        monkeypatch, capsys):
    from dbt import engines

    monkeypatch.setattr(engines.ENGINES["qemu"], "unavailable",
                        staticmethod(lambda: "qemu-system-x86_64 not found"))
    from dbt.bench.cli import choose_engines

    assert "qemu" not in choose_engines(None) and {"interp", "bt", "hw"} <= set(choose_engines(None))
    assert main(["bench", "cpuid", "--engines", "hw,qemu"]) == 2
    assert "engine 'qemu' cannot run here: qemu-system-x86_64 not found" in capsys.readouterr().err
