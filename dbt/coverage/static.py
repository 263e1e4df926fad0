"""Static coverage of one file: hash it, parse it, sweep and descend its code, count.

:func:`scan_file` never raises: whatever is wrong with the file (not a binary,
truncated, rejected by lief, a section past the end of the file, unreadable, a
symbolic-link loop, a FIFO, a file that vanished) becomes a record with
``status`` ``skipped`` or ``error`` and a one-line ``reason``. It runs in
worker processes, so its result is plain data (a dict) that pickles.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time

from dbt.coverage.binary import mapped, read_binary, sniff
from dbt.coverage.descent import descend
from dbt.coverage.sweep import sweep
from dbt.coverage.tally import Site, Tally, summarize
from dbt.errors import CorpusFileError
from dbt.scanner import Decoder

_HASH_BLOCK = 1 << 20


def scan_file(path: str, descent: bool = True) -> dict:
    """The coverage record of one file (see DESIGN §4 and :mod:`dbt.coverage.store`)."""
    t0 = time.perf_counter()
    record: dict = {"path": path, "sha256": None, "size": None, "mtime_ns": None,
                    "format": None, "bits": None, "kind": None, "status": "ok", "reason": None}
    try:
        _scan(path, record, descent)
    except CorpusFileError as e:
        record.update(status=e.status, reason=e.why)
    except OSError as e:
        record.update(status="error", reason=_os_reason(e))
    except Exception as e:  # a bug of dbt's on a strange file: record it, go on with the next
        record.update(status="error", reason=f"internal error: {type(e).__name__}: {e}")
    record["seconds"] = round(time.perf_counter() - t0, 6)
    return record


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno == errno.ENOENT:
        return "vanished while scanning (or a dangling symbolic link)"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"unreadable: {e.strerror}"
    return f"cannot read: {e.strerror or e}"


def kind_of_mode(mode: int) -> str | None:
    """Why a file of this type is not scanned (None for a regular file)."""
    for test, what in ((stat.S_ISDIR, "a directory reached through a symbolic link "
                                      "(not followed)"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return None


def _scan(path: str, record: dict, descent: bool) -> None:
    st = os.stat(path)  # follows symbolic links: a loop raises ELOOP here
    record["size"], record["mtime_ns"] = st.st_size, st.st_mtime_ns
    special = kind_of_mode(st.st_mode)
    if special is not None:  # never opened: a FIFO would block
        raise CorpusFileError(path, f"not a regular file: {special}", status="skipped")
    with open(path, "rb") as f:
        head = f.read(_HASH_BLOCK)
        h = hashlib.sha256(head)
        size = len(head)
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            size += len(block)
    record["sha256"], record["size"] = h.hexdigest(), size
    if size == 0:
        raise CorpusFileError(path, "empty file", status="skipped")
    fmt = sniff(head)
    if fmt is None:
        raise CorpusFileError(path, "not an ELF or PE file", status="skipped")
    record["format"] = fmt
    binary = read_binary(path, fmt, size)
    record.update(bits=binary.bits, kind=binary.kind, entry=binary.entry)
    decoder = Decoder(binary.bits)
    linear, reached = Tally(), Tally()
    sites: dict[tuple[str, int], Site] = {}
    descended = descent
    with mapped(path, size) as view:
        for region in binary.regions:
            code = view[region.offset:region.offset + region.size]
            found: dict[int, Site] = {}
            sweep(decoder, code, region.address, region.name, linear, found)
            if descent:
                descended &= descend(decoder, code, region.address, region.name,
                                     region.roots, reached, found)
            code.release()
            sites.update(((region.name, a), s) for a, s in found.items())
    record.update(_counts(binary, linear, reached if descent else None, descended))
    record["sites"] = [s.as_json() for s in sorted(sites.values(),
                                                      key=lambda s: (s.section, s.address))]


def _counts(binary, linear: Tally, reached: Tally | None, descended: bool) -> dict:
    rows = linear.by_rule()
    reached_rows = reached.by_rule() if reached is not None else {}
    keys = sorted(set(rows) | set(reached_rows))
    out = {
        "sections": len(binary.regions),
        "exec_bytes": sum(r.size for r in binary.regions),
        "instructions": linear.instructions,
        "decoded_bytes": linear.bytes,
        "undecodable_bytes": linear.undecodable,
        "rows": [[m, k, a, rows.get((m, k, a), 0), reached_rows.get((m, k, a), 0)]
                 for m, k, a in keys],
        "descent": None if reached is None else {
            "complete": descended, "roots": sum(len(r.roots) for r in binary.regions),
            "instructions": reached.instructions, "bytes": reached.bytes,
            "classes": summarize(reached_rows)["classes"]},
    }
    out.update(summarize(rows))
    return out
