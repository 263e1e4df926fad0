/* User mode and system calls: the kernel builds ring-3 segments and a TSS with an I/O
   permission bit map, drops to CPL 3 with iret (a ring-0 FS becomes null) and serves
   system calls by int 0x80 and by sysenter (32-bit) or syscall with swapgs (64-bit),
   each entering ring 0 on the kernel's stack with IF clear. At CPL 3: popf keeps IF
   and IOPL; in faults with #GP(0) unless the bit map allows the port, or a system
   call raises IOPL to 3 (which allows cli and sti too); hlt, mov from CR0, wrmsr and
   the fast returns fault with #GP(0); int through a DPL-0 gate faults with its IDT
   error code; #UD (64-bit: on an IST stack) and a timer interrupt arrive on the
   kernel's stack. The #GP handler finally kills the program when it tries cli at
   IOPL 0.
   timed: where in the ring-3 program the timer interrupt arrives follows the clock
   expect-serial: ring3 int80 fast popf io priv ud irq iopl killed ok\n */
#include "user.h"

#define IO_MAP 104             /* the bit map follows the TSS's 104 bytes */
#define ALLOWED_PORT 0x3FD     /* the UART's line status: the only port the map allows */
#define DENIED_PORT 0x21       /* the master PIC's mask register */
#ifdef __x86_64__
#define PRIV_FAULTS 7          /* in, hlt, mov from cr0, wrmsr, swapgs, sysretq, int 0x81 */
#else
#define PRIV_FAULTS 6          /* in, hlt, mov from cr0, wrmsr, sysexit, int 0x81 */
#endif

enum { SYS_PUTC = 1, SYS_DOUBLE, SYS_CHECK, SYS_IOPL, SYS_EXIT, SYS_TIMER };

static struct { struct tss tss; uint8_t bits[0x400 / 8 + 1]; } task __attribute__((aligned(16)));
static uint8_t kstack[4096] __attribute__((aligned(16)));
static uint8_t fast_stack[4096] __attribute__((aligned(16)));
static uint8_t ist_stack[4096] __attribute__((aligned(16)));
static uint8_t ustack[4096] __attribute__((aligned(16)));

static volatile int gp_count, ud_count, skip, killed, user_ticks;
static volatile uword expect_code, bad_frames, codes[8];
#ifdef __x86_64__
static struct { uword kernel_sp, user_sp; } percpu;
#endif

