"""The monitor's direct calls into libunicorn (dbt/monitor/fastuc.py) must read what the
Python binding reads."""

from __future__ import annotations

import pytest
from unicorn import UC_ARCH_X86, UC_MODE_32, UC_MODE_64, Uc
from unicorn import x86_const as U

from dbt.monitor.fastuc import FastRegs


@pytest.mark.parametrize("mode", [UC_MODE_32, UC_MODE_64], ids=["32", "64"])
def test_descriptor_table_registers_read_as_the_binding_reads_them(mode):
    uc = Uc(UC_ARCH_X86, mode)
    uc.reg_write(U.UC_X86_REG_GDTR, (0, 0xFFFF_8000_1234_5000 if mode == UC_MODE_64
                                     else 0x1234_5000, 0x3FF, 0))
    uc.reg_write(U.UC_X86_REG_IDTR, (0, 0xABCD_E000, 0x7FF, 0))
    fast = FastRegs(uc)
    for reg in (U.UC_X86_REG_GDTR, U.UC_X86_REG_IDTR, U.UC_X86_REG_TR, U.UC_X86_REG_LDTR):
        assert fast.mmr(reg) == tuple(uc.reg_read(reg))
    assert fast.mmr(U.UC_X86_REG_IDTR)[1:3] == (0xABCD_E000, 0x7FF)
