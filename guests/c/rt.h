/* Minimal freestanding runtime for dbt guests: COM1 output and the debug exit. */
#ifndef DBT_RT_H
#define DBT_RT_H
#include <stdint.h>
#include <stddef.h>

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline void putc_serial(char c) {
    while (!(inb(0x3fd) & 0x20)) { }
    outb(0x3f8, (uint8_t)c);
}
static inline void puts_serial(const char *s) { while (*s) putc_serial(*s++); }
static inline void put_hex(uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; i--) putc_serial("0123456789abcdef"[(v >> (4 * i)) & 15]);
}
static inline void put_dec(uint64_t v) {
    char buf[24]; int n = 0;
    do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) putc_serial(buf[--n]);
}
static __attribute__((noreturn)) void guest_exit(uint8_t code) {
    outb(0xf4, code);
    for (;;) __asm__ volatile("cli; hlt");
}
/* gcc may emit calls to these even when freestanding */
void *memcpy(void *d, const void *s, size_t n) { uint8_t *a = d; const uint8_t *b = s; while (n--) *a++ = *b++; return d; }
void *memset(void *d, int c, size_t n) { uint8_t *a = d; while (n--) *a++ = (uint8_t)c; return d; }
void *memmove(void *d, const void *s, size_t n) {
    uint8_t *a = d; const uint8_t *b = s;
    if (a < b) { while (n--) *a++ = *b++; } else { a += n; b += n; while (n--) *--a = *--b; }
    return d;
}
int memcmp(const void *x, const void *y, size_t n) {
    const uint8_t *a = x, *b = y;
    for (; n; n--, a++, b++) if (*a != *b) return *a - *b;
    return 0;
}

int main(void);
/* The entry point: the loader leaves the stack 16-byte aligned at the top of RAM. */
__asm__(".text\n.globl _start\n_start:\n"
#ifdef __x86_64__
        "  call main\n  mov %eax, %edi\n  call exit_with\n"
#else
        "  call main\n  push %eax\n  call exit_with\n"
#endif
        "1: hlt\n  jmp 1b\n");
__attribute__((used)) void exit_with(int code) { guest_exit((uint8_t)code); }
#endif
