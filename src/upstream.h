/* upstream.h - connections to upstreams and their keep-alive pools.
 *
 * Each worker keeps, per upstream endpoint, a LIFO list of idle
 * connections bounded in size and in idle time. An idle connection stays
 * registered with the event loop so that an upstream closing it is noticed
 * at once, not when the next request fails on it. */
#ifndef PORTICO_UPSTREAM_H
#define PORTICO_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

struct worker;
struct buf;
struct exchange;
struct config_upstream;
struct upstream_pool;

struct upconn {
    struct loop_io io;
    struct worker *w;
    struct upstream_pool *pool;
    bool readable, writable, eof, connecting, reused, dead;
    struct buf *in;      /* upstream -> portico bytes; owned */
    struct exchange *ex; /* the exchange using it; NULL while idle */
    struct loop_timer idle_timer;
    struct upconn *next, *prev; /* idle list */
    uint64_t requests;          /* exchanges served so far */
};

/* An idle pooled connection to up, or a new one being connected (check
 * u->connecting). Returns NULL with -errno in *err when the connect fails
 * at once (a Unix socket with no server, fd exhaustion, ...). */
struct upconn *upstream_acquire(struct worker *w, const struct config_upstream *up, bool allow_idle,
                                int *err);

/* Finish an exchange's use of u: pool it if reusable (and the pool has
 * room), else close it. */
void upstream_release(struct upconn *u, bool reusable);

/* Close at once. */
void upstream_close(struct upconn *u);

/* After a non-blocking connect reported writable: 0 or -errno. */
int upstream_connect_result(struct upconn *u);

int upstream_pools_init(struct worker *w);
/* Close every idle connection (drain, exit). */
void upstream_pools_close_idle(struct worker *w);
void upstream_pools_free(struct worker *w);

#endif
