"""The report tables, exports and plot, from the database alone."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dbt.coverage import report
from dbt.coverage.runner import run_static
from dbt.coverage.store import Store


@pytest.fixture
def db(tmp_path, samples):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, path in samples.items():
        shutil.copy(path, corpus / name)
    (corpus / "notes.txt").write_text("not a binary")
    store = Store(str(tmp_path / "c.sqlite"))
    run_static([str(corpus)], store, jobs=1)
    yield store
    store.close()


def test_tables_answer_the_questions(db):
    t = report.tables(db)
    assert t.overview["binaries"] == 4 and t.overview["by_status"] == {"ok": 4, "skipped": 1}
    rows = {(r["mnemonic"], r["class"]): r for r in t.instructions}
    assert rows[("sgdt", "sensitive")]["binaries"] == 4
    assert rows[("sgdt", "sensitive")]["binary_share"] == 1.0
    assert rows[("cli", "privileged")]["instructions"] == 4
    assert len(t.trap_and_emulate) == 4
    assert all("sgdt" in r["robin_irvine"] for r in t.trap_and_emulate)
    unsupported = {r["mnemonic"]: r for r in t.unsupported}
    assert unsupported["vmmcall"]["reached"] == 0 < unsupported["vmcall"]["reached"]
    assert t.failures == [{"status": "skipped", "reason": "not an ELF or PE file", "files": 1}]
    text = report.render(t)
    assert "sgdt" in text and "would break trap-and-emulate" in text


def test_exports(db, tmp_path):
    report.write_csv(db, str(tmp_path / "f.csv"))
    with open(tmp_path / "f.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    exe = next(r for r in rows if r["path"].endswith("exe64"))
    assert int(exe["privileged"]) >= 2 and int(exe["unsupported"]) == 2
    pytest.importorskip("matplotlib")
    report.plot(report.tables(db), str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parquet(db, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    report.write_parquet(db, str(tmp_path / "f.parquet"))
    table = pq.read_table(str(tmp_path / "f.parquet"))
    assert table.num_rows == 5 and "sensitive" in table.column_names


def test_static_and_dynamic_meet_in_the_database(db, samples, tmp_path):
    """A guest run recorded beside a static scan of the same file: executed against present."""
    from dbt.toolchain import build_c

    guest = build_c(Path("guests/c/sieve.c"), "x86_64")
    run_static([str(guest)], db, jobs=1)
    subprocess.run([sys.executable, "-m", "dbt.cli", "coverage", "run", str(guest), "--engine",
                    "hw", "--db", db.path, "--json"], capture_output=True, check=True)
    (run,) = report.tables(db).dynamic
    assert 0 < run["addresses"] < run["static_instructions"]


def test_cli_report_without_rescanning(db, tmp_path):
    p = subprocess.run([sys.executable, "-m", "dbt.cli", "coverage", "report", "--db", db.path,
                        "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["overview"]["binaries"] == 4
    p = subprocess.run([sys.executable, "-m", "dbt.cli", "coverage", "report", "--db",
                        str(tmp_path / "missing.sqlite")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("dbt: error:")
