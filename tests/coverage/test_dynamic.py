"""Dynamic coverage: the same per-address counts under every engine, summing to the run's count."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dbt.coverage.dynamic import Recorder, blocks, run_with_coverage
from dbt.engines import engine_names, run_guest
from dbt.loader import DEFAULT_RAM_SIZE, load
from dbt.monitor.monitor import RunConfig
from guests import Guest, all_guests, guest_file

#: the assembly guests and one C guest by default; the other C guests (seconds each under
#: interp) with -m slow
GUESTS = [g if g.arch is None or g.name == "sieve.c[x86_64]" else
          pytest.param(g, marks=pytest.mark.slow, id=str(g)) for g in all_guests()]


def _run(image, engine: str, budget: int = 50_000_000) -> tuple:
    rec = Recorder()
    result = run_guest(image, engine, RunConfig(max_insns=budget), setup=rec.setup)
    return result, rec.settle(result)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache: dict[str, dict] = {}

    def get(guest: Guest) -> dict:
        if guest.name not in cache:
            image = load(str(guest_file(guest, tmp_path_factory.mktemp("g"))))
            cache[guest.name] = {e: _run(image, e) for e in engine_names(outside=False)}
        return cache[guest.name]
    return get


@pytest.mark.parametrize("guest", GUESTS, ids=str)
@pytest.mark.parametrize("engine", engine_names(outside=False))
def test_counts_sum_to_the_run_and_agree_with_interp(guest, engine, runs):
    """What could go wrong: bt counting host code (templates, restarts of stores into
    write-protected pages, rep bookkeeping) as guest instructions; hw counting the
    instruction a fault or the budget stopped at."""
    results = runs(guest)
    result, counts = results[engine]
    assert sum(counts.values()) == result.guest_instructions
    if dict(guest.count_skew).get(engine):  # a documented counting artefact of the engine
        return
    assert counts == results["interp"][1]


@pytest.mark.parametrize("budget", [1, 37, 501, 1200])
def test_budget_stops_inside_rep_strings(budget):
    """The budget ends mid-block and mid-rep (bt runs the rep alone in scratch code)."""
    image = load("guests/asm/strings.s")
    ref = None
    for engine in engine_names(outside=False):
        result, counts = _run(image, engine, budget)
        assert result.reason.value == "budget"
        assert sum(counts.values()) == result.guest_instructions == budget
        ref = ref or counts
        assert counts == ref, engine


def test_blocks_end_at_branches():
    image = load("examples/hello.s")
    _result, rows = run_with_coverage(image, "bt", RunConfig(), DEFAULT_RAM_SIZE)
    bbs = blocks(rows)
    covered = sum(size for _a, size in bbs)
    assert covered == sum(r[1] for r in rows)  # every executed byte in exactly one block
    ends = {a + s for a, s in bbs}
    for address, size, mnemonic, _o, _k, action, _n in rows:
        if action == "branch":
            assert address + size in ends, mnemonic


def test_cli_run_json_drcov_and_compare(tmp_path):
    drcov = tmp_path / "hello.drcov"
    db = tmp_path / "c.sqlite"
    p = subprocess.run([sys.executable, "-m", "dbt.cli", "coverage", "run", "examples/hello.s",
                        "--engine", "bt", "--json", "--drcov", str(drcov), "--db", str(db),
                        "--compare"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    (f,) = out["files"]
    assert f["status"] == "ok" and f["instructions"] == f["guest_instructions"] == 258
    assert f["classes"]["privileged"] == 43  # 21 in, 21 out, 1 out to the debug-exit port
    cmp = out["totals"]["compare"]["classes"]
    assert cmp["privileged"]["executed"] == 3 <= cmp["privileged"]["present"]
    assert drcov.stat().st_size > 0
    rep = subprocess.run([sys.executable, "-m", "dbt.cli", "coverage", "report", "--db", str(db),
                          "--json"], capture_output=True, text=True, check=True)
    (run,) = json.loads(rep.stdout)["dynamic"]
    assert (run["engine"], run["guest_instructions"], run["addresses"]) == ("bt", 258, 15)
