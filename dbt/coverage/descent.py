"""Recursive descent: decode only what control flow reaches from the entry point and symbols.

Where the linear sweep decodes everything in an executable section (jump
tables, literal pools and padding included), descent follows direct branches
and fall-through from known code addresses, so instructions the sweep finds
but descent does not are likely data, or code reached only indirectly. Both
views are reported. Indirect branches are not followed (their targets are
unknown statically); a run of decoding ends at an instruction after which
control does not fall through (:data:`dbt.scanner.explore.NO_FALLTHROUGH`), at
an undecodable byte, or at an address already decoded.
"""

from __future__ import annotations

from dbt.coverage.tally import MAX_SITES, PRIVILEGED, SENSITIVE, Site, Tally, base_rule
from dbt.isa import Action
from dbt.scanner import Decoder
from dbt.scanner.explore import NO_FALLTHROUGH, target_of

#: bytes handed to capstone per run of decoding: capstone decodes them all before the
#: first is looked at, so a path starts with a short run and doubles it as it goes on
FIRST_RUN, MAX_RUN = 64, 4096
#: larger regions are not descended (the map of decoded addresses costs a byte per byte)
MAX_REGION = 256 << 20

_ENDS: dict[str, bool] = {}
_BRANCH: dict[str, bool] = {}


def _ends(mnemonic: str) -> bool:
    v = _ENDS.get(mnemonic)
    if v is None:  # "bnd jmp", "notrack jmp", "repz ret": the name is the last word
        v = _ENDS[mnemonic] = mnemonic.rsplit(" ", 1)[-1] in NO_FALLTHROUGH
    return v


def _branch(mnemonic: str) -> bool:
    v = _BRANCH.get(mnemonic)
    if v is None:
        v = _BRANCH[mnemonic] = base_rule(mnemonic).action is Action.BRANCH
    return v


def descend(decoder: Decoder, code: memoryview, address: int, section: str, roots: list[int],
            tally: Tally, sites: dict[int, Site]) -> bool:
    """Decode what is reachable from ``roots`` (addresses inside the region) into ``tally``;
    mark sites found by the sweep as reached, add those only descent finds. False if
    the region is too large to descend."""
    size = len(code)
    if size > MAX_REGION:
        return False
    seen = bytearray(size)  # 1 at the first byte of each instruction decoded
    todo = [r for r in roots if address <= r < address + size]
    entries, disasm = tally.entries, decoder.disasm
    covered = 0
    while todo:
        pc = todo.pop()
        off = pc - address
        run = FIRST_RUN
        while 0 <= off < size and not seen[off]:
            nxt = -1
            for a, s, mnemonic, op_str in disasm(code[off:off + run], address + off):
                i = a - address
                if seen[i]:
                    nxt = -1
                    break
                seen[i] = 1
                covered += s
                e = entries.get(mnemonic)
                if e is None:
                    e = tally.entry(mnemonic)
                e[0] += 1
                check = e[1]
                if check is not False and (check is None or check(op_str) is not e[2]):
                    rule = tally.closer(mnemonic, op_str)
                    if rule.klass is PRIVILEGED or rule.klass is SENSITIVE:
                        site = sites.get(a)
                        if site is not None:
                            site.reached = True
                        elif len(sites) < MAX_SITES:
                            sites[a] = Site(a, section, mnemonic, op_str, rule, linear=False,
                                            reached=True)
                if _branch(mnemonic):
                    target = target_of(op_str)
                    if target is not None and address <= target < address + size \
                            and not seen[target - address]:
                        todo.append(target)
                if _ends(mnemonic):
                    nxt = -1
                    break
                nxt = i + s
            else:  # the run ended: at the end of the bytes given, or at an undecodable byte
                if nxt >= 0 and nxt - off < run - 15 and nxt < size:
                    nxt = -1  # undecodable: this path ends
                run = min(run * 2, MAX_RUN)
            off = nxt if nxt >= 0 else size
    tally.bytes += covered
    return True
