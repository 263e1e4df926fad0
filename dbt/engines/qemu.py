"""Engine ``qemu``: the guest on QEMU's full-system PC emulator (TCG), an outside reference.

It shares nothing with dbt's monitor, devices or CPU: ``qemu-system-x86_64
-accel tcg`` (Debian package ``qemu-system-x86``) runs the guest on a PC, with
dbt's guest contract (DESIGN §4) mapped onto it:

    COM1 16550          QEMU's own 16550, ``-serial file:...``
    debug exit at 0xF4  ``-device isa-debug-exit,iobase=0xf4,iosize=0x01``: QEMU exits with
                        status (v << 1) | 1
    start state         the boot stub of :mod:`dbt.engines.multiboot`, QEMU's ``-kernel``
                        (Multiboot v1); the guest's bytes by QEMU's generic loader device
    no interrupts       the stub masks both 8259s; one vCPU; ``-nodefaults -display none``
    CPUID               QEMU's ``max`` CPU with dbt's vendor string (GenuineIntel); the other
                        leaves are QEMU's

How each way a run ends is detected:

    exit    QEMU's exit status is odd and it printed nothing on stderr: (status - 1) >> 1
    halt    the vCPU is halted (``HLT=1`` in ``info registers``) with IF=0 after the stub
            set its "started" flag; polled through QMP, first after 2 ms, then at
            intervals doubling up to 50 ms (a halt is seen up to one interval late). A halt
            with IF=1 waits, as on a PC, for an interrupt
    triple-fault  a triple fault: ``-no-reboot`` turns the reset into a shutdown and
            ``-action shutdown=pause`` keeps QEMU alive, so the state can be read
            (``query-status`` says ``shutdown``). Which exception started it is not known
    budget  the instruction budget becomes host time at the free clock's rate
            (``FREE_CLOCK_MIPS`` of :mod:`dbt.monitor.watchdog`), counted from the first
            poll that finds the stub's "started" flag set (so QEMU's start-up and the
            BIOS are not charged to the guest); when it runs out QEMU is stopped (QMP ``stop``)

Reported: serial output, reason and exit code; for halt, fault and budget also
the final general registers, EFLAGS and the pc (``info registers``) and guest
RAM (``pmemsave``). Not reported: an instruction count (TCG keeps none:
``guest_instructions`` is None); registers and RAM after a debug exit (the
device ends the QEMU process at once); the fault's vector; the ``system`` state
is QEMU's (selectors and descriptor tables differ from dbt's, see
:mod:`dbt.engines.multiboot`), and RAM below 1 MiB is the PC's firmware's.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from dbt.devices.debugexit import DEBUG_EXIT_PORT
from dbt.engines import multiboot, register
from dbt.errors import EngineError
from dbt.loader import Image
from dbt.monitor.exits import Reason, RunResult
from dbt.monitor.monitor import RunConfig
from dbt.monitor.watchdog import FREE_CLOCK_MIPS

QEMU = "qemu-system-x86_64"
PACKAGE = "qemu-system-x86"
POLL_FIRST, POLL_MAX = 0.002, 0.05  # seconds between QMP polls: the first, and the longest
CONNECT_TIMEOUT = 30.0  # seconds for QEMU to open its QMP socket
BOOT_TIMEOUT = 60.0  # seconds for the firmware and the boot stub to reach the guest
FLAG_IF = 1 << 9
_REG = re.compile(r"\b([A-Z][A-Z0-9]*)\s*=\s*([0-9a-f]+)\b")
_TABLE = re.compile(r"^(GDT|IDT)=\s*([0-9a-f]+) ([0-9a-f]+)", re.M)
_SEGS = ("cs", "ds", "es", "fs", "gs", "ss")


def find_qemu() -> str:
    """The path of qemu-system-x86_64, or EngineError naming the package to install."""
    path = shutil.which(QEMU)
    if not path:
        raise EngineError(f"{QEMU} not found: install the Debian package {PACKAGE} "
                          f"(apt-get install {PACKAGE})")
    return path


def qemu_version(path: str | None = None) -> str:
    """QEMU's version ("7.2.22"), from ``--version``."""
    out = subprocess.run([path or find_qemu(), "--version"], capture_output=True, text=True,
                         check=False).stdout
    m = re.search(r"version (\S+)", out)
    if not m:
        raise EngineError(f"{QEMU} --version printed no version")
    return m.group(1)


