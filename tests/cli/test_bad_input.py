"""The ``dbt`` command-line contract (README "Using it", dbt/cli.py).

Bad input of any kind gets one line on stderr, ``dbt: error: ...``, naming the file
(and the line or address where there is one), exit status 2, and never a Python
traceback. The good paths print what the README promises, with the documented exit
status (guest exit code, 0 on halt, 124 budget, 125 fault).

Everything runs as a subprocess (``python -m dbt``), as a user would run it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello.s"
ENGINES = ["interp", "hw", "bt"]
SMALL_RAM = ("--ram", "4")  # good-path runs: hashing 64 MiB of RAM costs more than the run


def dbt(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "dbt", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, timeout=timeout)


def dbt_many(*argvs: tuple) -> list[subprocess.CompletedProcess]:
    """Several independent ``dbt`` runs side by side (each is a process: start-up dominates)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: dbt(*argv), argvs))


def assert_bad_input(p: subprocess.CompletedProcess, *must_contain: str) -> str:
    """Exit 2, exactly one stderr line starting 'dbt: error:', containing each string."""
    err = p.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert p.returncode == 2, (p.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dbt: error: "), err
    for s in must_contain:
        assert s in lines[0], (s, lines[0])
    assert p.stdout == b""
    return lines[0]


def assert_argparse_error(p: subprocess.CompletedProcess, *must_contain: str) -> None:
    """An option argparse refuses: exit 2, a usage message, no traceback."""
    err = p.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert p.returncode == 2, (p.returncode, err)
    last = err.strip().splitlines()[-1]
    assert "error:" in last
    for s in must_contain:
        assert s in last, (s, last)


# --- guest files for the bad-input cases ----------------------------------------------------

TINY_C = "void _start(void) { __asm__ volatile(\"hlt\"); for (;;) ; }\n"


@pytest.fixture(scope="module")
def elf64(tmp_path_factory) -> Path:
    """A valid static ELF64 built with gcc, as the brief for C guests has it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("elf")
    src = d / "tiny.c"
    src.write_text(TINY_C)
    out = d / "tiny64"
    subprocess.run([gcc, "-m64", "-nostdlib", "-static", "-ffreestanding", "-fno-pic", "-no-pie",
                    "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none",
                    "-Wl,-Ttext-segment=0x100000", "-o", str(out), str(src)], check=True)
    return out


@pytest.fixture(scope="module")
def elf32(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("elf32")
    src = d / "tiny.c"
    src.write_text(TINY_C)
    out = d / "tiny32"
    p = subprocess.run([gcc, "-m32", "-nostdlib", "-static", "-ffreestanding", "-fno-pic",
                        "-no-pie", "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none",
                        "-Wl,-Ttext-segment=0x100000", "-o", str(out), str(src)],
                       capture_output=True)
    if p.returncode != 0:
        pytest.skip("gcc cannot build 32-bit code here")
    return out


def elf_header(machine: int, elfclass: int) -> bytes:
    """A minimal little-endian ET_EXEC ELF header (no program headers) for ``machine``."""
    ident = b"\x7fELF" + bytes([elfclass, 1, 1, 0]) + bytes(8)
    if elfclass == 1:
        return ident + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0x100000, 52, 0, 0,
                                   52, 32, 1, 40, 0, 0) + \
            struct.pack("<IIIIIIII", 1, 0, 0x100000, 0x100000, 84, 84, 5, 0x1000)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x100000, 64, 0, 0,
                               64, 56, 1, 64, 0, 0) + \
        struct.pack("<IIQQQQQQ", 1, 5, 0, 0x100000, 0x100000, 120, 120, 0x1000)


def pe_file(machine: int, raw_size: int) -> bytes:
    """DOS header + PE signature + COFF header + PE32 optional header + one section whose
    raw data is ``raw_size`` bytes at file offset 0x200 (the file holds 0x10 of them)."""
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


# --- bad input ----------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    """A typo in a file name must not become a FileNotFoundError traceback."""
    path = tmp_path / "no-such-guest.bin"
    assert_bad_input(dbt("run", path), str(path))


def test_directory(tmp_path):
    assert_bad_input(dbt("run", tmp_path), str(tmp_path))


def test_empty_file(tmp_path):
    """An empty file is no guest (a raw image of 0 bytes would fault at once, unexplained)."""
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert_bad_input(dbt("run", path), str(path))


@pytest.mark.parametrize("cut", ["10-bytes", "half"])
def test_truncated_elf(elf64, tmp_path, cut):
    """A truncated ELF must be refused (lief happily parses garbage out of it), not run
    from whatever bytes happen to be there."""
    data = elf64.read_bytes()
    path = tmp_path / f"cut-{cut}.elf"
    path.write_bytes(data[:10] if cut == "10-bytes" else data[:len(data) // 2])
    line = assert_bad_input(dbt("run", path), str(path))
    # 10 bytes of an x86-64 ELF are a truncated file, not "an ELF for no machine"
    assert "truncated" in line.lower() or "corrupt" in line.lower(), line


def test_uncut_elf_loads(elf64):
    """The ELF the truncation tests cut is a good guest: what they see is the cut."""
    from dbt.loader import load

    image = load(str(elf64))
    assert image.format == "ELF" and image.arch.value == "x86_64"





def test_corrupt_elf_header(tmp_path):
    """Valid magic followed by garbage: refused with one line, whatever lief makes of it."""
    path = tmp_path / "garbage.elf"
    path.write_bytes(b"\x7fELF" + bytes((i * 37 + 11) % 256 for i in range(60)))
    assert_bad_input(dbt("run", path), str(path))


@pytest.mark.parametrize("machine,elfclass,name", [(40, 1, "ARM"), (243, 2, "RISC")],
                         ids=["arm", "riscv"])
def test_elf_for_another_architecture(tmp_path, machine, elfclass, name):
    """A foreign ELF must be refused by name, not decoded as x86 garbage."""
    path = tmp_path / f"{name}.elf"
    path.write_bytes(elf_header(machine, elfclass))
    line = assert_bad_input(dbt("run", path), str(path))
    assert name in line.upper().replace("-", ""), line


def test_pe_section_past_the_end_of_the_file(tmp_path):
    """PointerToRawData + SizeOfRawData beyond the file: a truncated PE, refused."""
    path = tmp_path / "past.exe"
    data = pe_file(0x14C, raw_size=0x1000)
    assert 0x200 + 0x1000 > len(data)
    path.write_bytes(data)
    assert_bad_input(dbt("run", path), str(path))


def test_pe_that_fits_loads(tmp_path):
    """The same hand-built PE with its section inside the file loads: the refusal above is
    about the section, not the builder."""
    from dbt.loader import load

    path = tmp_path / "ok.exe"
    path.write_bytes(pe_file(0x14C, raw_size=0x10))
    image = load(str(path))
    assert image.format == "PE" and image.arch.value == "x86_32"
    assert image.entry == 0x401000


def test_pe_for_arm64(tmp_path):
    path = tmp_path / "arm64.exe"
    path.write_bytes(pe_file(0xAA64, raw_size=0x10))
    line = assert_bad_input(dbt("run", path), str(path))
    assert "ARM64" in line.upper().replace(" ", "") or "AARCH64" in line.upper(), line


def test_assembly_syntax_error_names_the_line(tmp_path):
    """keystone reports no line number; dbt must find and name it."""
    path = tmp_path / "bad.s"
    path.write_text("bits 32\n        nop\n; a comment\n        frobnicate eax, ebx\n        hlt\n")
    assert_bad_input(dbt("run", path), str(path), "line 4")


def test_image_larger_than_guest_ram(tmp_path):
    """A 2 MiB raw image cannot fit 1 MiB of RAM: refused up front, not a unicorn error."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x90" * (2 << 20))
    assert_bad_input(dbt("run", "--ram", "1", path), str(path))


