/* A training run's log.jsonl as series of (step, value): what `gpt2c plot` draws. */
#ifndef GPT2C_RUN_SERIES_H
#define GPT2C_RUN_SERIES_H

#include "gpt2c.h"

typedef enum {
    SERIES_LOSS, SERIES_VAL_LOSS, SERIES_HELLASWAG, SERIES_LR, SERIES_NORM, SERIES_TOK_S,
    SERIES_KINDS
} series_kind;

/* log.jsonl's key of each kind */
extern const char *const series_key[SERIES_KINDS];

typedef struct series {
    double *step, *value;
    size_t n, cap;
} series;

typedef struct run_series {
    char *name; /* the run directory's last component */
    series s[SERIES_KINDS];
} run_series;

/* DIR/log.jsonl (a record cut short at the end, as a crash leaves it, is left out). */
int run_series_read(run_series *r, const char *dir, gpt2c_error *err);
void run_series_free(run_series *r);

#endif
