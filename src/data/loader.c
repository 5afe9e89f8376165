#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "data/shard.h"
#include "util/error.h"

static uint64_t batch_tokens(const loader *l) { return (uint64_t)l->B * l->T; }

static int load_shard(loader *l, size_t i, gpt2c_error *err) {
    if (shard_read_into(l->paths[i], l->tokens, l->counts[i], &l->ntokens, err) != 0) return -1;
    if (l->ntokens != l->counts[i])
        return err_set(err, "%s: changed while training (%llu tokens, was %llu)", l->paths[i],
                       (unsigned long long)l->ntokens, (unsigned long long)l->counts[i]);
    l->shard = i;
    return 0;
}

int loader_open(loader *l, const char *pattern, int B, int T, int rank, int nproc,
                gpt2c_error *err) {
    memset(l, 0, sizeof *l);
    l->B = B, l->T = T, l->rank = rank, l->nproc = nproc;
    glob_t g;
    int rc = glob(pattern, GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return err_set(err, "no files match '%s'", pattern);
    }
    if (rc != 0) return err_set(err, "cannot list files matching '%s'", pattern);
    l->nshards = g.gl_pathc;
    l->paths = calloc(l->nshards, sizeof *l->paths);
    l->counts = calloc(l->nshards, sizeof *l->counts);
    uint64_t largest = 0;
    int ok = l->paths && l->counts;
    for (size_t i = 0; ok && i < l->nshards; i++) {
        ok = (l->paths[i] = strdup(g.gl_pathv[i])) != NULL;
        if (!ok) break;
        if (shard_token_count(l->paths[i], &l->counts[i], err) != 0) {
            globfree(&g);
            loader_close(l);
            return -1;
        }
        if (l->counts[i] < batch_tokens(l) + 1) {
            err_set(err, "%s: %llu tokens, fewer than one batch needs (batch %d x seq %d + 1 = "
                         "%llu)", l->paths[i], (unsigned long long)l->counts[i], B, T,
                    (unsigned long long)batch_tokens(l) + 1);
            globfree(&g);
            loader_close(l);
            return -1;
        }
        if (l->counts[i] > largest) largest = l->counts[i];
    }
    globfree(&g);
    if (ok) ok = (l->tokens = malloc(largest * sizeof *l->tokens)) != NULL;
    if (!ok) {
        loader_close(l);
        return err_set(err, "out of memory for the shards of '%s'", pattern);
    }
    if (loader_reset(l, err) != 0) {
        loader_close(l);
        return -1;
    }
    return 0;
}

void loader_close(loader *l) {
    for (size_t i = 0; l->paths && i < l->nshards; i++) free(l->paths[i]);
    free(l->paths);
    free(l->counts);
    free(l->tokens);
    memset(l, 0, sizeof *l);
}

/* One batch along the sequence all ranks walk: the next B*T tokens, or the start of the next
 * shard (after the last: the first) when a batch (B*T + 1 tokens) would not fit. */
static int advance(loader *l, gpt2c_error *err) {
    uint64_t bt = batch_tokens(l);
    l->pos += bt;
    if (l->pos + bt + 1 <= l->ntokens) return 0;
    l->pos = 0;
    size_t next = (l->shard + 1) % l->nshards;
    return next == l->shard ? 0 : load_shard(l, next, err);
}

int loader_seek(loader *l, size_t shard, uint64_t pos, gpt2c_error *err) {
    if (shard >= l->nshards || pos + batch_tokens(l) + 1 > l->counts[shard])
        return err_set(err, "data position (shard %zu, token %llu) is outside the data",
                       shard, (unsigned long long)pos);
    if (shard != l->shard || !l->ntokens)
        if (load_shard(l, shard, err) != 0) return -1;
    l->pos = pos;
    for (int r = 0; r < l->rank; r++)
        if (advance(l, err) != 0) return -1;
    return 0;
}

int loader_reset(loader *l, gpt2c_error *err) { return loader_seek(l, 0, 0, err); }

uint64_t loader_total_tokens(const loader *l) {
    uint64_t n = 0;
    for (size_t i = 0; i < l->nshards; i++) n += l->counts[i];
    return n;
}

int loader_next(loader *l, int32_t *inputs, int32_t *targets, gpt2c_error *err) {
    size_t n = (size_t)batch_tokens(l);
    const uint16_t *buf = l->tokens + l->pos;
    for (size_t i = 0; i < n; i++) {
        inputs[i] = buf[i];
        targets[i] = buf[i + 1];
    }
    for (int r = 0; r < l->nproc; r++)
        if (advance(l, err) != 0) return -1;
    return 0;
}
