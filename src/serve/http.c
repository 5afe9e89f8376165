/* gpt2c_server: the HTTP face of the engine, on libmicrohttpd (a thread per connection, so that a
 * streaming answer may wait for the engine; connections limited, idle ones timed out). Routes:
 * GET / (the page), /health, /v1/models, /metrics; POST /v1/completions, /tokenize, /detokenize. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/hf_model.h"
#include "ops/backend.h"
#include "serve/engine.h"
#include "serve/openai.h"
#include "serve/runs.h"
#include "util/error.h"
#include "util/fs.h"

#define MAX_BODY ((size_t)1 << 20) /* bytes of a request body; more is a 413 */
#define MAX_CONNECTIONS 256
#define IDLE_TIMEOUT_S 60     /* a client that sends or reads nothing for this long is dropped */
#define HEARTBEAT_MS 1000     /* a stream with nothing new sends an SSE comment this often */

extern const char serve_page[];  /* page.html, compiled in (serve_page_data.c) */
extern const size_t serve_page_len;
extern const char runs_page[];   /* runs.html */
extern const size_t runs_page_len;

/* The live page's charts: Debian's libjs-chart.js, served from here (no CDN). */
#define CHART_JS "/usr/share/javascript/chart.js/chart.min.js"

struct gpt2c_server {
    gpt2c_serve_opts o;
    gpt2_backend be;
    gpt2_model m;
    int model_loaded;
    gpt2c_tokenizer *tok;
    engine *e;
    struct MHD_Daemon *d;
    char url[96], model_name[128];
    size_t params;
    char *chart_js; /* with --runs */
    size_t chart_js_len;
    int open_streams; /* streamed responses not yet done (atomic): stop waits for their [DONE] */
};

void gpt2c_serve_opts_default(gpt2c_serve_opts *o) {
    *o = (gpt2c_serve_opts){.host = "127.0.0.1", .port = 8080, .parallel = 4, .max_queue = 64};
}

/* ---- responses ---- */

static enum MHD_Result send_bytes(struct MHD_Connection *c, const gpt2c_server *s, int status,
                                  const char *type, const void *data, size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (s->o.cors_origin) MHD_add_response_header(r, "Access-Control-Allow-Origin", s->o.cors_origin);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 405) MHD_add_response_header(r, "Allow", "GET, POST");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, const gpt2c_server *s, int status,
                                 json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) return send_bytes(c, s, 500, "text/plain", "out of memory\n", 14);
    enum MHD_Result rc = send_bytes(c, s, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const gpt2c_server *s, int status,
                                  const char *param, const char *msg) {
    api_error err = {.status = status};
    snprintf(err.message, sizeof err.message, "%s", msg);
    snprintf(err.param, sizeof err.param, "%s", param ? param : "");
    return send_json(c, s, status, openai_error(&err));
}

/* ---- streaming: Server-Sent Events from the engine's published text ---- */

typedef struct stream {
    gpt2c_server *s;
    completion c;
    size_t *sent;  /* per choice: bytes of its text sent */
    int *sent_tokens; /* per choice: tokens whose logprobs were sent */
    char *sent_final; /* per choice: its finish_reason sent */
    char *out;     /* bytes built, not yet handed to MHD */
    size_t nout, off, cap;
    int ended;     /* [DONE] built */
} stream;

static void out_append(stream *st, const char *s, size_t n) {
    if (st->nout + n > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->nout + n) cap *= 2;
        char *b = realloc(st->out, cap);
        if (!b) return;
        st->out = b, st->cap = cap;
    }
    memcpy(st->out + st->nout, s, n);
    st->nout += n;
}

static void out_event(stream *st, json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) return;
    out_append(st, "data: ", 6);
    out_append(st, text, strlen(text));
    out_append(st, "\n\n", 2);
    free(text);
}

