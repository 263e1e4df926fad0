"""Linear sweep: decode a code region from its first byte to its last, counting as it goes.

Capstone's lite decoder (no operand detail) runs over the region in chunks of
:data:`CHUNK` bytes, so memory stays flat however large the section is: only
one chunk's decodes exist at a time, and the region itself is a view of the
mapped file, never a copy. Where capstone cannot decode, one byte is counted
as undecodable and the sweep goes on at the next byte (as objdump does).
"""

from __future__ import annotations

from dbt.coverage.tally import MAX_SITES, PRIVILEGED, SENSITIVE, Site, Tally
from dbt.scanner import Decoder

#: bytes decoded per capstone call; an instruction is at most 15 bytes long
CHUNK = 1 << 16
_MAX_INSN = 15


def sweep(decoder: Decoder, code: memoryview, address: int, section: str, tally: Tally,
          sites: dict[int, Site]) -> None:
    """Decode ``code`` (loaded at ``address``) linearly into ``tally``; flagged
    instructions that are privileged or sensitive go into ``sites`` by address."""
    entries, disasm = tally.entries, decoder.disasm
    size = len(code)
    off = 0
    while off < size:
        end = min(size, off + CHUNK)
        base = address + off
        a = s = -1
        for a, s, mnemonic, op_str in disasm(code[off:end], base):
            e = entries.get(mnemonic)
            if e is None:
                e = tally.entry(mnemonic)
            e[0] += 1
            check = e[1]
            if check is not False:  # operand-dependent or sensitive
                if check is None or check(op_str) is not e[2]:
                    rule = tally.closer(mnemonic, op_str)
                    klass = rule.klass
                    if (klass is PRIVILEGED or klass is SENSITIVE) and len(sites) < MAX_SITES:
                        sites[a] = Site(a, section, mnemonic, op_str, rule)
        done = a + s - base if a >= 0 else 0
        tally.bytes += done
        off += done
        if off < end and (end == size or end - off > _MAX_INSN):
            tally.undecodable += 1  # capstone stopped inside the chunk: a bad byte
            off += 1
