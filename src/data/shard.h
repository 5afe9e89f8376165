/* llm.c's token shard format: a header of 256 little-endian int32 (magic 20240520, version 1,
 * token count, the rest zero), then the tokens as little-endian uint16. */
#ifndef GPT2C_SHARD_H
#define GPT2C_SHARD_H

#include <stdint.h>
#include <stdio.h>

#include "gpt2c.h"
#include "util/atomic_file.h"

#define SHARD_HEADER_BYTES (GPT2C_SHARD_HEADER_INTS * 4)
#define SHARD_MAX_TOKENS 2147483647ull /* the count is an int32 */

/* Writes a shard under a temporary name (PATH.tmp) that is renamed into place only once it is
 * complete and on disk, so a crash or an error never leaves a partial shard under the final name.
 * open -> write... -> finish (header, fsync, close) -> publish (rename); abort at any point
 * deletes the temporary file. Each step that fails aborts by itself. */
typedef struct shard_writer {
    atomic_file file; /* PATH.tmp until published */
    uint64_t count;
} shard_writer;

int shard_writer_open(shard_writer *w, const char *path, gpt2c_error *err);
int shard_writer_write(shard_writer *w, const uint16_t *tokens, size_t n, gpt2c_error *err);
int shard_writer_finish(shard_writer *w, gpt2c_error *err);
int shard_writer_publish(shard_writer *w, gpt2c_error *err);
void shard_writer_abort(shard_writer *w);

/* The token count from a shard's header, checked against the file size (tokens not read). */
int shard_token_count(const char *path, uint64_t *count, gpt2c_error *err);
/* Read and validate a shard's tokens into a caller's buffer of cap tokens (no allocation). */
int shard_read_into(const char *path, uint16_t *tokens, uint64_t cap, uint64_t *ntokens,
                    gpt2c_error *err);

#endif
