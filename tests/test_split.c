/* Cutting text for the prepare threads changes nothing: the tokens of the parts, in order,
 * equal the tokens of the whole, and blank-line documents follow Python's split("\n\n"). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/prepare_split.h"
#include "gpt2c.h"
#include "tokenizer/pretokenize.h"

static gpt2c_encoder *enc;

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void random_text(char *buf, size_t n) {
    static const char *bits[] = {"a", "Z", " ", " ", "  ", "\n", "\n\n", "\t", "1", "!", "'s", "'",
                                 "\xc3\xa9", "\xc2\xa0", "\xe3\x80\x80", "\xe2\x82\xac", "\xff", "\xcc\x81"};
    size_t k = 0;
    while (k < n) {
        const char *b = bits[rnd() % (sizeof bits / sizeof *bits)];
        size_t m = strlen(b);
        if (k + m > n) m = n - k;
        memcpy(buf + k, b, m);
        k += m;
    }
}

static int same_tokens_when_cut(const char *s, size_t n, size_t cut) {
    gpt2c_ids whole = {0}, parts = {0};
    gpt2c_error err;
    gpt2c_encode(enc, s, n, &whole, &err);
    gpt2c_encode(enc, s, cut, &parts, &err);
    gpt2c_encode(enc, s + cut, n - cut, &parts, &err);
    int same = whole.len == parts.len && memcmp(whole.data, parts.data, whole.len * 4) == 0;
    gpt2c_ids_free(&whole);
    gpt2c_ids_free(&parts);
    return same;
}

/* Python's text.split("\n\n"): the end of each section, separator included, and the last. */
static size_t reference_doc_ends(const char *s, size_t n, size_t *ends) {
    size_t k = 0, i = 0;
    while (i + 1 < n) {
        if (s[i] == '\n' && s[i + 1] == '\n') {
            ends[k++] = i + 2;
            i += 2;
        } else i++;
    }
    ends[k++] = n; /* the last section, possibly empty */
    return k;
}

int main(void) {
    gpt2c_error err;
    gpt2c_tokenizer *tok = gpt2c_tokenizer_new(&err);
    enc = gpt2c_encoder_new(tok, &err);
    char s[400];
    int cuts = 0, bad_cuts = 0, doc_mismatch = 0, cut_not_doc_end = 0;
    for (int trial = 0; trial < 300; trial++) {
        size_t n = 50 + rnd() % 300;
        random_text(s, n);
        /* every safe cut keeps the tokens */
        for (size_t p = 1; p < n; p++)
            if (pretok_safe_cut((unsigned char *)s, p)) {
                cuts++;
                bad_cuts += !same_tokens_when_cut(s, n, p);
            }
        /* documents: walking doc ends from the start equals Python's split */
        size_t ref[400], k = reference_doc_ends(s, n, ref), got = 0;
        for (size_t d = 0;;) {
            int sep;
            size_t e = split_blank_line_doc_end((unsigned char *)s, n, d, &sep);
            doc_mismatch += got >= k || ref[got] != e;
            got++;
            if (!sep) break;
            d = e;
        }
        doc_mismatch += got != k;
        /* a chunk cut in blank-line mode is always a document end */
        for (size_t start = 0; start < n;) {
            size_t e = split_next_cut((unsigned char *)s, n, start, 1 + rnd() % 40, SPLIT_BLANK_LINES);
            int found = 0;
            for (size_t j = 0; j < k; j++) found |= ref[j] == e;
            cut_not_doc_end += !found;
            start = e;
        }
        /* one-document cuts are safe cuts */
        for (size_t start = 0; start < n;) {
            size_t e = split_next_cut((unsigned char *)s, n, start, 1 + rnd() % 40, SPLIT_ONE_DOCUMENT);
            bad_cuts += e < n && !pretok_safe_cut((unsigned char *)s, e);
            start = e;
        }
    }
    CHECK(cuts > 1000);
    CHECK(bad_cuts == 0);
    CHECK(doc_mismatch == 0);
    CHECK(cut_not_doc_end == 0);
    gpt2c_encoder_free(enc);
    gpt2c_tokenizer_free(tok);
    return check_done();
}
