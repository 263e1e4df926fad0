"""The progress bar of a corpus scan (rich, on stderr): files, instructions/s, failures."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    """``update(total=N)`` once, then ``update(record=r)`` per file finished."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.instructions = 0
        self.failures = 0
        self.t0 = time.perf_counter()
        self._bar = RichProgress(
            TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(),
            TextColumn("files  {task.fields[rate]}  {task.fields[failures]} failed"),
            TimeRemainingColumn(), console=Console(stderr=True), disable=not self.enabled)
        self._task = None

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        self._task = self._bar.add_task("scan", total=None, rate="", failures=0)
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def update(self, total: int | None = None, record: dict | None = None) -> None:
        if total is not None:
            self._bar.update(self._task, total=total)
        if record is not None:
            self.instructions += record.get("instructions") or 0
            self.failures += record["status"] == "error"
            rate = self.instructions / max(1e-9, time.perf_counter() - self.t0)
            self._bar.update(self._task, advance=1, rate=f"{rate / 1e6:.2f} M insn/s",
                             failures=self.failures)
