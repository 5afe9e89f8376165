/* Encoding: pre-tokenize, then byte-level BPE on each piece, with a cache of pieces already seen.
 *
 * BPE follows tiktoken exactly: start from single bytes, and repeatedly merge the adjacent pair
 * whose concatenation is the token of lowest rank (id), the leftmost such pair on a tie. A binary
 * heap keyed by (rank, position) finds that pair in O(log n), so a piece of a million identical
 * characters costs n log n, not n^2. */
#include <stdlib.h>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer_internal.h"

/* Pieces longer than this are not cached: they are rare and would crowd out common words. */
#define CACHE_MAX_PIECE 64
#define CACHE_SLOTS (1u << 16)
#define CACHE_ARENA_BYTES (4u << 20)

typedef struct cache_slot {
    uint64_t hash;
    uint32_t key_off; /* into cache_keys */
    uint16_t key_len; /* 0: empty slot */
    uint16_t nids;
    uint32_t ids_off; /* into cache_ids */
} cache_slot;

struct gpt2c_encoder {
    const gpt2c_tokenizer *tok;
    cache_slot *slots;
    uint32_t used;
    unsigned char *cache_keys;
    uint32_t keys_len;
    uint32_t *cache_ids;
    uint32_t ids_len;
    /* scratch for one merge, sized for the longest piece so far */
    size_t scratch_cap;
    uint32_t *part_tok, *part_next, *part_prev;
    uint64_t *heap;
};

gpt2c_encoder *gpt2c_encoder_new(const gpt2c_tokenizer *tok, gpt2c_error *err) {
    gpt2c_encoder *e = calloc(1, sizeof *e);
    if (e) {
        e->tok = tok;
        e->slots = calloc(CACHE_SLOTS, sizeof *e->slots);
        e->cache_keys = malloc(CACHE_ARENA_BYTES);
        e->cache_ids = malloc(CACHE_ARENA_BYTES);
    }
    if (!e || !e->slots || !e->cache_keys || !e->cache_ids) {
        gpt2c_encoder_free(e);
        err_set(err, "out of memory creating an encoder");
        return NULL;
    }
    return e;
}

void gpt2c_encoder_free(gpt2c_encoder *e) {
    if (!e) return;
    free(e->slots);
    free(e->cache_keys);
    free(e->cache_ids);
    free(e->part_tok);
    free(e->part_next);
    free(e->part_prev);
    free(e->heap);
    free(e);
}

int gpt2c_ids_reserve(gpt2c_ids *ids, size_t extra, gpt2c_error *err) {
    if (ids->cap - ids->len >= extra) return 0;
    if (extra > SIZE_MAX / sizeof *ids->data / 2 - ids->len) return err_set(err, "out of memory: %zu more token ids", extra);
    size_t cap = ids->cap ? ids->cap : 1024;
    while (cap - ids->len < extra) cap *= 2;
    uint32_t *d = realloc(ids->data, cap * sizeof *d);
    if (!d) return err_set(err, "out of memory: %zu token ids", cap);
    ids->data = d;
    ids->cap = cap;
    return 0;
}

int gpt2c_ids_push(gpt2c_ids *ids, uint32_t id, gpt2c_error *err) {
    if (gpt2c_ids_reserve(ids, 1, err)) return -1;
    ids->data[ids->len++] = id;
    return 0;
}

void gpt2c_ids_free(gpt2c_ids *ids) {
    free(ids->data);
    ids->data = NULL;
    ids->len = ids->cap = 0;
}

/* ---- the cache ---- */

static cache_slot *cache_find(gpt2c_encoder *e, const unsigned char *p, size_t n, uint64_t h) {
    uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);
    for (;;) {
        cache_slot *s = &e->slots[i];
        if (s->key_len == 0) return s;
        if (s->hash == h && s->key_len == n && memcmp(e->cache_keys + s->key_off, p, n) == 0)
            return s;
        i = (i + 1) & (CACHE_SLOTS - 1);
    }
}

static void cache_clear(gpt2c_encoder *e) {
    memset(e->slots, 0, CACHE_SLOTS * sizeof *e->slots);
    e->used = e->keys_len = e->ids_len = 0;
}

static void cache_store(gpt2c_encoder *e, cache_slot *s, const unsigned char *p, size_t n,
                        uint64_t h, const uint32_t *ids, size_t nids) {
    if (e->used >= CACHE_SLOTS / 2 || e->keys_len + n > CACHE_ARENA_BYTES ||
        (e->ids_len + nids) * sizeof(uint32_t) > CACHE_ARENA_BYTES) {
        cache_clear(e); /* full: start over rather than track ages */
        s = cache_find(e, p, n, h);
    }
    memcpy(e->cache_keys + e->keys_len, p, n);
    memcpy(e->cache_ids + e->ids_len, ids, nids * sizeof *ids);
    *s = (cache_slot){h, e->keys_len, (uint16_t)n, (uint16_t)nids, e->ids_len};
    e->keys_len += (uint32_t)n;
    e->ids_len += (uint32_t)nids;
    e->used++;
}

