/* The server's answers, one function per route (http.c's table says which is which and what a
 * request must pass before it gets here). The completions wait for the engine in their
 * connection's thread, or stream its text as Server-Sent Events. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "serve/openai.h"
#include "serve/runs.h"
#include "serve/server.h"
#include "serve/tokenize.h"
#include "util/bytes.h"

#define HEARTBEAT_MS 1000 /* a stream with nothing new sends an SSE comment this often */

extern const char serve_page[]; /* page.html, compiled in (serve_page_data.c) */
extern const size_t serve_page_len;
extern const char runs_page[];  /* runs.html */
extern const size_t runs_page_len;

/* ---- answers ---- */

static enum MHD_Result queue(struct MHD_Connection *c, const gpt2c_server *s, int status,
                             const char *type, struct MHD_Response *r) {
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (s->o.cors_origin) MHD_add_response_header(r, "Access-Control-Allow-Origin", s->o.cors_origin);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, const gpt2c_server *s, int status,
                                  const char *type, const void *data, size_t n) {
    return queue(c, s, status, type,
                 MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_MUST_COPY));
}

/* malloc'ed text, handed over. */
static enum MHD_Result send_text(struct MHD_Connection *c, const gpt2c_server *s, int status,
                                 const char *type, char *text, size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) free(text);
    return queue(c, s, status, type, r);
}

/* j's text as a response (j released), or NULL when memory ran out (every string in j is
 * UTF-8: json_dumps fails for nothing else). */
static struct MHD_Response *json_response(json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    struct MHD_Response *r = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) free(text);
    return r;
}

static enum MHD_Result send_json(struct MHD_Connection *c, const gpt2c_server *s, int status,
                                 json_t *j) {
    struct MHD_Response *r = json_response(j);
    if (!r) return send_bytes(c, s, 500, "text/plain", "out of memory\n", 14);
    return queue(c, s, status, "application/json", r);
}

static enum MHD_Result send_api_error(struct MHD_Connection *c, const gpt2c_server *s,
                                      const api_error *err) {
    return send_json(c, s, err->status, openai_error(err));
}

enum MHD_Result send_not_allowed(struct MHD_Connection *c, const gpt2c_server *s, const char *allow) {
    api_error err;
    api_fail(&err, 405, NULL, "use %s here", allow);
    struct MHD_Response *r = json_response(openai_error(&err));
    if (r) MHD_add_response_header(r, "Allow", allow);
    return queue(c, s, 405, "application/json", r);
}

enum MHD_Result send_error(struct MHD_Connection *c, const gpt2c_server *s, int status,
                           const char *param, const char *fmt, ...) {
    api_error err;
    va_list ap;
    va_start(ap, fmt);
    api_vfail(&err, status, param, fmt, ap);
    va_end(ap);
    return send_api_error(c, s, &err);
}

/* ---- pages and small answers ---- */

enum MHD_Result route_page(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    if (!s->e) return route_runs_page(c, s, rq); /* a server of runs alone */
    return send_bytes(c, s, 200, "text/html; charset=utf-8", serve_page, serve_page_len);
}

enum MHD_Result route_runs_page(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    if (!s->o.runs_dir) return send_error(c, s, 404, NULL, "this server shows no runs (serve --runs DIR)");
    return send_bytes(c, s, 200, "text/html; charset=utf-8", runs_page, runs_page_len);
}

enum MHD_Result route_chart_js(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    return send_bytes(c, s, 200, "text/javascript; charset=utf-8", s->chart_js, s->chart_js_len);
}

