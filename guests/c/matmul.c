/* Integer matrix multiply, N rounds of C = A x B on 16x16 matrices, B changing each round.
   Self-checks each product by the identity sum(C) = sum_k colsum_k(A) * rowsum_k(B).
   expect-serial: matmul checksum d45a8a32\n */
#include "rt.h"

#ifndef N
#define N 3
#endif
#define DIM 16

static uint32_t A[DIM][DIM], B[DIM][DIM], C[DIM][DIM];

static void multiply(void) {
    for (int i = 0; i < DIM; i++)
        for (int j = 0; j < DIM; j++) {
            uint32_t s = 0;
            for (int k = 0; k < DIM; k++) s += A[i][k] * B[k][j];
            C[i][j] = s;
        }
}

static int check(void) {
    uint32_t total = 0, expect = 0;
    for (int i = 0; i < DIM; i++)
        for (int j = 0; j < DIM; j++) total += C[i][j];
    for (int k = 0; k < DIM; k++) {
        uint32_t col = 0, row = 0;
        for (int i = 0; i < DIM; i++) { col += A[i][k]; row += B[k][i]; }
        expect += col * row;
    }
    return total == expect;
}

int main(void) {
    uint32_t x = 7, checksum = 0;
    int ok = 1;
    for (int i = 0; i < DIM; i++)
        for (int j = 0; j < DIM; j++) { x = x * 1664525u + 1013904223u; A[i][j] = x >> 20; }
    for (int round = 0; round < N; round++) {
        for (int i = 0; i < DIM; i++)
            for (int j = 0; j < DIM; j++) { x = x * 1664525u + 1013904223u; B[i][j] = (x >> 18) + (uint32_t)round; }
        multiply();
        ok &= check();
        for (int i = 0; i < DIM; i++) checksum = (checksum << 5 | checksum >> 27) ^ C[i][(i + round) % DIM];
    }
    puts_serial("matmul checksum "); put_hex(checksum, 8); puts_serial("\n");
    return ok ? 0 : 1;
}
