/* The unit of work of `prepare`: a chunk of one input file, and how a worker thread turns it
 * into tokens (documents, each starting with <|endoftext|>). */
#ifndef GPT2C_PREPARE_CHUNK_H
#define GPT2C_PREPARE_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2c.h"

typedef struct input_file {
    const char *path;
    const unsigned char *data; /* mapped while chunks of it are in the ring */
    size_t len;
    int chunks_in_ring;
    int all_cut;
} input_file;

typedef struct chunk {
    input_file *file;
    size_t start, end;
    uint64_t first_line; /* 1-based line number of start, for jsonl errors */
    int first_of_file;
    /* results, kept allocated from one use of the ring slot to the next */
    gpt2c_ids ids;
    uint16_t *tokens;
    size_t tokens_cap;
    uint64_t documents;
    int done, failed;
    gpt2c_error err;
} chunk;

/* Tokenize c (text, blank-line documents or jsonl, as o says) into c->ids, narrowed to uint16 in
 * c->tokens, and count its documents. On failure c->err says why, with file:line for jsonl. */
int chunk_tokenize(gpt2c_encoder *enc, const gpt2c_prepare_opts *o, chunk *c);

#endif
