/* Paging under the guest's own page tables: 32-bit two-level paging (with a 4 MiB
   page) or 64-bit four-level paging (with 2 MiB pages and NX). The #PF handler maps
   pages on demand and checks CR2 and the error code; the guest checks accessed and
   dirty bits, CR0.WP, remapping a live page with invlpg, switching CR3, and code
   run from a page that is remapped under it.
   mmu: both
   expect-serial: paging demand ad wp remap cr3 code large nx ok\n */
#include "paging.h"

static volatile uint32_t marker;
static volatile int pf_seen;
static volatile uword pf_addr, pf_code, pf_fix;  /* pf_fix: 0 map on demand, 1 make writable */
#ifdef __x86_64__
static volatile int nx_return;
#endif

ISR static void on_pf(struct frame *f, uword code) {
    pf_seen++;
    pf_addr = read_cr2();
    pf_code = code;
#ifdef __x86_64__
    if (code & 0x10) {  /* an instruction fetch from a no-execute page: return to the caller */
        nx_return = 1;
        f->ip = *(uword *)f->sp;
        f->sp += sizeof(uword);
        return;
    }
#endif
    pte_t *pte = pte_of(pf_addr & ~(uword)(PAGE - 1));
    if (pf_fix == 1) *pte |= RW;
    else *pte = frame() | P | RW;
    invlpg(pf_addr);
    (void)f;
}

int main(void) {
    load_gdt();
    set_gate(14, on_pf, GATE_INTR);
    load_idt();
    enable_paging();
    puts_serial("paging ");

    /* demand paging: a read, then a write, of pages that are not present */
    volatile uint32_t *p = (volatile uint32_t *)(V_BASE + 0x124);
    uint32_t v = *p;
    check(pf_seen == 1 && pf_addr == V_BASE + 0x124, "#PF CR2 on a read");
    check(pf_code == 0, "#PF error code on a read (not present, supervisor)");
    check(v == 0, "a fresh page reads 0");
    volatile uint32_t *q = (volatile uint32_t *)(V_BASE + PAGE + 8);
    *q = 0xCAFE;
    check(pf_seen == 2 && pf_addr == V_BASE + PAGE + 8, "#PF CR2 on a write");
    check(pf_code == 2, "#PF error code on a write");
    check(*q == 0xCAFE, "the write went through after the fault");
    puts_serial("demand ");

    /* accessed and dirty bits, set by the MMU */
    pte_t *pte0 = pte_of(V_BASE), *pte1 = pte_of(V_BASE + PAGE);
    check((*pte0 & (A | D)) == A, "a page only read is accessed, not dirty");
    check((*pte1 & (A | D)) == (A | D), "a page written is dirty");
    *pte0 &= ~(pte_t)(A | D);
    invlpg(V_BASE);
    v = *p;
    check((*pte0 & (A | D)) == A, "accessed again after invlpg");
    *p = v + 1;
    check((*pte0 & (A | D)) == (A | D), "dirty after a write");
    puts_serial("ad ");

    /* CR0.WP: a supervisor write to a read-only page faults (present, write) */
    *pte0 &= ~(pte_t)RW;
    invlpg(V_BASE);
    pf_fix = 1;
    *p = 77;
    pf_fix = 0;
    check(pf_seen == 3 && pf_code == 3 && pf_addr == V_BASE + 0x124, "#PF on a read-only page");
    check(*p == 77, "the write went through once writable");
    puts_serial("wp ");

    /* remap a live page: point the PTE at another frame and invalidate it */
    uword f1 = frame(), f2 = frame();
    *(volatile uint32_t *)f1 = 0x11;
    *(volatile uint32_t *)f2 = 0x22;
    uword va = V_BASE + 8 * PAGE;
    *pte_of(va) = f1 | P | RW;
    check(*(volatile uint32_t *)va == 0x11, "mapped to the first frame");
    *pte_of(va) = f2 | P | RW;
    invlpg(va);
    check(*(volatile uint32_t *)va == 0x22, "remapped to the second frame");
    *(volatile uint32_t *)va = 0x23;
    check(*(volatile uint32_t *)f1 == 0x11 && *(volatile uint32_t *)f2 == 0x23, "frames");
    puts_serial("remap ");

    /* a second address space maps the same address elsewhere */
    pt_demand_b[8] = f1 | P | RW;
    uword cr3 = read_cr3();
    write_cr3((uword)ROOT_B);
    check(*(volatile uint32_t *)va == 0x11, "the other address space");
    write_cr3(cr3);
    check(*(volatile uint32_t *)va == 0x23, "back in the first");
    puts_serial("cr3 ");

    /* code in a page that is remapped under it: mov eax, imm32; ret */
    uword c1 = frame(), c2 = frame();
    static const uint8_t ret1[] = {0xB8, 1, 0, 0, 0, 0xC3}, ret2[] = {0xB8, 2, 0, 0, 0, 0xC3};
    for (unsigned i = 0; i < sizeof ret1; i++) {
        ((volatile uint8_t *)c1)[i] = ret1[i];
        ((volatile uint8_t *)c2)[i] = ret2[i];
    }
    uword vc = V_BASE + 12 * PAGE;
    *pte_of(vc) = c1 | P | RW;
    int (*fn)(void) = (int (*)(void))vc;
    check(fn() == 1, "code in a mapped page");
    *pte_of(vc) = c2 | P | RW;
    invlpg(vc);
    check(fn() == 2, "code in the page after remapping");
    write_cr3((uword)ROOT_B);
    pt_demand_b[12] = c1 | P | RW;
    check(fn() == 1, "code in the other address space");
    write_cr3(cr3);
    check(fn() == 2, "and back");
    puts_serial("code ");

    /* a large page */
#ifdef WIDE
    pd_demand[1] = 0 | P | RW | PS;   /* V_BASE + 2 MiB -> 0, a 2 MiB page */
    marker = 0x5151;
    check(*(volatile uint32_t *)(V_BASE + (2ul << 20) + (uword)&marker) == 0x5151,
          "2 MiB page");
    check((pd_demand[1] & (A | D)) == A, "2 MiB page accessed");
#else
    uword cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10u) : "memory");  /* PSE */
    pd[(V_BASE >> 22) + 1] = 0 | P | RW | PS;  /* V_BASE + 4 MiB -> 0, a 4 MiB page */
    marker = 0x5151;
    check(*(volatile uint32_t *)(V_BASE + (4u << 20) + (uword)&marker) == 0x5151,
          "4 MiB page");
    check((pd[(V_BASE >> 22) + 1] & (A | D)) == A, "4 MiB page accessed");
#endif
    puts_serial("large ");

    /* no-execute (long mode: EFER.NXE): calling into a data page faults with I/D set */
#ifdef __x86_64__
    __asm__ volatile("mov $0xC0000080, %%ecx\n rdmsr\n or $0x800, %%eax\n wrmsr"
                     : : : "eax", "ecx", "edx", "memory");
    *pte_of(vc) |= NX;
    invlpg(vc);
    int seen = pf_seen;
    fn();
    check(nx_return && pf_seen == seen + 1 && pf_addr == vc && pf_code == 0x11, "NX fetch #PF");
#endif
    puts_serial("nx ok\n");
    return 0;
}
