/* The server's parts, as its files share them: server.c starts and stops it and loads the model;
 * http.c takes each request through the limits to its route; routes.c answers. */
#ifndef GPT2C_SERVE_SERVER_H
#define GPT2C_SERVE_SERVER_H

#include <microhttpd.h>
#include <netinet/in.h>

#include "gpt2c.h"
#include "model/session.h"
#include "serve/engine.h"
#include "serve/guard.h"

struct gpt2c_server {
    gpt2c_serve_opts o;
    session session;  /* the backend and the model (serve --model) */
    gpt2c_tokenizer *tok;
    engine *e;        /* NULL: a server of runs alone */
    guard *g;
    struct MHD_Daemon *d;
    char url[96], model_name[128];
    size_t params;
    char *chart_js;   /* with --runs */
    size_t chart_js_len;
    int open_streams; /* streamed responses not yet done (atomic): stop waits for their [DONE] */
};

/* http.c: listen on addr (the daemon's threads answer from then on); stop listening. */
int http_listen(gpt2c_server *s, const struct sockaddr_in *addr, gpt2c_error *err);
void http_quiesce(gpt2c_server *s);
void http_close(gpt2c_server *s);

/* A request as the routes see it: its body, and the memory it reserved (routes may reserve
 * more, with route_take). */
typedef struct request {
    const struct route *rt;
    char *body;
    size_t len, cap;
    size_t held;      /* bytes reserved in the guard */
    int too_big;      /* a chunked body passed the limit */
    void *conn;       /* the guard's record of the connection */
} request;
int route_take(gpt2c_server *s, request *rq, size_t bytes);

/* routes.c's answers (one per route in http.c's table); send_error for the limits' refusals. */
typedef enum MHD_Result route_fn(struct MHD_Connection *c, gpt2c_server *s, request *rq);
route_fn route_page, route_health, route_runs_page, route_chart_js, route_info, route_models,
    route_metrics, route_tokenizer_info, route_runs_json, route_runs_log, route_completions,
    route_tokenize, route_detokenize;
enum MHD_Result send_not_allowed(struct MHD_Connection *c, const gpt2c_server *s, const char *allow);
enum MHD_Result send_error(struct MHD_Connection *c, const gpt2c_server *s, int status,
                           const char *param, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
