/* A growable byte buffer: the one append every builder of text or records shares (a stream's
 * events, a request's body, a choice's text, TensorBoard's protocol buffers). */
#ifndef GPT2C_BYTES_H
#define GPT2C_BYTES_H

#include <stdlib.h>
#include <string.h>

/* buf[*len..] += s[0..n), its capacity *cap doubled as needed and the bytes kept NUL-terminated
 * (so text can be read as a string): 0, or -1 when memory ran out (the buffer as it was). */
static inline int bytes_append(char **buf, size_t *len, size_t *cap, const void *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b, *cap = c;
    }
    if (n) memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

#endif
