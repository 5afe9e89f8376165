/* Decoding ids to bytes, whole or as a stream of complete UTF-8 characters. */
#include <stdlib.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

int gpt2c_decode(const gpt2c_tokenizer *t, const uint32_t *ids, size_t n, char **out,
                 size_t *out_len, gpt2c_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= GPT2C_VOCAB_SIZE)
            return err_set(err, "token id %u at position %zu is out of range (vocabulary %d)",
                           ids[i], i, GPT2C_VOCAB_SIZE);
        total += t->offsets[ids[i] + 1] - t->offsets[ids[i]];
    }
    char *buf = malloc(total + 1);
    if (!buf) return err_set(err, "out of memory decoding %zu tokens", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned off = t->offsets[ids[i]], len = t->offsets[ids[i] + 1] - off;
        memcpy(buf + k, t->blob + off, len);
        k += len;
    }
    buf[k] = 0;
    *out = buf;
    *out_len = k;
    return 0;
}

/* Emit from buf[0..n) every byte up to the start of an incomplete but still possibly valid
 * character at the end, which is held back. Returns the count emitted into out. */
static int stream_drain(gpt2c_stream_decoder *sd, const unsigned char *buf, int n, char *out) {
    int k = 0, i = 0;
    while (i < n) {
        int len = utf8_seq_len(buf[i]);
        if (len <= 1) { out[k++] = (char)buf[i++]; continue; } /* ASCII or never valid */
        int have = 1;
        while (have < len && i + have < n && utf8_cont_ok(buf[i], have, buf[i + have])) have++;
        if (have == len) {
            memcpy(out + k, buf + i, (size_t)len);
            k += len;
            i += len;
        } else if (i + have == n) { /* a valid prefix cut off by the end: wait for more */
            break;
        } else {
            out[k++] = (char)buf[i++]; /* broken sequence: pass the lead byte through */
        }
    }
    sd->nheld = n - i;
    memcpy(sd->held, buf + i, (size_t)sd->nheld);
    return k;
}

int gpt2c_stream_push(gpt2c_stream_decoder *sd, const gpt2c_tokenizer *t, uint32_t id,
                      char out[GPT2C_STREAM_OUT_MAX], gpt2c_error *err) {
    size_t len;
    const unsigned char *p = gpt2c_token_bytes(t, id, &len);
    if (!p) return err_set(err, "token id %u is out of range (vocabulary %d)", id, GPT2C_VOCAB_SIZE);
    unsigned char buf[GPT2C_STREAM_OUT_MAX];
    memcpy(buf, sd->held, (size_t)sd->nheld);
    memcpy(buf + sd->nheld, p, len);
    return stream_drain(sd, buf, sd->nheld + (int)len, out);
}

int gpt2c_stream_finish(gpt2c_stream_decoder *sd, char out[GPT2C_STREAM_OUT_MAX]) {
    int n = sd->nheld;
    memcpy(out, sd->held, (size_t)n);
    sd->nheld = 0;
    return n;
}
