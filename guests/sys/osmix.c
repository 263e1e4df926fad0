/* An OS workload (the osmix macrobenchmark): a tiny kernel with its own page tables
   and a timer tick every ~50 us (the PIT one-shot, re-armed by each tick, so a slow
   engine in the free clock is never outrun by its ticks) runs a ring-3 task that does
   N rounds of compute kernels -- a sieve, a table-driven CRC-32, an insertion sort --
   on three pages of a demand-paged region: one mapped by a system call, two by the
   #PF handler when first read or written (zero-filled frames, handed out in turn from
   a pool), all three unmapped by system calls (PTE cleared, invlpg) at the end of the
   round. int 0x80 writes a byte, maps and unmaps a page, reads the tick and fault
   counts, recomputes the CRC in the kernel (by nibbles) and sleeps to the next tick;
   the kernel runs the long calls, and the #PF handler clears its page, with
   interrupts enabled, so ticks arrive in ring 3 and in ring 0. Results are checked
   against constants and against the kernel's; what is printed does not depend on how
   many ticks arrive.
   mmu: both
   timed: how many ticks arrive, and where, follows the clock
   expect-serial: osmix crc sort sieve paging timer ok\n */
#include "paging.h"
#include "user.h"

#ifndef N
#define N 8            /* rounds */
#endif
#define WINDOW 24      /* pages of the demand-paged region the rounds move over */
#define POOL 16        /* frames for it */
#define PIT_COUNT 60   /* ticks ~50 us apart */
#define SIEVE_TO 1000
#define PRIMES 168     /* primes up to 1000 */
#define CRC_LEN 512
#define KEYS 64

enum { SYS_PUTC = 1, SYS_TICKS, SYS_MAP, SYS_UNMAP, SYS_CRC, SYS_SLEEP, SYS_FAULTS, SYS_EXIT };

static struct tss tss;
static uint8_t kstack[8192] __attribute__((aligned(16)));
static uint8_t ustack[8192] __attribute__((aligned(16)));

/* --- the kernel -------------------------------------------------------------------------- */
static volatile uint32_t ticks, faults, bad_frames;
static uword frames[POOL];  /* the free frames, oldest first */
static unsigned first, nfree;

static inline void irq_on(void) { __asm__ volatile("sti" : : : "memory"); }
static inline void irq_off(void) { __asm__ volatile("cli" : : : "memory"); }
static int in_window(uword v) { return v >= V_BASE && v < V_BASE + WINDOW * PAGE; }
static int mapped(uword v) { return in_window(v) && (*pte_of(v) & P); }

/* map the page at v to the oldest free frame, cleared with interrupts enabled */
static void map_page(uword v) {
    check(nfree > 0, "a free frame");
    uword f = frames[first], n = PAGE / 4;
    void *p = (void *)f;
    first = (first + 1) % POOL;
    nfree--;
    irq_on();
    __asm__ volatile("rep stosl" : "+D"(p), "+c"(n) : "a"(0) : "memory");
    irq_off();
    *pte_of(v) = f | P | RW | US;
}

static uword unmap_page(uword v) {
    if (!mapped(v)) return (uword)-1;
    pte_t *e = pte_of(v);
    frames[(first + nfree++) % POOL] = (uword)(*e & ~(uword)(PAGE - 1));
    *e = 0;
    invlpg(v);
    return 0;
}

/* the kernel's CRC-32, four bits at a time (the user program's goes a byte at a time) */
static uint32_t nibble[16];

static uint32_t crc_by_nibbles(const uint8_t *p, unsigned n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        c = (c >> 4) ^ nibble[c & 15];
        c = (c >> 4) ^ nibble[c & 15];
    }
    return ~c;
}

ISR static void on_pf(struct uframe *f, uword code) {
    uword v = read_cr2() & ~(uword)(PAGE - 1);
    /* only a page of the region that is not there, touched by the user program */
    check(in_window(v) && !(code & P) && (code & US) && f->cs == USER_CS
          && (uword)f == TOP(kstack) - sizeof *f, "a page fault in the demand region");
    faults++;
    map_page(v);
}

ISR static void on_timer(struct uframe *f) {
    int user = (f->cs & 3) == 3;
    if (f->cs != (user ? USER_CS : KERNEL_CS)
        || (user && ((uword)f != TOP(kstack) - sizeof *f || f->ss != USER_DS)))
        bad_frames++;
    ticks++;
    outb(0x20, 0x20);
    pit_start(0, PIT_COUNT);  /* the next tick: never sooner than the handler can take it */
}

