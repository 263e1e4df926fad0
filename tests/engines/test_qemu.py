"""Engine qemu: how each ending is detected, the start state it hands over, its bad input.

Every test but the missing-QEMU ones needs qemu-system-x86_64 (Debian package
qemu-system-x86) and is skipped, with that reason, where it is absent.
"""

from __future__ import annotations

import pytest

from dbt import cli
from dbt.engines import qemu as qemu_engine
from dbt.engines import run_guest, unavailable
from dbt.loader import load
from dbt.monitor.monitor import RunConfig

needs_qemu = pytest.mark.skipif(unavailable("qemu") is not None,
                                reason=unavailable("qemu") or "")


def guest(tmp_path, text: str, name: str = "g.s"):
    path = tmp_path / name
    path.write_text(text)
    return load(str(path))


def both(image, **config):
    cfg = RunConfig(keep_ram=True, **config)
    return run_guest(image, "interp", cfg), run_guest(image, "qemu", cfg)


@needs_qemu
@pytest.mark.parametrize("bits", [32, 64])
def test_start_state_matches_dbt(tmp_path, bits):
    """The boot stub hands over dbt's start state: registers, flags, CR0/CR4 (read into
    general registers), the stack at the top of RAM, and RAM above 1 MiB zeroed but for
    the guest. A stub that left a firmware value anywhere would show here."""
    a = "r" if bits == 64 else "e"
    image = guest(tmp_path, f"""bits {bits}
        mov {a}ax, cr0
        mov {a}bx, cr4
        push {a}ax
        cli
        hlt
    """)
    ref, r = both(image)
    assert (r.reason.value, r.serial) == ("halt", b"")
    assert r.registers == ref.registers
    assert r.registers[a + "sp"] == (64 << 20) - bits // 8
    assert r.ram[0x100000:] == ref.ram[0x100000:]
    assert r.guest_instructions is None


@needs_qemu
def test_triple_fault_is_a_fault_with_state(tmp_path):
    """No IDT: #UD becomes a triple fault; -no-reboot and shutdown=pause keep QEMU alive, so
    the run ends with reason triple-fault (dbt: fault) and the registers at the faulting
    instruction."""
    image = guest(tmp_path, "bits 32\n mov eax, 7\n ud2\n")
    ref, r = both(image)
    assert (ref.reason.value, r.reason.value) == ("fault", "triple-fault")
    assert r.pc == ref.pc == 0x100005
    assert r.registers["eax"] == 7


@needs_qemu
def test_halt_with_interrupts_enabled_waits_until_the_budget(tmp_path):
    """hlt with IF=1 waits for an interrupt (the PICs are masked: none comes) until the
    budget's time runs out: reason budget, not halt."""
    image = guest(tmp_path, "bits 32\n sti\n hlt\n")
    r = run_guest(image, "qemu", RunConfig(max_insns=4_000_000))
    assert r.reason.value == "budget"
    assert r.registers["eflags"] & 0x200


@needs_qemu
def test_endless_loop_ends_with_budget(tmp_path):
    image = guest(tmp_path, "bits 64\nl: inc rax\n jmp l\n")
    r = run_guest(image, "qemu", RunConfig(max_insns=4_000_000))
    assert r.reason.value == "budget"
    assert r.registers["rax"] > 0
    assert r.exit_code is None


@needs_qemu
def test_exit_code_and_serial_through_the_cli(capfd):
    assert cli.main(["run", "examples/hello.s", "--engine", "qemu"]) == 0
    assert capfd.readouterr().out == "Hello from the guest\n"


@needs_qemu
def test_qemu_refusing_gives_its_first_error_line(tmp_path, monkeypatch, capfd):
    real = qemu_engine.command
    monkeypatch.setattr(qemu_engine, "command",
                        lambda *a: real(*a) + ["-device", "no-such-device"])
    assert cli.main(["run", "examples/hello.s", "--engine", "qemu"]) == cli.EXIT_BAD_INPUT
    err = capfd.readouterr().err
    assert err.startswith("dbt: error: qemu-system-x86_64 refused the guest: ")
    assert "no-such-device" in err and err.count("\n") == 1


def test_missing_qemu_names_the_package(monkeypatch, capfd):
    monkeypatch.setattr(qemu_engine.shutil, "which", lambda name: None)
    assert "qemu-system-x86" in unavailable("qemu")
    assert cli.main(["run", "examples/hello.s", "--engine", "qemu"]) == cli.EXIT_BAD_INPUT
    err = capfd.readouterr().err
    assert err == ("dbt: error: qemu-system-x86_64 not found: install the Debian package "
                   "qemu-system-x86 (apt-get install qemu-system-x86)\n")


def test_doctor_says_why_an_engine_is_unavailable(monkeypatch, capfd):
    monkeypatch.setattr(qemu_engine.shutil, "which", lambda name: None)
    assert cli.main(["doctor"]) == 0
    out = capfd.readouterr().out
    assert "qemu     unavailable: qemu-system-x86_64 not found" in out
    assert "interp   available (unicorn " in out

