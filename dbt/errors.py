"""The one exception hierarchy of dbt.

    DbtError                  anything dbt reports to the user as a one-line error
    ├── UsageError            a bad command-line value (e.g. --max-insns abc)
    ├── LoadError             a guest file that cannot be loaded (names the file, and why)
    │   └── AssembleError     assembly text keystone rejects (names the line)
    ├── ScanError             bytes the scanner cannot turn into a block
    ├── TranslationError      a block the translator cannot translate
    │   └── CacheFull         the code cache has no room (the monitor flushes and retries)
    ├── EngineError           an engine cannot run here (missing tool, unsupported set-up)
    └── CorpusFileError       a file of a coverage corpus that cannot be scanned (recorded, not fatal)

A fault *of the guest* (#UD, #PF, a triple fault…) is not an exception: it is data
about the guest, reported as a run result with reason ``fault``.
"""

from __future__ import annotations


class DbtError(Exception):
    """Base class: the message is one line, fit to print after ``dbt: error:``."""


class UsageError(DbtError):
    """A command-line value is malformed or out of range."""


class LoadError(DbtError):
    """A guest file cannot be loaded; the message names the file and what is wrong."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


class AssembleError(LoadError):
    """Assembly source that keystone rejects; the message names the line."""


class ScanError(DbtError):
    """The scanner was asked for something it cannot decode (not a guest fault)."""


class TranslationError(DbtError):
    """The translator cannot produce code for a block."""


class CacheFull(TranslationError):
    """The code cache has no room left for a fragment."""


class EngineError(DbtError):
    """An engine cannot run here or with these settings."""


class CorpusFileError(DbtError):
    """A file of a coverage corpus cannot be scanned: ``dbt coverage`` records the reason
    with the file (``status`` is "skipped" for files that are not x86 binaries, "error"
    for damaged ones) and goes on with the next file."""

    def __init__(self, path: str, why: str, status: str = "error"):
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why
        self.status = status
