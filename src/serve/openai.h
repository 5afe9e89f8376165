/* OpenAI's legacy completions wire format (vLLM's where OpenAI is silent): a request body checked
 * and turned into engine requests, and the response objects and stream chunks built from them.
 * JSON through Jansson. */
#ifndef GPT2C_SERVE_OPENAI_H
#define GPT2C_SERVE_OPENAI_H

#include <jansson.h>
#include <stdarg.h>

#include "serve/engine.h"

/* An error answer: OpenAI's {"error": {"message", "type", "param", "code"}}. */
typedef struct api_error {
    int status;
    char message[512];
    char param[64];    /* the field at fault, or empty */
} api_error;

/* Fill err (the text cut at a character's end, never inside one); returns -1. */
int api_fail(api_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int api_vfail(api_error *err, int status, const char *param, const char *fmt, va_list ap);
json_t *openai_error(const api_error *err);

/* What a server can take: its slots and queue, and its model's context. */
typedef struct serve_limits {
    int slots, max_queue, context;
} serve_limits;

/* One /v1/completions call: a request per prompt, n choices each (choice index = prompt * n + c). */
typedef struct completion {
    serve_request **reqs;
    int nreqs, n;
    int stream, include_usage;
    int capped_max_tokens; /* max_tokens as the context allowed it, or -1 when not capped */
    char id[40];
    long long created;
} completion;

/* Parse and check body into c (its requests made, not submitted). 0, or -1 with the error. */
int openai_parse_completion(const char *body, size_t len, const gpt2c_tokenizer *tok,
                            const serve_limits *lim, completion *c, api_error *err);
void completion_free(completion *c, engine *e); /* releases the requests */

/* Under the engine's lock: the whole response, once every request is done. */
json_t *openai_response(const completion *c, const char *model, const gpt2c_tokenizer *tok);
/* Under the engine's lock: a chunk for choice i's text[from, to), with the logprobs of its tokens
 * [tok_from, tok_to) when they were asked for (finish_reason when it has finished and everything
 * is sent). */
json_t *openai_chunk(const completion *c, const char *model, const gpt2c_tokenizer *tok, int i,
                     size_t from, size_t to, int tok_from, int tok_to, int final);
json_t *openai_usage(const completion *c);

#endif
