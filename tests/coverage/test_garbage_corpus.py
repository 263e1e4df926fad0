"""A corpus full of garbage: every bad file is recorded with its reason, none stops the run."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys

import pytest

from dbt.coverage.runner import run_static
from dbt.coverage.static import scan_file
from dbt.coverage.store import Store
from loader_files import Section, make_pe


def _elf_section_headers(data: bytes):
    """(offset in file of each 64-bit section header, its sh_offset, sh_size, sh_flags)."""
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    for i in range(shnum):
        at = shoff + i * shentsize
        flags, _addr, offset, size = struct.unpack_from("<QQQQ", data, at + 8)
        yield at, offset, size, flags


def _patched_text(data: bytes, offset: int | None = None, size: int | None = None) -> bytes:
    """The ELF with its executable sections' file offset or size replaced."""
    out = bytearray(data)
    for at, _off, _size, flags in _elf_section_headers(data):
        if flags & 0x4:
            if offset is not None:
                struct.pack_into("<Q", out, at + 24, offset)
            if size is not None:
                struct.pack_into("<Q", out, at + 32, size)
    return bytes(out)


@pytest.fixture
def garbage(tmp_path, samples) -> dict[str, tuple[str, str]]:
    """name -> (expected status, a word of the expected reason), all in one directory."""
    d = tmp_path / "corpus"
    d.mkdir()
    elf = samples["exe64"].read_bytes()
    pe = make_pe(64, [Section(".text", 0x1000, b"\x90" * 64)])
    rnd = random.Random(7)
    files = {
        "random.bin": (bytes(rnd.randrange(256) for _ in range(4096)), "skipped", "not an ELF"),
        "empty": (b"", "skipped", "empty"),
        "elf-10-bytes": (elf[:10], "error", "truncated"),
        "elf-header-only": (elf[:64], "error", "truncated"),
        "elf-half": (elf[:len(elf) // 2], "error", "truncated"),
        "elf-text-past-end": (_patched_text(elf, offset=len(elf) + 0x1000), "error",
                              "past the end"),
        "elf-zero-size-text": (_patched_text(elf, size=0), "ok", None),
        "elf-bad-class": (elf[:4] + b"\x09" + elf[5:], "error", "corrupt"),
        "elf-arm": (elf[:18] + struct.pack("<H", 40) + elf[20:], "skipped", "not x86"),
        "elf-bad-shentsize": (elf[:58] + struct.pack("<H", 7) + elf[60:], "error", "corrupt"),
        "pe-bad-magic": (pe[:0x58] + b"\x99\x09" + pe[0x5A:], "error", "magic"),
        "pe-no-optional-header": (pe[:0x54] + bytes(2) + pe[0x56:], "error", "optional header"),
        "pe-truncated": (pe[:0x150], "error", "truncated"),
        "pe-half": (pe[:0x210], "error", "past the end"),
        "mz-only": (b"MZ" + bytes(200), "skipped", "PE signature"),
        "elf-garbage-after-header": (elf[:24] + b"\xff" * 3000, "error", "corrupt"),
    }
    expect = {}
    for name, (data, status, word) in files.items():
        (d / name).write_bytes(data)
        expect[name] = (status, word)
    os.symlink("loop-b", d / "loop-a")
    os.symlink("loop-a", d / "loop-b")
    expect["loop-a"] = expect["loop-b"] = ("error", "loop")
    os.symlink("nowhere", d / "dangling")
    expect["dangling"] = ("error", "vanished")
    os.mkfifo(d / "fifo")
    expect["fifo"] = ("skipped", "FIFO")
    (d / "sub").mkdir()
    os.symlink("..", d / "sub" / "up")  # a directory loop through a link: not followed
    expect[os.path.join("sub", "up")] = ("skipped", "symbolic link")
    return {str(d / name): v for name, v in expect.items()}


def test_every_bad_file_is_recorded(garbage, tmp_path):
    store = Store(str(tmp_path / "c.sqlite"))
    top = os.path.dirname(next(iter(garbage)))
    summary = run_static([top], store, jobs=2)
    assert summary.files == len(garbage)
    for path, (status, word) in garbage.items():
        rec = store.record(path)
        assert rec is not None, path
        assert rec["status"] == status, (path, rec["reason"])
        if word:
            assert word in rec["reason"], (path, rec["reason"])
        assert rec["reason"] is None or "\n" not in rec["reason"]
        if status == "error":
            assert not rec["reason"].startswith("internal error"), (path, rec["reason"])
    assert summary.error == sum(1 for s, _ in garbage.values() if s == "error")
    assert summary.skipped == sum(1 for s, _ in garbage.values() if s == "skipped")


def test_cli_reports_garbage_without_traceback(garbage, tmp_path):
    top = os.path.dirname(next(iter(garbage)))
    p = subprocess.run([sys.executable, "-m", "dbt.cli", "coverage", "static", top, "--db",
                        str(tmp_path / "c.sqlite"), "--json", "--jobs", "1"],
                       capture_output=True, text=True, timeout=None)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    out = json.loads(p.stdout)
    assert {f["path"] for f in out["files"]} == set(garbage)
    assert out["totals"]["error"] == sum(1 for s, _ in garbage.values() if s == "error")
    for f in out["files"]:
        assert set(f) >= {"path", "sha256", "format", "bits", "status", "reason",
                          "instructions", "classes", "mnemonics"}


def test_a_file_that_vanishes_is_an_error(tmp_path):
    """Listed, then gone before it is scanned (as when a package upgrade runs beside)."""
    rec = scan_file(str(tmp_path / "gone"))
    assert rec["status"] == "error" and "vanished" in rec["reason"]


@pytest.mark.slow
def test_huge_sparse_file(tmp_path, samples):
    """A 3 GiB file (sparse) with a valid ELF at its start: scanned, memory stays flat."""
    path = tmp_path / "huge"
    with open(path, "wb") as f:
        f.write(samples["exe64"].read_bytes())
        f.truncate(3 << 30)
    code = ("import json, resource, sys; from dbt.coverage.static import scan_file; "
            "r = scan_file(sys.argv[1]); "
            "print(json.dumps([r['status'], r['size'], "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))")
    p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    status, size, max_rss_kib = json.loads(p.stdout)
    assert (status, size) == ("ok", 3 << 30)
    assert max_rss_kib < 512 << 10  # far below the file's size
