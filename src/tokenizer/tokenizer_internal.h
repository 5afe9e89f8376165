/* The tokenizer's tables, shared read-only by every encoder. */
#ifndef GPT2C_TOKENIZER_INTERNAL_H
#define GPT2C_TOKENIZER_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "gpt2c.h"
#include "util/error.h"

#define NO_TOKEN 0xFFFFFFFFu

struct pair_slot {
    uint32_t left, right, merged;
};

struct gpt2c_tokenizer {
    const unsigned char *blob; /* token bytes, see vocab_data.h */
    const unsigned *offsets;
    uint32_t byte_token[256];  /* id of each single byte */
    /* bytes -> id for every mergeable token (not <|endoftext|>): open addressing, id + 1 */
    uint32_t *tok_slots;
    uint32_t tok_mask;
    /* (left id, right id) -> id of their concatenation, for every pair of tokens whose bytes
     * concatenate to a token. In GPT-2 a token's id is its merge rank, so this is the whole of
     * what BPE needs: tiktoken merges the adjacent pair whose concatenation has the lowest rank. */
    struct pair_slot *pairs; /* left == NO_TOKEN: empty; one cache line per probe */
    uint32_t pair_mask;
};

static inline uint64_t tok_hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 29);
}

static inline uint32_t tok_hash_pair(uint32_t a, uint32_t b) {
    uint64_t key = (((uint64_t)a << 32) | b) * 0xFF51AFD7ED558CCDull;
    return (uint32_t)(key ^ (key >> 31));
}

/* Id of the token whose bytes are exactly p[0..n), or NO_TOKEN. */
static inline uint32_t tok_lookup(const gpt2c_tokenizer *t, const unsigned char *p, size_t n) {
    uint32_t h = (uint32_t)tok_hash_bytes(p, n) & t->tok_mask;
    for (;;) {
        uint32_t v = t->tok_slots[h];
        if (!v) return NO_TOKEN;
        uint32_t id = v - 1;
        unsigned off = t->offsets[id];
        if (t->offsets[id + 1] - off == n && memcmp(t->blob + off, p, n) == 0) return id;
        h = (h + 1) & t->tok_mask;
    }
}

/* Id of the token that merging a and b makes, or NO_TOKEN. */
static inline uint32_t tok_pair(const gpt2c_tokenizer *t, uint32_t a, uint32_t b) {
    for (uint32_t h = tok_hash_pair(a, b) & t->pair_mask;; h = (h + 1) & t->pair_mask) {
        const struct pair_slot *p = &t->pairs[h];
        if (p->left == a && p->right == b) return p->merged;
        if (p->left == NO_TOKEN) return NO_TOKEN;
    }
}

#endif
