/* See guard.h. The deadlines: each connection's is kept here, and a thread looks every 200 ms
 * for those passed, and shuts their sockets down; libmicrohttpd's thread of that connection
 * then sees the end of its stream and closes it (the socket stays its own until it tells us, in
 * guard_close, under the same lock, so the descriptor shut down is never another's). */
#define _GNU_SOURCE /* strndup */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "serve/guard.h"
#include "util/error.h"
#include "util/time.h"

typedef struct conn {
    int fd;
    double deadline_ms; /* 0: none (its request is being answered) */
    struct conn *prev, *next;
} conn;

struct guard {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    int stopping;
    conn *head;
    size_t held;        /* bytes reserved by the requests in flight */
    char *bound;        /* the address listened on */
    char **hosts;       /* --allowed-host */
    int nhosts;
    char *key;
};

static void *watch(void *arg) {
    guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        double now = now_ms();
        for (conn *c = g->head; c; c = c->next)
            if (c->deadline_ms > 0 && now > c->deadline_ms) {
                shutdown(c->fd, SHUT_RDWR);
                c->deadline_ms = 0;
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->wake, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void guard_free(guard *g) {
    for (int i = 0; i < g->nhosts; i++) free(g->hosts[i]);
    free(g->hosts), free(g->bound), free(g->key);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->wake);
    free(g);
}

int guard_start(guard **out, const char *bound, const char *allowed_hosts, const char *api_key,
                gpt2c_error *err) {
    *out = NULL;
    guard *g = calloc(1, sizeof *g);
    if (!g) return err_set(err, "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->wake, NULL);
    int ok = (g->bound = strdup(bound)) != NULL && (!api_key || (g->key = strdup(api_key)));
    for (const char *p = allowed_hosts; ok && p && *p;) { /* "a.example,b.example" */
        size_t n = strcspn(p, ",");
        char **h = realloc(g->hosts, (size_t)(g->nhosts + 1) * sizeof *h);
        ok = h != NULL;
        if (ok) g->hosts = h;
        if (ok && n) ok = (g->hosts[g->nhosts++] = strndup(p, n)) != NULL;
        p += n + (p[n] == ',');
    }
    if (!ok) {
        guard_free(g);
        return err_set(err, "out of memory");
    }
    if (pthread_create(&g->thread, NULL, watch, g) != 0) {
        guard_free(g);
        return err_set(err, "cannot start the server's deadline thread");
    }
    *out = g;
    return 0;
}

void guard_stop(guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    while (g->head) { /* (the daemon has closed every connection by now) */
        conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    guard_free(g);
}

void *guard_open(guard *g, int fd) {
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd, c->deadline_ms = now_ms() + GUARD_HEAD_S * 1e3;
    pthread_mutex_lock(&g->mu);
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void guard_close(guard *g, void *conn_) {
    conn *c = conn_;
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    if (c->prev) c->prev->next = c->next;
    else g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void guard_phase_set(guard *g, void *conn_, guard_phase phase) {
    conn *c = conn_;
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->deadline_ms = phase == GUARD_ANSWERING ? 0
                   : now_ms() + (phase == GUARD_AWAIT_HEAD ? GUARD_HEAD_S : GUARD_BODY_S) * 1e3;
    pthread_mutex_unlock(&g->mu);
}

int guard_take(guard *g, size_t bytes) {
    pthread_mutex_lock(&g->mu);
    int ok = bytes <= GUARD_MEMORY - g->held;
    if (ok) g->held += bytes;
    pthread_mutex_unlock(&g->mu);
    return ok ? 0 : -1;
}

void guard_give(guard *g, size_t bytes) {
    pthread_mutex_lock(&g->mu);
    g->held -= bytes;
    pthread_mutex_unlock(&g->mu);
}

int guard_host_ok(const guard *g, const char *host) {
    if (!host) return 1;
    char name[256];
    size_t n;
    if (host[0] == '[') { /* [IPv6]:port */
        const char *end = strchr(host, ']');
        n = end ? (size_t)(end - host - 1) : 0;
        host++;
    } else {
        n = strcspn(host, ":");
    }
    if (n == 0 || n >= sizeof name) return 0;
    memcpy(name, host, n);
    name[n] = 0;
    while (n && name[n - 1] == '.') name[--n] = 0; /* "localhost." is localhost */
    unsigned char a4[4], a6[16];
    int v4 = inet_pton(AF_INET, name, a4) == 1, v6 = inet_pton(AF_INET6, name, a6) == 1;
    static const unsigned char loop6[16] = {[15] = 1};
    if ((v4 && a4[0] == 127) || (v6 && !memcmp(a6, loop6, 16))) return 1; /* loopback */
    if (!strcasecmp(name, "localhost")) return 1;
    size_t dot = strlen(".localhost"); /* RFC 6761: never resolved outside this machine */
    if (n > dot && !strcasecmp(name + n - dot, ".localhost")) return 1;
    /* a page can rebind a name, not an address: every address is ours when we listen on all */
    if ((v4 || v6) && !strcmp(g->bound, "0.0.0.0")) return 1;
    if (!strcasecmp(name, g->bound)) return 1;
    for (int i = 0; i < g->nhosts; i++)
        if (!strcasecmp(name, g->hosts[i])) return 1;
    return 0;
}

int guard_key_ok(const guard *g, const char *authorization) {
    if (!g->key) return 1;
    if (!authorization || strncmp(authorization, "Bearer ", 7) != 0) return 0;
    const char *given = authorization + 7;
    size_t n = strlen(given), k = strlen(g->key);
    /* every byte of the key is looked at whatever was given: the time says nothing of it */
    unsigned char diff = n != k;
    for (size_t i = 0; i < k; i++) diff |= (unsigned char)(g->key[i] ^ (i < n ? given[i] : 0));
    return diff == 0;
}