def command(qemu: str, tmp: Path, boot: multiboot.BootImage, ram_size: int) -> list[str]:
    """The QEMU command line for a boot image written to ``tmp`` (see :func:`_write`)."""
    cmd = [qemu, "-accel", "tcg", "-machine", "pc", "-cpu", "max,vendor=GenuineIntel", "-smp", "1",
           "-m", f"{ram_size >> 10}K", "-display", "none", "-nodefaults", "-no-reboot",
           "-action", "shutdown=pause", "-S", "-qmp", f"unix:{tmp / 'qmp'},server=on,wait=off",
           "-serial", f"file:{tmp / 'serial'}",
           "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x01",
           "-kernel", str(tmp / "stub.bin")]
    for i, (addr, _) in enumerate(boot.blobs):
        cmd += ["-device", f"loader,file={tmp / f'blob{i}.bin'},addr={addr:#x},force-raw=on"]
    return cmd


@register
class Qemu:
    name = "qemu"
    #: no instruction count, no system state; RAM from 1 MiB up (and registers and RAM
    #: only when QEMU is still there at the end: not after a debug exit)
    reports = frozenset({"serial", "reason", "exit_code", "registers", "high_memory"})
    monitor = False  # runs outside dbt: constructed with the image, not a Monitor
    clocks = ("free",)  # TCG without -icount: no exact instruction count, host time

    @staticmethod
    def unavailable() -> str | None:
        try:
            find_qemu()
        except EngineError as e:
            return str(e)
        return None

    def __init__(self, image: Image, config: RunConfig, ram_size: int):
        self.image, self.config, self.ram_size = image, config, ram_size
        self.qemu = find_qemu()
        self.polls = 0

    def run(self) -> RunResult:
        boot = multiboot.build(self.image, self.ram_size)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dbt-qemu-") as tmp_name:
            tmp = Path(tmp_name)
            _write(tmp, boot)
            with open(tmp / "stderr", "wb+") as err:
                proc = subprocess.Popen(command(self.qemu, tmp, boot, self.ram_size),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err)
                qmp = None
                try:
                    qmp = _connect(proc, tmp / "qmp", err)
                    seconds = self.config.max_insns / FREE_CLOCK_MIPS / 1e6
                    t_run = time.perf_counter()
                    qmp.cmd("cont")
                    reason, status = self._watch(proc, qmp, boot.started, seconds)
                    run_seconds = time.perf_counter() - t_run
                    state = None
                    if status is None:  # QEMU is still there: read the final state
                        state = _final_state(qmp, tmp / "ram", self.ram_size)
                finally:
                    _close(proc, qmp)
                if status is not None:
                    exit_code = _exit_code(status, err)
            serial = (tmp / "serial").read_bytes() if (tmp / "serial").exists() else b""
        stats = {"qemu": qemu_version(self.qemu), "polls": self.polls,
                 "seconds": round(time.perf_counter() - t0, 6),
                 "run_seconds": round(run_seconds, 6)}
        return self._result(reason, exit_code if status is not None else None, serial, state,
                            stats)

    def _watch(self, proc: subprocess.Popen, qmp, started: int,
               seconds: float) -> tuple[Reason, int | None]:
        """Wait for the run to end: (reason, QEMU's exit status if it exited). The budget's
        time counts from the first poll that finds the stub's "started" flag set."""
        from qemu.qmp import QMPError

        delay, deadline = POLL_FIRST, None
        boot_deadline = time.perf_counter() + BOOT_TIMEOUT
        while True:
            try:  # an exit ends the wait at once (a sleep would add up to a poll's delay)
                return Reason.EXIT, proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
            delay = min(delay * 2, POLL_MAX)
            self.polls += 1
            try:
                if qmp.cmd("query-status")["status"] == "shutdown":
                    return Reason.TRIPLE_FAULT, None
                if deadline is None and _read_u32(qmp, started) == 1:
                    deadline = time.perf_counter() + seconds
                if deadline is not None:
                    regs = _registers(qmp)
                    if regs.get("HLT") == 1 and not _eflags(regs) & FLAG_IF:
                        return Reason.HALT, None
            except (QMPError, OSError, EOFError):
                pass  # QEMU went away between two questions: its exit status says why
            status = proc.poll()
            if status is not None:
                return Reason.EXIT, status
            now = time.perf_counter()
            if deadline is None and now > boot_deadline:
                raise EngineError(f"{QEMU} did not reach the guest in {BOOT_TIMEOUT:.0f} s "
                                  f"(the firmware or the boot stub hangs)")
            if deadline is not None and now > deadline:
                qmp.cmd("stop")
                return Reason.BUDGET, None

    def _result(self, reason: Reason, exit_code: int | None, serial: bytes,
                state: tuple[dict, bytes] | None, stats: dict) -> RunResult:
        bits = self.image.arch.bits
        regs, ram = state if state else ({}, None)
        registers, system, pc = _guest_registers(regs, bits) if regs else ({}, {}, 0)
        keep = ram if self.config.keep_ram else None
        return RunResult(
            engine=self.name, arch=self.image.arch.value, clock="free", reason=reason,
            exit_code=exit_code, serial=serial, guest_instructions=None, pc=pc,
            registers=registers, system=system,
            memory_sha256=hashlib.sha256(ram).hexdigest() if ram is not None else "",
            stats=stats, ram=keep)


