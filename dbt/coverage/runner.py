"""Scanning a corpus: walk the paths, skip what the store has, scan the rest in parallel.

Files are scanned by :func:`dbt.coverage.static.scan_file` in a local process
pool (``--jobs``, default all cores) or, with ``--scheduler ADDRESS``, on a
Dask cluster (the optional ``dask`` extra). Only a bounded number of files is
in flight at once, and each result is written to the store as it arrives, in
its own transaction: a run killed at any point resumes where it stopped.
Paths that are the same file (symbolic and hard links) are scanned once and
recorded under each path. A worker that dies on a file (a crash inside lief or
capstone) costs that file an ``error`` record, not the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from dbt.coverage.static import kind_of_mode, scan_file
from dbt.coverage.store import Store
from dbt.errors import UsageError


@dataclass
class Entry:
    """A path to record, and what is known about it before scanning."""

    path: str
    reason: str | None = None  # set when the walk already knows it cannot be scanned
    status: str = "error"


def walk(paths: list[str]) -> Iterator[Entry]:
    """Every file under the given paths (directories recursed, symbolic links to
    directories inside them not followed, so a link loop cannot trap the walk)."""
    for top in paths:
        if not os.path.isdir(top):
            yield Entry(top)  # a file, a special file, a loop or a missing path: scan_file says
            continue
        errors: list[OSError] = []
        for root, dirs, files in os.walk(top, onerror=errors.append):
            for name in sorted(files):
                yield Entry(os.path.join(root, name))
            for name in sorted(dirs):
                p = os.path.join(root, name)
                if os.path.islink(p):  # not followed: recorded as such
                    yield Entry(p, "a directory reached through a symbolic link (not followed)",
                                "skipped")
            dirs.sort()
            for e in errors:
                yield Entry(e.filename or root, f"cannot list directory: {e.strerror}")
            errors.clear()


@dataclass
class Summary:
    files: int = 0
    scanned: int = 0
    cached: int = 0  # recorded by an earlier run and unchanged
    ok: int = 0
    skipped: int = 0
    error: int = 0
    instructions: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    def add(self, record: dict) -> None:
        status = record["status"]
        setattr(self, status, getattr(self, status) + 1)
        self.instructions += record.get("instructions") or 0
        if record.get("reason"):
            key = record["reason"].split(":")[0]
            self.reasons[key] = self.reasons.get(key, 0) + 1


def run_static(paths: list[str], store: Store, jobs: int | None = None, descent: bool = True,
               scheduler: str | None = None, progress: Callable | None = None,
               rescan: bool = False) -> Summary:
    """Scan every file under ``paths`` not yet in ``store`` and record it there."""
    t0 = time.perf_counter()
    summary = Summary()
    todo: list[tuple[str, list[str]]] = []  # (path to scan, other paths of the same file)
    by_inode: dict[tuple[int, int], list[str]] = {}
    for entry in walk(paths):
        summary.files += 1
        summary.paths.append(entry.path)
        if entry.reason is not None:
            record = _record(entry.path, entry.status, entry.reason)
            store.save(record)
            summary.add(record)
            continue
        try:
            st = os.stat(entry.path)
        except OSError:
            todo.append((entry.path, []))  # scan_file records why
            continue
        if not rescan and store.finished(entry.path, st.st_size, st.st_mtime_ns):
            summary.cached += 1
            continue
        if kind_of_mode(st.st_mode) is None:
            same = by_inode.get((st.st_dev, st.st_ino))
            if same is not None:
                same.append(entry.path)
                continue
            by_inode[(st.st_dev, st.st_ino)] = aliases = []
            todo.append((entry.path, aliases))
        else:
            todo.append((entry.path, []))
    if progress:
        progress(total=len(todo))
    pool = _dask_results if scheduler else _local_results
    for (path, aliases), record in pool(todo, jobs, descent, scheduler):
        store.save(record, aliases)
        summary.scanned += 1
        summary.add(record)
        for _ in aliases:
            summary.add(record)
        if progress:
            progress(record=record)
    summary.seconds = time.perf_counter() - t0
    return summary


def _record(path: str, status: str, reason: str) -> dict:
    return {"path": path, "sha256": None, "size": None, "mtime_ns": None, "format": None,
            "bits": None, "kind": None, "status": status, "reason": reason}


def _local_results(todo, jobs, descent, _scheduler) -> Iterator[tuple[tuple, dict]]:
    """(item, record) as files finish, from a local process pool (in-process for 1 job)."""
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        for item in todo:
            yield item, scan_file(item[0], descent)
        return
    queue = list(reversed(todo))
    retried: set[str] = set()
    while queue:
        crashed: list[tuple] = []
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            running: dict[Future, tuple] = {}
            while queue or running:
                while queue and len(running) < 4 * jobs:
                    item = queue.pop()
                    running[ex.submit(scan_file, item[0], descent)] = item
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    try:
                        yield item, fut.result()
                    except BrokenProcessPool:
                        crashed.append(item)
                if crashed:  # the pool is gone: everything still running failed with it
                    crashed += running.values()
                    break
        for item in crashed:  # once more each, in a new pool; a second crash is the file's
            if item[0] in retried:
                yield item, _record(item[0], "error", "the scanning process died on this file")
            else:
                retried.add(item[0])
                queue.append(item)


def _dask_results(todo, jobs, descent, scheduler) -> Iterator[tuple[tuple, dict]]:
    """(item, record) as files finish, from a Dask cluster."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'dbt[dask]'") from None
    try:
        client = Client(scheduler, timeout="30s")
    except Exception as e:  # noqa: BLE001 (dask raises OSError, TimeoutError, ...)
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        window = 4 * max(1, sum(client.nthreads().values()))
        pending = iter(todo)
        items: dict = {}
        ac = as_completed()
        for item in pending:
            fut = client.submit(scan_file, item[0], descent, pure=False)
            items[fut.key] = item
            ac.add(fut)
            if len(items) >= window:
                break
        for fut in ac:
            item = items.pop(fut.key)
            try:
                record = fut.result()
            except Exception as e:  # noqa: BLE001 (a worker that died)
                record = _record(item[0], "error", f"the scanning worker failed: {e}")
            yield item, record
            nxt = next(pending, None)
            if nxt is not None:
                f2 = client.submit(scan_file, nxt[0], descent, pure=False)
                items[f2.key] = nxt
                ac.add(f2)
    finally:
        client.close()
