/* Timer ticks that arrive while the CPU computes, never halting: a 1 kHz PIT, interrupts
   enabled, and a loop that spins until three ticks are counted. In the exact clock the
   ticks come every 1M instructions; in the free clock they follow the host clock, and
   the engine must stop the running guest for each (a guest that waited for them only
   at hlt or at port writes would spin until its budget ran out).
   timed: how many times the loop goes round between ticks follows the clock
   expect-serial: tickspin ok\n */
#include "kernel.h"

static volatile uint32_t ticks;

ISR static void on_timer(struct frame *f) { (void)f; ticks++; outb(0x20, 0x20); }

int main(void) {
    load_gdt();
    set_gate(0x20, on_timer, GATE_INTR);
    load_idt();
    pic_init();
    pit_start(2, 1193);                        /* 1 kHz */
    __asm__ volatile("sti");
    volatile uint32_t spin = 0;
    while (ticks < 3) spin++;
    __asm__ volatile("cli");
    check(spin > 0, "the loop ran between ticks");
    puts_serial("tickspin ok\n");
    return 0;
}