/* ---- BPE merge of one piece ---- */

static int scratch_reserve(gpt2c_encoder *e, size_t n, gpt2c_error *err) {
    if (n <= e->scratch_cap) return 0;
    size_t cap = n < 256 ? 256 : n;
    uint32_t *a = realloc(e->part_tok, cap * sizeof *a);
    if (a) e->part_tok = a;
    uint32_t *b = realloc(e->part_next, cap * sizeof *b);
    if (b) e->part_next = b;
    uint32_t *c = realloc(e->part_prev, cap * sizeof *c);
    if (c) e->part_prev = c;
    uint64_t *d = realloc(e->heap, 3 * cap * sizeof *d); /* n-1 pairs + 2 per merge */
    if (d) e->heap = d;
    if (!a || !b || !c || !d) return err_set(err, "out of memory encoding a %zu-byte word", n);
    e->scratch_cap = cap;
    return 0;
}

static void heap_push(uint64_t *heap, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent] <= v) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = v;
}

static uint64_t heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0], v = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap[c + 1] < heap[c]) c++;
        if (v <= heap[c]) break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = v;
    return top;
}

/* Merge p[0..n) (n >= 2) and append its tokens to out, which has room for n more. */
static size_t bpe_merge(gpt2c_encoder *e, const unsigned char *p, size_t n, uint32_t *out) {
    const gpt2c_tokenizer *t = e->tok;
    uint32_t *tok = e->part_tok, *next = e->part_next, *prev = e->part_prev;
    uint64_t *heap = e->heap;
    size_t nheap = 0;
    /* parts are named by the position of their first byte; next == n ends the list */
    for (size_t i = 0; i < n; i++) {
        tok[i] = t->byte_token[p[i]];
        next[i] = (uint32_t)(i + 1);
        prev[i] = (uint32_t)(i - 1);
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t m = tok_pair(t, tok[i], tok[i + 1]);
        if (m != NO_TOKEN) heap_push(heap, &nheap, ((uint64_t)m << 32) | i);
    }
    while (nheap) {
        uint64_t top = heap_pop(heap, &nheap);
        uint32_t rank = (uint32_t)(top >> 32), i = (uint32_t)top;
        uint32_t j = next[i];
        /* stale entries: a neighbour has merged since this pair was pushed */
        if (tok[i] == NO_TOKEN || j >= n || tok_pair(t, tok[i], tok[j]) != rank) continue;
        tok[i] = rank;
        tok[j] = NO_TOKEN;
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        if (i > 0) {
            uint32_t m = tok_pair(t, tok[prev[i]], rank);
            if (m != NO_TOKEN) heap_push(heap, &nheap, ((uint64_t)m << 32) | prev[i]);
        }
        if (next[i] < n) {
            uint32_t m = tok_pair(t, rank, tok[next[i]]);
            if (m != NO_TOKEN) heap_push(heap, &nheap, ((uint64_t)m << 32) | i);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i = next[i]) out[k++] = tok[i];
    return k;
}

static int encode_piece(gpt2c_encoder *e, const unsigned char *p, size_t n, gpt2c_ids *out,
                        gpt2c_error *err) {
    uint32_t *dst = out->data + out->len; /* the caller reserved n slots */
    if (n == 1) { *dst = e->tok->byte_token[p[0]]; out->len++; return 0; }
    uint32_t id = tok_lookup(e->tok, p, n);
    if (id != NO_TOKEN) { *dst = id; out->len++; return 0; }

    cache_slot *slot = NULL;
    uint64_t h = 0;
    if (n <= CACHE_MAX_PIECE) {
        h = tok_hash_bytes(p, n);
        slot = cache_find(e, p, n, h);
        if (slot->key_len) {
            memcpy(dst, e->cache_ids + slot->ids_off, slot->nids * sizeof *dst);
            out->len += slot->nids;
            return 0;
        }
    }
    if (scratch_reserve(e, n, err)) return -1;
    size_t k = bpe_merge(e, p, n, dst);
    out->len += k;
    if (slot) cache_store(e, slot, p, n, h, dst, k);
    return 0;
}

int gpt2c_encode(gpt2c_encoder *e, const void *text, size_t len, gpt2c_ids *out,
                 gpt2c_error *err) {
    const unsigned char *s = text;
    size_t i = 0;
    while (i < len) {
        size_t end = pretok_next(s, len, i);
        if (end - i >= UINT32_MAX) return err_set(err, "a single word of %zu bytes is too long", end - i);
        if (gpt2c_ids_reserve(out, end - i, err)) return -1; /* a piece never has more tokens than bytes */
        if (encode_piece(e, s + i, end - i, out, err)) return -1;
        i = end;
    }
    return 0;
}
