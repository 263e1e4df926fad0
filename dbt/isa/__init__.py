"""The ISA table: what every x86 instruction means to a virtual machine monitor.

The scanner, the interpreter, the translator and the coverage harness all read
this one table (see :mod:`dbt.isa.table`).
"""

from dbt.isa.model import Action, InsnClass, Rule
from dbt.isa.table import RULES, classify, operand_check, rule_for_name

__all__ = ["Action", "InsnClass", "Rule", "RULES", "classify", "operand_check", "rule_for_name"]
