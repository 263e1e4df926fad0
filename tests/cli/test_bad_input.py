"""The ``dbt`` command-line contract (README "Using it", dbt/cli.py).

Bad input of any kind gets one line on stderr, ``dbt: error: ...``, naming the file
(and the line or address where there is one), exit status 2, and never a Python
traceback. The good paths print what the README promises, with the documented exit
status (guest exit code, 0 on halt, 124 budget, 125 fault).

Every case runs ``python -m dbt`` as a subprocess, as a user would. A process costs
~0.8 s (mostly imports), so the module starts them all at once, side by side, and each
test checks its own (``CASES`` names them). Where a good path must hold under every
engine, the other engines also run through ``dbt.cli.main`` in this process: the same
code from argument parsing to the JSON, without the start-up cost.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello.s"
ENGINES = ["interp", "hw", "bt"]
SMALL_RAM = ("--ram", "4")  # good paths: hashing 64 MiB of RAM costs more than the run


# --- guest files ------------------------------------------------------------------------------

TINY_C = "void _start(void) { __asm__ volatile(\"hlt\"); for (;;) ; }\n"


def build_tiny_elf(out: Path, bits: int) -> Path | None:
    """A static freestanding ELF at 0x100000 built by gcc; None if gcc cannot."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    src = out.with_suffix(".c")
    src.write_text(TINY_C)
    p = subprocess.run([gcc, f"-m{bits}", "-nostdlib", "-static", "-ffreestanding", "-fno-pic",
                        "-no-pie", "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none",
                        "-Wl,-Ttext-segment=0x100000", "-o", str(out), str(src)],
                       capture_output=True)
    return out if p.returncode == 0 else None


def elf_header(machine: int, elfclass: int) -> bytes:
    """A minimal little-endian ET_EXEC ELF (header and one PT_LOAD) for ``machine``."""
    ident = b"\x7fELF" + bytes([elfclass, 1, 1, 0]) + bytes(8)
    if elfclass == 1:
        return ident + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0x100000, 52, 0, 0,
                                   52, 32, 1, 40, 0, 0) + \
            struct.pack("<IIIIIIII", 1, 0, 0x100000, 0x100000, 84, 84, 5, 0x1000)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x100000, 64, 0, 0,
                               64, 56, 1, 64, 0, 0) + \
        struct.pack("<IIQQQQQQ", 1, 5, 0, 0x100000, 0x100000, 120, 120, 0x1000)


