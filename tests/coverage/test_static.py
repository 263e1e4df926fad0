"""Static coverage of real binaries built here: counts, classes, sites, sweep against descent."""

from __future__ import annotations

import subprocess

import pytest

from dbt.coverage.static import scan_file
from loader_files import Section, make_pe


def _sites(record: dict) -> dict[str, dict]:
    return {s["mnemonic"]: s for s in record["sites"]}


@pytest.mark.parametrize("kind", ["exe64", "so64", "obj64", "exe32"])
def test_sample_counts_and_sites(samples, kind):
    """Every planted instruction is found with its ISA-table class; the vmmcall after a ret is
    decoded by the sweep only (data to descent), the others are reached from symbols."""
    r = scan_file(str(samples[kind]))
    assert r["status"] == "ok", r["reason"]
    assert r["format"] == "ELF" and r["bits"] == (32 if kind == "exe32" else 64)
    assert r["kind"] == {"exe64": "executable", "so64": "shared", "obj64": "relocatable",
                         "exe32": "executable"}[kind]
    sites = _sites(r)
    assert sites["sgdt"]["class"] == "sensitive" and sites["sgdt"]["robin_irvine"]
    assert sites["cli"]["class"] == "privileged"
    assert sites["mov"]["class"] == "sensitive" and sites["mov"]["op_str"].endswith("cs")
    assert sites["vmcall"]["action"] == "unsupported"
    assert sites["vmmcall"]["linear"] and not sites["vmmcall"]["reached"]
    for name in ("sgdt", "cli", "hlt", "vmcall"):
        assert sites[name]["reached"], name
    assert r["mnemonics"]["sgdt"] == 1 and r["mnemonics"]["vmmcall"] == 1
    assert sum(r["classes"].values()) == sum(r["mnemonics"].values()) == r["instructions"]
    assert sum(r["actions"].values()) == r["instructions"]
    # mov is counted once, split by operands: one sensitive (from cs), the rest innocuous
    rows = {(m, k): n for m, k, _a, n, _r in r["rows"]}
    assert rows[("mov", "sensitive")] == 1
    assert r["descent"]["instructions"] < r["instructions"]


def test_addresses_match_objdump(samples):
    """The address recorded for a site is where objdump finds that instruction."""
    path = samples["exe64"]
    r = scan_file(str(path))
    out = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if "\tsgdt" in ln)
    assert _sites(r)["sgdt"]["address"] == int(line.split(":")[0], 16)


def test_linear_sweep_counts_match_capstone(samples):
    """The sweep decodes exactly what a plain capstone loop over .text does."""
    import capstone
    import lief

    path = samples["exe64"]
    data = path.read_bytes()
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    elf = lief.ELF.parse(str(path))  # (kept alive: its sections point into it)
    code = [s for s in elf.sections if int(s.flags) & 0x4]  # SHF_EXECINSTR
    n = sum(1 for s in code for _ in cs.disasm_lite(data[s.offset:s.offset + s.size], 0))
    r = scan_file(str(path), descent=False)
    assert r["descent"] is None
    assert r["instructions"] == n and r["undecodable_bytes"] == 0


@pytest.mark.parametrize("bits", [32, 64])
def test_pe_image(tmp_path, bits):
    """A PE32/PE32+ image: the code section is swept from image base + RVA, the entry reached."""
    code = b"\x0f\x01\x00"  # sgdt [eax] / sgdt [rax]
    code += b"\xfa\xf4\xc3"  # cli; hlt; ret
    path = tmp_path / f"app{bits}.exe"
    path.write_bytes(make_pe(bits, [Section(".text", 0x1000, code)]))
    r = scan_file(str(path))
    assert (r["status"], r["format"], r["bits"], r["kind"]) == ("ok", "PE", bits, "executable")
    sites = _sites(r)
    assert sites["sgdt"]["address"] == 0x401000 and sites["sgdt"]["reached"]
    assert sites["cli"]["address"] == 0x401003
    assert r["instructions"] == 4
