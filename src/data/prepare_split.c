#include "data/prepare_split.h"

#include <string.h>

#include "tokenizer/pretokenize.h"

size_t split_blank_line_doc_end(const unsigned char *s, size_t len, size_t start, int *separated) {
    const unsigned char *p = s + start, *end = s + len;
    *separated = 0;
    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nl + 1 >= end) return len;
        if (nl[1] == '\n') {
            *separated = 1;
            return (size_t)(nl + 2 - s);
        }
        p = nl + 1;
    }
    return len;
}

size_t split_next_cut(const unsigned char *s, size_t len, size_t start, size_t target, split_mode mode) {
    if (len - start <= target + target / 2) return len; /* no tiny last chunk */
    size_t p = start + target;
    switch (mode) {
    case SPLIT_ONE_DOCUMENT:
        for (; p < len; p++)
            if (pretok_safe_cut(s, p)) return p;
        return len;
    case SPLIT_BLANK_LINES:
        /* Python's split("\n\n") pairs the newlines of a run from its first one, so only a
         * run's first pair is certainly a separator when searching from the middle. */
        for (; p + 1 < len; p++)
            if (s[p] == '\n' && s[p + 1] == '\n' && s[p - 1] != '\n') return p + 2;
        return len;
    case SPLIT_JSONL: {
        const unsigned char *nl = memchr(s + p, '\n', len - p);
        return nl ? (size_t)(nl + 1 - s) : len;
    }
    }
    return len;
}
