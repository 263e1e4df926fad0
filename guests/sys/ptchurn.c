/* Page-table churn, the workload where shadow and nested paging differ most: every
   round touches PAGES pages (each a TLB miss after the last remap), then remaps them
   all to other frames with invlpg, and every fourth round switches address space
   with a CR3 write. The frames' final contents are checked against a model.
   mmu: both
   expect-serial: ptchurn ok\n */
#include "paging.h"

#ifndef N
#define N 8            /* rounds */
#endif
#define PAGES 128      /* pages in the churned region */
#define FRAMES 12      /* pool frames they rotate over */

static uint32_t model[FRAMES][PAGE / 4];
static uword frames[FRAMES];

int main(void) {
    load_gdt();
    load_idt();
    enable_paging();
    puts_serial("ptchurn ");
    for (int f = 0; f < FRAMES; f++) frames[f] = frame();
    for (unsigned r = 0; r < N; r++) {
        pte_t *pt = (r & 4) ? pt_demand_b : pt_demand;  /* the address space in use */
        if ((r & 3) == 0)
            write_cr3((uword)((r & 4) ? ROOT_B : ROOT));
        for (unsigned i = 0; i < PAGES; i++) {  /* remap: page i -> frame (i + r) % FRAMES */
            pt[i] = frames[(i + r) % FRAMES] | P | RW;
            invlpg(V_BASE + i * PAGE);
        }
        for (unsigned i = 0; i < PAGES; i++) {  /* touch every page */
            unsigned slot = (i * 7 + r) % (PAGE / 4);
            volatile uint32_t *w = (volatile uint32_t *)(V_BASE + i * PAGE) + slot;
            *w += r * PAGES + i;
            model[(i + r) % FRAMES][slot] += r * PAGES + i;
        }
    }
    write_cr3((uword)ROOT);
    for (int f = 0; f < FRAMES; f++)
        for (unsigned s = 0; s < PAGE / 4; s++)
            check(((volatile uint32_t *)frames[f])[s] == model[f][s], "frame contents");
    puts_serial("ok\n");
    return 0;
}
