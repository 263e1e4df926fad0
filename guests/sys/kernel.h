/* A small kernel library for dbt's system guests: a flat GDT, an IDT with interrupt
   and trap gates, and handlers written in C with gcc's interrupt attribute.
   Builds for x86_32 (protected mode) and x86_64 (long mode). */
#ifndef DBT_KERNEL_H
#define DBT_KERNEL_H
#include "../c/rt.h"

#ifdef __x86_64__
typedef uint64_t uword;
#define GATE_SIZE 16
#else
typedef uint32_t uword;
#define GATE_SIZE 8
#endif

/* what the CPU pushes (the interrupt attribute's frame argument) */
struct frame { uword ip, cs, flags;
#ifdef __x86_64__
               uword sp, ss;
#endif
};

#define ISR __attribute__((interrupt, target("general-regs-only")))
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define GATE_INTR 0x8E  /* present, DPL 0, interrupt gate */
#define GATE_TRAP 0x8F  /* present, DPL 0, trap gate */
#define GATE_DPL3 0x60

static uint64_t gdt[8] __attribute__((aligned(16))) = {
    0,
#ifdef __x86_64__
    0x00AF9A000000FFFFull,  /* 0x08 ring-0 code, 64-bit */
#else
    0x00CF9A000000FFFFull,  /* 0x08 ring-0 code, 32-bit flat */
#endif
    0x00CF92000000FFFFull,  /* 0x10 ring-0 data, flat */
};
static uint8_t idt[256 * GATE_SIZE] __attribute__((aligned(16)));

struct __attribute__((packed)) table_reg { uint16_t limit; uword base; };

static void load_gdt(void) {
    struct table_reg r = { sizeof gdt - 1, (uword)gdt };
    __asm__ volatile("lgdt %0" : : "m"(r));
#ifdef __x86_64__
    __asm__ volatile("pushq $0x08\n lea 1f(%%rip), %%rax\n pushq %%rax\n lretq\n1:\n"
                     "mov $0x10, %%ax\n mov %%ax, %%ds\n mov %%ax, %%es\n mov %%ax, %%ss\n"
                     : : : "rax", "memory");
#else
    __asm__ volatile("ljmp $0x08, $1f\n1:\n mov $0x10, %%ax\n mov %%ax, %%ds\n"
                     "mov %%ax, %%es\n mov %%ax, %%ss\n" : : : "eax", "memory");
#endif
}

static void set_gate(int vector, void *handler, uint8_t type) {
    uword off = (uword)handler;
    uint8_t *g = idt + vector * GATE_SIZE;
    g[0] = off & 0xFF; g[1] = (off >> 8) & 0xFF;
    g[2] = KERNEL_CS; g[3] = 0;
    g[4] = 0; g[5] = type;
    g[6] = (off >> 16) & 0xFF; g[7] = (off >> 24) & 0xFF;
#ifdef __x86_64__
    for (int i = 0; i < 4; i++) g[8 + i] = (uint8_t)(off >> (32 + 8 * i));
    g[12] = g[13] = g[14] = g[15] = 0;
#endif
}

static void load_idt(void) {
    struct table_reg r = { sizeof idt - 1, (uword)idt };
    __asm__ volatile("lidt %0" : : "m"(r));
}

static inline uword read_flags(void) {
    uword f;
    __asm__ volatile("pushf\n pop %0" : "=r"(f));
    return f;
}

/* the 8259 pair: IRQs 0-15 at vectors 0x20-0x2F, only IRQ 0 (the PIT) unmasked */
static inline void pic_init(void) {
    outb(0x20, 0x11); outb(0xA0, 0x11);    /* ICW1: edge, cascade, ICW4 follows */
    outb(0x21, 0x20); outb(0xA1, 0x28);    /* ICW2: vectors 0x20 and 0x28 */
    outb(0x21, 0x04); outb(0xA1, 0x02);    /* ICW3: slave on IRQ 2 */
    outb(0x21, 0x01); outb(0xA1, 0x01);    /* ICW4: 8086 mode */
    outb(0x21, 0xFE); outb(0xA1, 0xFF);    /* only IRQ 0 */
}

/* the 8254's channel 0 in a mode (0 one shot, 2 rate generator, 3 square wave), IRQ 0 */
static inline void pit_start(uint8_t mode, uint16_t count) {
    outb(0x43, (uint8_t)(0x30 | (mode << 1)));  /* channel 0, lobyte/hibyte */
    outb(0x40, count & 0xFF);
    outb(0x40, count >> 8);
}

static void check(int ok, const char *what) {
    if (!ok) { puts_serial("FAILED: "); puts_serial(what); putc_serial('\n'); guest_exit(1); }
}
#endif
