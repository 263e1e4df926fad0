/* A state machine: a lexer that splits N bytes of generated source text into tokens,
   written out as a token array (store-heavy). Self-checks a table-driven DFA against a
   hand-written switch over the same states: both must produce the same tokens.
   expect-serial: lexer tokens 556\n */
#include "rt.h"

#ifndef N
#define N 1024
#endif

enum cls { C_SPACE, C_ALPHA, C_DIGIT, C_PUNCT, NCLASS };
enum state { S_START, S_IDENT, S_NUMBER, S_PUNCT, NSTATE };
struct token { uint32_t start; uint16_t length; uint8_t kind; uint8_t pad; };

static uint8_t src[N];
static struct token by_table[N + 1], by_switch[N + 1];
static uint8_t class_of[256];
/* next state from (state, class); S_START on a class that ends the token */
static const uint8_t next[NSTATE][NCLASS] = {
    [S_START] = {S_START, S_IDENT, S_NUMBER, S_PUNCT},
    [S_IDENT] = {S_START, S_IDENT, S_IDENT, S_START},
    [S_NUMBER] = {S_START, S_START, S_NUMBER, S_START},
    [S_PUNCT] = {S_START, S_START, S_START, S_START},
};

static size_t lex_table(struct token *out) {
    size_t count = 0;
    uint32_t start = 0;
    uint8_t state = S_START;
    for (uint32_t i = 0; i <= N; i++) {
        uint8_t c = i < N ? class_of[src[i]] : C_SPACE;
        uint8_t to = next[state][c];
        int fresh = state == S_START;
        if (state != S_START && (to != state || state == S_PUNCT)) {
            out[count++] = (struct token){start, (uint16_t)(i - start), state, 0};
            to = next[S_START][c];
            fresh = 1;
        }
        if (fresh && to != S_START) start = i;
        state = to;
    }
    return count;
}

static size_t lex_switch(struct token *out) {
    size_t count = 0;
    uint32_t i = 0;
    while (i < N) {
        uint8_t ch = src[i];
        uint32_t start = i;
        uint8_t kind;
        if (ch == ' ' || ch == '\n') { i++; continue; }
        if ((ch | 32) >= 'a' && (ch | 32) <= 'z') {
            kind = S_IDENT;
            while (i < N && (class_of[src[i]] == C_ALPHA || class_of[src[i]] == C_DIGIT)) i++;
        } else if (ch >= '0' && ch <= '9') {
            kind = S_NUMBER;
            while (i < N && class_of[src[i]] == C_DIGIT) i++;
        } else {
            kind = S_PUNCT;
            i++;
        }
        out[count++] = (struct token){start, (uint16_t)(i - start), kind, 0};
    }
    return count;
}

int main(void) {
    static const char alphabet[] = "abcxyzQR019 +-*(;\n  ";
    for (int c = 0; c < 256; c++)
        class_of[c] = (c == ' ' || c == '\n') ? C_SPACE
                    : ((c | 32) >= 'a' && (c | 32) <= 'z') ? C_ALPHA
                    : (c >= '0' && c <= '9') ? C_DIGIT : C_PUNCT;
    uint32_t x = 31337;
    for (size_t i = 0; i < N; i++) { x = x * 1103515245u + 12345u; src[i] = (uint8_t)alphabet[(x >> 16) % (sizeof alphabet - 1)]; }
    size_t a = lex_table(by_table), b = lex_switch(by_switch);
    int ok = a == b && a > N / 8;
    for (size_t i = 0; ok && i < a; i++)
        ok = by_table[i].start == by_switch[i].start && by_table[i].length == by_switch[i].length
             && by_table[i].kind == by_switch[i].kind;
    puts_serial("lexer tokens "); put_dec(a); puts_serial("\n");
    return ok ? 0 : 1;
}