def test_bad_max_insns():
    """A budget that is not a positive count (abc, -5, 0) is a usage error (exit 2), not a
    crash or a run without a budget."""
    values = ["abc", "-5", "0"]
    for value, p in zip(values, dbt_many(*(("run", "--max-insns", v, HELLO) for v in values))):
        assert_argparse_error(p, "--max-insns")


def test_bad_ram_and_engine():
    ps = dbt_many(("run", "--ram", "0", HELLO), ("run", "--ram", "x", HELLO),
                  ("run", "--engine", "qemu", HELLO))
    assert_argparse_error(ps[0], "--ram")
    assert_argparse_error(ps[1], "--ram")
    assert_argparse_error(ps[2], "--engine")


def test_arch_contradicting_a_32bit_elf(elf32):
    """--arch x86_64 on a 32-bit ELF is a contradiction, not a request to run it as
    64-bit code."""
    assert_bad_input(dbt("run", "--arch", "x86_64", elf32), str(elf32))


def test_arch_contradicting_the_assembly_source(tmp_path):
    path = tmp_path / "mode.s"
    path.write_text("bits 32\nhlt\n")
    assert_bad_input(dbt("run", "--arch", "x86_64", path), str(path))


# --- good paths ---------------------------------------------------------------------------------

def test_hello_prints_exactly_its_line_under_every_engine():
    """stdout is the guest's serial output byte for byte: nothing added, nothing lost;
    exit status 0 (the guest wrote 0 to the debug-exit port)."""
    for engine, p in zip(ENGINES, dbt_many(*(("run", "--engine", e, HELLO) for e in ENGINES))):
        assert p.returncode == 0, (engine, p.stderr)
        assert p.stdout == b"Hello from the guest\n", engine
        assert p.stderr == b"", engine


