/* The 8254 timer through the 8259 PICs: IRQ 0 remapped to vector 0x20 counts ticks
   while the CPU waits in hlt (virtual time jumps to each deadline), then while it
   computes (interrupts arrive in the middle of blocks), then across a cli/sti
   critical section (the pending tick waits for sti and its shadow), with a
   one-shot mode-0 count and a latched read of the counter.
   qemu: timing: QEMU's PIT follows the host clock, so when a tick arrives relative to
   the guest's instructions varies from run to run (dbt's virtual time does not)
   exact-clock: a 60 kHz timer and a tick taken right after sti's shadow need virtual
   time; in the free clock a pending tick is seen within a millisecond of sti
   expect-serial: pic pit hlt5 busy crit oneshot latch ok\n */
#include "kernel.h"

static volatile uint32_t ticks;
static volatile uword last_ip;

ISR static void on_timer(struct frame *f) { ticks++; last_ip = f->ip; outb(0x20, 0x20); }

static uint16_t pit_latch(void) {
    outb(0x43, 0x00);
    uint16_t lo = inb(0x40);
    return (uint16_t)(lo | inb(0x40) << 8);
}

int main(void) {
    load_gdt();
    set_gate(0x20, on_timer, GATE_INTR);
    load_idt();
    pic_init();
    check(inb(0x21) == 0xFE, "PIC mask reads back");
    puts_serial("pic ");
    pit_start(2, 1193);                        /* 1 kHz */
    check(pit_latch() <= 1193, "PIT count");
    puts_serial("pit ");
    while (ticks < 5) __asm__ volatile("sti; hlt; cli");
    puts_serial("hlt5 ");

    pit_start(3, 20);                          /* ~60 kHz: every ~17k instructions */
    ticks = 0;
    __asm__ volatile("sti");
    volatile uint32_t spin = 0;
    while (ticks < 3) spin++;
    __asm__ volatile("cli");
    check(spin > 100, "busy loop ran between ticks");
    puts_serial("busy ");

    uint32_t before = ticks;
    outb(0x20, 0x0A);                          /* OCW3: read the request register */
    while (!(inb(0x20) & 1)) { }               /* a tick becomes pending while IF=0 */
    check(ticks == before, "no tick with IF clear");
    __asm__ volatile("sti; nop; nop; nop; cli");
    check(ticks == before + 1, "pending tick taken after sti's shadow");
    puts_serial("crit ");

    pit_start(0, 50);                          /* one shot, ~42k instructions */
    ticks = 0;
    __asm__ volatile("sti");
    while (ticks == 0) { }
    for (volatile int i = 0; i < 30000; i++) { }
    __asm__ volatile("cli");
    check(ticks == 1, "mode 0 fires once");
    puts_serial("oneshot ");

    pit_start(2, 60000);                       /* a long period */
    uint16_t a = pit_latch();
    for (volatile int i = 0; i < 2000; i++) { }
    uint16_t b = pit_latch();
    check(a > b, "the count goes down");
    puts_serial("latch ok\n");
    return 0;
}
