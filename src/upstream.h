/* upstream.h - connections to upstreams and their keep-alive pools.
 *
 * Each worker keeps, per upstream endpoint, a LIFO list of idle
 * connections bounded in idle time: limits.upstream_keepalive of them for
 * upstream_keepalive_timeout, more for a few seconds only. An idle
 * connection stays registered with the event loop so that an upstream
 * closing it is noticed at once, not when the next request fails on it. */
#ifndef PORTICO_UPSTREAM_H
#define PORTICO_UPSTREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "loop.h"
#include "sock.h"

struct worker;
struct exchange;
struct config_upstream;
struct upstream_pool;

struct upconn {
    /* The socket: a TLS session for https upstreams, and upstream ->
     * portico bytes in s.in. */
    struct sock s;
    struct worker *w;
    struct upstream_pool *pool;
    bool connecting, reused, dead;
    bool handshaking; /* https: connected, TLS handshake not done */
    /* Bytes sent in the clear before the TLS handshake (a PROXY header to
     * an https upstream); owned by the exchange that set them. */
    uint32_t prefix_len, prefix_off;
    const char *prefix;
    struct exchange *ex; /* the exchange using it; NULL while idle */
    /* What runs when the socket has news while ex is set: the pool does not
     * know what its connections carry. */
    void (*on_event)(struct exchange *ex);
    struct loop_timer idle_timer;
    struct upconn *next, *prev; /* idle list */
};

/* Which connection a request may go out on. */
enum upstream_pick {
    UPSTREAM_NEW,  /* a new one (a retry, a PROXY header for one client) */
    UPSTREAM_IDLE, /* a pooled one if any: the request can be sent again if it was closed */
    /* A pooled one checked first for a close (or stray bytes) from the
     * upstream that the event loop has not reported yet: for a request
     * that cannot be sent twice. */
    UPSTREAM_IDLE_CHECKED,
};

/* An idle pooled connection to up, or a new one being connected (check
 * u->connecting). Returns NULL with -errno in *err when the connect fails
 * at once (a Unix socket with no server, fd exhaustion, ...), and with
 * UPSTREAM_UNRESOLVED when up names a host that has no address yet. */
#define UPSTREAM_UNRESOLVED (-EDESTADDRREQ)

struct upconn *upstream_acquire(struct worker *w, const struct config_upstream *up,
                                enum upstream_pick pick, int *err);

/* u now works for ex: its socket's events go to on_event(ex) until
 * upstream_release or upstream_close. */
void upstream_attach(struct upconn *u, struct exchange *ex, void (*on_event)(struct exchange *ex));

/* Finish an exchange's use of u: pool it if reusable, else close it.
 * Beyond limits.upstream_keepalive idle connections it is pooled for
 * LIMIT_POOL_SURPLUS_IDLE_MS only. */
void upstream_release(struct upconn *u, bool reusable);

/* Close at once. */
void upstream_close(struct upconn *u);

/* Drive a connection being set up (TCP connect, then the TLS handshake
 * for https): 0 when ready for the request, -EINPROGRESS while waiting for
 * the socket, or -errno on failure. For a failed TLS handshake the error is
 * -EPROTO and *why says what went wrong (certificate verification, ...). */
int upstream_connect_result(struct upconn *u, const char **why);

/* Send p[0..len) in the clear before the TLS handshake of a new https
 * connection (a PROXY header); p must outlive the handshake. */
void upstream_set_prefix(struct upconn *u, const char *p, size_t len);

int upstream_pools_init(struct worker *w);
/* Close every idle connection (drain, exit). */
void upstream_pools_close_idle(struct worker *w);
void upstream_pools_free(struct worker *w);

#endif