enum MHD_Result route_health(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    return send_json(c, s, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result route_models(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    return send_json(c, s, 200, json_pack("{s:s, s:[{s:s, s:s, s:i, s:s, s:i}]}", "object", "list",
                                          "data", "id", s->model_name, "object", "model",
                                          "created", 0, "owned_by", "gpt2c", "max_model_len",
                                          engine_context(s->e)));
}

enum MHD_Result route_tokenizer_info(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    return send_json(c, s, 200, tokenizer_info(engine_context(s->e)));
}

enum MHD_Result route_metrics(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    serve_stats st;
    engine_stats(s->e, &st);
    char buf[1536];
    int n = snprintf(buf, sizeof buf,
                     "# HELP gpt2c_requests_total Completion requests accepted.\n"
                     "# TYPE gpt2c_requests_total counter\ngpt2c_requests_total %llu\n"
                     "# HELP gpt2c_tokens_generated_total Tokens generated.\n"
                     "# TYPE gpt2c_tokens_generated_total counter\ngpt2c_tokens_generated_total %llu\n"
                     "# HELP gpt2c_prompt_tokens_total Prompt tokens run.\n"
                     "# TYPE gpt2c_prompt_tokens_total counter\ngpt2c_prompt_tokens_total %llu\n"
                     "# HELP gpt2c_slots_active Slots generating or running a prompt.\n"
                     "# TYPE gpt2c_slots_active gauge\ngpt2c_slots_active %d\n"
                     "# HELP gpt2c_slots Slots in all.\n# TYPE gpt2c_slots gauge\ngpt2c_slots %d\n"
                     "# HELP gpt2c_queue_length Requests waiting for slots.\n"
                     "# TYPE gpt2c_queue_length gauge\ngpt2c_queue_length %d\n"
                     "# HELP gpt2c_tokens_per_second Tokens generated per second, recently.\n"
                     "# TYPE gpt2c_tokens_per_second gauge\ngpt2c_tokens_per_second %.3f\n",
                     st.requests, st.tokens, st.prompt_tokens, st.active_slots, engine_slots(s->e),
                     st.queued, st.tokens_per_s);
    return send_bytes(c, s, 200, "text/plain; version=0.0.4", buf, (size_t)n);
}

enum MHD_Result route_info(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    const gpt2_model *m = &s->session.m;
    const gpt2_config *cfg = &m->cfg;
    if (!s->e) return send_json(c, s, 200, json_pack("{s:n, s:b}", "model", "runs", 1));
    return send_json(c, s, 200,
                     json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:b}", "model",
                               s->model_name, "parameters", (json_int_t)s->params, "n_layer",
                               cfg->n_layer, "n_head", cfg->n_head, "n_embd", cfg->n_embd,
                               "context", cfg->max_seq_len, "slots", engine_slots(s->e), "device",
                               s->session.be.name, "precision", m->params_bf16 ? "bf16" : "fp32",
                               "runs", s->o.runs_dir != NULL));
}

/* ---- the runs ---- */

enum MHD_Result route_runs_json(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    json_t *list = runs_list(s->o.runs_dir);
    return list ? send_json(c, s, 200, list)
                : send_error(c, s, 500, NULL, "cannot read the runs' directory");
}

/* /runs/log?name=RUN&from=BYTE */
enum MHD_Result route_runs_log(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    (void)rq;
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
    char *end = NULL;
    long long at = from ? strtoll(from, &end, 10) : 0;
    if (from && (*end || at < 0)) return send_error(c, s, 400, "from", "'from' must be a byte offset");
    gpt2c_error err = {{0}};
    size_t n;
    char *text = runs_log(s->o.runs_dir, name, at, &n, &err);
    return text ? send_text(c, s, 200, "application/json", text, n)
                : send_error(c, s, 404, "name", "%s", err.msg);
}

/* ---- the tokenizer ---- */

static ssize_t tokens_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    size_t n = tokenized_write(cls, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void tokens_free(void *cls) {
    tokenized_free(cls);
    free(cls);
}

enum MHD_Result route_tokenize(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    tokenized *t = malloc(sizeof *t);
    if (!t) return send_error(c, s, 500, NULL, "out of memory");
    api_error err;
    if (tokenize_parse(rq->body, rq->len, s->tok, engine_context(s->e), t, &err) != 0) {
        tokens_free(t);
        return send_api_error(c, s, &err);
    }
    /* written as it is sent: a million tokens are not a million JSON values at once */
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536, tokens_read,
                                                               t, tokens_free);
    if (!r) tokens_free(t);
    return queue(c, s, 200, "application/json", r);
}

