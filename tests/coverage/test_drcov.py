"""drcov files: what dbt writes, a parser written against DynamoRIO's format reads back."""

from __future__ import annotations

import struct

import pytest

from dbt.coverage.drcov import DrcovError, Module, parse_drcov, write_drcov
from dbt.coverage.dynamic import blocks, module_blocks, modules, run_with_coverage
from dbt.loader import DEFAULT_RAM_SIZE, load
from dbt.monitor.monitor import RunConfig


def test_round_trip(tmp_path):
    mods = [Module(0, 0x400000, 0x401000, 0x400010, "/bin/guest"),
            Module(1, 0, 0x4000000, 0, "[guest RAM]")]
    bbs = [(0x10, 5, 0), (0x20, 0xFFFF, 0), (0x123456, 3, 1)]
    path = tmp_path / "t.drcov"
    write_drcov(str(path), mods, bbs)
    cov = parse_drcov(path.read_bytes())
    assert (cov.version, cov.flavor) == (2, "drcov")
    assert cov.modules == mods and cov.bbs == bbs
    assert cov.absolute() == [(0x400010, 5), (0x400020, 0xFFFF), (0x123456, 3)]


def test_layout_is_the_documented_one(tmp_path):
    """Header lines as DynamoRIO writes them, then 8-byte little-endian entries."""
    path = tmp_path / "t.drcov"
    write_drcov(str(path), [Module(0, 0x1000, 0x2000, 0x1000, "a")], [(0x34, 7, 0)])
    data = path.read_bytes()
    text, _, table = data.partition(b"BB Table: 1 bbs\n")
    assert text.splitlines() == [b"DRCOV VERSION: 2", b"DRCOV FLAVOR: drcov",
                                 b"Module Table: version 2, count 1",
                                 b"Columns: id, base, end, entry, checksum, timestamp, path",
                                 b" 0, 0x0000000000001000, 0x0000000000002000, "
                                 b"0x0000000000001000, 0x00000000, 0x00000000, a"]
    assert table == struct.pack("<IHH", 0x34, 7, 0)


def test_reads_version_4_tables():
    """drcov as DynamoRIO 7+ writes it (module table version 4, more columns)."""
    data = (b"DRCOV VERSION: 2\nDRCOV FLAVOR: drcov-64\n"
            b"Module Table: version 4, count 1\n"
            b"Columns: id, containing_id, start, end, entry, offset, preferred_base, checksum, "
            b"timestamp, path\n"
            b"  0,   0, 0x00007f0000000000, 0x00007f0000010000, 0x0000000000000000, "
            b"0x00000000, 0x0000000000000000, 0x00000000, 0x00000000, /lib/x, with, commas\n"
            b"BB Table: 1 bbs\n" + struct.pack("<IHH", 0x40, 2, 0))
    cov = parse_drcov(data)
    assert cov.modules[0].path == "/lib/x, with, commas"
    assert cov.absolute() == [(0x7F0000000040, 2)]


@pytest.mark.parametrize("data, what", [
    (b"DRCOV VERSION: x\n", "first line"),
    (b"DRCOV VERSION: 2\nDRCOV FLAVOR: d\nModule Table: version 2, count 1\nColumns: id, base,"
     b" end, entry, checksum, timestamp, path\n 0, 0x0\nBB Table: 0 bbs\n", "fields"),
    (b"DRCOV VERSION: 2\nDRCOV FLAVOR: d\nModule Table: version 2, count 0\nColumns: id, base,"
     b" end, entry, checksum, timestamp, path\nBB Table: 2 bbs\n" + bytes(8), "announced"),
    (b"DRCOV VERSION: 2\nDRCOV FLAVOR: d\nModule Table: version 2, count 0\nColumns: id, base,"
     b" end, entry, checksum, timestamp, path\nBB Table: 1 bbs\n" + bytes(8), "module 0"),
])
def test_bad_files(data, what):
    with pytest.raises(DrcovError, match=what):
        parse_drcov(data)


@pytest.mark.parametrize("engine", ["interp", "bt"])
def test_guest_run_exports_its_blocks(tmp_path, engine):
    """The blocks of a real run, written and parsed back, cover exactly the executed bytes."""
    image = load("guests/asm/jumptable.s")
    _result, rows = run_with_coverage(image, engine, RunConfig(), DEFAULT_RAM_SIZE)
    mods = modules(image, DEFAULT_RAM_SIZE)
    path = tmp_path / "g.drcov"
    write_drcov(str(path), mods, module_blocks(mods, blocks(rows)))
    cov = parse_drcov(path.read_bytes())
    assert cov.modules[0].path.endswith("jumptable.s")
    executed = {a for a, *_ in rows}
    starts = set()
    for address, size in cov.absolute():
        starts.update(a for a in executed if address <= a < address + size)
    assert starts == executed
