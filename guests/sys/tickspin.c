/* Timer ticks that arrive while the CPU computes, never halting: a 10 kHz PIT, interrupts
   enabled, and a loop that spins until three ticks are counted. In the exact clock the
   ticks come every 100K instructions; in the free clock they follow the host clock, and
   the engine must stop the running guest for each (a guest that waited for them only
   at hlt or at port writes would spin until its budget ran out).
   timed: how many times the loop goes round between ticks follows the clock
   expect-serial: tickspin ok\n */
#include "kernel.h"

static volatile uint32_t ticks;
static volatile uint32_t work;             /* the loop's progress */
static uint32_t seen[3];                   /* the progress at each tick */

ISR static void on_timer(struct frame *f) {
    (void)f;
    if (ticks < 3) seen[ticks] = work;
    ticks++;
    outb(0x20, 0x20);
}

int main(void) {
    load_gdt();
    set_gate(0x20, on_timer, GATE_INTR);
    load_idt();
    pic_init();
    pit_start(2, 119);                         /* 10 kHz */
    __asm__ volatile("sti");
    while (ticks < 3) work++;
    __asm__ volatile("cli");
    check(seen[2] > seen[0], "the loop ran between the first tick and the third");
    puts_serial("tickspin ok\n");
    return 0;
}
