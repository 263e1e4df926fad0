"""Host memory that backs a region of the machine's physical memory.

unicorn maps such a region with ``mem_map_ptr`` and reads and writes the host
bytes directly, so the monitor can read and write them without a call into
unicorn (guest RAM, the code cache, the lookup table). Two more reasons to back
memory this way:

- write-protecting one page of a region (bt's self-modifying-code check) splits
  it, and unicorn copies a region it allocated itself to do so (1.1-1.5 ms for a
  1 MiB region, measured) but not one backed by the caller (about 90 us);
- unicorn does not see a write made here: whoever changes code unicorn may have
  translated drops its blocks (``ctl_remove_cache``), as after any patch.
"""

from __future__ import annotations

import ctypes
import mmap


class HostBacked:
    """``size`` bytes of anonymous host memory (zeroed, page aligned, committed lazily)
    that back physical addresses ``phys`` onwards."""

    def __init__(self, phys: int, size: int):
        self.phys = phys
        self.size = size
        self.buf = mmap.mmap(-1, size)
        self.host = ctypes.addressof(ctypes.c_char.from_buffer(self.buf))

    def write(self, phys: int, data: bytes) -> None:
        off = phys - self.phys
        if not 0 <= off <= self.size - len(data):
            raise ValueError(f"write of {len(data)} bytes at {phys:#x} outside the region")
        self.buf[off:off + len(data)] = data

    def read(self, phys: int, n: int) -> bytes:
        off = phys - self.phys
        if not 0 <= off <= self.size - n:
            raise ValueError(f"read of {n} bytes at {phys:#x} outside the region")
        return self.buf[off:off + n]