/* Under the lock: chunks for whatever is new; 1 if something was built. */
static int build_chunks(stream *st) {
    completion *c = &st->c;
    int built = 0, all_done = 1;
    for (int i = 0; i < c->nreqs * c->n; i++) {
        serve_request *r = c->reqs[i / c->n];
        serve_choice *ch = &r->choices[i % c->n];
        int final = (ch->finished || r->done) && !st->sent_final[i];
        if (ch->len > st->sent[i] || final) {
            /* the logprobs of the tokens drawn since the last chunk (the text may lag them: a
             * stop string or a character's bytes held back); all of them by the final one */
            out_event(st, openai_chunk(c, st->s->model_name, st->s->tok, i, st->sent[i], ch->len,
                                       st->sent_tokens[i], ch->ntokens, final));
            st->sent[i] = ch->len, st->sent_tokens[i] = ch->ntokens, st->sent_final[i] |= final;
            built = 1;
        }
        all_done &= r->done || st->sent_final[i];
    }
    if (all_done && !st->ended) {
        if (c->include_usage) out_event(st, openai_usage(c));
        out_append(st, "data: [DONE]\n\n", 14);
        st->ended = built = 1;
    }
    return built;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    engine *e = st->s->e;
    if (st->off == st->nout) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        st->off = st->nout = 0;
        engine_lock(e);
        for (int waited = 0; !build_chunks(st) && waited < HEARTBEAT_MS; waited += 100)
            engine_wait(e, st->c.reqs[0], 100);
        engine_unlock(e);
        if (st->nout == 0) out_append(st, ": waiting\n\n", 11); /* a write that finds a gone client */
    }
    size_t n = st->nout - st->off < max ? st->nout - st->off : max;
    memcpy(buf, st->out + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

/* The connection is over (the stream ended, or the client went away): what still runs stops. */
static void stream_free(void *cls) {
    stream *st = cls;
    __atomic_sub_fetch(&st->s->open_streams, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < st->c.nreqs; i++) engine_cancel(st->s->e, st->c.reqs[i]);
    completion_free(&st->c, st->s->e);
    free(st->sent), free(st->sent_tokens), free(st->sent_final), free(st->out), free(st);
}

/* The peer closed its end (a read would find the end of the stream): a client that went away
 * while its answer was being made. A pipelined next request reads as data: still there. */
static int client_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- routes ---- */

static enum MHD_Result completions(struct MHD_Connection *conn, gpt2c_server *s,
                                   const char *body, size_t len) {
    completion c;
    api_error err;
    if (openai_parse_completion(body, len, s->tok, engine_slots(s->e), engine_context(s->e), &c,
                                &err) != 0) {
        completion_free(&c, s->e);
        return send_json(conn, s, err.status, openai_error(&err));
    }
    for (int i = 0; i < c.nreqs; i++)
        if (engine_submit(s->e, c.reqs[i]) != 0) {
            for (int k = 0; k < i; k++) engine_cancel(s->e, c.reqs[k]);
            completion_free(&c, s->e);
            return send_error(conn, s, 503, NULL, "the server is busy: every slot and the queue "
                                                  "are taken; retry later");
        }
    if (!c.stream) { /* waits, looking every 100 ms whether the client is still there */
        engine_lock(s->e);
        for (int i = 0; i < c.nreqs; i++)
            while (!c.reqs[i]->done) {
                engine_wait(s->e, c.reqs[i], 100);
                if (!c.reqs[i]->done && client_gone(conn)) {
                    engine_unlock(s->e);
                    for (int k = 0; k < c.nreqs; k++) engine_cancel(s->e, c.reqs[k]);
                    completion_free(&c, s->e);
                    return MHD_NO; /* nobody to answer: the connection is closed */
                }
            }
        json_t *resp = openai_response(&c, s->model_name, s->tok);
        engine_unlock(s->e);
        completion_free(&c, s->e);
        return send_json(conn, s, 200, resp);
    }
    stream *st = calloc(1, sizeof *st);
    size_t nch = (size_t)c.nreqs * c.n;
    if (st) {
        st->sent = calloc(nch, sizeof *st->sent), st->sent_final = calloc(nch, 1);
        st->sent_tokens = calloc(nch, sizeof *st->sent_tokens);
    }
    if (!st || !st->sent || !st->sent_final || !st->sent_tokens) {
        if (st) free(st->sent), free(st->sent_tokens), free(st->sent_final), free(st);
        for (int i = 0; i < c.nreqs; i++) engine_cancel(s->e, c.reqs[i]);
        completion_free(&c, s->e);
        return send_error(conn, s, 500, NULL, "out of memory");
    }
    st->s = s, st->c = c;
    __atomic_add_fetch(&s->open_streams, 1, __ATOMIC_SEQ_CST); /* (stream_free takes it back) */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (s->o.cors_origin) MHD_add_response_header(r, "Access-Control-Allow-Origin", s->o.cors_origin);
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result tokenize(struct MHD_Connection *conn, gpt2c_server *s, const char *body,
                                size_t len) {
    json_t *req = json_loadb(body, len, 0, NULL), *content = json_object_get(req, "content");
    if (!json_is_string(content)) {
        json_decref(req);
        return send_error(conn, s, 400, "content", "the body must be {\"content\": \"text\"}");
    }
    gpt2c_error err;
    gpt2c_encoder *enc = gpt2c_encoder_new(s->tok, &err);
    gpt2c_ids ids = {0};
    int ok = enc && gpt2c_encode(enc, json_string_value(content), json_string_length(content),
                                 &ids, &err) == 0;
    gpt2c_encoder_free(enc);
    json_decref(req);
    if (!ok) return send_error(conn, s, 500, NULL, err.msg);
    json_t *tokens = json_array();
    for (size_t i = 0; i < ids.len; i++) json_array_append_new(tokens, json_integer(ids.data[i]));
    gpt2c_ids_free(&ids);
    return send_json(conn, s, 200, json_pack("{s:o}", "tokens", tokens));
}

static enum MHD_Result detokenize(struct MHD_Connection *conn, gpt2c_server *s, const char *body,
                                  size_t len) {
    json_t *req = json_loadb(body, len, 0, NULL), *tokens = json_object_get(req, "tokens");
    size_t n = json_is_array(tokens) ? json_array_size(tokens) : 0;
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    int ok = json_is_array(tokens) && ids;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_array_get(tokens, i);
        ok = json_is_integer(t) && json_integer_value(t) >= 0 &&
             json_integer_value(t) < GPT2C_VOCAB_SIZE;
        if (ok) ids[i] = (uint32_t)json_integer_value(t);
    }
    json_decref(req);
    if (!ok) {
        free(ids);
        return send_error(conn, s, 400, "tokens", "the body must be {\"tokens\": [ids 0..50256]}");
    }
    char *text;
    size_t tlen;
    gpt2c_error err;
    ok = gpt2c_decode(s->tok, ids, n, &text, &tlen, &err) == 0;
    free(ids);
    if (!ok) return send_error(conn, s, 500, NULL, err.msg);
    json_t *j = json_stringn(text, tlen);
    free(text);
    if (!j) return send_error(conn, s, 422, "tokens", "these tokens do not decode to UTF-8 text");
    return send_json(conn, s, 200, json_pack("{s:o}", "content", j));
}

static enum MHD_Result metrics(struct MHD_Connection *conn, gpt2c_server *s) {
    serve_stats st;
    engine_stats(s->e, &st);
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "# HELP gpt2c_requests_total Completion requests accepted.\n"
                     "# TYPE gpt2c_requests_total counter\ngpt2c_requests_total %llu\n"
                     "# HELP gpt2c_tokens_generated_total Tokens generated.\n"
                     "# TYPE gpt2c_tokens_generated_total counter\ngpt2c_tokens_generated_total %llu\n"
                     "# HELP gpt2c_slots_active Slots generating or running a prompt.\n"
                     "# TYPE gpt2c_slots_active gauge\ngpt2c_slots_active %d\n"
                     "# HELP gpt2c_slots Slots in all.\n# TYPE gpt2c_slots gauge\ngpt2c_slots %d\n"
                     "# HELP gpt2c_queue_length Requests waiting for slots.\n"
                     "# TYPE gpt2c_queue_length gauge\ngpt2c_queue_length %d\n"
                     "# HELP gpt2c_tokens_per_second Tokens generated per second, recently.\n"
                     "# TYPE gpt2c_tokens_per_second gauge\ngpt2c_tokens_per_second %.3f\n",
                     st.requests, st.tokens, st.active_slots, engine_slots(s->e), st.queued,
                     st.tokens_per_s);
    return send_bytes(conn, s, 200, "text/plain; version=0.0.4", buf, (size_t)n);
}

