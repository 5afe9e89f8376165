#include "data/prepare_chunk.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "data/prepare_split.h"
#include "util/error.h"

static int add_document(gpt2c_encoder *enc, chunk *c, const void *text, size_t len) {
    c->documents++;
    if (gpt2c_ids_push(&c->ids, GPT2C_EOT, &c->err)) return -1;
    return gpt2c_encode(enc, text, len, &c->ids, &c->err);
}

static int jsonl_line(gpt2c_encoder *enc, chunk *c, const unsigned char *line, size_t len,
                      uint64_t lineno) {
    if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte order mark */
        line += 3;
        len -= 3;
    }
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
    if (k == len) return 0; /* blank lines carry no document */
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)line, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    const char *path = c->file->path;
    unsigned long long ln = (unsigned long long)lineno;
    if (!obj) return err_set(&c->err, "%s:%llu: invalid JSON: %s", path, ln, jerr.text);
    int rc = 0;
    json_t *text = json_is_object(obj) ? json_object_get(obj, "text") : NULL;
    if (!json_is_object(obj)) rc = err_set(&c->err, "%s:%llu: not a JSON object", path, ln);
    else if (!text) rc = err_set(&c->err, "%s:%llu: the object has no \"text\" field", path, ln);
    else if (!json_is_string(text)) rc = err_set(&c->err, "%s:%llu: \"text\" is not a string", path, ln);
    else rc = add_document(enc, c, json_string_value(text), json_string_length(text));
    json_decref(obj);
    return rc;
}

static int tokenize_chunk(gpt2c_encoder *enc, const gpt2c_prepare_opts *o, chunk *c) {
    const unsigned char *s = c->file->data;
    size_t len = c->file->len;
    if (o->format == GPT2C_FORMAT_JSONL) {
        uint64_t lineno = c->first_line;
        for (size_t p = c->start; p < c->end; lineno++) {
            const unsigned char *nl = memchr(s + p, '\n', c->end - p);
            size_t e = nl ? (size_t)(nl - s) : c->end;
            if (jsonl_line(enc, c, s + p, e - p, lineno)) return -1;
            p = e + 1;
        }
        return 0;
    }
    if (!o->split_blank_lines) { /* one document; only its first chunk starts with EOT */
        if (c->first_of_file && gpt2c_ids_push(&c->ids, GPT2C_EOT, &c->err)) return -1;
        c->documents += c->first_of_file;
        return c->end > c->start ? gpt2c_encode(enc, s + c->start, c->end - c->start, &c->ids, &c->err) : 0;
    }
    for (size_t d = c->start;;) {
        int separated;
        size_t e = split_blank_line_doc_end(s, len, d, &separated);
        if (add_document(enc, c, s + d, e - d)) return -1;
        if (!separated) return 0; /* the file's last document */
        d = e;
        if (d == c->end && d < len) return 0; /* the next chunk goes on from here */
    }
}

/* Narrowing to the shard's uint16 here leaves the writer only writing. */
int chunk_tokenize(gpt2c_encoder *enc, const gpt2c_prepare_opts *o, chunk *c) {
    c->ids.len = 0;
    c->documents = 0;
    if (tokenize_chunk(enc, o, c)) return -1;
    if (c->ids.len > c->tokens_cap) {
        free(c->tokens);
        c->tokens_cap = c->ids.len;
        if (!(c->tokens = malloc(c->tokens_cap * sizeof *c->tokens))) {
            c->tokens_cap = 0;
            return err_set(&c->err, "out of memory");
        }
    }
    for (size_t i = 0; i < c->ids.len; i++) c->tokens[i] = (uint16_t)c->ids.data[i];
    return 0;
}
