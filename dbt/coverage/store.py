"""The coverage database: SQLite, one transaction per file, keyed by content (SHA-256).

Schema (version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- schema_version
    files(path TEXT PRIMARY KEY,                      -- as found on the command line / walk
          size INTEGER, mtime_ns INTEGER,             -- how a re-run knows the file is unchanged
          sha256 TEXT,                                -- NULL when the file could not be read
          status TEXT NOT NULL,                       -- ok | skipped | error
          reason TEXT,                                -- why, when not ok
          scanned_at TEXT)                            -- UTC, ISO 8601
    binaries(sha256 TEXT PRIMARY KEY,                 -- one row per distinct content
          format TEXT, bits INTEGER, kind TEXT,       -- ELF|PE, 32|64, executable|pie|shared|
                                                      --   relocatable|dll|efi
          size INTEGER, status TEXT, reason TEXT,
          sections INTEGER, exec_bytes INTEGER,       -- executable sections and their bytes
          instructions INTEGER,                       -- linear sweep
          decoded_bytes INTEGER, undecodable_bytes INTEGER,
          descended INTEGER,                          -- 1 if recursive descent ran on all of it
          roots INTEGER,                              -- entry point + symbols descent started from
          reached_instructions INTEGER, reached_bytes INTEGER,
          seconds REAL)
    counts(sha256 TEXT, mnemonic TEXT, class TEXT, action TEXT,
          linear INTEGER,                             -- instructions found by the linear sweep
          reached INTEGER,                            -- ... and by recursive descent
          PRIMARY KEY (sha256, mnemonic, class, action))
    sites(sha256 TEXT, section TEXT, address INTEGER, -- each privileged/sensitive instruction
          mnemonic TEXT, op_str TEXT, class TEXT, action TEXT,
          robin_irvine INTEGER,                       -- sensitive but unprivileged (R&I 2000)
          linear INTEGER, reached INTEGER,
          PRIMARY KEY (sha256, section, address))
    runs(id INTEGER PRIMARY KEY, guest TEXT, sha256 TEXT, engine TEXT, arch TEXT,
          reason TEXT, exit_code INTEGER, guest_instructions INTEGER, blocks INTEGER,
          started_at TEXT)                            -- dynamic coverage: one row per run
    run_counts(run_id INTEGER, address INTEGER, mnemonic TEXT, op_str TEXT, class TEXT,
          action TEXT, count INTEGER,                 -- executions of the instruction at address
          PRIMARY KEY (run_id, address))

A file's rows (``files``, and ``binaries``/``counts``/``sites`` for its content)
are written in one transaction, so a run killed at any moment leaves every
file either fully recorded or not at all, and the next run over the same corpus
skips exactly the files recorded (same path, size and modification time).
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Iterable

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
    sha256 TEXT, status TEXT NOT NULL, reason TEXT, scanned_at TEXT);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS binaries(sha256 TEXT PRIMARY KEY, format TEXT, bits INTEGER,
    kind TEXT, size INTEGER, status TEXT, reason TEXT, sections INTEGER, exec_bytes INTEGER,
    instructions INTEGER, decoded_bytes INTEGER, undecodable_bytes INTEGER, descended INTEGER,
    roots INTEGER, reached_instructions INTEGER, reached_bytes INTEGER, seconds REAL);
CREATE TABLE IF NOT EXISTS counts(sha256 TEXT, mnemonic TEXT, class TEXT, action TEXT,
    linear INTEGER, reached INTEGER, PRIMARY KEY (sha256, mnemonic, class, action));
CREATE TABLE IF NOT EXISTS sites(sha256 TEXT, section TEXT, address INTEGER, mnemonic TEXT,
    op_str TEXT, class TEXT, action TEXT, robin_irvine INTEGER, linear INTEGER,
    reached INTEGER, PRIMARY KEY (sha256, section, address));
CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY, guest TEXT, sha256 TEXT, engine TEXT,
    arch TEXT, reason TEXT, exit_code INTEGER, guest_instructions INTEGER, blocks INTEGER,
    started_at TEXT);
CREATE TABLE IF NOT EXISTS run_counts(run_id INTEGER, address INTEGER, mnemonic TEXT,
    op_str TEXT, class TEXT, action TEXT, count INTEGER, PRIMARY KEY (run_id, address));
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Store:
    """A coverage database (a file, or ``:memory:``)."""

    def __init__(self, path: str):
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")  # readers (report) beside one writer
        # a killed process loses no committed file; only a power cut may lose the last ones
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (SCHEMA_VERSION,))

    def close(self) -> None:
        self.db.close()

    # --- static coverage ------------------------------------------------------------------
    def finished(self, path: str, size: int, mtime_ns: int) -> bool:
        """Is this file recorded, unchanged since (same size and modification time)?"""
        row = self.db.execute("SELECT size, mtime_ns FROM files WHERE path = ?", (path,)).fetchone()
        return row is not None and row == (size, mtime_ns)

    def save(self, record: dict, aliases: Iterable[str] = ()) -> None:
        """Write one file's record (and the same for paths that are the same file), atomically."""
        db = self.db
        db.execute("BEGIN")
        try:
            for path in (record["path"], *aliases):
                db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (path, record["size"], record["mtime_ns"], record["sha256"],
                            record["status"], record["reason"], _now()))
            sha = record["sha256"]
            if sha is not None:
                self._save_binary(sha, record)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _save_binary(self, sha: str, r: dict) -> None:
        db = self.db
        d = r.get("descent") or {}
        db.execute("INSERT OR REPLACE INTO binaries VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (sha, r["format"], r["bits"], r["kind"], r["size"], r["status"], r["reason"],
                    r.get("sections"), r.get("exec_bytes"), r.get("instructions"),
                    r.get("decoded_bytes"), r.get("undecodable_bytes"),
                    int(bool(d.get("complete"))) if d else None, d.get("roots"),
                    d.get("instructions"), d.get("bytes"), r.get("seconds")))
        db.execute("DELETE FROM counts WHERE sha256 = ?", (sha,))
        db.execute("DELETE FROM sites WHERE sha256 = ?", (sha,))
        db.executemany("INSERT INTO counts VALUES (?, ?, ?, ?, ?, ?)",
                       ((sha, *row) for row in r.get("rows", ())))
        db.executemany("INSERT OR REPLACE INTO sites VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       ((sha, s["section"], s["address"], s["mnemonic"], s["op_str"], s["class"],
                         s["action"], int(s["robin_irvine"]), int(s["linear"]), int(s["reached"]))
                        for s in r.get("sites", ())))

    def record(self, path: str) -> dict | None:
        """A file's record as ``--json`` prints it (DESIGN §4), rebuilt from the database."""
        db = self.db
        row = db.execute("SELECT path, size, sha256, status, reason FROM files WHERE path = ?",
                         (path,)).fetchone()
        if row is None:
            return None
        path, size, sha, status, reason = row
        out = {"path": path, "sha256": sha, "size": size, "format": None, "bits": None,
               "kind": None, "status": status, "reason": reason, "instructions": 0,
               "classes": {}, "actions": {}, "mnemonics": {}}
        b = db.execute("SELECT format, bits, kind, exec_bytes, instructions, undecodable_bytes, "
                       "descended, roots, reached_instructions, reached_bytes FROM binaries "
                       "WHERE sha256 = ?", (sha,)).fetchone() if sha else None
        if b is None:
            return out
        out.update(format=b[0], bits=b[1], kind=b[2], exec_bytes=b[3], instructions=b[4] or 0,
                   undecodable_bytes=b[5])
        reached_classes: dict[str, int] = {}
        for mnemonic, klass, action, linear, reached in db.execute(
                "SELECT mnemonic, class, action, linear, reached FROM counts WHERE sha256 = ? "
                "ORDER BY mnemonic", (sha,)):
            for table, key, n in (("mnemonics", mnemonic, linear), ("classes", klass, linear),
                                  ("actions", action, linear)):
                if n:
                    out[table][key] = out[table].get(key, 0) + n
            if reached:
                reached_classes[klass] = reached_classes.get(klass, 0) + reached
        if b[6] is not None:
            out["descent"] = {"complete": bool(b[6]), "roots": b[7], "instructions": b[8],
                              "bytes": b[9], "classes": reached_classes}
        out["sites"] = [
            {"section": s[0], "address": s[1], "mnemonic": s[2], "op_str": s[3], "class": s[4],
             "action": s[5], "robin_irvine": bool(s[6]), "linear": bool(s[7]),
             "reached": bool(s[8])}
            for s in db.execute("SELECT section, address, mnemonic, op_str, class, action, "
                                "robin_irvine, linear, reached FROM sites WHERE sha256 = ? "
                                "ORDER BY section, address", (sha,))]
        return out

    def paths(self) -> list[str]:
        return [p for (p,) in self.db.execute("SELECT path FROM files ORDER BY path")]

    # --- dynamic coverage -----------------------------------------------------------------
    def save_run(self, guest: str, sha: str | None, result: dict, rows: Iterable[tuple]) -> int:
        """Record one guest run: ``rows`` are (address, mnemonic, op_str, class, action, count)."""
        db = self.db
        db.execute("BEGIN")
        try:
            cur = db.execute("INSERT INTO runs(guest, sha256, engine, arch, reason, exit_code, "
                             "guest_instructions, blocks, started_at) VALUES (?, ?, ?, ?, ?, ?, "
                             "?, ?, ?)", (guest, sha, result["engine"], result["arch"],
                                          result["reason"], result["exit_code"],
                                          result["guest_instructions"], result.get("blocks"),
                                          _now()))
            run_id = cur.lastrowid
            db.executemany("INSERT INTO run_counts VALUES (?, ?, ?, ?, ?, ?, ?)",
                           ((run_id, *row) for row in rows))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return run_id
