"""Engines: the ways dbt runs a guest. Each registers here under its CLI name.

    interp   decode-and-dispatch: the monitor fetches, decodes and dispatches every instruction
    hw       trap-and-emulate: the guest runs unmodified; the monitor sees only exits
    bt       scan-and-patch binary translation into a code cache
    qemu     QEMU's full-system PC emulator (TCG): an outside reference sharing nothing with dbt

An engine is a class constructed with a :class:`~dbt.monitor.Monitor` whose
``run()`` returns a :class:`~dbt.monitor.exits.RunResult`; an engine that runs
outside dbt (``monitor = False``) is constructed with the image, the run's
configuration and the RAM size instead. New engines join the CLI and the
differential test by registering, nothing else.

An engine lists the MMU modes it can run with (``mmus``, its default first; see
:mod:`dbt.monitor.memory`) and why not the others (``mmu_note``).

Each engine says what its results carry (``reports``, a subset of
:data:`REPORTS`); the differential test compares what both engines report.
"""

from __future__ import annotations

from collections.abc import Callable

from dbt.errors import UsageError
from dbt.loader import DEFAULT_RAM_SIZE, Image
from dbt.monitor.exits import RunResult
from dbt.monitor.monitor import Monitor, RunConfig

ENGINES: dict[str, type] = {}

#: what a run result can carry for comparison: "memory" is all guest RAM, "high_memory"
#: guest RAM from HIGH_MEMORY up (a PC's firmware owns the RAM below 1 MiB)
REPORTS = frozenset({"serial", "reason", "exit_code", "fault", "guest_instructions",
                     "registers", "system", "memory", "high_memory"})
HIGH_MEMORY = 0x100000


def register(cls: type) -> type:
    ENGINES[cls.name] = cls
    return cls


def engine_names(outside: bool = True) -> list[str]:
    """Registered engines; ``outside=False`` leaves out those that run outside dbt (qemu)."""
    _load_all()
    return [name for name, cls in ENGINES.items() if outside or cls.monitor]


def reports(engine: str) -> frozenset[str]:
    """What the results of ``engine`` carry that can be compared with another engine's."""
    _load_all()
    return ENGINES[engine].reports


def unavailable(engine: str) -> str | None:
    """Why ``engine`` cannot run on this machine (one line), or None if it can."""
    _load_all()
    cls = ENGINES[engine]
    return None if cls.monitor else cls.unavailable()


def clocks(engine: str) -> tuple[str, ...]:
    """The clock modes ``engine`` can run in (DESIGN §3); an outside engine may lack ``exact``."""
    _load_all()
    return getattr(ENGINES[engine], "clocks", ("exact", "free"))


def run_guest(image: Image, engine: str = "interp", config: RunConfig | None = None,
              ram_size: int = DEFAULT_RAM_SIZE,
              setup: Callable[[Monitor], None] | None = None) -> RunResult:
    """Run a loaded guest under one engine and return what it did."""
    _load_all()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    cls = ENGINES[engine]
    if not cls.monitor:
        if setup:
            raise UsageError(f"engine {engine} runs outside dbt: it cannot be set up through "
                             f"a monitor")
        return cls(image, config or RunConfig(), ram_size).run()
    config = config or RunConfig()
    mmu = config.mmu or cls.mmus[0]
    if mmu not in cls.mmus:
        raise UsageError(f"engine {engine} cannot run with --mmu {mmu}: {cls.mmu_note}")
    mon = Monitor(image, engine, config, ram_size, exec_ram=cls.exec_ram,
                  owns_cpu=cls.owns_cpu, mmu=mmu)
    if setup:
        setup(mon)
    try:
        return cls(mon).run()
    finally:
        if mon.kick is not None:  # (the engine may have ended by raising)
            mon.kick.close()


def _load_all() -> None:
    from dbt.engines import bt, hw, interp, qemu  # noqa: F401  (importing registers them)
