"""Code templates of the translator, assembled by keystone once per run and patched per site.

Each template is Intel-syntax text with the vCPU-area addresses filled in and
per-site immediates written as sentinels (``0x7a7a00NN``). It is assembled
once, decoded back with capstone to check that keystone encoded what the text
says (DESIGN §5: keystone 0.9.2 mis-encodes some instructions), and the byte
offsets of its sentinels are recorded so a site is a copy of the bytes with
the immediates written in.

Every template touches only the vCPU area and the registers it saves there
first; none changes the guest's arithmetic flags except ``popf``, whose job it
is. ``ecx``/``edx`` (``rcx``/``rdx``) are the scratch registers: ``jecxz`` is
the only flags-free conditional branch, so tests are written as "make ecx
zero when the answer is yes".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from keystone import KS_ARCH_X86, KS_MODE_32, KS_MODE_64, Ks, KsError

from dbt.cache.layout import Layout
from dbt.errors import TranslationError
from dbt.scanner import Decoder

SENTINEL = 0x7A7A0000

#: Templates by name: (32-bit text, 64-bit text). Sentinels: S1, S2 ... in the text.
TEXT = {
    # exact clock: count the block's instructions into the budget chunk. The chunk stays
    # below 2**24, so its top byte is 0 until it goes negative (an exit request): bswap
    # brings that byte down, movsx makes it 0 or -1, and the load at probe + 8 * that
    # reads the slots page or faults in the unmapped page below it. The fault is the
    # exit (jecxz would end unicorn's block and return to its main loop every time)
    "count": (
        "mov dword ptr [{save_c}], ecx; mov ecx, dword ptr [{rem}]; lea ecx, [ecx + S1];"
        "mov dword ptr [{rem}], ecx; bswap ecx; movsx ecx, cl;"
        "mov ecx, dword ptr [ecx*8 + {probe}]; mov ecx, dword ptr [{save_c}]",
        "mov qword ptr [{save_c}], rcx; mov ecx, dword ptr [{rem}]; lea ecx, [rcx + S1];"
        "mov dword ptr [{rem}], ecx; bswap ecx; movsx rcx, cl;"
        "mov ecx, dword ptr [rcx*8 + {probe}]; mov rcx, qword ptr [{save_c}]"),
    "restore_c": ("mov ecx, dword ptr [{save_c}]", "mov rcx, qword ptr [{save_c}]"),
    "save_cd": ("mov dword ptr [{save_c}], ecx; mov dword ptr [{save_d}], edx",
                "mov qword ptr [{save_c}], rcx; mov qword ptr [{save_d}], rdx"),
    "restore_cd": ("mov ecx, dword ptr [{save_c}]; mov edx, dword ptr [{save_d}]",
                   "mov rcx, qword ptr [{save_c}]; mov rdx, qword ptr [{save_d}]"),
    "jump_slot": ("jmp dword ptr [{jump_slot}]", "jmp qword ptr [{jump_slot}]"),
    # cli, sti: only where the monitor's vmask allows IF to change (CPL <= IOPL); ecx
    # is zero when it does not and the instruction goes to its callout (a #GP)
    "vmask": ("mov ecx, dword ptr [{vmask}]", "mov rcx, qword ptr [{vmask}]"),
    "cli": ("mov dword ptr [{vif}], 0", "mov qword ptr [{vif}], 0"),
    "sti": ("mov dword ptr [{vif}], 0x200", "mov qword ptr [{vif}], 0x200"),
    # pushf: the real IF and IOPL are always 0 under bt, so adding the virtual
    # bits to the pushed image is an OR
    "pushf": (
        "pushfd; mov dword ptr [{save_c}], ecx; mov dword ptr [{save_d}], edx;"
        "mov ecx, dword ptr [esp]; mov edx, dword ptr [{vif}]; lea ecx, [ecx + edx];"
        "mov edx, dword ptr [{viopl}]; lea ecx, [ecx + edx]; mov dword ptr [esp], ecx;"
        "mov ecx, dword ptr [{save_c}]; mov edx, dword ptr [{save_d}]",
        "pushfq; mov qword ptr [{save_c}], rcx; mov qword ptr [{save_d}], rdx;"
        "mov rcx, qword ptr [rsp]; mov rdx, qword ptr [{vif}]; lea rcx, [rcx + rdx];"
        "mov rdx, qword ptr [{viopl}]; lea rcx, [rcx + rdx]; mov qword ptr [rsp], rcx;"
        "mov rcx, qword ptr [{save_c}]; mov rdx, qword ptr [{save_d}]"),
    # popf: IF and IOPL go to the vCPU where vmask lets them change (v ^= (new ^ v) &
    # vmask), the rest to the real flags, loaded by a popfd from the vCPU area (the
    # guest stack is never written). v is stored, never xor-ed in place: unicorn may stop
    # after a store and run that instruction again (see dbt/translator/rmw.py)
    "popf": (
        "mov dword ptr [{save_c}], ecx; mov ecx, dword ptr [esp]; xor ecx, dword ptr [{vif}];"
        "and ecx, dword ptr [{vmask}]; and ecx, 0x200; xor ecx, dword ptr [{vif}];"
        "mov dword ptr [{vif}], ecx;"
        "mov ecx, dword ptr [esp]; xor ecx, dword ptr [{viopl}]; and ecx, dword ptr [{vmask}];"
        "and ecx, 0x3000; xor ecx, dword ptr [{viopl}]; mov dword ptr [{viopl}], ecx;"
        "mov ecx, dword ptr [esp];"
        "and ecx, 0xffffcdff;"
        "mov dword ptr [{tmp}], ecx; mov dword ptr [{save_sp}], esp; mov esp, {tmp};"
        "popfd; mov esp, dword ptr [{save_sp}]; lea esp, [esp + 4];"
        "mov ecx, dword ptr [{save_c}]",
        "mov qword ptr [{save_c}], rcx; mov rcx, qword ptr [rsp]; xor rcx, qword ptr [{vif}];"
        "and rcx, qword ptr [{vmask}]; and rcx, 0x200; xor rcx, qword ptr [{vif}];"
        "mov qword ptr [{vif}], rcx;"
        "mov rcx, qword ptr [rsp]; xor rcx, qword ptr [{viopl}]; and rcx, qword ptr [{vmask}];"
        "and rcx, 0x3000; xor rcx, qword ptr [{viopl}]; mov qword ptr [{viopl}], rcx;"
        "mov rcx, qword ptr [rsp];"
        "and rcx, 0xffffffffffffcdff;"
        "mov qword ptr [{tmp}], rcx; mov qword ptr [{save_sp}], rsp; mov rsp, {tmp};"
        "popfq; mov rsp, qword ptr [{save_sp}]; lea rsp, [rsp + 8];"
        "mov rcx, qword ptr [{save_c}]"),
    # rep string accounting. unicorn (QEMU) counts a rep string instruction once per
    # start: once per iteration, plus once more when it ends by finding the count 0
    # (always, for movs/stos/lods; for cmps/scas only if the condition did not stop
    # it first), and once if the count was 0 to begin with. The prologue counted 1;
    # these charge the rest, flags-free: rem += 1 - (starts)
    "save_rep": ("mov dword ptr [{rep_c}], ecx", "mov qword ptr [{rep_c}], rcx"),
    "rep_head": (  # edx = after - before + 1, i.e. 1 - iterations
        "mov dword ptr [{save_c}], ecx; mov dword ptr [{save_d}], edx;"
        "mov edx, dword ptr [{rep_c}]; not edx; lea edx, [edx + ecx + 2]",
        "mov qword ptr [{save_c}], rcx; mov qword ptr [{save_d}], rdx;"
        "mov rdx, qword ptr [{rep_c}]; not rdx; lea rdx, [rdx + rcx + 2]"),
    "rep_final_e": ("sete cl; movzx ecx, cl; not ecx; lea edx, [edx + ecx + 1]",
                    "sete cl; movzx ecx, cl; not rcx; lea rdx, [rdx + rcx + 1]"),
    "rep_final_ne": ("setne cl; movzx ecx, cl; not ecx; lea edx, [edx + ecx + 1]",
                     "setne cl; movzx ecx, cl; not rcx; lea rdx, [rdx + rcx + 1]"),
    "rep_final": ("lea edx, [edx - 1]", "lea rdx, [rdx - 1]"),
    "rep_apply": (
        "mov ecx, dword ptr [{rem}]; lea ecx, [ecx + edx]; mov dword ptr [{rem}], ecx;"
        "mov ecx, dword ptr [{save_c}]; mov edx, dword ptr [{save_d}]",
        "mov ecx, dword ptr [{rem}]; lea ecx, [rcx + rdx]; mov dword ptr [{rem}], ecx;"
        "mov rcx, qword ptr [{save_c}]; mov rdx, qword ptr [{save_d}]"),
    "save_c": ("mov dword ptr [{save_c}], ecx", "mov qword ptr [{save_c}], rcx"),
    # the guard before a rep string instruction: ecx = 0 when its count is small
    # enough to check (< 2**24), then ecx = 0 when the budget chunk covers it
    "guard_hi": (None, "mov ecx, dword ptr [{save_c4}]"),
    "guard_top": ("movzx ecx, byte ptr [{save_c3}]", "movzx ecx, byte ptr [{save_c3}]"),
    "guard_diff": (
        "mov ecx, dword ptr [{save_c}]; not ecx; mov edx, dword ptr [{rem}];"
        "lea edx, [edx + ecx]; mov dword ptr [{tmp}], edx; movzx ecx, byte ptr [{tmp3}]",
        "mov ecx, dword ptr [{save_c}]; not ecx; mov edx, dword ptr [{rem}];"
        "lea edx, [rdx + rcx]; mov dword ptr [{tmp}], edx; movzx ecx, byte ptr [{tmp3}]"),
    "pop_target": ("pop ecx", "pop rcx"),
    "push_imm": ("push S1", "push S1"),
    "push_imm64": (None, "lea rsp, [rsp - 8]; mov dword ptr [rsp], S1; mov dword ptr [rsp + 4], S2"),
    "drop": ("lea esp, [esp + S1]", "lea rsp, [rsp + S1]"),
    # an indirect branch, target in ecx: walk the indirect-branch map (dbt/cache/iblmap.py)
    # and jump through it; the fragment's ibl entry (restore_cd) puts ecx and edx back
    "ibl": (
        "mov dword ptr [{save_d}], edx; mov edx, ecx; bswap edx; movzx edx, dx;"
        "mov edx, dword ptr [edx*4 + {l1}]; jmp dword ptr [edx + ecx*4]",
        "mov qword ptr [{save_d}], rdx; mov qword ptr [{target}], rcx; mov edx, ecx;"
        "bswap edx; movzx edx, dx; movsxd rdx, dword ptr [rdx*4 + {l1}]; movzx ecx, cx;"
        "mov rdx, qword ptr [rdx + rcx*8]; mov ecx, dword ptr [{target4}]; bswap rcx;"
        "lea rdx, [rdx + rcx]; jmp rdx"),
    # the map's miss routine: the target into its slot, ecx and edx back, then the trap
    "ibl_miss": (
        "mov dword ptr [{target}], ecx; mov ecx, dword ptr [{save_c}];"
        "mov edx, dword ptr [{save_d}]",
        "mov rcx, qword ptr [{save_c}]; mov rdx, qword ptr [{save_d}]"),
}

# a read-modify-write instruction split into moves (dbt/translator/rmw.py) holds its
# scratch register, one of these four, in save_c
for _n, (_r32, _r64) in enumerate((("eax", "rax"), ("ecx", "rcx"), ("edx", "rdx"),
                                   ("ebx", "rbx"))):
    TEXT[f"save_r{_n}"] = (f"mov dword ptr [{{save_c}}], {_r32}",
                           f"mov qword ptr [{{save_c}}], {_r64}")
    TEXT[f"restore_r{_n}"] = (f"mov {_r32}, dword ptr [{{save_c}}]",
                              f"mov {_r64}, qword ptr [{{save_c}}]")

#: Fixed encodings, written by hand because they are one opcode and a displacement
#: (keystone cannot fix up a rel8 to a label it has not seen): Intel SDM Vol. 2.
INT3 = b"\xcc"
NOP = b"\x90"


_LEGACY_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})


def split_prefixes(raw: bytes, bits: int) -> tuple[bytes, int | None, int]:
    """(legacy prefixes, REX byte or None, offset of the opcode)."""
    i = 0
    while i < len(raw) and raw[i] in _LEGACY_PREFIXES:
        i += 1
    rex = None
    if bits == 64 and i < len(raw) and 0x40 <= raw[i] <= 0x4F:
        rex = raw[i]
        i += 1
    return raw[:i - (1 if rex is not None else 0)], rex, i


def jmp_rel32(at: int, target: int) -> bytes:
    return b"\xe9" + struct.pack("<i", target - (at + 5))


def jcc_rel32(cc: int, at: int, target: int) -> bytes:
    return bytes([0x0F, 0x80 | cc]) + struct.pack("<i", target - (at + 6))


def jecxz_rel8(disp: int) -> bytes:
    """jecxz (32-bit) / jrcxz (64-bit) over ``disp`` bytes."""
    if not -128 <= disp <= 127:
        raise TranslationError(f"jecxz displacement {disp} out of range")
    return bytes([0xE3, disp & 0xFF])


@dataclass(frozen=True)
class Template:
    name: str
    code: bytes
    patches: tuple[int, ...]  # byte offsets of sentinel S1, S2, ...

    def fill(self, *values: int) -> bytes:
        out = bytearray(self.code)
        for off, v in zip(self.patches, values):
            out[off:off + 4] = struct.pack("<I", v & 0xFFFFFFFF)
        return bytes(out)


#: templates already assembled in this process, by architecture and vCPU addresses (every
#: machine has the same layout, so a process that runs many guests assembles once)
_ASSEMBLED: dict[tuple, dict[str, Template]] = {}


class Templates:
    """All templates of one architecture, with the vCPU addresses of one run;
    ``keystone_calls`` counts the calls this run made (none when they were cached)."""

    def __init__(self, layout: Layout):
        self.bits = layout.bits
        self.keystone_calls = 0
        names = {n: layout.slot(n) for n in ("save_c", "save_d", "jump_slot", "rem", "vif",
                                              "viopl", "tmp", "save_sp", "target", "rep_c",
                                              "vmask")}
        names.update(save_c3=layout.slot("save_c") + 3, save_c4=layout.slot("save_c") + 4,
                     tmp3=layout.slot("tmp") + 3, target4=layout.slot("target") + 4,
                     l1=layout.table, probe=layout.vcpu)
        key = (self.bits, tuple(sorted(names.items())))
        self._t: dict[str, Template] = _ASSEMBLED.get(key, {})
        if self._t:
            return  # the same addresses as an earlier machine's: keystone ran then
        ks = Ks(KS_ARCH_X86, KS_MODE_64 if self.bits == 64 else KS_MODE_32)
        cs = Decoder(self.bits)
        for name, pair in TEXT.items():
            text = pair[1 if self.bits == 64 else 0]
            if text is None:
                continue
            self._t[name] = self._assemble(ks, cs, name, text, names)
        _ASSEMBLED[key] = self._t

    def _assemble(self, ks, cs, name: str, text: str, names: dict) -> Template:
        src = text.format(**{k: hex(v) for k, v in names.items()})
        nsent = src.count("S1") and (2 if "S2" in src else 1)
        for i in range(1, 3):
            src = src.replace(f"S{i}", hex(SENTINEL + i))
        try:
            encoding, _ = ks.asm(src, 0)
        except KsError as e:
            raise TranslationError(f"template {name}: keystone: {e}") from None
        self.keystone_calls += 1
        code = bytes(encoding)
        self._check(cs, name, src, code)
        patches = []
        for i in range(1, nsent + 1):
            off = code.find(struct.pack("<I", SENTINEL + i))
            if off < 0:
                raise TranslationError(f"template {name}: sentinel S{i} not found in encoding")
            patches.append(off)
        return Template(name, code, tuple(patches))

    def _check(self, cs: Decoder, name: str, src: str, code: bytes) -> None:
        """Decode the encoding back and compare with the text, instruction by instruction:
        same mnemonics, no operand-size prefix that the text did not ask for, no
        RIP-relative operand where the text gave an absolute address."""
        want = [s.strip() for s in src.split(";") if s.strip()]
        got = list(cs.disasm(code, 0))
        if len(got) != len(want) or sum(size for _, size, _, _ in got) != len(code):
            raise TranslationError(f"template {name}: keystone produced {len(got)} instructions "
                                   f"for {len(want)}: {code.hex()}")
        for (addr, size, mnemonic, op_str), w in zip(got, want):
            raw = code[addr:addr + size]
            bad = (mnemonic not in (w.split()[0], "movabs" if w.startswith("mov ") else "")
                   or "rip" in op_str
                   or (raw[0] == 0x66 and " word " not in f" {w} "))
            if bad:
                raise TranslationError(f"template {name}: {w!r} encoded as {mnemonic} {op_str}")

    def __getitem__(self, name: str) -> Template:
        return self._t[name]
