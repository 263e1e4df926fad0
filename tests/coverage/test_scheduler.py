"""--scheduler: the same scan on a Dask cluster (an optional extra)."""

from __future__ import annotations

import shutil
import sys

import pytest

from dbt.coverage.runner import run_static
from dbt.coverage.store import Store
from dbt.errors import UsageError


def test_without_dask_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"dbt\[dask\]"):
        run_static([str(tmp_path)], Store(":memory:"), scheduler="tcp://127.0.0.1:1")


def test_scan_on_a_local_cluster(tmp_path, samples):
    distributed = pytest.importorskip("distributed")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, path in samples.items():
        shutil.copy(path, corpus / name)
    store = Store(str(tmp_path / "c.sqlite"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        summary = run_static([str(corpus)], store, scheduler=cluster.scheduler_address)
    reasons = [store.record(p)["reason"] for p in store.paths()]
    assert (summary.scanned, summary.ok) == (4, 4), reasons
    assert store.record(str(corpus / "exe64"))["mnemonics"]["sgdt"] == 1
