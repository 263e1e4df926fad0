"""``dbt translate``: guest blocks beside their translations, without running the guest."""

from __future__ import annotations

from dbt.cache.codecache import HOT_SIZE
from dbt.cache.layout import Layout
from dbt.isa import Action
from dbt.loader import Image
from dbt.monitor.machine import Machine
from dbt.scanner import Decoder, Insn
from dbt.scanner.explore import explore
from dbt.translator.rmw import find as find_rmw
from dbt.translator.templates import Templates
from dbt.translator.trace import Trace
from dbt.translator.translate import Translator


def translate_image(image: Image, exact: bool = True, max_blocks: int = 10_000,
                    ram_size: int = 64 << 20, inline: bool = True) -> list[dict]:
    machine = Machine(image.arch.bits, ram_size, exec_ram=False, memory="default")
    layout = Layout.map(machine)
    decoder = Decoder(image.arch.bits)
    translator = Translator(layout, Templates(layout), decoder, exact, inline)
    at, cold = layout.cache + 16, layout.cache + HOT_SIZE
    rows = []
    for block in explore(image, max_blocks=max_blocks):
        frag = translator.translate(Trace.of(block), at, cold)
        at, cold = (frag.tc_end + 15) & ~15, (frag.cold_end + 15) & ~15
        if at >= layout.cache + HOT_SIZE:
            break
        host = [{"address": a, "bytes": code[a - base:a - base + n].hex(),
                 "text": f"{m} {o}".strip(), "cold": base == frag.cold_tc}
                for base, code in ((frag.start, frag.code), (frag.cold_tc, frag.cold_code))
                for a, n, m, o in decoder.disasm(code, base)]
        rows.append({
            "address": block.pc, "guest_bytes": block.guest_bytes, "host_bytes": len(frag.code),
            "guest": [{"address": i.address, "mnemonic": i.mnemonic, "op_str": i.op_str,
                       "action": action(i, image.arch.bits)} for i in block.insns],
            "host": host,
        })
    return rows


def action(insn: Insn, bits: int) -> str:
    """What the translator does with an instruction: the ISA table's action, except for
    copied instructions that read and write back memory (dbt/translator/rmw.py): "split"
    into moves around their register form, or run "alone" by the monitor."""
    rmw = find_rmw(insn, bits) if insn.rule.action is Action.IDENT else None
    if rmw is None:
        return insn.rule.action.value
    return "split" if rmw.splittable else "alone"
