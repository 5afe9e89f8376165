#include "data/shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void make_header(unsigned char *h, uint64_t count) {
    memset(h, 0, SHARD_HEADER_BYTES);
    put_le32(h, GPT2C_SHARD_MAGIC);
    put_le32(h + 4, GPT2C_SHARD_VERSION);
    put_le32(h + 8, (uint32_t)count);
}

int shard_writer_open(shard_writer *w, const char *path, gpt2c_error *err) {
    memset(w, 0, sizeof *w);
    if (atomic_file_open(&w->file, path, err) != 0) return -1;
    unsigned char h[SHARD_HEADER_BYTES];
    make_header(h, 0); /* rewritten with the real count on finish */
    if (fwrite(h, 1, sizeof h, w->file.f) != sizeof h) {
        int e = errno;
        shard_writer_abort(w);
        return err_set(err, "cannot write %s.tmp: %s", path, strerror(e));
    }
    return 0;
}

int shard_writer_write(shard_writer *w, const uint16_t *tokens, size_t n, gpt2c_error *err) {
    if (w->count + n > SHARD_MAX_TOKENS)
        return err_set(err, "%s: more than %llu tokens do not fit one shard", w->file.path, SHARD_MAX_TOKENS);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (fwrite(tokens, 2, n, w->file.f) != n)
        return err_set(err, "cannot write %s.tmp: %s", w->file.path, strerror(errno));
#else
    unsigned char buf[8192];
    for (size_t done = 0; done < n;) { /* explicit little-endian on other hosts */
        size_t k = 0;
        for (; k < sizeof buf / 2 && done < n; done++, k++) {
            buf[2 * k] = (unsigned char)tokens[done];
            buf[2 * k + 1] = (unsigned char)(tokens[done] >> 8);
        }
        if (fwrite(buf, 2, k, w->file.f) != k)
            return err_set(err, "cannot write %s.tmp: %s", w->file.path, strerror(errno));
    }
#endif
    w->count += n;
    return 0;
}

int shard_writer_finish(shard_writer *w, gpt2c_error *err) {
    unsigned char h[SHARD_HEADER_BYTES];
    make_header(h, w->count);
    if (fseek(w->file.f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->file.f) != sizeof h) {
        err_set(err, "cannot write %s.tmp: %s", w->file.path, strerror(errno));
        shard_writer_abort(w);
        return -1;
    }
    return atomic_file_close(&w->file, err);
}

int shard_writer_publish(shard_writer *w, gpt2c_error *err) {
    return atomic_file_publish(&w->file, err);
}

void shard_writer_abort(shard_writer *w) {
    atomic_file_abort(&w->file);
    memset(w, 0, sizeof *w);
}

/* ---- reading ---- */

/* Open a shard and check its header against the file size; returns the stream at the tokens. */
static FILE *shard_open(const char *path, uint64_t *count, gpt2c_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char h[SHARD_HEADER_BYTES];
    const char *why = NULL;
    long size = -1;
    if (fread(h, 1, sizeof h, f) != sizeof h) why = "too short for the 1024-byte header";
    else if (get_le32(h) != GPT2C_SHARD_MAGIC) why = "bad magic (not an llm.c token shard)";
    else if (get_le32(h + 4) != GPT2C_SHARD_VERSION) why = "unsupported version (want 1, uint16 tokens)";
    else if (get_le32(h + 8) > SHARD_MAX_TOKENS) why = "negative token count";
    else if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
             fseek(f, SHARD_HEADER_BYTES, SEEK_SET) != 0) why = "cannot seek";
    if (!why) {
        *count = get_le32(h + 8);
        if ((uint64_t)size != SHARD_HEADER_BYTES + 2 * *count) {
            err_set(err, "%s: header says %llu tokens but the file holds %ld bytes of tokens", path,
                    (unsigned long long)*count, size - SHARD_HEADER_BYTES);
            fclose(f);
            return NULL;
        }
        return f;
    }
    err_set(err, "%s: %s", path, why);
    fclose(f);
    return NULL;
}

int gpt2c_shard_inspect(const char *path, gpt2c_shard_info *info, gpt2c_error *err) {
    memset(info, 0, sizeof *info);
    FILE *f = shard_open(path, &info->tokens, err);
    if (!f) return -1;
    unsigned char buf[1 << 16];
    uint64_t pos = 0;
    while (pos < info->tokens) {
        size_t want = info->tokens - pos < sizeof buf / 2 ? (size_t)(info->tokens - pos) : sizeof buf / 2;
        if (fread(buf, 2, want, f) != want) {
            fclose(f);
            return err_set(err, "%s: read error", path);
        }
        for (size_t i = 0; i < want; i++, pos++) {
            uint32_t id = (uint32_t)buf[2 * i] | (uint32_t)buf[2 * i + 1] << 8;
            if (id >= GPT2C_VOCAB_SIZE) {
                fclose(f);
                return err_set(err, "%s: token %llu is %u, outside the vocabulary (%d)", path,
                               (unsigned long long)pos, id, GPT2C_VOCAB_SIZE);
            }
            if (id > info->max_id) info->max_id = id;
            info->eot_count += id == GPT2C_EOT;
        }
    }
    fclose(f);
    return 0;
}

int shard_token_count(const char *path, uint64_t *count, gpt2c_error *err) {
    FILE *f = shard_open(path, count, err);
    if (!f) return -1;
    fclose(f);
    return 0;
}

int shard_read_into(const char *path, uint16_t *tokens, uint64_t cap, uint64_t *ntokens,
                    gpt2c_error *err) {
    uint64_t n;
    FILE *f = shard_open(path, &n, err);
    if (!f) return -1;
    if (n > cap) {
        fclose(f);
        return err_set(err, "%s: holds %llu tokens, more than when it was first checked (%llu)",
                       path, (unsigned long long)n, (unsigned long long)cap);
    }
    unsigned char *raw = (unsigned char *)tokens;
    if (fread(raw, 2, n, f) != n) {
        fclose(f);
        return err_set(err, "%s: read error", path);
    }
    fclose(f);
    for (uint64_t i = 0; i < n; i++) {
        tokens[i] = (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
        if (tokens[i] >= GPT2C_VOCAB_SIZE)
            return err_set(err, "%s: token %llu is %u, outside the vocabulary (%d)", path,
                           (unsigned long long)i, tokens[i], GPT2C_VOCAB_SIZE);
    }
    *ntokens = n;
    return 0;
}

int gpt2c_shard_read(const char *path, uint16_t **tokens, uint64_t *ntokens, gpt2c_error *err) {
    uint64_t n;
    if (shard_token_count(path, &n, err) != 0) return -1;
    uint16_t *t = malloc(n ? n * 2 : 1);
    if (!t) return err_set(err, "%s: out of memory for %llu tokens", path, (unsigned long long)n);
    if (shard_read_into(path, t, n, ntokens, err) != 0) {
        free(t);
        return -1;
    }
    *tokens = t;
    return 0;
}
