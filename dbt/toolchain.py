"""Building freestanding C guests with the system gcc (at test and benchmark time).

Guests link at 0x100000 with no libc; ``guests/c/rt.h`` gives them COM1 output
and the debug exit. Builds are cached by a hash of the source, the headers and
the flags, so a test session compiles each guest once.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from dbt.errors import EngineError

CFLAGS = ["-ffreestanding", "-fno-pic", "-no-pie", "-fno-stack-protector", "-nostdlib", "-static",
          "-fno-asynchronous-unwind-tables", "-O2", "-Wall", "-Wl,--build-id=none",
          "-Wl,-Ttext-segment=0x100000", "-Wl,-z,noexecstack"]
ARCH_FLAGS = {"x86_32": ["-m32", "-march=i686"], "x86_64": ["-m64", "-mno-red-zone"]}


def gcc() -> str:
    path = shutil.which("gcc") or shutil.which("cc")
    if not path:
        raise EngineError("no C compiler found: install gcc to build C guests")
    return path


def build_c(source: str | Path, arch: str, cache_dir: str | Path | None = None,
            extra: list[str] | None = None) -> Path:
    """Compile a C guest to an ELF for ``arch`` ("x86_32"/"x86_64"); returns its path."""
    source = Path(source)
    flags = CFLAGS + ARCH_FLAGS[arch] + (extra or [])
    h = hashlib.sha256(source.read_bytes() + " ".join(flags).encode())
    # headers beside it and in sibling directories, and C files it may include
    for dep in sorted([*source.parent.parent.glob("*/*.h"), *source.parent.glob("*.c")]):
        h.update(dep.read_bytes())
    cache = Path(cache_dir or Path(tempfile.gettempdir()) / "dbt-guests")
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{source.stem}-{arch}-{h.hexdigest()[:16]}.elf"
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    p = subprocess.run([gcc(), *flags, "-I", str(source.parent), "-o", str(tmp), str(source)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines() or ["(no output)"]
        first = next((ln for ln in lines if "error" in ln), lines[0])
        raise EngineError(f"{source}: gcc failed: {first}")
    tmp.replace(out)
    return out
