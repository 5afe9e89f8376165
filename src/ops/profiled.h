/* --profile: a table of ops that times each op of another backend's table by kind of work
 * (gpt2c_profile_kind), and marks for the host's own work between ops. One profile at a time per
 * process. With no profile started the marks do nothing and the ops are the backend's own: the
 * cost of profiling when it is off is a branch per mark. */
#ifndef GPT2C_PROFILED_H
#define GPT2C_PROFILED_H

#include "gpt2c.h"
#include "ops/backend.h"

/* Start filling p (zeroed here; p->steps is the caller's to set): returns the handle to run the
 * model on instead of inner (the same backend, its ops timed), until prof_stop. */
const gpt2_backend *prof_start(gpt2c_profile *p, const gpt2_backend *inner);
/* The end of the profiled run: total_ms, and OTHER as what no kind measured. */
void prof_stop(void);

/* Host work between ops, from a mark to prof_end: kind gets the time the ops timed inside it did
 * not take (a checkpoint's downloads stay copies). prof_end_whole gives kind all of it, the ops
 * inside included (validation, samples, the prompt), which are not timed on their own. */
typedef struct prof_mark {
    double t, ops_ms;
    int whole;
} prof_mark;
prof_mark prof_begin(void);
prof_mark prof_begin_whole(void);
void prof_end(prof_mark m, gpt2c_profile_kind kind);

#endif
