/* A small stack-machine interpreter (a switch compiled to a jump table) running a
   program that sums i*i mod 7 for i < N; self-checks against the same sum in C.
   expect-serial: vm ok\n */
#include "rt.h"

#ifndef N
#define N 600
#endif

enum { PUSH, LOAD, STORE, ADD, MUL, MOD, LT, JZ, JMP, DUP, POP, HALT };

static const int32_t prog[] = {
    PUSH, 0, STORE, 0,          /* i = 0 */
    PUSH, 0, STORE, 1,          /* s = 0 */
    LOAD, 0, PUSH, N, LT, JZ, 36, /* 8: while i < N */
    LOAD, 0, DUP, MUL, PUSH, 7, MOD, LOAD, 1, ADD, STORE, 1,  /* s += i*i % 7 */
    LOAD, 0, PUSH, 1, ADD, STORE, 0, JMP, 8,                  /* i++ */
    HALT,
};

static __attribute__((noinline)) uint32_t run(const int32_t *code, uint32_t *vars) {
    uint32_t stack[16]; int sp = 0, pc = 0;
    for (;;) {
        switch (code[pc++]) {
        case PUSH: stack[sp++] = code[pc++]; break;
        case LOAD: stack[sp++] = vars[code[pc++]]; break;
        case STORE: vars[code[pc++]] = stack[--sp]; break;
        case ADD: sp--; stack[sp - 1] += stack[sp]; break;
        case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
        case MOD: sp--; stack[sp - 1] %= stack[sp]; break;
        case LT: sp--; stack[sp - 1] = stack[sp - 1] < stack[sp]; break;
        case JZ: { int32_t t = code[pc++]; if (!stack[--sp]) pc = t; break; }
        case JMP: pc = code[pc]; break;
        case DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case POP: sp--; break;
        case HALT: return vars[1];
        default: return -1;
        }
    }
}

int main(void) {
    uint32_t vars[2] = {0, 0};
    uint32_t got = run(prog, vars), want = 0;
    for (uint32_t i = 0; i < N; i++) want += i * i % 7;
    puts_serial(got == want ? "vm ok\n" : "vm BAD\n");
    return got == want ? 0 : 1;
}
