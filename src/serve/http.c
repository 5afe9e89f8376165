/* The HTTP side of `gpt2c serve`, on libmicrohttpd: a thread per connection (so that an answer
 * may wait for the engine), at most MAX_CONNECTIONS of them and PER_ADDRESS from one client
 * address. Each request is checked as soon as its head has arrived, before its body is read:
 * the Host it names (403), its path (404) and method (405), the API key (401), a JSON body
 * (415) of at most MAX_BODY bytes (413, from the declared length), and the memory it will hold
 * (503 past the bound); then its body is read, within a deadline, and its route answers
 * (routes.c). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "serve/runs.h"
#include "serve/server.h"
#include "util/bytes.h"
#include "util/error.h"

#define MAX_BODY ((size_t)1 << 20) /* bytes of a request body; more is a 413 */
#define MAX_CONNECTIONS 1024
#define PER_ADDRESS 64
#define IDLE_TIMEOUT_S 60   /* a client that sends or reads nothing for this long is dropped */

enum { OPEN = 1, NEEDS_MODEL = 2, NEEDS_RUNS = 4 };

typedef struct route {
    const char *path;
    int post;             /* else GET (and HEAD) */
    int flags;            /* OPEN: no API key wanted; NEEDS_*: 404 on a server without */
    size_t body_factor;   /* bytes the route holds per byte of body, at most (parsed JSON: a
                           * token id's two bytes become a 48-byte JSON integer; tokens) */
    size_t fixed;         /* and besides */
    route_fn *answer;
} route;

static const route ROUTES[] = {
    {"/", 0, OPEN, 0, 0, route_page},
    {"/health", 0, OPEN, 0, 0, route_health},
    {"/runs", 0, OPEN | NEEDS_RUNS, 0, 0, route_runs_page},
    {"/chart.js", 0, OPEN | NEEDS_RUNS, 0, 0, route_chart_js},
    {"/info", 0, 0, 0, 0, route_info},
    {"/v1/models", 0, NEEDS_MODEL, 0, 0, route_models},
    {"/metrics", 0, NEEDS_MODEL, 0, 0, route_metrics},
    {"/tokenizer_info", 0, NEEDS_MODEL, 0, 0, route_tokenizer_info},
    {"/runs.json", 0, NEEDS_RUNS, 0, 1 << 20, route_runs_json},
    {"/runs/log", 0, NEEDS_RUNS, 0, RUNS_LOG_HELD, route_runs_log},
    {"/v1/completions", 1, NEEDS_MODEL, 32, 0, route_completions},
    {"/tokenize", 1, NEEDS_MODEL, 12, 0, route_tokenize},
    {"/detokenize", 1, NEEDS_MODEL, 32, 0, route_detokenize},
};

int route_take(gpt2c_server *s, request *rq, size_t bytes) {
    if (guard_take(s->g, bytes) != 0) return -1;
    rq->held += bytes;
    return 0;
}

/* The guard's record of the connection (guard_open's, kept as its socket context). */
static void *connection_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    gpt2c_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        guard_close(s->g, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = ci ? guard_open(s->g, ci->connect_fd) : NULL;
}

static int is_json(const char *type) {
    size_t n = strlen("application/json");
    return type && !strncasecmp(type, "application/json", n) &&
           (type[n] == 0 || type[n] == ';' || type[n] == ' ');
}

static enum MHD_Result preflight(struct MHD_Connection *c, const gpt2c_server *s) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", s->o.cors_origin);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    enum MHD_Result rc = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    return rc;
}

/* The head has arrived: everything that can be checked before the body is. An answer queued
 * here goes out at once, and the body (if any) is never read. */
