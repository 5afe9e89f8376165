/* `gpt2c serve --runs DIR`: the training runs under DIR (each a directory with a log.jsonl, as
 * `gpt2c train --out-dir` makes) for the live page, which asks for what each log gained since
 * it last looked. */
#ifndef GPT2C_SERVE_RUNS_H
#define GPT2C_SERVE_RUNS_H

#include <jansson.h>

#include "gpt2c.h"

/* [{"name": ..., "bytes": size of its log.jsonl}, ...] for DIR's subdirectories with a log,
 * sorted by name; NULL when DIR cannot be read. */
json_t *runs_list(const char *dir);

/* {"name", "from", "next", "records": [...]}: the complete records of NAME's log.jsonl from byte
 * `from` on (a record still being written is left for the next call: next is where it starts).
 * NAME must be one of DIR's subdirectories (no "/", no leading "."); else, or when there is no
 * such log, NULL with the reason in err. A log that shrank (a resumed run rewrote it) starts
 * again from 0, and says so with "restarted": true. */
json_t *runs_log(const char *dir, const char *name, long long from, gpt2c_error *err);

#endif
