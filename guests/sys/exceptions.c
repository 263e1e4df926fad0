/* Exceptions delivered through the guest's IDT and handled by it: #DE fixed and
   resumed, #UD skipped, #BP and int 0x80 round trips, #GP with its error code,
   interrupt gates clear IF and trap gates keep it, and iret restores it.
   expect-serial: de ud bp int80 gp gates ok\n */
#include "kernel.h"

static volatile int de_seen, ud_seen, bp_seen, gp_seen;
static volatile uword gp_code, sys_arg, sys_flags, bp_ip;

ISR static void on_de(struct frame *f) { de_seen++; f->ip += 2; }          /* skip div ecx */
ISR static void on_ud(struct frame *f) { ud_seen++; f->ip += 2; }          /* skip ud2 */
ISR static void on_bp(struct frame *f) { bp_seen++; bp_ip = f->ip; }       /* ip is past int3 */
ISR static void on_gp(struct frame *f, uword code) { gp_seen++; gp_code = code; f->ip += 2; }
ISR static void on_sys(struct frame *f) { sys_arg = 42; sys_flags = read_flags(); (void)f; }
ISR static void on_trap(struct frame *f) { sys_flags = read_flags(); (void)f; }

int main(void) {
    load_gdt();
    set_gate(0, on_de, GATE_INTR);
    set_gate(3, on_bp, GATE_TRAP | GATE_DPL3);
    set_gate(6, on_ud, GATE_INTR);
    set_gate(13, on_gp, GATE_INTR);
    set_gate(0x80, on_sys, GATE_INTR | GATE_DPL3);
    set_gate(0x81, on_trap, GATE_TRAP);
    load_idt();

    uint32_t q = 7;
    __asm__ volatile("xor %%edx, %%edx\n mov $100, %%eax\n xor %%ecx, %%ecx\n"
                     ".byte 0xf7, 0xf1\n mov %%eax, %0" : "=r"(q) : : "eax", "ecx", "edx");
    check(de_seen == 1, "#DE handler");
    puts_serial("de ");
    __asm__ volatile("ud2");
    check(ud_seen == 1, "#UD handler");
    puts_serial("ud ");
    uword after;
    __asm__ volatile("int3\n 1:\n"
#ifdef __x86_64__
                     "lea 1b(%%rip), %0"
#else
                     "mov $1b, %0"
#endif
                     : "=r"(after));
    check(bp_seen == 1 && bp_ip == after, "#BP saved pc");
    puts_serial("bp ");
    __asm__ volatile("sti");
    __asm__ volatile("int $0x80" : : : "memory");
    check(sys_arg == 42, "int 0x80");
    check(!(sys_flags & 0x200), "interrupt gate clears IF");
    check(read_flags() & 0x200, "iret restores IF");
    puts_serial("int80 ");
    __asm__ volatile("mov $0x1234, %%ax\n .byte 0x8e, 0xd8" : : : "eax");  /* mov ds, ax */
    check(gp_seen == 1 && gp_code == 0x1234, "#GP error code");
    puts_serial("gp ");
    __asm__ volatile("int $0x81" : : : "memory");
    check(sys_flags & 0x200, "trap gate keeps IF");
    __asm__ volatile("cli");
    puts_serial("gates ok\n");
    (void)q;
    return 0;
}
