"""Why a run ended, and what it produced."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Reason(enum.Enum):
    EXIT = "exit"  # the guest wrote its exit code to the debug-exit port
    HALT = "halt"  # hlt with interrupts disabled and nothing pending
    FAULT = "fault"  # an exception the guest does not handle
    BUDGET = "budget"  # the instruction budget ran out
    TRIPLE_FAULT = "triple-fault"  # a fault while delivering a double fault (a PC resets)


#: exception vectors by mnemonic (Intel SDM Vol. 3A §6.3.1, Table 6-1)
VECTORS = {0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM",
           8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF",
           17: "#AC", 18: "#MC", 19: "#XM"}


@dataclass
class Fault:
    """A guest exception that ended the run: where, which vector, and why."""

    vector: int
    pc: int
    detail: str = ""
    error_code: int | None = None
    address: int | None = None  # the faulting data address (#PF), if known

    @property
    def name(self) -> str:
        return VECTORS.get(self.vector, f"vector {self.vector}")

    def describe(self) -> str:
        s = f"{self.name} at {self.pc:#x}"
        return f"{s}: {self.detail}" if self.detail else s

    def as_dict(self) -> dict:
        return {"vector": self.vector, "name": self.name, "pc": self.pc, "detail": self.detail,
                "error_code": self.error_code, "address": self.address}


@dataclass
class RunResult:
    engine: str
    arch: str
    clock: str
    reason: Reason
    exit_code: int | None
    serial: bytes
    guest_instructions: int | None
    pc: int
    registers: dict[str, int]
    system: dict
    memory_sha256: str
    fault: Fault | None = None
    stats: dict = field(default_factory=dict)
    ram: bytes | None = None  # kept only when asked for (differential tests)

    def as_json(self) -> dict:
        return {
            "engine": self.engine,
            "arch": self.arch,
            "clock": self.clock,
            "reason": self.reason.value,
            "exit_code": self.exit_code,
            "serial": self.serial.decode("latin-1"),
            "guest_instructions": self.guest_instructions,
            "pc": self.pc,
            "fault": self.fault.as_dict() if self.fault else None,
            "registers": self.registers,
            "system": self.system,
            "memory_sha256": self.memory_sha256,
            "stats": self.stats,
        }
