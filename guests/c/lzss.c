/* LZSS compression (4 KiB window, hash-chained match search) of N bytes of generated text,
   then decompression. Self-checks that the round trip gives the input back and that the
   text really compressed.
   expect-serial: lzss 1024 -> 286\n */
#include "rt.h"

#ifndef N
#define N 1024
#endif
#define WINDOW 4096
#define MIN_MATCH 3
#define MAX_MATCH 18
#define HASH_SIZE 1024
#define MAX_CHAIN 16

static uint8_t text[N], packed[N + N / 8 + 16], unpacked[N];
static int32_t head[HASH_SIZE], prev[N];

static unsigned hash3(const uint8_t *p) { return ((p[0] << 6) ^ (p[1] << 3) ^ p[2]) & (HASH_SIZE - 1); }

/* Items come in groups of eight behind a flag byte: bit set = literal byte,
   bit clear = a match of two bytes (12-bit distance - 1, 4-bit length - MIN_MATCH). */
static size_t compress(const uint8_t *in, size_t n, uint8_t *out) {
    size_t o = 0, flags_at = 0, i = 0;
    int item = 8;
    for (int h = 0; h < HASH_SIZE; h++) head[h] = -1;
    while (i < n) {
        if (item == 8) { flags_at = o++; out[flags_at] = 0; item = 0; }
        size_t best_len = 0, best_dist = 0;
        if (i + MIN_MATCH <= n) {
            unsigned h = hash3(in + i);
            int chain = MAX_CHAIN;
            for (int32_t j = head[h]; j >= 0 && i - (size_t)j <= WINDOW && chain--; j = prev[j]) {
                size_t len = 0;
                while (len < MAX_MATCH && i + len < n && in[j + len] == in[i + len]) len++;
                if (len > best_len) { best_len = len; best_dist = i - (size_t)j; }
            }
        }
        size_t take = best_len >= MIN_MATCH ? best_len : 1;
        if (best_len >= MIN_MATCH) {
            uint16_t code = (uint16_t)((best_dist - 1) << 4 | (best_len - MIN_MATCH));
            out[o++] = (uint8_t)code;
            out[o++] = (uint8_t)(code >> 8);
        } else {
            out[flags_at] |= (uint8_t)(1 << item);
            out[o++] = in[i];
        }
        item++;
        for (size_t k = 0; k < take; k++, i++)
            if (i + MIN_MATCH <= n) { unsigned h = hash3(in + i); prev[i] = head[h]; head[h] = (int32_t)i; }
    }
    return o;
}

static size_t decompress(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t flags = in[i++];
        for (int item = 0; item < 8 && i < n; item++) {
            if (flags & (1 << item)) {
                if (o == cap) return 0;
                out[o++] = in[i++];
            } else {
                uint16_t code = (uint16_t)(in[i] | in[i + 1] << 8);
                i += 2;
                size_t dist = (code >> 4) + 1, len = (code & 15) + MIN_MATCH;
                if (dist > o || o + len > cap) return 0;
                for (size_t k = 0; k < len; k++, o++) out[o] = out[o - dist];
            }
        }
    }
    return o;
}

int main(void) {
    static const char *words[] = {"the ", "guest ", "monitor ", "translates ", "a ", "block ",
                                  "and ", "traps ", "on ", "every ", "sensitive ", "instruction. "};
    uint32_t x = 99991;
    size_t n = 0;
    while (n < N) {
        x = x * 1103515245u + 12345u;
        for (const char *w = words[(x >> 16) % 12]; *w && n < N; w++) text[n++] = (uint8_t)*w;
    }
    size_t packed_size = compress(text, N, packed);
    size_t back = decompress(packed, packed_size, unpacked, N);
    int ok = back == N && memcmp(text, unpacked, N) == 0 && packed_size < N / 2;
    puts_serial("lzss "); put_dec(N); puts_serial(" -> "); put_dec(packed_size); puts_serial("\n");
    return ok ? 0 : 1;
}
