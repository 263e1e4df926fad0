"""The virtual CPU model that CPUID reports (the same under every engine).

Leaves follow Intel SDM Vol. 2A, CPUID, Tables 3-8 and 3-17. The features are
the ones unicorn's emulated CPU really implements (so a guest that trusts CPUID
never meets #UD), and leaf 1 ECX bit 31 with leaf 0x4000_0000 tells the guest it
runs on a hypervisor, as KVM does.
"""

from __future__ import annotations

import struct


def _sig(text: str) -> tuple[int, int, int]:
    return struct.unpack("<3I", text.encode())


_VENDOR = _sig("GenuineIntel")
_HV = _sig("dbtdbtdbtdbt")

# Leaf 1 EDX: FPU PSE TSC MSR PAE CX8 SEP (sysenter) PGE CMOV PAT CLFSH MMX FXSR SSE SSE2
_EDX1 = ((1 << 0) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 11) | (1 << 13)
         | (1 << 15) | (1 << 16) | (1 << 19) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26))
# Leaf 1 ECX: SSE3 PCLMULQDQ SSSE3 CX16 SSE4.1 SSE4.2 MOVBE POPCNT, hypervisor present
_ECX1 = ((1 << 0) | (1 << 1) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 22) | (1 << 23)
         | (1 << 31))
# Leaf 0x8000_0001 EDX: SYSCALL, NX, LM; ECX: LAHF-SAHF in 64-bit
_EDX_EXT = (1 << 11) | (1 << 20) | (1 << 29)
_BRAND = "dbt virtual CPU".ljust(48, "\0").encode()


def cpuid(leaf: int, subleaf: int, bits: int) -> tuple[int, int, int, int]:
    """(eax, ebx, ecx, edx) for CPUID with EAX=leaf, ECX=subleaf."""
    leaf &= 0xFFFFFFFF
    if leaf == 0:
        return (0xD, _VENDOR[0], _VENDOR[2], _VENDOR[1])
    if leaf == 1:
        return (0x000506E3, 0x00000800, _ECX1, _EDX1)  # family 6 model 0x5E; 1 logical CPU
    if leaf == 0x40000000:
        return (0x40000000, *_HV)
    if leaf == 0x80000000:
        return (0x80000004, 0, 0, 0)
    if leaf == 0x80000001:
        return (0, 0, 1, _EDX_EXT if bits == 64 else _EDX_EXT & ~(1 << 29))
    if 0x80000002 <= leaf <= 0x80000004:
        off = (leaf - 0x80000002) * 16
        return struct.unpack("<4I", _BRAND[off:off + 16])
    return (0, 0, 0, 0)
