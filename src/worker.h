/* worker.h - one event loop per core and the process that owns them.
 *
 * Workers share nothing but the read-only configuration snapshot, the
 * listening sockets and one connection counter. The main thread handles
 * signals, reloads and /metrics, and talks to workers only by posting
 * closures to their loops. */
#ifndef PORTICO_WORKER_H
#define PORTICO_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "buf.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "peers.h"

struct config;
struct listener;
struct conn;
struct exchange;
struct upstream_pools;
struct upconn;
struct server;
struct tcp_fwd;

/* Connections that cost least to drop, oldest first (see conn_reclaim). */
struct conn_queue {
    struct conn *head, *tail;
};

enum conn_reclaim {
    RECLAIM_NONE,    /* in an exchange, lingering, or closed: never dropped */
    RECLAIM_IDLE,    /* keep-alive between requests: its client reconnects */
    RECLAIM_WAITING, /* no request yet: PROXY header, TLS handshake, head */
};

/* A listener as one worker watches it. */
struct worker_listener {
    struct loop_io io;
    struct worker *w;
    struct listener *l; /* a reference */
};

/* Listener arrays replaced by a reload, freed before the loop next waits. */
struct dead_wls {
    struct dead_wls *next;
    struct worker_listener *wls;
};

struct worker {
    unsigned id;
    struct server *srv;
    pthread_t thread;
    struct loop *loop;
    struct config *cfg; /* a reference; rules for new requests */
    struct worker_listener *wls;
    size_t nwls;
    bool accept_paused; /* at max_connections with nothing to reclaim; retried by accept_timer */
    bool draining;
    struct loop_timer accept_timer;
    struct loop_timer drain_timer;
    struct conn *conns; /* every open client connection (for draining) */
    size_t nconns;
    /* by enum conn_reclaim: [RECLAIM_IDLE], [RECLAIM_WAITING] */
    struct conn_queue reclaim[3];
    uint64_t warned_full_ms, warned_peer_ms; /* last log line about each (rate-limited) */
    uint64_t warned_accept_ms;               /* the same, for accepts failing (no descriptors) */
    struct conn *dead_conns;     /* closed this iteration; freed before the loop waits */
    struct upconn *dead_upconns; /* likewise */
    struct tcp_fwd *tcps;        /* open TCP forwarders (they count in nconns) */
    struct tcp_fwd *dead_tcps;   /* closed this iteration */
    struct dead_wls *dead_wls;
    struct exchange *free_exchanges; /* at most EXCHANGE_FREELIST_MAX */
    size_t nfree_exchanges;
    /* Bytes of connections (LIMIT_TRIM_SMALL_BYTES each) and exchanges
     * freed since the last trim (buffers count in bufs.released); past
     * LIMIT_TRIM_BYTES, trim_timer empties
     * the caches and gives malloc's free pages back to the kernel once
     * nothing more has been freed for LIMIT_TRIM_DELAY_MS. */
    size_t released;
    size_t released_armed; /* released + bufs.released when trim_timer was last armed */
    struct loop_timer trim_timer;
    struct buf_pool bufs;
    struct upstream_pools *pools;
    /* Forward-auth decision caches, by config_auth.idx of the snapshot
     * whose serial is auth_serial: a reload starts them empty. */
    struct auth_cache **auth_caches;
    size_t nauth_caches;
    uint64_t auth_serial;
    struct metrics_worker metrics;
    struct log_buf log;
    /* The tailnet backend's whois answers (tailnet.c): made on first use,
     * for the LocalAPI socket named in ts_socket. */
    struct localapi_client *localapi;
    struct whois_cache *whois;
    char ts_socket[128];
    struct access_probe own; /* which peers are this host (access_peer_tailnet) */
    uint64_t pong;           /* atomic: the last server ping this worker's loop answered */
    /* What draining did: closed at its start, left to finish, cut at
     * shutdown_timeout (read by the main thread after the join). */
    struct {
        size_t tunnels, idle, tcp, finishing, cut;
    } drained;
};

struct server {
    struct config *cfg; /* main thread's current snapshot */
    /* cfg->listens in order, then the tcp.listen of cfg->tcp_services */
    struct listener **listeners;
    size_t nlisteners;
    struct worker *workers;
    unsigned nworkers;
    uint32_t nconns;         /* atomic: client connections in all workers */
    struct peer_table peers; /* limits.max_connections_per_client */
    uint64_t ping;           /* atomic: the round of worker_ping_all, 0 before the first */
};

/* Start n workers on cfg and the given listeners (references are taken). */
int worker_start_all(struct server *srv, char *err, size_t errlen);
/* Hand every worker a new snapshot and listener set (references are taken). */
void worker_reload_all(struct server *srv);
/* Ask every worker to stop accepting, close tunnels and idle connections,
 * finish in-flight work within shutdown_timeout, and exit; join them and
 * log one line saying what was closed and how long it took. */
void worker_stop_all(struct server *srv);

/* Post each worker a closure that records the new ping round: a worker
 * whose loop is stuck never runs it. Main thread. */
void worker_ping_all(struct server *srv);
/* The id of a worker that has not answered the last round, or -1 when all
 * have (or none was sent). */
int worker_first_silent(const struct server *srv);

/* Worker side: a client connection closed (counters, paused accepts, drain). */
void worker_conn_closed(struct worker *w);

/* May a worker holding mine of all connections, having accepted taken in
 * this wake-up, accept one more? The first always; more, up to
 * LIMIT_ACCEPT_BATCH, while it holds no more than 9/8 of its share among
 * nworkers. A flood of connects leaves the kernel's queue in a few
 * wake-ups once every worker has some (a worker wakes for its listener once
 * per batch of events, behind up to a few hundred requests), while a
 * worker ahead of the others leaves the rest to their wake-ups: connects
 * arriving together (a client opening 64 at once) are spread over the
 * workers instead of all landing on the first one woken. */
static inline bool worker_accept_more(int taken, size_t mine, size_t all, unsigned nworkers)
{
    if (taken == 0)
        return true;
    return taken < LIMIT_ACCEPT_BATCH && mine * nworkers <= all + all / 8;
}

#endif
