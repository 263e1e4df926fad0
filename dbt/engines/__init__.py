"""Engines: the ways dbt runs a guest. Each registers here under its CLI name.

    interp   decode-and-dispatch: the monitor fetches, decodes and dispatches every instruction
    hw       trap-and-emulate: the guest runs unmodified; the monitor sees only exits

An engine is a class constructed with a :class:`~dbt.monitor.Monitor` whose
``run()`` returns a :class:`~dbt.monitor.exits.RunResult`. New engines join the
CLI and the differential test by registering, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from dbt.errors import UsageError
from dbt.loader import DEFAULT_RAM_SIZE, Image
from dbt.monitor.exits import RunResult
from dbt.monitor.monitor import Monitor, RunConfig

ENGINES: dict[str, type] = {}


def register(cls: type) -> type:
    ENGINES[cls.name] = cls
    return cls


def engine_names() -> list[str]:
    _load_all()
    return list(ENGINES)


def run_guest(image: Image, engine: str = "interp", config: RunConfig | None = None,
              ram_size: int = DEFAULT_RAM_SIZE,
              setup: Callable[[Monitor], None] | None = None) -> RunResult:
    """Run a loaded guest under one engine and return what it did."""
    _load_all()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    cls = ENGINES[engine]
    mon = Monitor(image, engine, config or RunConfig(), ram_size, exec_ram=cls.exec_ram,
                  owns_cpu=cls.owns_cpu)
    if setup:
        setup(mon)
    return cls(mon).run()


def _load_all() -> None:
    from dbt.engines import bt, hw, interp  # noqa: F401  (importing registers them)
