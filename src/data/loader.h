/* The batch loader: build-nanogpt's DataLoaderLite over llm.c shards, rank-aware.
 * One process reads a sequence of batches: B*T+1 tokens from the current position (inputs, and
 * the targets shifted by one), then the position advances by B*T; when the next batch would run
 * past the end of the shard, it moves to the start of the next shard (after the last: the first
 * again). With nproc ranks, rank r reads batches r, r + nproc, r + 2 nproc, ... of that same
 * sequence: inside a shard it starts at B*T*r and advances by B*T*nproc, as DataLoaderLite, and
 * at a shard's end every rank follows the one-process sequence (DataLoaderLite's ranks would
 * switch shards at different steps). So the ranks of one micro-step together read exactly the
 * nproc batches one process reads in nproc micro-steps.
 * All shards are checked (header and size) when the loader opens, so a bad shard stops the run
 * before the first step; each shard's tokens are validated when it is read. */
#ifndef GPT2C_LOADER_H
#define GPT2C_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2c.h"

typedef struct loader {
    char **paths;
    uint64_t *counts; /* tokens per shard */
    size_t nshards;
    uint16_t *tokens; /* the current shard, in a buffer sized for the largest */
    uint64_t ntokens;
    size_t shard;     /* index of the current shard */
    uint64_t pos;     /* where the next micro-batch of this rank starts */
    int B, T, rank, nproc;
} loader;

/* Shards matching GLOB, in sorted order. An empty match or a shard shorter than one batch
 * (B*T + 1 tokens) is an error. */
int loader_open(loader *l, const char *glob_pattern, int B, int T, int rank, int nproc,
                gpt2c_error *err);
void loader_close(loader *l);
/* The next micro-batch as B*T inputs and B*T targets. */
int loader_next(loader *l, int32_t *inputs, int32_t *targets, gpt2c_error *err);
/* Tokens in all the shards. */
uint64_t loader_total_tokens(const loader *l);
/* Back to the start of the first shard. */
int loader_reset(loader *l, gpt2c_error *err);
/* Jump to a position of the sequence (shard, token: where rank 0 reads next, as saved in a resume
 * state); checked against the shards. */
int loader_seek(loader *l, size_t shard, uint64_t pos, gpt2c_error *err);

#endif
