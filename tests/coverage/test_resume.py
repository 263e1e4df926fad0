"""A run killed mid-way resumes: finished files are not scanned again, nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from dbt.coverage.runner import run_static
from dbt.coverage.store import Store


@pytest.fixture
def corpus(tmp_path, samples):
    """Twelve distinct binaries: three copies of libc with a different trailing byte (slow
    enough to kill a run between files; scanned first), and copies of the sample."""
    d = tmp_path / "corpus"
    d.mkdir()
    libc = next((p for p in ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6")
                 if os.path.exists(p)), None)
    if libc is None:
        pytest.skip("no libc.so.6 to build the corpus from")
    big = open(libc, "rb").read()
    for i in range(3):
        (d / f"big{i}.so").write_bytes(big + bytes([i]))
    for i in range(9):
        (d / f"small{i}").write_bytes(samples["exe64"].read_bytes() + bytes([i]))
    return d


def _recorded(db: str) -> int:
    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killed_run_resumes(corpus, tmp_path):
    """SIGKILL the scanning process once a few files are recorded; the next run scans only
    the rest, and every recorded file has all of its rows."""
    db = str(tmp_path / "c.sqlite")
    cmd = [sys.executable, "-m", "dbt.cli", "coverage", "static", str(corpus), "--db", db,
           "--jobs", "1", "--no-progress", "--no-descent"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while _recorded(db) < 1 and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = _recorded(db)
    assert 1 <= before < 12, "the run finished before it could be killed"
    with sqlite3.connect(db) as c:  # whatever is recorded is complete
        for sha, n in c.execute("SELECT sha256, instructions FROM binaries"):
            total, = c.execute("SELECT SUM(linear) FROM counts WHERE sha256 = ?", (sha,)).fetchone()
            assert total == n
    out = subprocess.run(cmd + ["--json"], capture_output=True, text=True, check=True)
    totals = json.loads(out.stdout)["totals"]
    assert totals["cached"] == before and totals["scanned"] == 12 - before
    assert totals["files"] == totals["ok"] == 12


def test_interrupted_worker_loop_loses_nothing(corpus, tmp_path):
    """An exception out of the loop that records results (as Ctrl-C would raise) after three
    files: those three stay recorded, and a second run scans the other nine only."""
    store = Store(str(tmp_path / "c.sqlite"))
    seen = []

    def progress(total=None, record=None):
        if record is not None:
            seen.append(record["path"])
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_static([str(corpus)], store, jobs=2, descent=False, progress=progress)
    assert sorted(store.paths()) == sorted(seen)
    summary = run_static([str(corpus)], store, jobs=2, descent=False)
    assert (summary.cached, summary.scanned, summary.ok) == (3, 9, 9)
    assert len(store.paths()) == 12