static enum MHD_Result info(struct MHD_Connection *conn, gpt2c_server *s) {
    const gpt2_config *c = &s->m.cfg;
    if (!s->e) return send_json(conn, s, 200, json_pack("{s:n, s:b}", "model", "runs", 1));
    return send_json(conn, s, 200,
                     json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:b}", "model",
                               s->model_name, "parameters", (json_int_t)s->params, "n_layer",
                               c->n_layer, "n_head", c->n_head, "n_embd", c->n_embd, "context",
                               c->max_seq_len, "slots", engine_slots(s->e), "device", s->be.name,
                               "precision", s->m.params_bf16 ? "bf16" : "fp32", "runs",
                               s->o.runs_dir != NULL));
}

/* /runs/log?name=RUN&from=BYTE */
static enum MHD_Result run_log(struct MHD_Connection *conn, gpt2c_server *s) {
    const char *name = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "name");
    const char *from = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from");
    char *end = NULL;
    long long at = from ? strtoll(from, &end, 10) : 0;
    if (from && (*end || at < 0)) return send_error(conn, s, 400, "from", "'from' must be a byte offset");
    gpt2c_error err = {{0}};
    json_t *j = runs_log(s->o.runs_dir, name, at, &err);
    return j ? send_json(conn, s, 200, j) : send_error(conn, s, 404, "name", err.msg);
}