/* --- the kernel side ------------------------------------------------------------------------ */
static void wrmsr(uint32_t msr, uint64_t v) {
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static uword read_cs(void) { uword v; __asm__ volatile("mov %%cs, %0" : "=r"(v)); return v; }
static uword read_sp(void) {
    uword v;
#ifdef __x86_64__
    __asm__ volatile("mov %%rsp, %0" : "=r"(v));
#else
    __asm__ volatile("mov %%esp, %0" : "=r"(v));
#endif
    return v;
}

static int on_stack(uword sp, uword top) { return sp < top && sp > top - 4096; }

/* called by the three entry stubs; frame: the int 0x80 frame, or 0 for a fast call */
__attribute__((used)) uword sys_dispatch(uword nr, uword arg, struct uframe *frame) {
    switch (nr) {
    case SYS_PUTC: putc_serial((char)arg); return arg;
    case SYS_DOUBLE: return 2 * arg;
    case SYS_CHECK: {  /* ring 0, IF clear, on the right kernel stack */
        uword top = frame ? TOP(kstack) : TOP(fast_stack);
        int ok = (read_cs() & 3) == 0 && !(read_flags() & FLAG_IF) && on_stack(read_sp(), top);
        if (frame)
            ok = ok && (uword)frame == TOP(kstack) - sizeof *frame && frame->cs == USER_CS
                 && frame->ss == USER_DS && (frame->flags & FLAG_IF);
        return ok;
    }
    case SYS_IOPL:
        if (!frame) return (uword)-1;
        frame->flags = (frame->flags & ~FLAG_IOPL) | ((arg & 3) << 12);
        return 0;
    case SYS_EXIT: guest_exit((uint8_t)arg);
    case SYS_TIMER:  /* one tick of the PIT (mode 0) after arg counts */
        pit_start(0, (uint16_t)arg);
        return 0;
    }
    return (uword)-1;
}

/* entry stubs beside user.h's int 0x80: sysenter (32-bit) or syscall (64-bit) */
#ifdef __x86_64__
__asm__(".text\n"
        "syscall_entry:\n"            /* CPL 0, user rsp, IF cleared by FMASK */
        "  swapgs\n mov %rsp, %gs:8\n mov %gs:0, %rsp\n"
        "  push %rcx\n push %r11\n push %rdx\n push %rsi\n push %rdi\n push %r8\n push %r9\n"
        "  push %r10\n"
        "  mov %rax, %rdi\n mov %rbx, %rsi\n xor %edx, %edx\n"
        "  call sys_dispatch\n"
        "  pop %r10\n pop %r9\n pop %r8\n pop %rdi\n pop %rsi\n pop %rdx\n pop %r11\n pop %rcx\n"
        "  mov %gs:8, %rsp\n swapgs\n sysretq\n");
void syscall_entry(void);
#else
__asm__(".text\n"
        "sysenter_entry:\n"           /* CPL 0, esp = SYSENTER_ESP, IF clear */
        "  push %ecx\n push %edx\n push $0\n push %ebx\n push %eax\n"
        "  call sys_dispatch\n add $12, %esp\n"
        "  pop %edx\n pop %ecx\n sti\n sysexit\n");
void sysenter_entry(void);
#endif
__attribute__((noreturn)) void after_user(void);

ISR static void on_gp(struct uframe *f, uword code) {
    if ((uword)f != TOP(kstack) - sizeof *f || f->cs != USER_CS || f->ss != USER_DS)
        bad_frames++;
    if (skip) {  /* an instruction the program tries on purpose: skip it */
        /* an IDT error code is vector*8+2 (SDM Vol. 3A §6.13); QEMU's TCG gives
           vector*16+2 for a 64-bit gate (dbt's engines are compared on codes[]) */
        if (code != expect_code && !(GATE_SIZE == 16 && code == 2 * expect_code - 2))
            bad_frames++;
        codes[gp_count & 7] = code;
        gp_count++;
        f->ip += skip;
        skip = 0;
        return;
    }
    /* the program tried something it may not: kill it, going on in the kernel */
    killed = code == 0 && *(volatile uint8_t *)f->ip == 0xFA;  /* cli */
    f->ip = (uword)after_user;
    f->cs = KERNEL_CS;
    f->flags = 2;
#ifdef __x86_64__
    f->sp = TOP(kstack) - 8;
    f->ss = KERNEL_DS;
#endif
}

ISR static void on_ud(struct uframe *f) {
#ifdef __x86_64__
    uword top = TOP(ist_stack);  /* #UD's gate names IST 1 */
#else
    uword top = TOP(kstack);
#endif
    if ((uword)f != top - sizeof *f || f->cs != USER_CS || f->ss != USER_DS) bad_frames++;
    ud_count++;
    f->ip += 2;
}

ISR static void on_timer(struct uframe *f) {
    if ((uword)f != TOP(kstack) - sizeof *f || f->cs != USER_CS || f->ss != USER_DS)
        bad_frames++;
    user_ticks++;
    outb(0x20, 0x20);
}

/* --- the user side (ring 3): system calls are its only way to the serial port ------------- */
static uword sys_fast(uword nr, uword arg) {
    uword r;
#ifdef __x86_64__
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "b"(arg) : "rcx", "r11", "memory");
#else
    __asm__ volatile("mov %%esp, %%ecx\n mov $1f, %%edx\n sysenter\n1:"
                     : "=a"(r) : "a"(nr), "b"(arg) : "ecx", "edx", "memory");
#endif
    return r;
}

static void uputs(const char *s, int fast) {
    for (; *s; s++) (fast ? sys_fast : sys_int80)(SYS_PUTC, (uword)*s);
}

static void ucheck(int ok, const char *what) {
    if (!ok) { uputs("FAILED: ", 0); uputs(what, 0); uputs("\n", 0); sys_int80(SYS_EXIT, 1); }
}

static uword uflags(void) { return read_flags(); }