def _write(tmp: Path, boot: multiboot.BootImage) -> None:
    (tmp / "stub.bin").write_bytes(boot.stub)
    for i, (_, data) in enumerate(boot.blobs):
        (tmp / f"blob{i}.bin").write_bytes(data)


def _first_error(err) -> str:
    err.seek(0)
    lines = err.read().decode(errors="replace").strip().splitlines()
    return lines[0] if lines else ""


def _connect(proc: subprocess.Popen, sock: Path, err):
    """A QMP connection to a QEMU that has just started (paused, ``-S``)."""
    from qemu.qmp import QMPError
    from qemu.qmp.legacy import QEMUMonitorProtocol

    deadline = time.perf_counter() + CONNECT_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise EngineError(f"{QEMU} refused the guest: "
                              f"{_first_error(err) or f'exit status {proc.returncode}'}")
        if sock.exists():
            qmp = QEMUMonitorProtocol(str(sock))
            try:
                qmp.connect()
                return qmp
            except (QMPError, OSError):
                qmp.close()
        if time.perf_counter() > deadline:
            raise EngineError(f"{QEMU} did not open its monitor socket in {CONNECT_TIMEOUT:.0f} s")
        time.sleep(0.002)


def _close(proc: subprocess.Popen, qmp) -> None:
    """End QEMU (if it still runs) and the connection."""
    from qemu.qmp import QMPError

    if qmp is not None:
        try:
            if proc.poll() is None:
                qmp.cmd("quit")
            qmp.close()
        except (QMPError, OSError, EOFError):
            pass  # QEMU closed the socket first (it exited): nothing is lost
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _exit_code(status: int, err) -> int:
    """The guest's exit code from QEMU's exit status, or EngineError if QEMU failed."""
    first = _first_error(err)
    if status > 0 and status & 1 and not first:
        return status >> 1
    if status < 0:
        raise EngineError(f"{QEMU} was killed by signal {-status}"
                          + (f": {first}" if first else ""))
    raise EngineError(f"{QEMU} failed (exit status {status}): {first or 'no message'}")


def _hmp(qmp, line: str) -> str:
    return qmp.cmd("human-monitor-command", **{"command-line": line})


def _registers(qmp) -> dict[str, int]:
    """``info registers`` as {NAME: value}, plus "GDT"/"IDT" as (base, limit)."""
    text = _hmp(qmp, "info registers")
    regs: dict = {}
    for name, value in _REG.findall(text):
        regs.setdefault(name, int(value, 16))
    for name, base, limit in _TABLE.findall(text):
        regs[name] = (int(base, 16), int(limit, 16))
    return regs


def _eflags(regs: dict) -> int:
    return regs.get("RFL", regs.get("EFL", 0))


def _read_u32(qmp, addr: int) -> int:
    text = _hmp(qmp, f"xp /1wx {addr:#x}")
    return int(text.split(":")[1].split()[0], 16)


def _final_state(qmp, path: Path, ram_size: int) -> tuple[dict, bytes]:
    """The stopped vCPU's registers and guest RAM."""
    qmp.cmd("stop")
    regs = _registers(qmp)
    qmp.cmd("pmemsave", val=0, size=ram_size, filename=str(path))
    return regs, path.read_bytes()


def _guest_registers(regs: dict, bits: int) -> tuple[dict[str, int], dict, int]:
    """dbt's ``registers`` and ``system`` from QEMU's names, and the pc."""
    from dbt.monitor.monitor import REGS32, REGS64

    names = REGS64 if bits == 64 else REGS32
    registers = {n: regs.get(n.upper(), 0) for n in names}
    pc = regs.get("RIP" if bits == 64 else "EIP", 0)
    registers["rip" if bits == 64 else "eip"] = pc
    registers["rflags" if bits == 64 else "eflags"] = _eflags(regs)
    system = {k.lower(): regs.get(k, 0) for k in ("CR0", "CR2", "CR3", "CR4", "EFER")}
    system.update({s: regs.get(s.upper(), 0) for s in _SEGS})
    for table in ("GDT", "IDT"):
        base, limit = regs.get(table, (0, 0))
        system[table.lower() + "r"] = {"base": base, "limit": limit}
    return registers, system, pc