typedef struct upload {
    char *body;
    size_t len, cap;
    int too_big;
} upload;

static int authorized(struct MHD_Connection *conn, const gpt2c_server *s) {
    if (!s->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, s->o.api_key);
}

static enum MHD_Result route(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *data,
                             size_t *size, void **ctx) {
    (void)version;
    gpt2c_server *s = cls;
    upload *u = *ctx;
    if (!u) { /* the headers: make the body's place */
        *ctx = u = calloc(1, sizeof *u);
        return u ? MHD_YES : MHD_NO;
    }
    if (*size) { /* a piece of the body */
        if (u->len + *size > MAX_BODY) u->too_big = 1;
        if (!u->too_big) {
            if (u->len + *size > u->cap) {
                size_t cap = u->cap ? u->cap : 4096;
                while (cap < u->len + *size) cap *= 2;
                char *b = realloc(u->body, cap);
                if (!b) return MHD_NO;
                u->body = b, u->cap = cap;
            }
            memcpy(u->body + u->len, data, *size);
            u->len += *size;
        }
        *size = 0;
        return MHD_YES;
    }
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    static const char *const gets[] = {"/", "/health", "/v1/models", "/metrics", "/info",
                                       "/runs", "/runs.json", "/runs/log", "/chart.js", NULL};
    static const char *const posts[] = {"/v1/completions", "/tokenize", "/detokenize", NULL};
    int is_get = 0, is_post = 0;
    for (int i = 0; gets[i]; i++) is_get |= !strcmp(url, gets[i]);
    for (int i = 0; posts[i]; i++) is_post |= !strcmp(url, posts[i]);
    if (!is_get && !is_post) return send_error(conn, s, 404, NULL, "no such path");
    if (!strcmp(method, "OPTIONS") && s->o.cors_origin) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", s->o.cors_origin);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        enum MHD_Result rc = MHD_queue_response(conn, 204, r);
        MHD_destroy_response(r);
        return rc;
    }
    if ((is_get && !get) || (is_post && !post))
        return send_error(conn, s, 405, NULL, is_get ? "use GET here" : "use POST here");
    if (!strcmp(url, "/health")) return send_json(conn, s, 200, json_pack("{s:s}", "status", "ok"));
    int runs_page_url = !strcmp(url, "/runs") || (!strcmp(url, "/") && !s->e);
    if (runs_page_url && s->o.runs_dir)
        return send_bytes(conn, s, 200, "text/html; charset=utf-8", runs_page, runs_page_len);
    if (!strcmp(url, "/")) return send_bytes(conn, s, 200, "text/html; charset=utf-8", serve_page, serve_page_len);
    int runs_route = !strncmp(url, "/runs", 5) || !strcmp(url, "/chart.js");
    if (runs_route && !s->o.runs_dir)
        return send_error(conn, s, 404, NULL, "this server shows no runs (serve --runs DIR)");
    if (!runs_route && !s->e && strcmp(url, "/info") != 0)
        return send_error(conn, s, 404, NULL, "this server has no model, only runs (serve --model DIR)");
    if (!strcmp(url, "/chart.js"))
        return send_bytes(conn, s, 200, "text/javascript; charset=utf-8", s->chart_js, s->chart_js_len);
    if (!authorized(conn, s))
        return send_error(conn, s, 401, NULL, "a valid 'Authorization: Bearer KEY' is needed");
    if (u->too_big) return send_error(conn, s, 413, NULL, "the request body is over 1 MiB");
    if (!strcmp(url, "/v1/models"))
        return send_json(conn, s, 200, json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list",
                                                 "data", "id", s->model_name, "object", "model",
                                                 "created", 0, "owned_by", "gpt2c"));
    if (!strcmp(url, "/metrics")) return metrics(conn, s);
    if (!strcmp(url, "/info")) return info(conn, s);
    if (!strcmp(url, "/runs.json")) {
        json_t *list = runs_list(s->o.runs_dir);
        return list ? send_json(conn, s, 200, list)
                    : send_error(conn, s, 500, NULL, "cannot read the runs' directory");
    }
    if (!strcmp(url, "/runs/log")) return run_log(conn, s);
    const char *body = u->body ? u->body : "";
    if (!strcmp(url, "/tokenize")) return tokenize(conn, s, body, u->len);
    if (!strcmp(url, "/detokenize")) return detokenize(conn, s, body, u->len);
    return completions(conn, s, body, u->len);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why) {
    (void)cls, (void)conn, (void)why;
    upload *u = *ctx;
    if (u) free(u->body), free(u);
    *ctx = NULL;
}

