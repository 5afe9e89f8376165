/* What a client of the server may do and hold: a deadline for each request's head and body (a
 * client that trickles bytes cannot keep a connection for ever), the memory that the requests in
 * flight hold together, the Host names answered (DNS rebinding), and the API key. The caps on
 * connections (in all, per address) are the daemon's options, set in http.c. */
#ifndef GPT2C_SERVE_GUARD_H
#define GPT2C_SERVE_GUARD_H

#include <stddef.h>

#include "gpt2c.h"

/* A request's head (its line and headers) must arrive within this long of the connection's
 * start or of the previous answer on it, and its body within this long after the head. */
#define GUARD_HEAD_S 30
#define GUARD_BODY_S 30
/* The memory that the requests in flight may hold together: each reserves, before it
 * allocates, an upper estimate of what it will hold (body, parsed JSON, tokens, answer). */
#define GUARD_MEMORY ((size_t)256 << 20)

typedef struct guard guard;

/* allowed_hosts: --allowed-host's comma-separated names (or NULL); bound: the address listened
 * on; api_key: NULL for none. Starts the thread that enforces the deadlines. */
int guard_start(guard **g, const char *bound, const char *allowed_hosts, const char *api_key,
                gpt2c_error *err);
void guard_stop(guard *g);

/* A connection on socket fd: its head is due (NULL when out of memory: it is not watched). */
void *guard_open(guard *g, int fd);
void guard_close(guard *g, void *conn);
typedef enum { GUARD_AWAIT_HEAD, GUARD_AWAIT_BODY, GUARD_ANSWERING } guard_phase;
void guard_phase_set(guard *g, void *conn, guard_phase phase);

/* Reserve bytes of the memory bound: 0, or -1 when that would pass it (answer 503). */
int guard_take(guard *g, size_t bytes);
void guard_give(guard *g, size_t bytes);

/* The Host header's name (without its port) is one this server answers to: a loopback name, the
 * address it listens on (any IP address when that is 0.0.0.0), or one of --allowed-host. A
 * request without Host (HTTP/1.0) passes: a browser always sends one. */
int guard_host_ok(const guard *g, const char *host);
/* The Authorization header carries the key (compared in constant time), or no key is set. */
int guard_key_ok(const guard *g, const char *authorization);

#endif
