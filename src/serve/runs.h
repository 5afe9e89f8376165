/* `gpt2c serve --runs DIR`: the training runs under DIR (each a directory with a log.jsonl, as
 * `gpt2c train --out-dir` makes) for the live page, which asks for what each log gained since
 * it last looked. Only regular files inside DIR are read: a run directory or a log that is a
 * symbolic link, a FIFO or a device is not a run. */
#ifndef GPT2C_SERVE_RUNS_H
#define GPT2C_SERVE_RUNS_H

#include <jansson.h>

#include "gpt2c.h"

/* A log is read per request at most this far: a page that fell far behind catches up in steps.
 * A line longer than RUNS_MAX_RECORD is not a record (`gpt2c train` writes short ones). */
#define RUNS_LOG_CHUNK (1 << 20)
#define RUNS_MAX_RECORD (64 << 10)
/* What one runs_log call holds at most: the chunk read, the answer, a record parsed. */
#define RUNS_LOG_HELD (2 * (size_t)RUNS_LOG_CHUNK + 40 * (size_t)RUNS_MAX_RECORD)

/* [{"name": ..., "bytes": size of its log.jsonl}, ...] for DIR's subdirectories with a log,
 * sorted by name (names that are not UTF-8 are left out: JSON cannot carry them); NULL when DIR
 * cannot be read. */
json_t *runs_list(const char *dir);

/* {"name", "from", "next", "records": [...]} as JSON text (malloc'ed, *len bytes): the complete
 * records of NAME's log.jsonl from byte `from` on (a record still being written is left for the
 * next call: next is where it starts). NAME must be one of DIR's runs (no "/", no leading ".",
 * UTF-8); else, or when there is no such log, NULL with the reason in err. A log that shrank (a
 * resumed run rewrote it) starts again from 0, and says so with "restarted": true. */
char *runs_log(const char *dir, const char *name, long long from, size_t *len, gpt2c_error *err);

#endif
