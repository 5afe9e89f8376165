/* A session: everything a command opens to run a model, opened the same way by every command
 * (train on every rank, eval, HellaSwag, sample, serve): the backend handle (--device,
 * --threads), the precision (--precision, checked against what the backend runs here), the
 * model (a Hugging Face directory, a preset at random init, or a shape whose weights come
 * later), its plan checked against the backend's free memory, and the closing of it all.
 *
 * The model points at the session's backend: a session stays where it was opened (it is never
 * copied or moved) until session_close. */
#ifndef GPT2C_SESSION_H
#define GPT2C_SESSION_H

#include <stdint.h>

#include "model/gpt2.h"

typedef struct session {
    gpt2_backend be;
    gpt2_precision precision; /* the one --precision named, or the backend's default */
    gpt2_model m;             /* valid once has_model */
    int has_model;
} session;

/* The backend `device` names with `threads` CPU threads (0: all), and the precision `precision`
 * names ("fp32", "bf16"; NULL: the backend's default), once the backend said it runs it here.
 * s is zeroed first: session_close is safe after any failure. */
int session_open(session *s, const char *device, int threads, const char *precision,
                 gpt2c_error *err);

/* The model of a Hugging Face directory, in the session's precision. */
int session_load(session *s, const char *dir, gpt2c_error *err);
/* A model of this shape with its weights still zero, in the session's precision: the weights
 * come later (a checkpoint, another rank's, a preset's random draw). */
int session_create(session *s, const gpt2_config *cfg, gpt2c_error *err);
/* Training's --model: the shape of a Hugging Face directory, or of a preset with max_seq_len
 * positions, without making the model. */
int session_named_config(const char *name, int max_seq_len, gpt2_config *cfg, gpt2c_error *err);

/* gpt2_plan for B x T micro-batches (training: with gradients), after checking that the whole
 * run fits in the backend's free memory: gpt2_plan_bytes with `moments` AdamW moments (0: not
 * training). Set s->m.recompute before. */
int session_plan(session *s, int B, int T, int training, size_t moments, gpt2c_error *err);

/* The model (and its plan), then the backend: after everything else that holds the backend's
 * memory (optimizer state, KV caches, a communicator) is freed. Safe on a zeroed session and
 * after any failure. */
void session_close(session *s);

#endif
