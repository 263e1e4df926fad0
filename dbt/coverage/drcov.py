"""DynamoRIO's drcov coverage format (version 2): writer and parser.

The format as DynamoRIO documents it (``drcov`` tool, "Coverage file format"),
and as Lighthouse and bncov read it: a text header, a module table, then a
basic-block table whose entries are binary::

    DRCOV VERSION: 2
    DRCOV FLAVOR: <text>
    Module Table: version 2, count <N>
    Columns: id, base, end, entry, checksum, timestamp, path
     <id>, <base>, <end>, <entry>, <checksum>, <timestamp>, <path>      (N lines)
    BB Table: <M> bbs
    <M times: struct { uint32_t start; uint16_t size; uint16_t mod_id; }, little-endian>

``start`` is the block's offset from its module's base. Module tables of other
versions (1, 3, 4, and the columns they add: ``containing_id``, ``offset``,
``preferred_base``) are read too; their extra columns are ignored.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from dbt.errors import DbtError

_BB = struct.Struct("<IHH")


class DrcovError(DbtError):
    """A drcov file that does not follow the format (the message says where)."""


@dataclass(frozen=True)
class Module:
    id: int
    base: int
    end: int
    entry: int
    path: str
    checksum: int = 0
    timestamp: int = 0


def write_drcov(path: str, modules: list[Module], bbs: list[tuple[int, int, int]],
                flavor: str = "drcov") -> None:
    """Write ``bbs`` — (offset from module base, size, module id) — as a drcov v2 file."""
    lines = ["DRCOV VERSION: 2", f"DRCOV FLAVOR: {flavor}",
             f"Module Table: version 2, count {len(modules)}",
             "Columns: id, base, end, entry, checksum, timestamp, path"]
    for m in modules:
        lines.append(f" {m.id}, {m.base:#018x}, {m.end:#018x}, {m.entry:#018x}, "
                     f"{m.checksum:#010x}, {m.timestamp:#010x}, {m.path}")
    lines.append(f"BB Table: {len(bbs)} bbs")
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode())
        for start, size, mod in bbs:
            f.write(_BB.pack(start, size, mod))


@dataclass
class Drcov:
    version: int
    flavor: str
    modules: list[Module]
    bbs: list[tuple[int, int, int]]  # (start offset, size, module id)

    def absolute(self) -> list[tuple[int, int]]:
        """(address, size) of each block, with its module's base added."""
        base = {m.id: m.base for m in self.modules}
        return [(base[mod] + start, size) for start, size, mod in self.bbs]


def parse_drcov(data: bytes) -> Drcov:
    """Parse a drcov file's bytes; raises :class:`DrcovError` naming what is wrong."""
    pos = 0

    def line() -> str:
        nonlocal pos
        end = data.find(b"\n", pos)
        if end < 0:
            raise DrcovError(f"drcov: header ends without a newline at byte {pos}")
        text = data[pos:end].decode("utf-8", "replace").rstrip("\r")
        pos = end + 1
        return text

    m = re.fullmatch(r"DRCOV VERSION: (\d+)", line())
    if not m:
        raise DrcovError("drcov: first line is not 'DRCOV VERSION: <n>'")
    version = int(m.group(1))
    m = re.fullmatch(r"DRCOV FLAVOR: (.*)", line())
    if not m:
        raise DrcovError("drcov: second line is not 'DRCOV FLAVOR: <text>'")
    flavor = m.group(1)
    head = line()
    m = re.fullmatch(r"Module Table: version (\d+), count (\d+)", head) or \
        re.fullmatch(r"Module Table: (\d+)()", head)
    if not m:
        raise DrcovError(f"drcov: bad module table header {head!r}")
    if m.group(2):
        table_version, count = int(m.group(1)), int(m.group(2))
    else:  # version 1: "Module Table: <count>"
        table_version, count = 1, int(m.group(1))
    columns = ["id", "base", "end", "entry", "path"]  # version 1 has no Columns line
    if table_version > 1:
        cols = line()
        if not cols.startswith("Columns: "):
            raise DrcovError(f"drcov: expected 'Columns:' after the module table header, got "
                             f"{cols!r}")
        columns = [c.strip() for c in cols[len("Columns: "):].split(",")]
    modules = []
    for i in range(count):
        fields = [f.strip() for f in line().split(",", len(columns) - 1)]
        if len(fields) != len(columns):
            raise DrcovError(f"drcov: module line {i} has {len(fields)} fields, "
                             f"expected {len(columns)}")
        row = dict(zip(columns, fields))
        base = row.get("base", row.get("start"))
        modules.append(Module(int(row["id"]), int(base, 16), int(row["end"], 16),
                              int(row.get("entry", "0"), 16), row["path"],
                              int(row.get("checksum", "0"), 16),
                              int(row.get("timestamp", "0"), 16)))
    head = line()
    m = re.fullmatch(r"BB Table: (\d+) bbs", head)
    if not m:
        raise DrcovError(f"drcov: bad block table header {head!r}")
    n = int(m.group(1))
    if len(data) - pos < n * _BB.size:
        raise DrcovError(f"drcov: {n} blocks announced, {(len(data) - pos) // _BB.size} present")
    ids = {mod.id for mod in modules}
    bbs = []
    for start, size, mod in _BB.iter_unpack(data[pos:pos + n * _BB.size]):
        if mod not in ids:
            raise DrcovError(f"drcov: block at offset {start:#x} names module {mod}, "
                             f"which is not in the table")
        bbs.append((start, size, mod))
    return Drcov(version, flavor, modules, bbs)
