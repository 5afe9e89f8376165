/* The output of `prepare`: the val shard, then train shards of a fixed size, in token order.
 * Shards are finished under temporary names as the run goes and all renamed into place at its
 * end, so a failed or interrupted run changes nothing in the output directory but .tmp files. */
#ifndef GPT2C_SHARD_SEQUENCE_H
#define GPT2C_SHARD_SEQUENCE_H

#include <stdint.h>

#include "data/shard.h"
#include "gpt2c.h"

typedef struct shard_sequence {
    const char *dir;
    uint64_t val_tokens, shard_tokens;
    shard_writer w;
    int open;          /* w is in use */
    int in_val;        /* w is the val shard */
    int train_index;   /* next train shard number */
    uint64_t val_written, train_written;
    shard_writer *finished; /* complete, waiting to be published */
    int nfinished;
} shard_sequence;

int shards_write(shard_sequence *s, const uint16_t *tokens, size_t n, gpt2c_error *err);
/* Finish the last shard and rename every shard into place. */
int shards_publish(shard_sequence *s, gpt2c_error *err);
/* Delete the temporary files of everything written; nothing was published. */
void shards_fail(shard_sequence *s);
void shards_free(shard_sequence *s);

/* Delete train shards numbered at or past `first` (and val when keep_val is 0) that an earlier
 * run left, so a later glob over dir never mixes two runs; also .tmp files of killed runs.
 * Returns how many shards. */
int shards_remove_stale(const char *dir, int first, int keep_val);

#endif
