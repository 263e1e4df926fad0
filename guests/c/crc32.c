/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of a generated buffer, table-driven.
   Self-checks against the bitwise computation and the standard check value of "123456789".
   expect-serial: crc32 check cbf43926 buffer f5e54ad0\n */
#include "rt.h"

#ifndef N
#define N 1024
#endif

static uint32_t table[256];
static uint8_t buf[N];

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) { c ^= *p++; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1)); }
    return ~c;
}
static uint32_t crc_table(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

int main(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
        table[i] = c;
    }
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) { x = x * 1103515245u + 12345u; buf[i] = (uint8_t)(x >> 16); }
    uint32_t check = crc_table((const uint8_t *)"123456789", 9);
    uint32_t a = crc_table(buf, N), b = crc_bitwise(buf, N);
    puts_serial("crc32 check "); put_hex(check, 8);
    puts_serial(" buffer "); put_hex(a, 8); puts_serial("\n");
    return (check == 0xCBF43926u && a == b) ? 0 : 1;
}
