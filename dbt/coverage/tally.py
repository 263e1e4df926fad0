"""Counting decoded instructions by mnemonic, ISA-table class and translation action.

The hot loops (:mod:`dbt.coverage.sweep`, :mod:`dbt.coverage.descent`) count
capstone mnemonics only; the ISA table is asked once per new mnemonic, and per
instruction only for the few mnemonics whose rule depends on the operands
(``mov``, ``push``, ``pop``, ``jmp``, ``call``: :func:`dbt.isa.operand_check`).
Those, and every privileged or sensitive instruction, are *flagged*: their
address is kept as a :class:`Site`, and an operand-chosen rule that differs from
the mnemonic's ordinary one is counted apart, so the per-class totals are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbt.isa import InsnClass, Rule, classify, operand_check

#: sites kept per binary; past this, sites are counted but their addresses dropped
MAX_SITES = 20_000
#: classes whose instructions are kept as sites (hot loops compare by identity: hashing an
#: enum member is a Python-level call)
PRIVILEGED, SENSITIVE = InsnClass.PRIVILEGED, InsnClass.SENSITIVE


@dataclass
class Site:
    """A privileged or sensitive instruction found in a binary."""

    address: int
    section: str
    mnemonic: str
    op_str: str
    rule: Rule
    linear: bool = True  # found by the linear sweep
    reached: bool = False  # found by recursive descent from the entry point and symbols

    def as_json(self) -> dict:
        return {"address": self.address, "section": self.section, "mnemonic": self.mnemonic,
                "op_str": self.op_str, "class": self.rule.klass.value,
                "action": self.rule.action.value, "robin_irvine": self.rule.robin_irvine,
                "linear": self.linear, "reached": self.reached}


class Tally:
    """Instruction counts of one body of code (a binary's linear sweep, or its descent)."""

    def __init__(self) -> None:
        #: mnemonic -> [count, check, ordinary rule]: one dict lookup per instruction.
        #: ``check`` is False for mnemonics the hot loop need not look at, None for
        #: sensitive ones whose rule does not depend on operands, else the ISA table's
        #: operand check; an instruction needs a closer look (:meth:`closer`) when its
        #: check is None or gives another rule than the ordinary one.
        self.entries: dict[str, list] = {}
        #: (mnemonic, rule) -> count, for operand-chosen rules other than the mnemonic's own
        self.special: dict[tuple[str, Rule], int] = {}
        self.bytes = 0  # bytes covered by decoded instructions
        self.undecodable = 0  # bytes skipped because capstone could not decode them

    @property
    def mnemonics(self) -> dict[str, int]:
        return {m: e[0] for m, e in self.entries.items()}

    @property
    def instructions(self) -> int:
        return sum(e[0] for e in self.entries.values())

    def entry(self, mnemonic: str) -> list:
        """The entry of a mnemonic seen for the first time (the ISA table is asked once)."""
        ordinary = base_rule(mnemonic)
        check = operand_check(mnemonic)
        if check is None and not ordinary.sensitive:
            check = False
        e = self.entries[mnemonic] = [0, check, ordinary]
        return e

    def closer(self, mnemonic: str, op_str: str) -> Rule:
        """The rule of an instruction that is sensitive or has unusual operands; an
        operand-chosen rule is counted apart from the mnemonic's own."""
        _n, check, ordinary = self.entries[mnemonic]
        rule = ordinary if check is None else check(op_str)
        if rule is not ordinary:
            key = (mnemonic, rule)
            self.special[key] = self.special.get(key, 0) + 1
        return rule

    def by_rule(self) -> dict[tuple[str, str, str], int]:
        """(mnemonic, class, action) -> count: every instruction exactly once."""
        out: dict[tuple[str, str, str], int] = {}
        for mnemonic, n in self.mnemonics.items():
            r = base_rule(mnemonic)
            out[(mnemonic, r.klass.value, r.action.value)] = n
        for (mnemonic, rule), n in self.special.items():
            base = base_rule(mnemonic)
            out[(mnemonic, base.klass.value, base.action.value)] -= n
            key = (mnemonic, rule.klass.value, rule.action.value)
            out[key] = out.get(key, 0) + n
        return {k: n for k, n in out.items() if n}


_BASE: dict[str, Rule] = {}


def base_rule(mnemonic: str) -> Rule:
    """The rule of a mnemonic with ordinary operands (cached: the table is immutable)."""
    rule = _BASE.get(mnemonic)
    if rule is None:
        rule = _BASE[mnemonic] = classify(mnemonic, "")
    return rule


def summarize(rows: dict[tuple[str, str, str], int]) -> dict[str, dict[str, int]]:
    """Totals per mnemonic, class and action from (mnemonic, class, action) counts."""
    out: dict[str, dict[str, int]] = {"mnemonics": {}, "classes": {}, "actions": {}}
    for (mnemonic, klass, action), n in rows.items():
        for table, key in (("mnemonics", mnemonic), ("classes", klass), ("actions", action)):
            out[table][key] = out[table].get(key, 0) + n
    return out
