/* Page tables for dbt's paging guests: 0..64 MiB mapped 1:1 (32-bit: the kernel's 4 MiB
   and the 4 MiB that hold the stack at the top of RAM), a demand-paged region at V_BASE with one page table, a second address
   space that differs only there, and a pool of free frames. 32-bit paging, PAE
   (define PAE before including) or 4-level paging in 64-bit mode. */
#ifndef DBT_PAGING_H
#define DBT_PAGING_H
#include "kernel.h"

#define PAGE 4096u
#define P 1u
#define RW 2u
#define US 4u  /* user-accessible */
#define A 0x20u
#define D 0x40u
#define PS 0x80u
#define V_BASE 0x40000000ul   /* the demand-paged region */

#if defined(__x86_64__) || defined(PAE)
#define WIDE 1  /* 8-byte entries, 512 to a table */
typedef volatile uint64_t pte_t;
#define ENTRIES 512
#ifdef __x86_64__
static pte_t pml4[512] __attribute__((aligned(4096)));
static pte_t pml4_b[512] __attribute__((aligned(4096)));
#define ROOT_ENTRY(user) (P | RW | (user))
#else
#define ROOT_ENTRY(user) P  /* PAE's four PDPTEs have no R/W or U/S bits */
#endif
static pte_t pdpt[512] __attribute__((aligned(4096)));
static pte_t pdpt_b[512] __attribute__((aligned(4096)));
static pte_t pd_low[512] __attribute__((aligned(4096)));
static pte_t pd_demand[512] __attribute__((aligned(4096)));
static pte_t pd_demand_b[512] __attribute__((aligned(4096)));
#define NX (1ull << 63)
#else
typedef volatile uint32_t pte_t;
#define ENTRIES 1024
static pte_t pd[1024] __attribute__((aligned(4096)));
static pte_t pd_b[1024] __attribute__((aligned(4096)));
static pte_t pt_low[1024] __attribute__((aligned(4096)));
static pte_t pt_stack[1024] __attribute__((aligned(4096)));
#endif
static pte_t pt_demand[ENTRIES] __attribute__((aligned(4096)));
static pte_t pt_demand_b[ENTRIES] __attribute__((aligned(4096)));
static uint8_t pool[16][PAGE] __attribute__((aligned(4096)));
static int next_frame;

static pte_t *pte_of(uword v) { return &pt_demand[(v - V_BASE) / PAGE]; }
static uword frame(void) { return (uword)pool[next_frame++]; }
static void invlpg(uword v) { __asm__ volatile("invlpg (%0)" : : "r"(v) : "memory"); }
static uword read_cr2(void) { uword v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static uword read_cr3(void) { uword v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static void write_cr3(uword v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }

#ifdef __x86_64__
#define ROOT pml4
#define ROOT_B pml4_b
#elif defined(PAE)
#define ROOT pdpt
#define ROOT_B pdpt_b
#else
#define ROOT pd
#define ROOT_B pd_b
#endif

/* user: US to let ring-3 code use every mapping, or 0 */
static void enable_paging_for(uword user) {
#ifdef WIDE
    for (unsigned i = 0; i < 32; i++)
        pd_low[i] = ((uint64_t)i << 21) | P | RW | PS | user;  /* 0..64 MiB in 2 MiB pages */
    pd_demand[0] = (uword)pt_demand | P | RW | user;
    pdpt[0] = (uword)pd_low | ROOT_ENTRY(user);
    pdpt[1] = (uword)pd_demand | ROOT_ENTRY(user);
    /* a second address space: the same, but its demand region has its own table */
    pd_demand_b[0] = (uword)pt_demand_b | P | RW | user;
    pdpt_b[0] = (uword)pd_low | ROOT_ENTRY(user);
    pdpt_b[1] = (uword)pd_demand_b | ROOT_ENTRY(user);
#ifdef __x86_64__
    pml4[0] = (uword)pdpt | P | RW | user;
    pml4_b[0] = (uword)pdpt_b | P | RW | user;
#else
    uword cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x20u) : "memory");  /* PAE */
#endif
    write_cr3((uword)ROOT);
#else
    uword sp;
    __asm__ volatile("mov %%esp, %0" : "=r"(sp));
    uword stack = (sp - 1) >> 22;  /* the 4 MiB the stack is in (the top of RAM) */
    for (unsigned i = 0; i < 1024; i++) {
        pt_low[i] = (i * PAGE) | P | RW | user;            /* 0..4 MiB: the kernel */
        pt_stack[i] = ((stack << 22) + i * PAGE) | P | RW | user;
    }
    pd[0] = (uword)pt_low | P | RW | user;
    pd[stack] = (uword)pt_stack | P | RW | user;
    pd[V_BASE >> 22] = (uword)pt_demand | P | RW | user;
    pd_b[0] = pd[0];
    pd_b[stack] = pd[stack];
    pd_b[V_BASE >> 22] = (uword)pt_demand_b | P | RW | user;
    write_cr3((uword)pd);
#endif
    uword cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
#ifndef __x86_64__
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");  /* PG */
#endif
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80010000u) : "memory");  /* WP */
}

static inline void enable_paging(void) { enable_paging_for(0); }

#endif
