"""The guest programs of the differential test, with what each must print and how it ends.

Assembly guests carry their expectation in header comments:
``; expect-exit: N``, ``; expect-halt``, ``; expect-fault`` or ``; expect-triple-fault``,
and ``; expect-serial: TEXT`` (with ``\\n``). ``guests/sys`` holds the system guests
(small kernels: IDT, timer, paging), built like the C guests.
``; qemu: WHY`` marks a guest whose ending on QEMU's PC differs from dbt's contract;
``mmu: both`` a C guest with page tables of its own, run under every MMU mode too;
``timed: WHY`` a guest whose final state depends on when timer ticks arrive (in the
free clock only its output and ending are compared), ``exact-clock: WHY`` one whose
self-checks assume the exact clock's virtual time (not run in the free clock).
C guests self-check: they exit with code 0 on success, and they are built for
both architectures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUEST_DIR = ROOT / "guests"


@dataclass(frozen=True)
class Guest:
    name: str
    path: Path
    arch: str | None  # for C guests: the architecture to build for
    reason: str
    exit_code: int | None
    serial: bytes | None
    count_skew: tuple[tuple[str, int], ...] = ()  # (engine, instructions more than interp)
    qemu: str | None = None  # why QEMU's PC differs from dbt's contract here (not compared)
    mmu: bool = False  # turns paging on: also compared across MMU modes (``mmu: both``)
    timed: str | None = None  # why its state depends on time (free clock: only its output)
    exact_clock: str | None = None  # why its self-checks need the exact clock (free: not run)

    def __str__(self) -> str:
        return self.name


def _asm_guest(path: Path) -> Guest:
    text = path.read_text()
    m_exit = re.search(r"^;\s*expect-exit:\s*(\d+)", text, re.M)
    m_serial = re.search(r"^;[ \t]*expect-serial:[ \t]?([^\n]*)$", text, re.M)
    halt = re.search(r"^;\s*expect-halt", text, re.M)
    fault = re.search(r"^;\s*expect-fault", text, re.M)
    triple = re.search(r"^;\s*expect-triple-fault", text, re.M)
    serial = m_serial.group(1).encode().decode("unicode_escape").encode("latin-1") \
        if m_serial else None
    reason = "exit" if m_exit else "halt" if halt else "fault" if fault else \
        "triple-fault" if triple else "exit"
    skew = tuple((m.group(1), int(m.group(2)))
                 for m in re.finditer(r"^;\s*count-skew:\s*(\w+)\s*([+-]\d+)", text, re.M))
    m_qemu = re.search(r"^;\s*qemu:\s*(.*)$", text, re.M)
    return Guest(path.name, path, None, reason, int(m_exit.group(1)) if m_exit else None, serial,
                 skew, m_qemu.group(1) if m_qemu else None,
                 mmu=bool(re.search(r"^;\s*mmu:\s*both", text, re.M)),
                 timed=_tag(text, "timed", ";"), exact_clock=_tag(text, "exact-clock", ";"))


def _c_guest(path: Path, arch: str) -> Guest:
    text = path.read_text()
    m_serial = re.search(r"expect-serial:\s?(.*?)\s*\*/", text)
    serial = m_serial.group(1).encode().decode("unicode_escape").encode("latin-1") \
        if m_serial else None
    m_qemu = re.search(r"^\s*qemu:\s*(.*)$", text, re.M)
    return Guest(f"{path.name}[{arch}]", path, arch, "exit", 0, serial,
                 qemu=m_qemu.group(1) if m_qemu else None,
                 mmu=bool(re.search(r"^\s*mmu:\s*both", text, re.M)),
                 timed=_tag(text, "timed"), exact_clock=_tag(text, "exact-clock"))


def _tag(text: str, key: str, comment: str = "") -> str | None:
    """The text of a ``key: ...`` header line (``; key: ...`` in assembly)."""
    m = re.search(rf"^{re.escape(comment)}\s*{key}:\s*(.*)$", text, re.M)
    return m.group(1) if m else None


def all_guests() -> list[Guest]:
    guests = [_asm_guest(p) for p in sorted((GUEST_DIR / "asm").glob("*.s"))]
    guests += [_asm_guest(p) for p in sorted((GUEST_DIR / "bench").glob("*.s"))]
    guests.append(_asm_guest(ROOT / "examples" / "hello.s"))
    for p in sorted((GUEST_DIR / "c").glob("*.c")) + sorted((GUEST_DIR / "sys").glob("*.c")):
        guests += [_c_guest(p, "x86_32"), _c_guest(p, "x86_64")]
    return guests


def guest_file(guest: Guest, tmp_dir: Path) -> Path:
    """The loadable file of a guest (C guests are compiled, cached across runs)."""
    if guest.arch is None:
        return guest.path
    from dbt.toolchain import build_c

    return build_c(guest.path, guest.arch)
