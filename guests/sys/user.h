/* Ring 3 for dbt's system guests: user segments beside kernel.h's (where sysret and
   sysexit expect them), a TSS whose RSP0/ESP0 is the kernel's stack, the int 0x80
   entry, and the drop to ring 3 with iret. The guest defines
   uword sys_dispatch(uword nr, uword arg, struct uframe *frame): int 0x80 calls it with
   nr from eax/rax, arg from ebx/rbx and the interrupt frame, and returns its result
   in eax/rax. */
#ifndef DBT_USER_H
#define DBT_USER_H
#include "kernel.h"

#ifdef __x86_64__
#define USER_CS 0x23  /* sysret: STAR[63:48] + 16, RPL 3 */
#define USER_DS 0x1B  /* sysret: STAR[63:48] + 8, RPL 3 */
#else
#define USER_CS 0x1B  /* sysexit: SYSENTER_CS + 16, RPL 3 */
#define USER_DS 0x23  /* sysexit: SYSENTER_CS + 24, RPL 3 */
#endif
#define TSS_SEL 0x28
#define FLAG_IF 0x200
#define FLAG_IOPL 0x3000
#define TOP(s) ((uword)(s) + sizeof (s))

/* what the CPU pushes on an interrupt from ring 3 (the handler's frame argument) */
struct uframe { uword ip, cs, flags, sp, ss; };

#ifdef __x86_64__
struct __attribute__((packed)) tss {
    uint32_t reserved0; uint64_t rsp[3]; uint64_t reserved1; uint64_t ist[7];
    uint64_t reserved2; uint16_t reserved3, io_map;
};
#else
struct __attribute__((packed)) tss {
    uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, regs[8], segs[6], ldt;
    uint16_t trap, io_map;
};
#endif

static uint64_t tss_descriptor(uword base, uint32_t limit) {
    return (limit & 0xFFFF) | ((uint64_t)(base & 0xFFFFFF) << 16) | (0x89ull << 40)
           | ((uint64_t)((limit >> 16) & 0xF) << 48) | ((uint64_t)((base >> 24) & 0xFF) << 56);
}

/* the ring-3 code and data segments and a TSS of `limit` + 1 bytes whose ring-0 stack
   is kernel_sp (before load_gdt) */
static void user_segments(struct tss *t, uint32_t limit, uword kernel_sp) {
#ifdef __x86_64__
    gdt[3] = 0x00CFF2000000FFFFull;  /* 0x18 ring-3 data */
    gdt[4] = 0x00AFFA000000FFFFull;  /* 0x20 ring-3 code, 64-bit */
    gdt[5] = tss_descriptor((uword)t, limit);
    gdt[6] = (uint64_t)(uword)t >> 32;
    t->rsp[0] = kernel_sp;
#else
    gdt[3] = 0x00CFFA000000FFFFull;  /* 0x18 ring-3 code */
    gdt[4] = 0x00CFF2000000FFFFull;  /* 0x20 ring-3 data */
    gdt[5] = tss_descriptor((uword)t, limit);
    t->esp0 = kernel_sp;
    t->ss0 = KERNEL_DS;
#endif
}

static void load_tss(void) { __asm__ volatile("ltr %w0" : : "r"(TSS_SEL)); }

__attribute__((used)) uword sys_dispatch(uword nr, uword arg, struct uframe *frame);

/* int 0x80: the caller-saved registers kept, sys_dispatch(eax, ebx, frame) into eax */
#ifdef __x86_64__
__asm__(".text\n"
        "int80_entry:\n"
        "  push %rcx\n push %rdx\n push %rsi\n push %rdi\n push %r8\n push %r9\n push %r10\n"
        "  push %r11\n"
        "  mov %rax, %rdi\n mov %rbx, %rsi\n lea 64(%rsp), %rdx\n sub $8, %rsp\n"
        "  call sys_dispatch\n add $8, %rsp\n"
        "  pop %r11\n pop %r10\n pop %r9\n pop %r8\n pop %rdi\n pop %rsi\n pop %rdx\n pop %rcx\n"
        "  iretq\n");
#else
__asm__(".text\n"
        "int80_entry:\n"
        "  push %ecx\n push %edx\n lea 8(%esp), %ecx\n"
        "  push %ecx\n push %ebx\n push %eax\n call sys_dispatch\n add $12, %esp\n"
        "  pop %edx\n pop %ecx\n iret\n");
#endif
void int80_entry(void);

/* a system call by int 0x80 (the kernel, like a called function, may use the SSE registers) */
static uword sys_int80(uword nr, uword arg) {
    uword r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(arg) : "memory"
#ifdef __x86_64__
                     , "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                     "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#endif
                     );
    return r;
}

/* to ring 3 at user() with the stack top sp and these flags (32-bit: DS, ES and GS become
   the user's; a ring-0 FS is nulled on the way) */
static __attribute__((noreturn)) void enter_user(void (*user)(void), uword sp, uword flags) {
#ifdef __x86_64__
    __asm__ volatile("pushq %0\n pushq %1\n pushq %2\n pushq %3\n pushq %4\n iretq"
                     : : "i"(USER_DS), "r"(sp - 8), "r"(flags), "i"(USER_CS), "r"((uword)user)
                     : "memory");
#else
    __asm__ volatile("mov %0, %%ds\n mov %0, %%es\n mov %0, %%gs\n"
                     "push %0\n push %1\n push %2\n push %3\n push %4\n iret"
                     : : "r"(USER_DS), "r"(sp - 4), "r"(flags), "i"(USER_CS), "r"((uword)user)
                     : "memory");
#endif
    __builtin_unreachable();
}
#endif
