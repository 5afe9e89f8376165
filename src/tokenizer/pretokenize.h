/* GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes, exactly as tiktoken's
 * regex  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+  does,
 * written out by hand because a general regex engine is several times slower. */
#ifndef GPT2C_PRETOKENIZE_H
#define GPT2C_PRETOKENIZE_H

#include <stddef.h>

/* End (exclusive) of the piece that starts at s[i]; i < len. */
size_t pretok_next(const unsigned char *s, size_t len, size_t i);

/* Whether a piece is certain to start at s[i] whatever comes before it, so that text can be cut
 * there and the parts tokenized independently. True when s[i-1] is ASCII and not white space and
 * s[i] is ASCII white space: no piece holds white space after a non-space character. */
static inline int pretok_safe_cut(const unsigned char *s, size_t i) {
    unsigned char a = s[i - 1], b = s[i];
    int a_space = a == ' ' || (a >= '\t' && a <= '\r');
    int b_space = b == ' ' || (b >= '\t' && b <= '\r');
    return a < 0x80 && !a_space && b_space;
}

#endif
