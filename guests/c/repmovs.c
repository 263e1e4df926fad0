/* Block copying with rep movs: N rounds of copying a 4 KiB buffer with rep movsd and
   rep movsb at shifting offsets and lengths. Self-checks every copy at sampled bytes and
   the last one byte by byte (plain loops, not rep movs).
   expect-serial: repmovs checksum 2ec4a4f7\n */
#include "rt.h"

#ifndef N
#define N 8
#endif
#define SIZE 4096

static uint8_t from[SIZE + 64], to[SIZE + 64];

static void copy_movsb(void *d, const void *s, size_t n) {
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}
static void copy_movsd(void *d, const void *s, size_t n) {
    __asm__ volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

int main(void) {
    uint32_t x = 4242, checksum = 0;
    int ok = 1;
    for (size_t i = 0; i < sizeof from; i++) { x = x * 1103515245u + 12345u; from[i] = (uint8_t)(x >> 16); }
    for (int round = 0; round < N; round++) {
        size_t src_off = (size_t)round % 61, dst_off = (size_t)(round * 7) % 53;
        size_t len = SIZE - (size_t)round % 256;
        if (round & 1)
            copy_movsd(to + dst_off, from + src_off, len / 4);
        else
            copy_movsb(to + dst_off, from + src_off, len);
        size_t copied = (round & 1) ? len / 4 * 4 : len;
        size_t stride = round == N - 1 ? 1 : 61;
        for (size_t i = 0; i < copied; i += stride) ok &= to[dst_off + i] == from[src_off + i];
        ok &= to[dst_off + copied - 1] == from[src_off + copied - 1];
        checksum = (checksum << 3 | checksum >> 29) ^ to[dst_off + copied / 2] ^ (uint32_t)copied;
    }
    puts_serial("repmovs checksum "); put_hex(checksum, 8); puts_serial("\n");
    return ok ? 0 : 1;
}
