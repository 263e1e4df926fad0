/* The paging guest with PAE paging in 32-bit mode (three levels, 8-byte entries,
   2 MiB pages); built for x86_64 it is the same four-level guest as paging.c.
   mmu: both
   expect-serial: paging demand ad wp remap cr3 code large nx ok\n */
#define PAE 1
#include "paging.c"