__attribute__((used)) uword sys_dispatch(uword nr, uword arg, struct uframe *frame) {
    (void)frame;
    switch (nr) {
    case SYS_PUTC: putc_serial((char)arg); return 0;
    case SYS_TICKS: return ticks;
    case SYS_MAP:
        if (!in_window(arg) || mapped(arg)) return (uword)-1;
        map_page(arg & ~(uword)(PAGE - 1));
        return 0;
    case SYS_UNMAP: return unmap_page(arg);
    case SYS_CRC: {  /* of the CRC_LEN bytes at arg, mapped in the region */
        if (!mapped(arg) || !mapped(arg + CRC_LEN - 1)) return 0;
        irq_on();
        uint32_t c = crc_by_nibbles((const uint8_t *)arg, CRC_LEN);
        irq_off();
        return c;
    }
    case SYS_SLEEP: {
        uint32_t t = ticks;
        while (ticks == t) __asm__ volatile("sti; hlt; cli" : : : "memory");
        return 0;
    }
    case SYS_FAULTS: return faults;
    case SYS_EXIT:
        check(bad_frames == 0, "interrupt frames");
        check(nfree == POOL, "every frame back in the pool");
        if (arg == 0) puts_serial("ok\n");
        guest_exit((uint8_t)arg);
    }
    return (uword)-1;
}

/* --- the user program (ring 3) ----------------------------------------------------------- */
static uint32_t crc_table[256];

static void uputs(const char *s) { while (*s) sys_int80(SYS_PUTC, (uword)*s++); }
static void ucheck(int ok, const char *what) {
    if (!ok) { uputs("FAILED: "); uputs(what); uputs("\n"); sys_int80(SYS_EXIT, 1); }
}

static uint32_t crc32(const uint8_t *p, unsigned n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* primes up to SIEVE_TO, marking composites in memory that must start zeroed */
static unsigned sieve(uint8_t *composite) {
    unsigned count = 0;
    for (unsigned i = 2; i <= SIEVE_TO; i++) {
        if (composite[i]) continue;
        count++;
        for (unsigned j = 2 * i; j <= SIEVE_TO; j += i) composite[j] = 1;
    }
    return count;
}

static void sort(uint32_t *a, unsigned n) {
    for (unsigned i = 1; i < n; i++) {
        uint32_t v = a[i];
        unsigned j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

static uint32_t next(uint32_t *x) { return *x = *x * 1103515245u + 12345u; }

static void user_main(void) {
    uputs("osmix ");
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
        crc_table[i] = c;
    }
    int crc_ok = crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u;
    int sort_ok = 1, sieve_ok = 1, zero_ok = 1;
    uint32_t last_ticks = 0;
    for (unsigned r = 0; r < N; r++) {
        uword base = V_BASE + (r * 3 % (WINDOW - 2)) * PAGE;
        uint8_t *composite = (uint8_t *)base;           /* a fault on its first read */
        uint32_t *keys = (uint32_t *)(base + PAGE);     /* mapped by a system call */
        uint8_t *data = (uint8_t *)(base + 2 * PAGE);   /* a fault on its first write */
        ucheck(sys_int80(SYS_MAP, (uword)keys) == 0, "map a page");
        sieve_ok &= sieve(composite) == PRIMES;

        uint32_t x = r;
        for (unsigned i = 0; i < CRC_LEN; i++) data[i] = (uint8_t)(next(&x) >> 16);
        crc_ok &= crc32(data, CRC_LEN) == sys_int80(SYS_CRC, (uword)data);

        uint32_t sum = 0, mix = 0;
        for (unsigned i = 0; i < KEYS; i++) {
            zero_ok &= keys[i] == 0;
            keys[i] = next(&x) >> 8;
            sum += keys[i];
            mix ^= keys[i];
        }
        sort(keys, KEYS);
        for (unsigned i = 0; i < KEYS; i++) {
            sort_ok &= i == 0 || keys[i - 1] <= keys[i];
            sum -= keys[i];
            mix ^= keys[i];
        }
        sort_ok &= sum == 0 && mix == 0;

        for (unsigned p = 0; p < 3; p++)
            ucheck(sys_int80(SYS_UNMAP, base + p * PAGE) == 0, "unmap a page");
        uint32_t t = (uint32_t)sys_int80(SYS_TICKS, 0);
        ucheck(t >= last_ticks, "the tick count grows");
        last_ticks = t;
    }
    ucheck(crc_ok, "crc"); uputs("crc ");
    ucheck(sort_ok, "sort"); uputs("sort ");
    ucheck(sieve_ok, "sieve"); uputs("sieve ");
    ucheck(zero_ok, "a mapped page reads zero");
    ucheck(sys_int80(SYS_FAULTS, 0) == 2 * N, "two page faults a round");
    uputs("paging ");
    sys_int80(SYS_SLEEP, 0);
    ucheck(sys_int80(SYS_TICKS, 0) > 0, "timer ticks");
    uputs("timer ");
    sys_int80(SYS_EXIT, 0);
}

int main(void) {
    user_segments(&tss, sizeof tss - 1, TOP(kstack));
    load_gdt();
    set_gate(14, on_pf, GATE_INTR);
    set_gate(0x20, on_timer, GATE_INTR);
    set_gate(0x80, int80_entry, GATE_INTR | GATE_DPL3);
    load_idt();
    load_tss();
    enable_paging_for(US);
    for (uint32_t i = 0; i < 16; i++) {
        uint32_t c = i;
        for (int k = 0; k < 4; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        nibble[i] = c;
    }
    for (int i = 0; i < POOL; i++) frames[i] = frame();
    nfree = POOL;
    pic_init();
    pit_start(0, PIT_COUNT);
    enter_user(user_main, TOP(ustack), (read_flags() | FLAG_IF) & ~FLAG_IOPL);
}