/* ---- the server ---- */

/* The model and its engine (serve --model). */
static int start_model(gpt2c_server *s, const gpt2c_serve_opts *o, gpt2c_error *err) {
    gpt2_precision precision;
    int rc = gpt2_backend_open(&s->be, o->device, o->threads, err);
    if (rc == 0) rc = gpt2_backend_precision(&s->be, o->precision, &precision, err);
    if (rc == 0) rc = hf_model_load(&s->m, o->model_dir, &s->be, err);
    s->model_loaded = rc == 0;
    if (rc == 0) rc = gpt2_set_precision(&s->m, precision, err);
    if (rc == 0 && !(s->tok = gpt2c_tokenizer_new(err))) rc = -1;
    if (rc == 0) rc = engine_start(&s->e, &s->m, s->tok, o->parallel, o->max_queue, err);
    if (rc == 0) { /* what the routes read, before the first of them can run */
        const char *slash = strrchr(o->model_dir, '/');
        const char *name = slash && slash[1] ? slash + 1 : o->model_dir;
        snprintf(s->model_name, sizeof s->model_name, "%s", name);
        s->params = s->m.table.total - (size_t)(GPT2_VOCAB_PADDED - GPT2_VOCAB) * s->m.cfg.n_embd;
    }
    return rc;
}

int gpt2c_server_start(const gpt2c_serve_opts *o, gpt2c_server **out, gpt2c_error *err) {
    *out = NULL;
    if (!o->model_dir && !o->runs_dir) return err_set(err, "--model or --runs is required");
    if (o->runs_dir && !fs_is_dir(o->runs_dir))
        return err_set(err, "--runs %s is not a directory", o->runs_dir);
    if (o->port < 0 || o->port > 65535) return err_set(err, "--port must be 0..65535");
    if (o->max_queue < 0) return err_set(err, "--max-queue must be at least 0");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host ? o->host : "127.0.0.1", &addr.sin_addr) != 1)
        return err_set(err, "--host must be an IPv4 address such as 127.0.0.1 or 0.0.0.0, not '%s'",
                       o->host);
    gpt2c_server *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, "out of memory");
    s->o = *o;
    int rc = 0;
    if (o->runs_dir) {
        gpt2c_error why;
        if (fs_read_all(CHART_JS, 64u << 20, &s->chart_js, &s->chart_js_len, &why) != 0)
            rc = err_set(err, "serve --runs draws with Chart.js from Debian's libjs-chart.js, "
                              "not found at %s (apt-get install libjs-chart.js)", CHART_JS);
    }
    if (rc == 0 && o->model_dir) rc = start_model(s, o, err);
    if (rc == 0) {
        s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                                (uint16_t)o->port, NULL, NULL, route, s, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
                                request_done, s, MHD_OPTION_END);
        if (!s->d) rc = err_set(err, "cannot listen on %s:%d (in use, or not allowed)",
                                o->host ? o->host : "127.0.0.1", o->port);
    }
    if (rc != 0) {
        gpt2c_server_stop(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(s->url, sizeof s->url, "http://%s:%u/", o->host ? o->host : "127.0.0.1",
             di ? di->port : (unsigned)o->port);
    *out = s;
    return 0;
}

const char *gpt2c_server_url(const gpt2c_server *s) { return s->url; }

void gpt2c_server_stop(gpt2c_server *s) {
    if (!s) return;
    if (s->d) MHD_quiesce_daemon(s->d); /* no new connections */
    engine_stop(s->e);                  /* every request ends; the streams send [DONE] */
    /* ...which their connections' threads write: stopping the daemon first could close a
     * connection before its [DONE] went out. A client that does not read gets 5 s. */
    for (int waited = 0; waited < 5000 && __atomic_load_n(&s->open_streams, __ATOMIC_SEQ_CST) > 0; waited += 10)
        usleep(10000);
    if (s->d) MHD_stop_daemon(s->d);    /* the connections' threads finish; the port is free */
    engine_free(s->e);
    gpt2c_tokenizer_free(s->tok);
    if (s->model_loaded) gpt2_free(&s->m);
    free(s->chart_js);
    free(s);
}
