/* Writing a file so that a crash at any moment leaves either the old file or the new one:
 * the data goes to PATH.tmp, which is flushed, fsync'ed and renamed over PATH, and the directory
 * is fsync'ed so that the rename itself is durable. */
#ifndef GPT2C_ATOMIC_FILE_H
#define GPT2C_ATOMIC_FILE_H

#include <stdio.h>

#include "gpt2c.h"

typedef struct atomic_file {
    FILE *f; /* write through this */
    char *path, *tmp_path;
    long long size; /* the whole file's bytes when the writer knows them (atomic_file_size) */
} atomic_file;

int atomic_file_open(atomic_file *af, const char *path, gpt2c_error *err);
/* The bytes the whole file will have: a full disk's error then says what it needed. */
static inline void atomic_file_size(atomic_file *af, long long bytes) { af->size = bytes; }
/* A write to af->f failed with errno e: the temporary file goes, and err says why in one line;
 * on a full disk (or a quota, or a size limit) with the bytes needed and those free. -1. */
int atomic_file_fail(atomic_file *af, int e, gpt2c_error *err);
/* Flush, fsync, close, rename, fsync the directory. On failure the temporary file is removed.
 * It is atomic_file_close then atomic_file_publish, which a writer of several files calls apart
 * (the shards of `prepare` are all published at the end, or none). */
int atomic_file_commit(atomic_file *af, gpt2c_error *err);
/* Flush, fsync and close PATH.tmp (it stays, unpublished). On failure it is removed. */
int atomic_file_close(atomic_file *af, gpt2c_error *err);
/* Rename the closed PATH.tmp over PATH and fsync the directory. On a failed rename it is
 * removed. */
int atomic_file_publish(atomic_file *af, gpt2c_error *err);
/* Close and remove the temporary file; PATH is untouched. Safe after a failed commit. */
void atomic_file_abort(atomic_file *af);

#endif
