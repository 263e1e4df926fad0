/* Sieve of Eratosthenes up to N, repeated REPS times; self-checks the prime count.
   expect-serial: primes 1229\n */
#include "rt.h"

#ifndef N
#define N 10000
#endif
#ifndef REPS
#define REPS 1
#endif

static uint8_t composite[N + 1];

static int sieve(void) {
    int count = 0;
    memset(composite, 0, sizeof composite);
    for (int i = 2; i <= N; i++) {
        if (composite[i]) continue;
        count++;
        for (int j = 2 * i; j <= N; j += i) composite[j] = 1;
    }
    return count;
}

int main(void) {
    int count = 0;
    for (int r = 0; r < REPS; r++) count = sieve();
    puts_serial("primes "); put_dec(count); puts_serial("\n");
    return N == 10000 ? (count == 1229 ? 0 : 1) : 0;
}