def parse_json(text: str | bytes) -> dict:
    """The output must be exactly one JSON object."""
    text = text.decode() if isinstance(text, bytes) else text
    doc, end = json.JSONDecoder().raw_decode(text.lstrip())
    assert text.lstrip()[end:].strip() == "", "more than one JSON value on stdout"
    assert isinstance(doc, dict)
    return doc


def test_json_is_one_object_with_the_documented_keys(tmp_path):
    """Scripts read --json: one object with the README's keys; every byte of serial
    output survives (Latin-1, 0x80-0xff and NUL included); the guest's debug-exit code is
    dbt's exit status."""
    path = tmp_path / "bytes.s"
    path.write_text("bits 32\nmov dx, 0x3f8\nmov al, 0xe9\nout dx, al\nmov al, 0xff\n"
                    "out dx, al\nmov al, 0\nout dx, al\nmov al, 42\nout 0xf4, al\nhlt\n")
    p = dbt("run", "--json", "--engine", "bt", *SMALL_RAM, path)
    assert "Traceback" not in p.stderr.decode(errors="replace")
    doc = parse_json(p.stdout)
    for key in ("engine", "reason", "exit_code", "serial", "guest_instructions", "stats",
                "pc", "fault", "registers", "system", "memory_sha256"):
        assert key in doc, key
    assert doc["engine"] == "bt"
    assert doc["serial"].encode("latin-1") == b"\xe9\xff\x00"
    assert (p.returncode, doc["reason"], doc["exit_code"]) == (42, "exit", 42)
    assert doc["guest_instructions"] == 10
    assert isinstance(doc["stats"], dict)


# Each good-path scenario runs once as a process (exit status, stderr), and under every
# engine through dbt.cli.main in this process (the same code from argument parsing to the
# JSON; a process per engine would cost ~0.8 s each, mostly imports).

