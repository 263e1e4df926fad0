"""Scanner: decode guest basic blocks with capstone and classify them with the ISA table."""

from dbt.scanner.block import MAX_BLOCK_INSNS, Block, StopReason, scan_block
from dbt.scanner.decoder import Decoder, Insn, Mem, Operand

__all__ = ["Block", "Decoder", "Insn", "MAX_BLOCK_INSNS", "Mem", "Operand", "StopReason", "scan_block"]
