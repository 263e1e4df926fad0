"""Capstone wrapper: the only module of dbt that imports capstone.

Instructions are returned as :class:`Insn` values that carry their ISA-table rule
and, on request, operands in a capstone-independent form. Decodes are cached by
(address, bytes), so a rewritten instruction is never served stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import capstone
from capstone import x86_const as X

from dbt.isa import Rule, classify

MAX_INSN_LEN = 15


@dataclass(frozen=True)
class Mem:
    """A memory operand: ``seg:[base + index*scale + disp]`` (register names, '' if absent)."""

    seg: str
    base: str
    index: str
    scale: int
    disp: int


@dataclass(frozen=True)
class Operand:
    kind: str  # "reg" | "imm" | "mem"
    size: int  # bytes
    reg: str = ""
    imm: int = 0
    mem: Mem | None = None


@dataclass(slots=True)
class Insn:
    """One decoded guest instruction."""

    address: int
    size: int
    raw: bytes
    name: str  # capstone instruction name, without prefixes (e.g. "movsb")
    mnemonic: str  # as printed, with prefixes (e.g. "rep movsb")
    op_str: str
    rule: Rule
    operands: tuple[Operand, ...] | None = None  # only when decoded with detail
    prefixes: tuple[int, ...] = ()
    disp_offset: int = 0  # offset of the displacement in raw (0 if none)
    imm_offset: int = 0

    @property
    def next(self) -> int:
        return self.address + self.size

    @property
    def rep(self) -> bool:
        """A rep/repe/repne string instruction (capstone prints the prefix in the mnemonic)."""
        return self.mnemonic.startswith("rep")


_SEG_NAMES = {X.X86_REG_CS: "cs", X.X86_REG_DS: "ds", X.X86_REG_ES: "es",
              X.X86_REG_FS: "fs", X.X86_REG_GS: "gs", X.X86_REG_SS: "ss"}


class Decoder:
    """Decodes x86 instructions in one mode (32 or 64 bits), with a decode cache."""

    def __init__(self, bits: int, cache_size: int = 1 << 16):
        mode = capstone.CS_MODE_64 if bits == 64 else capstone.CS_MODE_32
        self.bits = bits
        self._lite = capstone.Cs(capstone.CS_ARCH_X86, mode)
        self._full = capstone.Cs(capstone.CS_ARCH_X86, mode)
        self._full.detail = True
        self._cache: dict[tuple[int, bytes], Insn | None] = {}
        self._detail_cache: dict[tuple[int, bytes], Insn | None] = {}
        self._cache_size = cache_size

    def decode(self, address: int, window: bytes, detail: bool = False) -> Insn | None:
        """Decode the instruction at the start of ``window``; None if undecodable.

        ``window`` holds the bytes at ``address`` (up to 15; fewer near the end of
        memory). The result is cached on (address, window).
        """
        key = (address, window)
        cache = self._detail_cache if detail else self._cache
        hit = cache.get(key, cache)
        if hit is not cache:
            return hit  # type: ignore[return-value]
        insn = self._decode(address, window, detail)
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[key] = insn
        return insn

    def decode_run(self, address: int, code: bytes) -> Iterator[Insn]:
        """The instructions at the start of ``code`` (at ``address``), in a row, without
        detail, decoded as they are asked for: the ones whose whole 15-byte window lies
        in ``code``, up to the first that does not decode. One capstone call for all (a
        call per instruction costs 4-12 us, a sweep 0.7 us an instruction); each is
        cached as :meth:`decode` would."""
        cache = self._cache
        if len(cache) >= self._cache_size:
            cache.clear()
        limit = address + len(code) - MAX_INSN_LEN
        for addr, size, mnemonic, op_str in self._lite.disasm_lite(code, address):
            if addr > limit:
                return
            off = addr - address
            key = (addr, code[off:off + MAX_INSN_LEN])
            insn = cache.get(key)
            if insn is None:
                insn = cache[key] = Insn(addr, size, code[off:off + size], _base_name(mnemonic),
                                         mnemonic, op_str, classify(mnemonic, op_str))
            yield insn

    def _decode(self, address: int, window: bytes, detail: bool) -> Insn | None:
        if not detail:
            for addr, size, mnemonic, op_str in self._lite.disasm_lite(window, address, 1):
                return Insn(address, size, window[:size], _base_name(mnemonic), mnemonic, op_str,
                            classify(mnemonic, op_str))
            return None
        for ci in self._full.disasm(window, address, 1):
            ops = tuple(self._operand(ci, o) for o in ci.operands)
            return Insn(address, ci.size, bytes(ci.bytes), ci.insn_name(), ci.mnemonic, ci.op_str,
                        classify(ci.mnemonic, ci.op_str), ops,
                        tuple(p for p in ci.prefix if p), ci.disp_offset, ci.imm_offset)
        return None

    def _operand(self, ci, o) -> Operand:
        if o.type == X.X86_OP_REG:
            return Operand("reg", o.size, reg=ci.reg_name(o.reg))
        if o.type == X.X86_OP_IMM:
            return Operand("imm", o.size, imm=o.imm)
        m = o.mem
        seg = _SEG_NAMES.get(m.segment, "")
        return Operand("mem", o.size, mem=Mem(seg, ci.reg_name(m.base) if m.base else "",
                                              ci.reg_name(m.index) if m.index else "",
                                              m.scale, m.disp))

    def writes(self, insn: Insn) -> tuple[bool, frozenset[str]]:
        """What an instruction writes, from one decode: whether it writes a memory operand
        (explicit or string operand), and the registers it writes, explicitly or not
        (capstone's names). Undecodable: (True, no registers)."""
        for ci in self._full.disasm(insn.raw, insn.address, 1):
            memory = any(o.type == X.X86_OP_MEM and o.access & capstone.CS_AC_WRITE
                         for o in ci.operands)
            return memory, frozenset(ci.reg_name(r) for r in ci.regs_access()[1])
        return True, frozenset()

    def disasm(self, code: bytes, address: int):
        """Linear sweep without detail: yields (address, size, mnemonic, op_str)."""
        return self._lite.disasm_lite(code, address)


_PREFIXES = ("rep ", "repe ", "repz ", "repne ", "repnz ", "lock ", "bnd ", "notrack ",
             "xacquire ", "xrelease ", "data16 ")


def _base_name(mnemonic: str) -> str:
    if " " not in mnemonic:  # (nearly always: no prefix printed)
        return mnemonic
    while True:
        for p in _PREFIXES:
            if mnemonic.startswith(p):
                mnemonic = mnemonic[len(p):]
                break
        else:
            return mnemonic