def cli_json(capsys, *argv) -> tuple[int, dict]:
    from dbt.cli import main

    status = main(["run", "--json", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, parse_json(out)


def every_engine(capsys, *argv) -> dict[str, tuple[int, dict]]:
    return {e: cli_json(capsys, "--engine", e, *SMALL_RAM, *argv) for e in ENGINES}


def assert_one_stderr_line(p: subprocess.CompletedProcess, *must_contain: str) -> None:
    err = p.stderr.decode(errors="replace")
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for s in must_contain:
        assert s in err, (s, err)


def test_budget_ends_an_endless_loop(tmp_path, capsys):
    """A guest that never stops must end with reason 'budget' after exactly the budget,
    under every engine (no hang, an exact count), exit status 124."""
    path = tmp_path / "loop.s"
    path.write_text("l: jmp l\n")
    for engine, (status, doc) in every_engine(capsys, "--max-insns", "1000", path).items():
        assert status == 124, engine
        assert doc["reason"] == "budget", engine
        assert doc["guest_instructions"] == 1000, engine
        assert doc["pc"] == 0x100000, engine
    p = dbt("run", "--engine", "bt", *SMALL_RAM, "--max-insns", "1000", path)
    assert p.returncode == 124 and p.stdout == b""
    assert_one_stderr_line(p, "budget", "1000")


UNDECODABLE = {"ud2": b"\x0f\x0b", "ff-ff": b"\xff\xff"}


@pytest.mark.parametrize("name", list(UNDECODABLE))
def test_undecodable_bytes_fault_with_ud(tmp_path, capsys, name):
    """Bytes that are not an instruction end the run with #UD at their address (exit 125),
    under every engine, with nothing counted."""
    path = tmp_path / f"{name}.bin"
    path.write_bytes(UNDECODABLE[name])
    for engine, (status, doc) in every_engine(capsys, path).items():
        assert status == 125, engine
        assert doc["reason"] == "fault", engine
        assert doc["fault"]["name"] == "#UD" and doc["fault"]["vector"] == 6, engine
        assert doc["fault"]["pc"] == 0x100000 and doc["pc"] == 0x100000, engine
        assert doc["guest_instructions"] == 0, engine
    p = dbt("run", "--engine", "hw" if name == "ff-ff" else "bt", *SMALL_RAM, path)
    assert p.returncode == 125 and p.stdout == b""
    assert_one_stderr_line(p, "#UD", "0x100000")


@pytest.mark.xfail(strict=True, reason="the fault detail differs by engine for undecodable "
                   "bytes ff ff: interp and bt say 'undecodable bytes ff ff 00 00', hw says "
                   "'invalid instruction' (test_differential compares Fault objects whole)")
def test_undecodable_bytes_fault_identically_under_every_engine(tmp_path, capsys):
    """The engines must agree on the whole fault record, as the differential test demands."""
    path = tmp_path / "ffff.bin"
    path.write_bytes(b"\xff\xff")
    faults = {e: doc["fault"] for e, (_, doc) in every_engine(capsys, path).items()}
    assert faults["hw"] == faults["interp"] == faults["bt"], faults


def test_jump_to_unmapped_memory_faults_alike_everywhere(tmp_path, capsys):
    """Control leaving guest RAM is a #PF at the target address, with the same count in
    every engine (bt must not report a code-cache address or count differently)."""
    path = tmp_path / "wild.s"
    path.write_text("bits 32\nmov eax, 0x7000000\njmp eax\n")
    counts = {}
    for engine, (status, doc) in every_engine(capsys, path).items():
        assert status == 125, engine
        assert doc["reason"] == "fault", engine
        assert doc["fault"]["name"] == "#PF" and doc["fault"]["vector"] == 14, engine
        assert doc["fault"]["pc"] == 0x7000000 and doc["pc"] == 0x7000000, engine
        counts[engine] = doc["guest_instructions"]
    assert counts == {"interp": 2, "hw": 2, "bt": 2}
    p = dbt("run", "--engine", "bt", *SMALL_RAM, path)
    assert p.returncode == 125
    assert_one_stderr_line(p, "#PF", "0x7000000")


def test_scan_json():
    p = dbt("scan", "--json", HELLO)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["arch"] == "x86_32" and doc["entry"] == 0x100000
    assert doc["blocks"] and doc["blocks"][0]["address"] == 0x100000
    for block in doc["blocks"]:
        assert {"address", "stop", "fault", "instructions"} <= block.keys()
        for insn in block["instructions"]:
            assert {"address", "mnemonic", "op_str", "class", "action"} <= insn.keys()
            assert insn["class"] in ("privileged", "sensitive", "control", "innocuous")
    mnemonics = [i["mnemonic"] for b in doc["blocks"] for i in b["instructions"]]
    assert "out" in mnemonics and "hlt" in mnemonics


def test_translate_json():
    p = dbt("translate", "--json", HELLO)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["arch"] == "x86_32" and doc["blocks"]
    for block in doc["blocks"]:
        assert {"address", "guest_bytes", "host_bytes", "guest", "host"} <= block.keys()
        assert block["host_bytes"] > 0 and block["guest"] and block["host"]
        for g in block["guest"]:
            assert {"address", "mnemonic", "op_str", "action"} <= g.keys()
        for h in block["host"]:
            assert {"address", "bytes", "text"} <= h.keys()
    assert doc["blocks"][0]["address"] == 0x100000


def test_scan_and_translate_report_bad_input_too(tmp_path):
    path = tmp_path / "nothing.bin"
    for p in dbt_many(("scan", path), ("translate", "--json", path)):
        assert_bad_input(p, str(path))