def pe_file(machine: int, raw_size: int) -> bytes:
    """DOS header (e_lfanew 0x40) + PE signature + COFF header + PE32 optional header + one
    section whose raw data is ``raw_size`` bytes at file offset 0x200; the file holds 0x10."""
    dos = bytearray(0x40)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)
    opt = struct.pack("<HBBIIIIII", 0x10B, 1, 0, 0x200, 0, 0, 0x1000, 0x1000, 0x1000)
    opt += struct.pack("<IIIHHHHHHIIIIHHIIIIII", 0x400000, 0x1000, 0x200, 4, 0, 0, 0, 4, 0, 0,
                       0x2000, 0x200, 0, 1, 0, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    opt += bytes(16 * 8)  # data directories
    coff = struct.pack("<HHIIIHH", machine, 1, 0, 0, 0, len(opt), 0x102)
    section = struct.pack("<8sIIIIIIHHI", b".text", 0x1000, 0x1000, raw_size, 0x200, 0, 0, 0, 0,
                          0x60000020)
    head = bytes(dos) + b"PE\0\0" + coff + opt + section
    return head.ljust(0x200, b"\0") + b"\xf4" * 0x10


def _write(name: str, data: bytes | str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        path = d / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        return path
    return make


def _cut_elf(name: str, cut: Callable[[bytes], bytes]) -> Callable[[Path], Path | None]:
    def make(d: Path) -> Path | None:
        elf = build_tiny_elf(d / f"{name}.full", 64)
        if elf is None:
            return None
        path = d / name
        path.write_bytes(cut(elf.read_bytes()))
        return path
    return make


def _elf32(d: Path) -> Path | None:
    return build_tiny_elf(d / "tiny32", 32)


# --- the cases --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One ``dbt`` invocation: ``make`` writes its input (None: no input); ``{}`` in argv is
    the input's path."""

    make: Callable[[Path], Path | None] | None
    argv: tuple[str, ...]


BAD_INPUT = {
    "missing file": Case(lambda d: d / "no-such-guest.bin", ("run", "{}")),
    "directory": Case(lambda d: d, ("run", "{}")),
    "empty file": Case(_write("empty.bin", b""), ("run", "{}")),
    "ELF cut to 10 bytes": Case(_cut_elf("cut10.elf", lambda b: b[:10]), ("run", "{}")),
    "ELF cut in half": Case(_cut_elf("half.elf", lambda b: b[:len(b) // 2]), ("run", "{}")),
    "corrupt ELF header": Case(
        _write("garbage.elf", b"\x7fELF" + bytes((i * 37 + 11) % 256 for i in range(60))),
        ("run", "{}")),
    "ELF for ARM": Case(_write("arm.elf", elf_header(40, 1)), ("run", "{}")),
    "ELF for RISC-V": Case(_write("riscv.elf", elf_header(243, 2)), ("run", "{}")),
    "PE section past the end": Case(_write("past.exe", pe_file(0x14C, raw_size=0x1000)),
                                    ("run", "{}")),
    "PE for ARM64": Case(_write("arm64.exe", pe_file(0xAA64, raw_size=0x10)), ("run", "{}")),
    "assembly syntax error": Case(
        _write("bad.s", "bits 32\n        nop\n; a comment\n        frobnicate eax, ebx\n"
                        "        hlt\n"), ("run", "{}")),
    "image larger than RAM": Case(_write("big.bin", b"\x90" * (2 << 20)),
                                  ("run", "--ram", "1", "{}")),
    "--arch x86_64 on a 32-bit ELF": Case(_elf32, ("run", "--arch", "x86_64", "{}")),
    "--arch x86_64 on bits 32 source": Case(_write("mode.s", "bits 32\nhlt\n"),
                                            ("run", "--arch", "x86_64", "{}")),
    "scan: missing file": Case(lambda d: d / "nothing.bin", ("scan", "{}")),
    "translate: missing file": Case(lambda d: d / "nothing.bin", ("translate", "--json", "{}")),
}

#: what the single error line must say besides the file name
MUST_SAY = {
    "ELF cut to 10 bytes": ("truncated", "corrupt"),  # not "an ELF for no machine"
    "ELF cut in half": ("truncated", "corrupt", "past the end"),
    "ELF for ARM": ("ARM",),
    "ELF for RISC-V": ("RISC",),
    "PE for ARM64": ("ARM64", "AARCH64"),
    "assembly syntax error": ("line 4",),
}

OPTION_ERRORS = {
    "--max-insns abc": Case(None, ("run", "--max-insns", "abc", str(HELLO))),
    "--max-insns -5": Case(None, ("run", "--max-insns", "-5", str(HELLO))),
    "--max-insns 0": Case(None, ("run", "--max-insns", "0", str(HELLO))),
    "--ram 0": Case(None, ("run", "--ram", "0", str(HELLO))),
    "--engine kvm": Case(None, ("run", "--engine", "kvm", str(HELLO))),
}

GOOD = {
    **{f"hello {e}": Case(None, ("run", "--engine", e, str(HELLO))) for e in ENGINES},
    "json": Case(
        _write("bytes.s", "bits 32\nmov dx, 0x3f8\nmov al, 0xe9\nout dx, al\nmov al, 0xff\n"
                          "out dx, al\nmov al, 0\nout dx, al\nmov al, 42\nout 0xf4, al\nhlt\n"),
        ("run", "--json", "--engine", "bt", *SMALL_RAM, "{}")),
    "budget": Case(_write("loop.s", "l: jmp l\n"),
                   ("run", "--engine", "bt", *SMALL_RAM, "--max-insns", "1000", "{}")),
    "ud2": Case(_write("ud2.bin", b"\x0f\x0b"), ("run", "--engine", "bt", *SMALL_RAM, "{}")),
    "ff ff": Case(_write("ffff.bin", b"\xff\xff"), ("run", "--engine", "hw", *SMALL_RAM, "{}")),
    "wild jump": Case(_write("wild.s", "bits 32\nmov eax, 0x7000000\njmp eax\n"),
                      ("run", "--engine", "bt", *SMALL_RAM, "{}")),
    "scan --json": Case(None, ("scan", "--json", str(HELLO))),
    "translate --json": Case(None, ("translate", "--json", str(HELLO))),
}


def dbt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "dbt", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=timeout)


@dataclass
class Ran:
    path: Path | None
    proc: subprocess.CompletedProcess | None  # None: the input could not be built

    @property
    def stderr(self) -> str:
        return self.proc.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict[str, Ran]:
    """Every case of this module, run once, side by side."""
    cases = {**BAD_INPUT, **OPTION_ERRORS, **GOOD}
    jobs = {}
    for name, case in cases.items():
        d = tmp_path_factory.mktemp("case")
        path = case.make(d) if case.make else None
        if case.make and path is None:
            jobs[name] = (None, None)
            continue
        jobs[name] = (path, tuple(a.replace("{}", str(path)) for a in case.argv))
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        futures = {name: pool.submit(dbt, *argv) for name, (_, argv) in jobs.items() if argv}
        return {name: Ran(path, futures[name].result() if name in futures else None)
                for name, (path, _) in jobs.items()}


def get(ran: dict[str, Ran], name: str) -> Ran:
    r = ran[name]
    if r.proc is None:
        pytest.skip(f"{name}: gcc cannot build the input here")
    return r


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_one_error_line_naming_the_file(ran, name):
    """A bad guest file (missing, a directory, empty, truncated, corrupt, for another CPU,
    too big) or a contradictory --arch must be refused with one ``dbt: error:`` line that
    names the file, exit status 2, and no traceback - never a crash or a run of garbage."""
    r = get(ran, name)
    err = r.stderr
    assert "Traceback" not in err, err
    assert r.proc.returncode == 2, (r.proc.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dbt: error: "), err
    assert str(r.path) in lines[0], (str(r.path), lines[0])
    assert r.proc.stdout == b""
    if name in MUST_SAY:
        said = lines[0].upper().replace("-", "")
        assert any(w.upper().replace("-", "") in said for w in MUST_SAY[name]), lines[0]


@pytest.mark.parametrize("name", list(OPTION_ERRORS))
def test_bad_option_is_a_usage_error(ran, name):
    """A budget that is not a positive count, a RAM size out of range, an unknown engine:
    argparse's usage error, exit 2, no traceback (and never a run without a budget)."""
    r = ran[name]
    err = r.stderr
    assert "Traceback" not in err, err
    assert r.proc.returncode == 2, (r.proc.returncode, err)
    last = err.strip().splitlines()[-1]
    assert "error:" in last and name.split()[0] in last, last
    assert r.proc.stdout == b""


def test_uncut_elf_loads(tmp_path):
    """The ELF the truncation cases cut is a good guest: what they see is the cut."""
    from dbt.loader import load

    elf = build_tiny_elf(tmp_path / "tiny64", 64)
    if elf is None:
        pytest.skip("gcc cannot build the input here")
    image = load(str(elf))
    assert image.format == "ELF" and image.arch.value == "x86_64"


def test_pe_that_fits_loads(tmp_path):
    """The hand-built PE with its section inside the file loads: the refusal of the
    'section past the end' case is about the section, not the builder."""
    from dbt.loader import load

    path = tmp_path / "ok.exe"
    path.write_bytes(pe_file(0x14C, raw_size=0x10))
    image = load(str(path))
    assert image.format == "PE" and image.arch.value == "x86_32"
    assert image.entry == 0x401000


# --- good paths -------------------------------------------------------------------------------

def parse_json(text: str | bytes) -> dict:
    """The output must be exactly one JSON object."""
    text = (text.decode() if isinstance(text, bytes) else text).strip()
    doc, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", "more than one JSON value on stdout"
    assert isinstance(doc, dict)
    return doc


def cli_json(capsys, *argv) -> tuple[int, dict]:
    """``dbt run --json ARGV`` through dbt.cli.main in this process: (status, object)."""
    from dbt.cli import main

    status = main(["run", "--json", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, parse_json(out)


def every_engine(capsys, *argv) -> dict[str, tuple[int, dict]]:
    return {e: cli_json(capsys, "--engine", e, *SMALL_RAM, *argv) for e in ENGINES}


def assert_one_stderr_line(r: Ran, *must_contain: str) -> None:
    err = r.stderr
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for s in must_contain:
        assert s in err, (s, err)


@pytest.mark.parametrize("engine", ENGINES)
def test_hello_prints_exactly_its_line(ran, engine):
    """stdout is the guest's serial output byte for byte: nothing added, nothing lost;
    exit status 0 (the guest wrote 0 to the debug-exit port); nothing on stderr."""
    p = ran[f"hello {engine}"].proc
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"Hello from the guest\n"
    assert p.stderr == b""


def test_json_is_one_object_with_the_documented_keys(ran):
    """Scripts read --json: one object with the README's keys; every byte of serial output
    survives (Latin-1: 0x80-0xff and NUL included); the guest's debug-exit code is dbt's
    exit status."""
    p = ran["json"].proc
    assert "Traceback" not in p.stderr.decode(errors="replace")
    doc = parse_json(p.stdout)
    for key in ("engine", "reason", "exit_code", "serial", "guest_instructions", "stats",
                "pc", "fault", "registers", "system", "memory_sha256"):
        assert key in doc, key
    assert doc["engine"] == "bt"
    assert doc["serial"].encode("latin-1") == b"\xe9\xff\x00"
    assert (p.returncode, doc["reason"], doc["exit_code"]) == (42, "exit", 42)
    assert doc["guest_instructions"] == 9  # the out to 0xf4 is the last one
    assert isinstance(doc["stats"], dict)


def test_budget_ends_an_endless_loop(ran, capsys):
    """A guest that never stops must end with reason 'budget' after exactly the budget,
    under every engine (no hang, an exact count), exit status 124."""
    r = ran["budget"]
    assert r.proc.returncode == 124 and r.proc.stdout == b""
    assert_one_stderr_line(r, "budget", "1000")
    for engine, (status, doc) in every_engine(capsys, "--max-insns", "1000", r.path).items():
        assert status == 124, engine
        assert doc["reason"] == "budget", engine
        assert doc["guest_instructions"] == 1000, engine
        assert doc["pc"] == 0x100000, engine


@pytest.mark.parametrize("name", ["ud2", "ff ff"])
def test_undecodable_bytes_fault_with_ud(ran, capsys, name):
    """Bytes that are not an instruction (ud2; ff ff, which no CPU decodes) end the run with
    #UD at their address (exit 125), under every engine, with nothing counted."""
    r = ran[name]
    assert r.proc.returncode == 125 and r.proc.stdout == b""
    assert_one_stderr_line(r, "#UD", "0x100000")
    for engine, (status, doc) in every_engine(capsys, r.path).items():
        assert status == 125, engine
        assert doc["reason"] == "fault", engine
        assert doc["fault"]["name"] == "#UD" and doc["fault"]["vector"] == 6, engine
        assert doc["fault"]["pc"] == 0x100000 and doc["pc"] == 0x100000, engine
        assert doc["guest_instructions"] == 0, engine


def test_undecodable_bytes_fault_identically_under_every_engine(ran, capsys):
    """The engines must agree on the whole fault record, as the differential test demands."""
    faults = {e: doc["fault"] for e, (_, doc) in every_engine(capsys, ran["ff ff"].path).items()}
    assert faults["hw"] == faults["interp"] == faults["bt"], faults


def test_jump_to_unmapped_memory_faults_alike_everywhere(ran, capsys):
    """Control leaving guest RAM is a #PF at the target address, with the same count in
    every engine (bt must not report a code-cache address, or count differently)."""
    r = ran["wild jump"]
    assert r.proc.returncode == 125
    assert_one_stderr_line(r, "#PF", "0x7000000")
    counts = {}
    for engine, (status, doc) in every_engine(capsys, r.path).items():
        assert status == 125, engine
        assert doc["reason"] == "fault", engine
        assert doc["fault"]["name"] == "#PF" and doc["fault"]["vector"] == 14, engine
        assert doc["fault"]["pc"] == 0x7000000 and doc["pc"] == 0x7000000, engine
        counts[engine] = doc["guest_instructions"]
    assert counts == {"interp": 2, "hw": 2, "bt": 2}


def test_scan_json(ran):
    """``dbt scan --json``: one object; every instruction with address, mnemonic, op_str,
    class and action (DESIGN §4)."""
    p = ran["scan --json"].proc
    assert p.returncode == 0, p.stderr
    doc = parse_json(p.stdout)
    assert doc["arch"] == "x86_32" and doc["entry"] == 0x100000
    assert doc["blocks"] and doc["blocks"][0]["address"] == 0x100000
    for block in doc["blocks"]:
        assert {"address", "stop", "fault", "instructions"} <= block.keys()
        for insn in block["instructions"]:
            assert {"address", "mnemonic", "op_str", "class", "action"} <= insn.keys()
            assert insn["class"] in ("privileged", "sensitive", "control", "innocuous")
    mnemonics = [i["mnemonic"] for b in doc["blocks"] for i in b["instructions"]]
    assert "out" in mnemonics and "hlt" in mnemonics


def test_translate_json(ran):
    """``dbt translate --json``: one object; each block with its guest instructions beside
    its host code."""
    p = ran["translate --json"].proc
    assert p.returncode == 0, p.stderr
    doc = parse_json(p.stdout)
    assert doc["arch"] == "x86_32" and doc["blocks"]
    for block in doc["blocks"]:
        assert {"address", "guest_bytes", "host_bytes", "guest", "host"} <= block.keys()
        assert block["host_bytes"] > 0 and block["guest"] and block["host"]
        for g in block["guest"]:
            assert {"address", "mnemonic", "op_str", "action"} <= g.keys()
        for h in block["host"]:
            assert {"address", "bytes", "text"} <= h.keys()
    assert doc["blocks"][0]["address"] == 0x100000


def test_assembly_guest_does_not_import_lief():
    """lief is needed for ELF and PE only; importing it for assembly and raw guests makes
    every such command ~4x slower to start."""
    probe = ("import sys; from dbt.cli import main; status = main(['scan', sys.argv[1]]); "
             "sys.stdout.flush(); print('LIEF' if 'lief' in sys.modules else 'NO-LIEF')")
    p = subprocess.run([sys.executable, "-c", probe, str(HELLO)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "NO-LIEF"