enum MHD_Result route_detokenize(struct MHD_Connection *c, gpt2c_server *s, request *rq) {
    api_error err;
    json_t *j = detokenize(rq->body, rq->len, s->tok, &err);
    return j ? send_json(c, s, 200, j) : send_api_error(c, s, &err);
}

/* ---- completions ---- */

/* An upper estimate of what a completion's requests and answer hold: per token of each choice
 * (the prompt's too, with echo) its text, and with logprobs its record and JSON (about 800
 * bytes); per request its sampler's work space (two vocabulary-sized arrays, and a third with a
 * logit bias). */
static size_t completion_bytes(const completion *cp) {
    size_t bytes = 0;
    for (int i = 0; i < cp->nreqs; i++) {
        const serve_request *r = cp->reqs[i];
        size_t tokens = (size_t)r->max_tokens + (r->echo ? (size_t)r->nprompt : 0);
        bytes += (size_t)r->n * tokens * (r->logprobs >= 0 ? 800 : 16);
        bytes += (size_t)(r->nbias ? 3 : 2) * GPT2_VOCAB_PADDED * sizeof(float);
        bytes += (size_t)r->nprompt * (sizeof(int32_t) + (r->logprobs >= 0 ? sizeof(token_logprob) : 0));
    }
    return bytes;
}

/* Streaming: Server-Sent Events from the engine's published text. */
typedef struct stream {
    gpt2c_server *s;
    completion c;
    size_t *sent;     /* per choice: bytes of its text sent */
    int *sent_tokens; /* per choice: tokens whose logprobs were sent */
    char *sent_final; /* per choice: its finish_reason sent */
    char *out;        /* bytes built, not yet handed to MHD */
    size_t nout, off, cap;
    int ended;        /* [DONE] built */
    int broken;       /* memory ran out building an event: the stream ends, cut */
} stream;

static void out_append(stream *st, const char *s, size_t n) {
    if (bytes_append(&st->out, &st->nout, &st->cap, s, n) != 0) st->broken = 1;
}

static void out_event(stream *st, json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        st->broken = 1;
        return;
    }
    out_append(st, "data: ", 6);
    out_append(st, text, strlen(text));
    out_append(st, "\n\n", 2);
    free(text);
}

