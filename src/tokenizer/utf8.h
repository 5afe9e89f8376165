/* UTF-8 decoding with a fixed rule for invalid input, shared by the pre-tokenizer and the
 * streaming decoder. */
#ifndef GPT2C_UTF8_H
#define GPT2C_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_INVALID 0xFFFFFFFFu

/* Length a lead byte announces (1..4), or 0 if it cannot start a character. */
static inline int utf8_seq_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether b may follow lead byte c as the byte at position k (1..3) of the sequence. The second
 * byte's range excludes overlong forms, surrogates and code points above U+10FFFF. */
static inline int utf8_cont_ok(unsigned char c, int k, unsigned char b) {
    if (k == 1) {
        if (c == 0xE0) return b >= 0xA0 && b <= 0xBF;
        if (c == 0xED) return b >= 0x80 && b <= 0x9F;
        if (c == 0xF0) return b >= 0x90 && b <= 0xBF;
        if (c == 0xF4) return b >= 0x80 && b <= 0x8F;
    }
    return (b & 0xC0) == 0x80;
}

/* Decode the character at s[0..avail). Returns its byte length and sets *cp. A byte that does
 * not begin a complete, valid sequence is one character of its own: *cp = UTF8_INVALID, 1. */
static inline int utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp) {
    unsigned char c = s[0];
    int n = utf8_seq_len(c);
    if (n == 1) { *cp = c; return 1; }
    if (n == 0 || (size_t)n > avail) { *cp = UTF8_INVALID; return 1; }
    for (int k = 1; k < n; k++)
        if (!utf8_cont_ok(c, k, s[k])) { *cp = UTF8_INVALID; return 1; }
    if (n == 2) *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
    else if (n == 3) *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    else *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return n;
}

/* n, less the bytes of a character cut short at the end of s[0..n) (a string cut to a buffer's
 * size ends there, not in the middle of a character). */
static inline size_t utf8_whole_len(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    int want = utf8_seq_len((unsigned char)s[i - 1]);
    return want > 1 && (size_t)want > back + 1 ? i - 1 : n;
}

#endif
