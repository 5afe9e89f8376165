/* gpt2c_train_opts: its defaults, its checks, and the table of its fields from which the hash
 * that every rank must agree on is derived. */
#ifndef GPT2C_TRAIN_OPTIONS_H
#define GPT2C_TRAIN_OPTIONS_H

#include <stdint.h>

#include "gpt2c.h"

/* 0, or -1 with the first option that is out of range. */
int train_opts_check(const gpt2c_train_opts *o, gpt2c_error *err);
/* A hash of the options every rank must share: every field the table marks shared. */
uint64_t train_opts_hash(const gpt2c_train_opts *o);

#endif
