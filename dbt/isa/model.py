"""Types of the ISA table: instruction classes, translation actions, rules.

Terms follow Popek & Goldberg, "Formal Requirements for Virtualizable Third
Generation Architectures", CACM 17(7), 1974: an instruction is *privileged* if it
traps when executed outside the most privileged mode, *sensitive* if it reads or
changes the machine's configuration or behaves differently depending on it.
Robin & Irvine, "Analysis of the Intel Pentium's Ability to Support a Secure
Virtual Machine Monitor", USENIX Security 2000, list the x86 instructions that are
sensitive but not privileged and so break classical trap-and-emulate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class InsnClass(enum.Enum):
    """What an instruction is to a VMM (Popek & Goldberg 1974)."""

    PRIVILEGED = "privileged"  # traps when the guest kernel runs deprivileged
    SENSITIVE = "sensitive"  # sees or changes machine state, yet does not trap
    CONTROL = "control"  # a near control transfer: harmless, but moves the pc
    INNOCUOUS = "innocuous"  # neither: safe to run unmodified


class Action(enum.Enum):
    """What the binary translator does with an instruction."""

    IDENT = "ident"  # copied byte for byte
    INLINE = "inline"  # replaced by a safe inline sequence on the virtual CPU
    CALLOUT = "callout"  # replaced by a trap into the monitor's handler
    BRANCH = "branch"  # a near control transfer, rewritten to stay in the code cache
    UNSUPPORTED = "unsupported"  # the monitor has no emulation: raises #UD in the guest


@dataclass(frozen=True)
class Rule:
    """One row of the ISA table."""

    klass: InsnClass
    action: Action
    reason: str
    ref: str
    #: one of Robin & Irvine's sensitive-but-unprivileged instructions
    robin_irvine: bool = False

    @property
    def sensitive(self) -> bool:
        """True when the instruction cannot run unmodified under a VMM."""
        return self.klass in (InsnClass.PRIVILEGED, InsnClass.SENSITIVE)
