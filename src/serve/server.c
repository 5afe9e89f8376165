/* gpt2c_server: starting and stopping `gpt2c serve`, and loading its model. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/server.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/fs.h"

/* The live page's charts: Debian's libjs-chart.js, served from here (no CDN). */
#define CHART_JS "/usr/share/javascript/chart.js/chart.min.js"

void gpt2c_serve_opts_default(gpt2c_serve_opts *o) {
    *o = (gpt2c_serve_opts){.host = "127.0.0.1", .port = 8080, .parallel = 4, .max_queue = 64};
}

/* The model and its engine (serve --model). */
static int start_model(gpt2c_server *s, const gpt2c_serve_opts *o, gpt2c_error *err) {
    gpt2_model *m = &s->session.m;
    int rc = session_open(&s->session, o->device, o->threads, o->precision, err);
    if (rc == 0) rc = session_load(&s->session, o->model_dir, err);
    if (rc == 0 && !(s->tok = gpt2c_tokenizer_new(err))) rc = -1;
    if (rc == 0) rc = engine_start(&s->e, m, s->tok, o->parallel, o->max_queue, err);
    if (rc == 0) { /* what the routes read, before the first of them can run */
        const char *slash = strrchr(o->model_dir, '/');
        const char *name = slash && slash[1] ? slash + 1 : o->model_dir;
        /* the directory's name, as JSON can carry it: a byte that is not UTF-8 becomes '?' */
        size_t n = 0, len = strlen(name);
        for (size_t i = 0; i < len && n + 5 < sizeof s->model_name;) {
            uint32_t cp;
            int k = utf8_decode((const unsigned char *)name + i, len - i, &cp);
            if (cp == UTF8_INVALID) s->model_name[n++] = '?';
            else memcpy(s->model_name + n, name + i, (size_t)k), n += (size_t)k;
            i += (size_t)k;
        }
        s->model_name[n] = 0;
        s->params = m->table.total - (size_t)(GPT2_VOCAB_PADDED - GPT2_VOCAB) * m->cfg.n_embd;
    }
    return rc;
}

int gpt2c_server_start(const gpt2c_serve_opts *o, gpt2c_server **out, gpt2c_error *err) {
    *out = NULL;
    const char *host = o->host ? o->host : "127.0.0.1";
    if (!o->model_dir && !o->runs_dir) return err_set(err, "--model or --runs is required");
    if (o->runs_dir && !fs_is_dir(o->runs_dir))
        return err_set(err, "--runs %s is not a directory", o->runs_dir);
    if (o->port < 0 || o->port > 65535) return err_set(err, "--port must be 0..65535");
    if (o->max_queue < 0) return err_set(err, "--max-queue must be at least 0");
    if (o->api_key && !*o->api_key)
        return err_set(err, "--api-key must not be empty (leave it out for no key)");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return err_set(err, "--host must be an IPv4 address such as 127.0.0.1 or 0.0.0.0, not '%s'",
                       host);
    gpt2c_server *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, "out of memory");
    s->o = *o;
    int rc = guard_start(&s->g, host, o->allowed_hosts, o->api_key, err);
    if (rc == 0 && o->runs_dir) {
        gpt2c_error why;
        if (fs_read_all(CHART_JS, 64u << 20, &s->chart_js, &s->chart_js_len, &why) != 0)
            rc = err_set(err, "serve --runs draws with Chart.js from Debian's libjs-chart.js, "
                              "not found at %s (apt-get install libjs-chart.js)", CHART_JS);
    }
    if (rc == 0 && o->model_dir) rc = start_model(s, o, err);
    if (rc == 0) rc = http_listen(s, &addr, err);
    if (rc != 0) {
        gpt2c_server_stop(s);
        return -1;
    }
    *out = s;
    return 0;
}

const char *gpt2c_server_url(const gpt2c_server *s) { return s->url; }

void gpt2c_server_stop(gpt2c_server *s) {
    if (!s) return;
    http_quiesce(s);  /* no new connections */
    engine_stop(s->e); /* every request ends; the streams send [DONE] */
    /* ...which their connections' threads write: stopping the daemon first could close a
     * connection before its [DONE] went out. A client that does not read gets 5 s. */
    for (int waited = 0; waited < 5000 && __atomic_load_n(&s->open_streams, __ATOMIC_SEQ_CST) > 0; waited += 10)
        usleep(10000);
    http_close(s);     /* the connections' threads finish; the port is free */
    guard_stop(s->g);
    engine_free(s->e);
    gpt2c_tokenizer_free(s->tok);
    session_close(&s->session); /* after the engine: its thread ran the model */
    free(s->chart_js);
    free(s);
}