/* Under the lock: chunks for whatever is new; 1 if something was built. */
static int build_chunks(stream *st) {
    completion *c = &st->c;
    int built = 0, all_done = 1, failed = 0;
    for (int i = 0; i < c->nreqs * c->n; i++) {
        serve_request *r = c->reqs[i / c->n];
        serve_choice *ch = &r->choices[i % c->n];
        failed |= r->failed;
        int final = (ch->finished || r->done) && !st->sent_final[i];
        if (!r->failed && (ch->len > st->sent[i] || final)) {
            /* the logprobs of the tokens drawn since the last chunk (the text may lag them: a
             * stop string or a character's bytes held back); all of them by the final one */
            out_event(st, openai_chunk(c, st->s->model_name, st->s->tok, i, st->sent[i], ch->len,
                                       st->sent_tokens[i], ch->nlp, final));
            st->sent[i] = ch->len, st->sent_tokens[i] = ch->nlp;
            built = 1;
        }
        st->sent_final[i] |= final;
        all_done &= r->done || st->sent_final[i];
    }
    if (all_done && !st->ended) {
        if (failed) {
            api_error err;
            api_fail(&err, 500, NULL, "the server ran out of memory while answering");
            out_event(st, openai_error(&err));
        } else if (c->include_usage) {
            out_event(st, openai_usage(c));
        }
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
        if (st->broken) return MHD_CONTENT_READER_END_WITH_ERROR; /* not a stream with a hole */
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

/* Every request of c done, looking every 100 ms whether the client is still there: 0, or -1
 * when it went away (its requests cancelled). */
static int wait_done(struct MHD_Connection *conn, gpt2c_server *s, completion *c) {
    engine_lock(s->e);
    for (int i = 0; i < c->nreqs; i++)
        while (!c->reqs[i]->done) {
            engine_wait(s->e, c->reqs[i], 100);
            if (!c->reqs[i]->done && client_gone(conn)) {
                engine_unlock(s->e);
                for (int k = 0; k < c->nreqs; k++) engine_cancel(s->e, c->reqs[k]);
                return -1;
            }
        }
    return 0; /* (with the lock held, for the answer to be built) */
}

static enum MHD_Result stream_answer(struct MHD_Connection *conn, gpt2c_server *s, completion *c) {
    stream *st = calloc(1, sizeof *st);
    size_t nch = (size_t)c->nreqs * c->n;
    if (st) {
        st->sent = calloc(nch, sizeof *st->sent), st->sent_final = calloc(nch, 1);
        st->sent_tokens = calloc(nch, sizeof *st->sent_tokens);
    }
    if (!st || !st->sent || !st->sent_final || !st->sent_tokens) {
        if (st) free(st->sent), free(st->sent_tokens), free(st->sent_final), free(st);
        for (int i = 0; i < c->nreqs; i++) engine_cancel(s->e, c->reqs[i]);
        completion_free(c, s->e);
        return send_error(conn, s, 500, NULL, "out of memory");
    }
    st->s = s, st->c = *c;
    __atomic_add_fetch(&s->open_streams, 1, __ATOMIC_SEQ_CST); /* (stream_free takes it back) */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return queue(conn, s, 200, "text/event-stream", r);
}

enum MHD_Result route_completions(struct MHD_Connection *conn, gpt2c_server *s, request *rq) {
    completion c;
    api_error err;
    serve_limits lim = {engine_slots(s->e), engine_max_queue(s->e), engine_context(s->e)};
    if (openai_parse_completion(rq->body, rq->len, s->tok, &lim, &c, &err) != 0) {
        completion_free(&c, s->e);
        return send_api_error(conn, s, &err);
    }
    size_t bytes = completion_bytes(&c);
    int fits = bytes <= GUARD_MEMORY / 2; /* (a request alone may not take the whole bound) */
    if (!fits || route_take(s, rq, bytes) != 0) {
        completion_free(&c, s->e);
        if (fits) return send_error(conn, s, 503, NULL, "the server is busy: the requests in "
                                    "flight hold all the memory it allows; retry later");
        return send_error(conn, s, 400, NULL, "this request would hold about %zu MB, more than the "
                          "server allows one request (%zu MB): ask for fewer prompts, choices, "
                          "tokens or logprobs", bytes >> 20, (GUARD_MEMORY / 2) >> 20);
    }
    for (int i = 0; i < c.nreqs; i++) {
        int rc = engine_submit(s->e, c.reqs[i]);
        if (rc == 0) continue;
        for (int k = 0; k < i; k++) engine_cancel(s->e, c.reqs[k]);
        completion_free(&c, s->e);
        if (rc == ENGINE_NO_MEMORY) return send_error(conn, s, 500, NULL, "out of memory");
        return send_error(conn, s, 503, NULL, "the server is busy: every slot and the queue are "
                                              "taken; retry later");
    }
    if (c.stream) return stream_answer(conn, s, &c);
    if (wait_done(conn, s, &c) != 0) {
        completion_free(&c, s->e);
        return MHD_NO; /* nobody to answer: the connection is closed */
    }
    int failed = 0;
    for (int i = 0; i < c.nreqs; i++) failed |= c.reqs[i]->failed;
    json_t *resp = failed ? NULL : openai_response(&c, s->model_name, s->tok);
    engine_unlock(s->e);
    completion_free(&c, s->e);
    if (failed) return send_error(conn, s, 500, NULL, "the server ran out of memory while answering");
    return send_json(conn, s, 200, resp);
}
