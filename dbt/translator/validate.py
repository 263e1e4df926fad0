"""The no-escape validator: re-decode a fragment and prove it is safe to run.

A fragment passes when (1) every host instruction decodes, (2) none is
privileged or sensitive except at the addresses the translator sanctioned
(its own ``int3`` sites and the ``pushf``/``popf`` of the flag templates), and
(3) every direct jump stays inside the code cache, so control can only reach
translated code, the monitor's traps, or the lookup table's targets.
"""

from __future__ import annotations

from dbt.cache.layout import CACHE_SIZE, Layout
from dbt.errors import TranslationError
from dbt.scanner import Decoder
from dbt.scanner.explore import direct_target
from dbt.translator.fragment import Fragment


def validate(frag: Fragment, decoder: Decoder, layout: Layout) -> None:
    _check(frag, frag.start, frag.code, decoder, layout)
    _check(frag, frag.cold_tc, frag.cold_code, decoder, layout)


def _check(frag: Fragment, start: int, code: bytes, decoder: Decoder, layout: Layout) -> None:
    addr, end = start, start + len(code)
    while addr < end:
        window = code[addr - start:addr - start + 15]
        insn = decoder.decode(addr, window)
        if insn is None:
            raise TranslationError(f"validator: undecodable host code at {addr:#x} "
                                   f"(fragment for guest {frag.guest_pc:#x})")
        if insn.rule.sensitive and frag.sanctioned.get(addr) != insn.mnemonic:
            raise TranslationError(f"validator: {insn.mnemonic} {insn.op_str} at {addr:#x} in the "
                                   f"fragment for guest {frag.guest_pc:#x} is not a sanctioned site")
        target = direct_target(insn) if insn.rule.action.value == "branch" else None
        if target is not None and not layout.cache <= target < layout.cache + CACHE_SIZE:
            raise TranslationError(f"validator: jump to {target:#x} at {addr:#x} leaves the "
                                   "code cache")
        addr += insn.size
