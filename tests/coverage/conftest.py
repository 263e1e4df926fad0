import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "loader"))  # loader_files.py (make_pe)

#: a program with known privileged and sensitive instructions, and bytes after a ret that
#: no symbol points at (a vmmcall the linear sweep decodes and descent never reaches)
SAMPLE_C = r"""
void get_gdt(void *p) { __asm__ volatile("sgdt %0" : "=m"(*(char (*)[10])p)); }
unsigned long get_flags(void) { unsigned long x; __asm__ volatile("pushf; pop %0" : "=r"(x));
                                return x; }
void stop(void) { __asm__ volatile("cli; hlt"); }
unsigned short get_cs(void) { unsigned short x; __asm__ volatile("mov %%cs, %0" : "=r"(x));
                              return x; }
void hypercall(void) { __asm__ volatile("vmcall"); }
__asm__(".text\n.globl tail\n.type tail, @function\ntail: ret\n.byte 0x0f, 0x01, 0xd9\n");
void _start(void) { get_flags(); stop(); }
"""

FLAGS = ["-nostdlib", "-ffreestanding", "-fno-stack-protector", "-O1",
         "-fno-asynchronous-unwind-tables"]


def _gcc(src: Path, out: Path, *extra: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    subprocess.run(["gcc", *FLAGS, *extra, "-o", str(out), str(src)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict[str, Path]:
    """The sample program as a 64-bit executable, a 64-bit shared object, a 64-bit
    relocatable object (what a kernel module is) and a 32-bit executable."""
    d = tmp_path_factory.mktemp("samples")
    src = d / "sample.c"
    src.write_text(SAMPLE_C)
    return {
        "exe64": _gcc(src, d / "sample64", "-static", "-no-pie"),
        "so64": _gcc(src, d / "sample64.so", "-shared", "-fPIC"),
        "obj64": _gcc(src, d / "sample64.o", "-c"),
        "exe32": _gcc(src, d / "sample32", "-m32", "-static", "-no-pie"),
    }
