/* The tokenizer as the server offers it: how it reads a prompt's text, and the endpoints
 * clients look for (llama.cpp's and vLLM's shapes of /tokenize and /detokenize, vLLM's
 * /tokenizer_info, which lm-evaluation-harness asks for). */
#ifndef GPT2C_SERVE_TOKENIZE_H
#define GPT2C_SERVE_TOKENIZE_H

#include <jansson.h>

#include "serve/openai.h"

/* A prompt's text as the server reads it: "<|endoftext|>" in it is that token, as OpenAI, vLLM
 * and Hugging Face's tokenizer read it; the rest as `gpt2c tokenize` (encode_ordinary). */
int serve_encode(const gpt2c_tokenizer *tok, const char *text, size_t len, gpt2c_ids *out,
                 gpt2c_error *err);

/* POST /tokenize: llama.cpp's {"content": text, "add_special"?} answered {"tokens": [...]}, or
 * vLLM's {"prompt": text, "add_special_tokens"?, "model"?} answered {"tokens", "count",
 * "max_model_len"} (GPT-2 adds no special tokens either way). The answer is written piece by
 * piece (a megabyte of text can be a million tokens). */
typedef struct tokenized {
    gpt2c_ids ids;
    int vllm, context;
    int stage;     /* the writer's: 0 head, 1 ids, 2 tail, 3 done */
    size_t at;
} tokenized;
int tokenize_parse(const char *body, size_t len, const gpt2c_tokenizer *tok, int context,
                   tokenized *t, api_error *err);
/* The next piece of the answer's JSON, at most max (>= 64) bytes into buf; 0 at its end. */
size_t tokenized_write(tokenized *t, char *buf, size_t max);
void tokenized_free(tokenized *t);

/* POST /detokenize {"tokens": [ids], "model"?}: {"content": text, "prompt": text} (llama.cpp's
 * and vLLM's names); bytes that are not UTF-8 become U+FFFD, as Hugging Face decodes them. */
json_t *detokenize(const char *body, size_t len, const gpt2c_tokenizer *tok, api_error *err);

/* GET /tokenizer_info, as vLLM answers it for GPT-2. */
json_t *tokenizer_info(int context);

#endif