static enum MHD_Result on_head(gpt2c_server *s, struct MHD_Connection *c, const char *url,
                               const char *method, void **ctx) {
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!guard_host_ok(s->g, host))
        return send_error(c, s, 403, NULL, "this server does not answer to the host name in the "
                          "Host header (serve --allowed-host NAME allows a name)");
    const route *rt = NULL;
    for (size_t i = 0; !rt && i < sizeof ROUTES / sizeof *ROUTES; i++)
        if (!strcmp(url, ROUTES[i].path)) rt = &ROUTES[i];
    if (!rt) return send_error(c, s, 404, NULL, "no such path");
    if (!strcmp(method, "OPTIONS") && s->o.cors_origin) return preflight(c, s);
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (rt->post ? strcmp(method, "POST") != 0 : !get)
        return send_not_allowed(c, s, rt->post ? "POST" : "GET, HEAD");
    if ((rt->flags & NEEDS_MODEL) && !s->e)
        return send_error(c, s, 404, NULL, "this server has no model, only runs (serve --model DIR)");
    if ((rt->flags & NEEDS_RUNS) && !s->o.runs_dir)
        return send_error(c, s, 404, NULL, "this server shows no runs (serve --runs DIR)");
    if (!(rt->flags & OPEN) &&
        !guard_key_ok(s->g, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)))
        return send_error(c, s, 401, NULL, "a valid 'Authorization: Bearer KEY' is needed");
    /* the body's declared length; without one, a chunked body: up to the limit */
    const char *declared = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int chunked = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    char *end = NULL;
    unsigned long long n = declared ? strtoull(declared, &end, 10) : chunked ? MAX_BODY : 0;
    if (declared && *end) n = MAX_BODY; /* (libmicrohttpd refuses such a request itself) */
    if (!rt->post && n) return send_error(c, s, 413, NULL, "a GET takes no body");
    if (n > MAX_BODY) return send_error(c, s, 413, NULL, "the request body is over 1 MiB");
    /* only JSON: a web page of any origin may POST text/plain without asking first (CORS) */
    if (rt->post && !is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return send_error(c, s, 415, NULL, "the body must be JSON, sent with 'Content-Type: "
                                           "application/json'");
    size_t body = (size_t)n;
    request *rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    rq->rt = rt, rq->conn = connection_of(c);
    if (route_take(s, rq, body + body * rt->body_factor + rt->fixed) != 0) {
        free(rq);
        return send_error(c, s, 503, NULL, "the server is busy: the requests in flight hold all "
                                           "the memory it allows; retry later");
    }
    *ctx = rq;
    guard_phase_set(s->g, rq->conn, body ? GUARD_AWAIT_BODY : GUARD_ANSWERING);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx) {
    (void)version;
    gpt2c_server *s = cls;
    request *rq = *ctx;
    if (!rq) return on_head(s, c, url, method, ctx);
    if (*size) { /* a piece of the body */
        if (rq->len + *size > MAX_BODY) rq->too_big = 1;
        if (!rq->too_big && bytes_append(&rq->body, &rq->len, &rq->cap, data, *size) != 0)
            return MHD_NO;
        *size = 0;
        return MHD_YES;
    }
    guard_phase_set(s->g, rq->conn, GUARD_ANSWERING);
    if (rq->too_big) return send_error(c, s, 413, NULL, "the request body is over 1 MiB");
    if (!rq->body && !(rq->body = calloc(1, 1))) return MHD_NO;
    return rq->rt->answer(c, s, rq);
}

/* The request is over (answered, or its connection gone): its memory goes back, and the next
 * head on the connection is due. */
static void on_done(void *cls, struct MHD_Connection *c, void **ctx,
                    enum MHD_RequestTerminationCode why) {
    (void)why;
    gpt2c_server *s = cls;
    request *rq = *ctx;
    guard_phase_set(s->g, connection_of(c), GUARD_AWAIT_HEAD);
    if (rq) {
        guard_give(s->g, rq->held);
        free(rq->body), free(rq);
    }
    *ctx = NULL;
}

int http_listen(gpt2c_server *s, const struct sockaddr_in *addr, gpt2c_error *err) {
    /* a descriptor per connection: the soft limit (often 1024) raised to what is allowed */
    struct rlimit rl;
    unsigned connections = MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < MAX_CONNECTIONS + 128)
            connections = rl.rlim_cur > 256 ? (unsigned)rl.rlim_cur - 128 : 128;
    }
    /* poll(), not select(): descriptors past FD_SETSIZE */
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_POLL,
                            ntohs(addr->sin_port), NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
                            MHD_OPTION_CONNECTION_LIMIT, connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_ADDRESS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr->sin_addr, host, sizeof host);
    if (!s->d) return err_set(err, "cannot listen on %s:%d (in use, or not allowed)", host,
                              ntohs(addr->sin_port));
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(s->url, sizeof s->url, "http://%s:%u/", host, di ? di->port : ntohs(addr->sin_port));
    return 0;
}

void http_quiesce(gpt2c_server *s) {
    if (s->d) MHD_quiesce_daemon(s->d);
}

void http_close(gpt2c_server *s) {
    if (s->d) MHD_stop_daemon(s->d);
    s->d = NULL;
}
