/* Bytes as a JSON string: JSON strings must be UTF-8, so bytes that are not become U+FFFD, as
 * Python's decode(errors="replace") does (`gpt2c sample --json`, `gpt2c serve`). */
#ifndef GPT2C_JSON_TEXT_H
#define GPT2C_JSON_TEXT_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/utf8.h"

static inline json_t *json_text(const char *s, size_t n) {
    char *clean = malloc(n * 3 + 1);
    if (!clean) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cp == UTF8_INVALID) memcpy(clean + k, "\xEF\xBF\xBD", 3), k += 3;
        else memcpy(clean + k, s + i, (size_t)len), k += (size_t)len;
        i += (size_t)len;
    }
    json_t *j = json_stringn(clean, k);
    free(clean);
    return j;
}

#endif
