#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode_class.h"
#include "tokenizer/utf8.h"

/* Class of every ASCII character, so the common case needs no table walk. */
static const unsigned char ascii_class[128] = {
#define S UC_SPACE
#define L UC_LETTER
#define N UC_NUMBER
#define O UC_OTHER
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O, /* \t \n \v \f \r */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O,
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* space */
    N, N, N, N, N, N, N, N, N, N, O, O, O, O, O, O,
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O,
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O,
#undef S
#undef L
#undef N
#undef O
};

/* Class and byte length of the character at s[i]. Invalid UTF-8 bytes are "other". */
static inline enum uc_class class_at(const unsigned char *s, size_t len, size_t i, int *n) {
    if (s[i] < 0x80) { *n = 1; return (enum uc_class)ascii_class[s[i]]; }
    uint32_t cp;
    *n = utf8_decode(s + i, len - i, &cp);
    return cp == UTF8_INVALID ? UC_OTHER : uc_class_of(cp);
}

/* End of the run of characters of class c that starts at s[i]. */
static size_t run_end(const unsigned char *s, size_t len, size_t i, enum uc_class c) {
    while (i < len) {
        int n;
        if (class_at(s, len, i, &n) != c) break;
        i += (size_t)n;
    }
    return i;
}

/* The contractions, lower case only, as in the pattern: 's 't 'm 'd 're 've 'll. */
static size_t contraction_len(const unsigned char *s, size_t len, size_t i) {
    if (i + 1 >= len) return 0;
    unsigned char a = s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= len) return 0;
    unsigned char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

size_t pretok_next(const unsigned char *s, size_t len, size_t i) {
    if (s[i] == '\'') {
        size_t n = contraction_len(s, len, i);
        if (n) return i + n;
    }
    int n;
    enum uc_class c = class_at(s, len, i, &n);
    if (c != UC_SPACE) return run_end(s, len, i + (size_t)n, c); /* \p{L}+, \p{N}+ or other+ */

    /* " ?X+": one space joins the letters, numbers or other characters right after it */
    if (s[i] == ' ' && i + 1 < len) {
        int n2;
        enum uc_class c2 = class_at(s, len, i + 1, &n2);
        if (c2 != UC_SPACE) return run_end(s, len, i + 1 + (size_t)n2, c2);
    }
    /* a run of white space: "\s+(?!\S)" leaves its last character to start the next piece when
     * something other than white space follows; a run of one is "\s+" alone */
    size_t start = i, last = i;
    while (i < len) {
        if (class_at(s, len, i, &n) != UC_SPACE) break;
        last = i;
        i += (size_t)n;
    }
    if (i == len || last == start) return i;
    return last;
}