static void user_main(void) {
    uword fs;
    __asm__ volatile("mov %%fs, %k0" : "=r"(fs));
    ucheck((read_cs() & 3) == 3, "running at CPL 3");
    ucheck(fs == 0, "iret to ring 3 nulls a ring-0 FS");
    ucheck((uflags() & FLAG_IF) && !(uflags() & FLAG_IOPL), "user flags");
    uputs("ring3 ", 0);

    ucheck(sys_int80(SYS_DOUBLE, 21) == 42, "int 0x80 result");
    ucheck(sys_int80(SYS_CHECK, 0) == 1, "int 0x80 enters ring 0 on the TSS stack");
    uputs("int80 ", 0);
    ucheck(sys_fast(SYS_DOUBLE, 50) == 100, "fast system call result");
    ucheck(sys_fast(SYS_CHECK, 0) == 1, "fast system call enters ring 0 on its stack");
    ucheck(uflags() & FLAG_IF, "the fast return keeps IF");
    uputs("fast ", 1);

    /* popf at CPL 3 > IOPL: IF and IOPL stay, the status flags change */
    uword before = uflags(), after;
    __asm__ volatile("push %1\n popf\n pushf\n pop %0"
                     : "=r"(after) : "r"((before & ~FLAG_IF) | FLAG_IOPL | 1) : "cc");
    ucheck((after & (FLAG_IF | FLAG_IOPL | 1)) == (FLAG_IF | 1), "popf keeps IF and IOPL");
    uputs("popf ", 0);

    /* port I/O at IOPL 0: only what the TSS's bit map allows */
    uint8_t lsr;
    __asm__ volatile("inb %1, %0" : "=a"(lsr) : "Nd"((uint16_t)ALLOWED_PORT));
    ucheck(lsr & 0x20, "in from a port the bit map allows");
    skip = 2; expect_code = 0;
    __asm__ volatile("inb %0, %%al" : : "i"(DENIED_PORT) : "eax");
    ucheck(gp_count == 1, "in from a denied port: #GP(0)");
    uputs("io ", 0);

    /* privileged instructions and a gate of DPL 0: #GP */
    uword cr0;
    skip = 1; __asm__ volatile("hlt");
    skip = 3; __asm__ volatile("mov %%cr0, %0" : "=a"(cr0));
    skip = 2; __asm__ volatile("wrmsr" : : "c"(0x10), "a"(0), "d"(0));
#ifdef __x86_64__
    skip = 3; __asm__ volatile("swapgs");
    skip = 3; __asm__ volatile("sysretq");
#else
    skip = 2; __asm__ volatile("sysexit");
#endif
    skip = 2; expect_code = 0x81 * 8 + 2; __asm__ volatile("int $0x81");
    expect_code = 0;
    ucheck(gp_count == PRIV_FAULTS, "privileged instructions at CPL 3: #GP");
    (void)cr0;
    uputs("priv ", 0);

    __asm__ volatile("ud2");
    ucheck(ud_count == 1, "#UD at CPL 3");
    uputs("ud ", 0);

    /* an interrupt while the program runs: on the kernel's stack, back to ring 3 */
    sys_int80(SYS_TIMER, 50);
    while (!user_ticks) { }
    ucheck((read_cs() & 3) == 3 && (uflags() & FLAG_IF), "back at ring 3 after the tick");
    uputs("irq ", 0);

    /* IOPL 3 by a system call: port I/O, cli and sti are allowed */
    ucheck(sys_int80(SYS_IOPL, 3) == 0 && (uflags() & FLAG_IOPL) == FLAG_IOPL, "IOPL 3");
    __asm__ volatile("inb %0, %%al" : : "i"(DENIED_PORT) : "eax");
    __asm__ volatile("cli");
    ucheck(!(uflags() & FLAG_IF), "cli at IOPL 3");
    __asm__ volatile("sti");
    ucheck(gp_count == PRIV_FAULTS, "no #GP at IOPL 3");
    sys_int80(SYS_IOPL, 0);
    uputs("iopl ", 0);

    __asm__ volatile("cli");  /* not allowed at IOPL 0: the kernel kills the program */
    uputs("FAILED: cli at CPL 3 ran\n", 0);
    sys_int80(SYS_EXIT, 1);
}

__attribute__((used, noreturn)) void after_user(void) {
    __asm__ volatile("mov %0, %%ds\n mov %0, %%es" : : "r"(KERNEL_DS));
    check(killed, "#GP(0) for cli at CPL 3 kills the program");
    check(bad_frames == 0, "exception frames from ring 3 on the TSS stack");
    check((read_cs() & 3) == 0, "back at ring 0");
    puts_serial("killed ok\n");
    guest_exit(0);
}

static void setup_tss(void) {
    user_segments(&task.tss, sizeof task - 1, TOP(kstack));
#ifdef __x86_64__
    task.tss.ist[0] = TOP(ist_stack);
#endif
    task.tss.io_map = IO_MAP;
    for (unsigned i = 0; i < sizeof task.bits; i++) task.bits[i] = 0xFF;
    task.bits[ALLOWED_PORT / 8] &= ~(1 << (ALLOWED_PORT % 8));
}

static void setup_fast_calls(void) {
#ifdef __x86_64__
    wrmsr(0xC0000080, 0x500 | 1);                   /* EFER: LME, LMA, SCE */
    wrmsr(0xC0000081, (0x10ull << 48) | (0x08ull << 32));  /* STAR */
    wrmsr(0xC0000082, (uword)syscall_entry);       /* LSTAR */
    wrmsr(0xC0000084, FLAG_IF | 0x400);             /* FMASK: IF, DF */
    percpu.kernel_sp = TOP(fast_stack);
    wrmsr(0xC0000102, (uword)&percpu);              /* KERNEL_GS_BASE */
#else
    wrmsr(0x174, KERNEL_CS);                        /* SYSENTER_CS */
    wrmsr(0x175, TOP(fast_stack));                  /* SYSENTER_ESP */
    wrmsr(0x176, (uword)sysenter_entry);            /* SYSENTER_EIP */
#endif
}

int main(void) {
    setup_tss();
    load_gdt();
    set_gate(6, on_ud, GATE_INTR);
#ifdef __x86_64__
    idt[6 * GATE_SIZE + 4] = 1;  /* IST 1 */
#endif
    set_gate(13, on_gp, GATE_INTR);
    set_gate(0x20, on_timer, GATE_INTR);
    set_gate(0x80, int80_entry, GATE_INTR | GATE_DPL3);
    set_gate(0x81, int80_entry, GATE_INTR);  /* DPL 0: int 0x81 at CPL 3 is a #GP */
    load_idt();
    setup_fast_calls();
    pic_init();
    load_tss();

    /* to ring 3: a ring-0 FS is nulled on the way */
    __asm__ volatile("mov %0, %%fs" : : "r"(KERNEL_DS));
    enter_user(user_main, TOP(ustack), (read_flags() | FLAG_IF) & ~FLAG_IOPL);
}
