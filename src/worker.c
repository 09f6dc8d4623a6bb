/* worker.c - worker threads: accepting, reloading, draining (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "listener.h"
#include "proxy.h"
#include "resolve.h"
#include "tcp.h"
#include "upstream.h"

#define ACCEPT_RETRY_MS                                                                            \
    100 /* how often a paused worker (at max_connections, or out of fds) looks again */

/* What the main thread hands a worker on start and on reload. */
struct worker_update {
    struct config *cfg;   /* a reference for the worker */
    struct listener **ls; /* references for the worker */
    size_t nls;
};

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events);

static void watch_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->nwls; i++) {
        struct worker_listener *wl = &w->wls[i];
        if (loop_io_add(w->loop, &wl->io, wl->l->fd, EPOLLIN | EPOLLEXCLUSIVE, on_accept) < 0)
            log_msg(LOG_ERROR, "worker %u: cannot watch listener %s: %s", w->id, wl->l->bound.text,
                    strerror(errno));
    }
}

static void unwatch_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->nwls; i++)
        loop_io_del(w->loop, &w->wls[i].io);
}

static void on_dropped_listener(struct loop *l, struct loop_io *io, uint32_t events)
{
    /* An event fetched in the same batch as the update that dropped it. */
}

/* Stop watching the listeners. Their array is freed before the loop next
 * waits: events for them may still be queued in the current batch. */
static void drop_listeners(struct worker *w)
{
    if (!w->accept_paused)
        unwatch_listeners(w);
    for (size_t i = 0; i < w->nwls; i++) {
        listener_unref(w->wls[i].l);
        w->wls[i].l = NULL;
        w->wls[i].io.fn = on_dropped_listener;
    }
    if (w->wls) {
        struct dead_wls *d = malloc(sizeof *d);
        if (d) {
            d->wls = w->wls;
            d->next = w->dead_wls;
            w->dead_wls = d;
        } else {
            free(w->wls); /* out of memory: no event for it can be pending in practice */
        }
    }
    w->wls = NULL;
    w->nwls = 0;
}

static void pause_accepting(struct worker *w)
{
    if (w->accept_paused)
        return;
    unwatch_listeners(w);
    w->accept_paused = true;
    loop_timer_arm(w->loop, &w->accept_timer, ACCEPT_RETRY_MS);
}

static void resume_accepting(struct worker *w)
{
    if (!w->accept_paused || w->draining)
        return;
    loop_timer_disarm(w->loop, &w->accept_timer);
    w->accept_paused = false;
    watch_listeners(w);
}

static bool at_limit(const struct worker *w)
{
    return __atomic_load_n(&w->srv->nconns, __ATOMIC_RELAXED) >= w->cfg->limits.max_connections;
}

static void on_accept_timer(struct loop *l, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, accept_timer);
    if (at_limit(w) && !conn_reclaimable(w))
        loop_timer_arm(l, t, ACCEPT_RETRY_MS);
    else
        resume_accepting(w);
}

/* Out of descriptors or memory, accepts pause and are tried again every
 * ACCEPT_RETRY_MS; the connections wait in the kernel's queue. The line
 * says so once per LIMIT_WARN_INTERVAL_MS per worker, not at every retry. */
static void warn_accept_failed(struct worker *w, const char *addr, int e)
{
    uint64_t now = loop_now_ms(w->loop);
    if (w->warned_accept_ms && now - w->warned_accept_ms < LIMIT_WARN_INTERVAL_MS)
        return;
    w->warned_accept_ms = now;
    struct rlimit r = {0};
    getrlimit(RLIMIT_NOFILE, &r);
    const char *hint = e == EMFILE   ? "raise the open-file limit (LimitNOFILE= in the unit, "
                                       "ulimit -n) or lower limits.max_connections"
                       : e == ENFILE ? "the whole system is out of open files (fs.file-max)"
                                     : "the system is out of memory";
    log_msg(LOG_WARN,
            "worker %u: accept on %s: %s (open-file limit %llu, %zu connections open); accepts "
            "paused, tried again every %d ms; %s",
            w->id, addr, strerror(e), (unsigned long long)r.rlim_cur, w->nconns, ACCEPT_RETRY_MS,
            hint);
}

static bool accept_more(const struct worker *w, int taken)
{
    return worker_accept_more(taken, w->nconns, __atomic_load_n(&w->srv->nconns, __ATOMIC_RELAXED),
                              w->srv->nworkers);
}

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct worker_listener *wl = container_of(io, struct worker_listener, io);
    struct worker *w = wl->w;
    for (int i = 0; accept_more(w, i) && !w->draining && !w->accept_paused; i++) {
        /* At the limit, the new connection takes the place of one that
         * costs least to drop; only when every one is busy do accepts wait
         * (in the kernel's backlog), and other workers may still have room. */
        if (at_limit(w) && !conn_reclaimable(w)) {
            pause_accepting(w);
            return;
        }
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(wl->l->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                warn_accept_failed(w, wl->l->bound.text, errno);
                pause_accepting(w);
            }
            return; /* EAGAIN: another worker took it, or the queue is empty */
        }
        __atomic_add_fetch(&w->srv->nconns, 1, __ATOMIC_RELAXED);
        size_t idx = (size_t)(wl - w->wls);
        const struct config_service *fwd =
            idx < w->cfg->nlistens ? NULL : w->cfg->tcp_services[idx - w->cfg->nlistens];
        int rc = !fwd                       ? conn_accept(w, fd, &sa, salen, &w->cfg->listens[idx])
                 : fwd->tcp->proxy_protocol ? conn_accept_forwarder(w, fd, &sa, salen, fwd)
                                            : tcp_accept(w, fd, &sa, salen, fwd);
        if (rc < 0) {
            __atomic_sub_fetch(&w->srv->nconns, 1, __ATOMIC_RELAXED);
            continue;
        }
        /* Over the limit now (this one, or another worker's at the same
         * time): make room. The newest connection is last in its queue. */
        if (__atomic_load_n(&w->srv->nconns, __ATOMIC_RELAXED) > w->cfg->limits.max_connections)
            conn_reclaim(w);
    }
}

void worker_conn_closed(struct worker *w)
{
    w->nconns--;
    __atomic_sub_fetch(&w->srv->nconns, 1, __ATOMIC_RELAXED);
    if (w->accept_paused && !at_limit(w))
        resume_accepting(w);
    if (w->draining && w->nconns == 0)
        loop_stop(w->loop);
}

/* Free the cached buffers and exchanges. */
static void drop_caches(struct worker *w)
{
    while (w->free_exchanges) {
        struct exchange *ex = w->free_exchanges;
        w->free_exchanges = ex->next_free;
        free(ex);
    }
    w->nfree_exchanges = 0;
    buf_pool_drain(&w->bufs);
}

/* A burst of requests is over: its cached buffers and exchanges, and the
 * pages of the holes it left in malloc's heaps, go back to the kernel.
 * 10,000 idle connections would otherwise keep the peak's memory resident
 * around them. The next burst takes fresh memory from malloc. */
static void on_trim_timer(struct loop *l, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, trim_timer);
    drop_caches(w);
    w->released = w->released_armed = 0;
    w->bufs.released = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Free what was closed during this iteration, flush the access log, and
 * start the trim clock when enough was freed. */
static void before_wait(struct loop *l, void *arg)
{
    struct worker *w = arg;
    while (w->dead_conns) {
        struct conn *c = w->dead_conns;
        w->dead_conns = c->next;
        free(c);
        w->released += LIMIT_TRIM_SMALL_BYTES;
    }
    while (w->dead_upconns) {
        struct upconn *u = w->dead_upconns;
        w->dead_upconns = u->next;
        free(u);
        w->released += LIMIT_TRIM_SMALL_BYTES;
    }
    tcp_free_dead(w);
    while (w->dead_wls) {
        struct dead_wls *d = w->dead_wls;
        w->dead_wls = d->next;
        free(d->wls);
        free(d);
    }
    log_flush(&w->log);
    /* The trim waits until the burst has been over for a while: each
     * iteration that frees more starts the delay again. */
    size_t released = w->released + w->bufs.released;
    if (released >= LIMIT_TRIM_BYTES && released != w->released_armed) {
        w->released_armed = released;
        loop_timer_arm(l, &w->trim_timer, LIMIT_TRIM_DELAY_MS);
    }
}

static void apply_update(struct worker *w, struct worker_update *up)
{
    drop_listeners(w);
    w->wls = calloc(up->nls ? up->nls : 1, sizeof *w->wls);
    if (w->wls) {
        w->nwls = up->nls;
        for (size_t i = 0; i < up->nls; i++) {
            w->wls[i].w = w;
            w->wls[i].l = up->ls[i];
            w->wls[i].io.fd = -1;
        }
    } else {
        log_msg(LOG_ERROR, "worker %u: out of memory applying a configuration", w->id);
        for (size_t i = 0; i < up->nls; i++)
            listener_unref(up->ls[i]);
    }
    if (!w->accept_paused && !w->draining)
        watch_listeners(w);
    if (w->cfg)
        config_unref(w->cfg);
    w->cfg = up->cfg;
    free(up->ls);
    free(up);
}

static struct worker_update *make_update(struct server *srv)
{
    struct worker_update *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->ls = calloc(srv->nlisteners ? srv->nlisteners : 1, sizeof *up->ls);
    if (!up->ls) {
        free(up);
        return NULL;
    }
    up->cfg = config_ref(srv->cfg);
    up->nls = srv->nlisteners;
    for (size_t i = 0; i < srv->nlisteners; i++)
        up->ls[i] = listener_ref(srv->listeners[i]);
    return up;
}

struct posted_update {
    struct worker *w;
    struct worker_update *up;
};

static void on_posted_update(struct loop *l, void *arg)
{
    struct posted_update *p = arg;
    apply_update(p->w, p->up);
    free(p);
}

static void on_drain_timeout(struct loop *l, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, drain_timer);
    if (w->nconns)
        log_msg(LOG_WARN, "worker %u: shutdown_timeout reached; closing %zu %s", w->id, w->nconns,
                log_plural(w->nconns, "connection", "connections"));
    w->drained.cut = w->nconns;
    while (w->conns)
        conn_close(w->conns);
    tcp_close_all(w);
    loop_stop(l);
}

static void on_drain(struct loop *l, void *arg)
{
    struct worker *w = arg;
    w->draining = true;
    drop_listeners(w);
    loop_timer_disarm(l, &w->accept_timer);
    upstream_pools_close_idle(w);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        switch (conn_drain(c)) {
        case CONN_DRAIN_TUNNEL:
            w->drained.tunnels++;
            break;
        case CONN_DRAIN_IDLE:
            w->drained.idle++;
            break;
        case CONN_DRAIN_KEPT:
            break;
        }
    }
    w->drained.tcp = tcp_drain(w);
    w->drained.finishing = w->nconns;
    if (w->nconns == 0) {
        loop_stop(l);
        return;
    }
    loop_timer_arm(l, &w->drain_timer, w->cfg->limits.shutdown_timeout_ms);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    loop_run(w->loop);
    /* Draining is over: whatever is left goes now. */
    while (w->conns)
        conn_close(w->conns);
    tcp_close_all(w);
    drop_listeners(w);
    upstream_pools_free(w);
    tailnet_worker_free(w);
    access_probe_close(&w->own);
    for (size_t i = 0; i < w->nauth_caches; i++)
        auth_cache_free(w->auth_caches[i]);
    free(w->auth_caches);
    before_wait(w->loop, w);
    drop_caches(w);
    return NULL;
}

int worker_start_all(struct server *srv, char *err, size_t errlen)
{
    if (peer_table_init(&srv->peers) < 0) {
        snprintf(err, errlen, "cannot create the per-client connection table");
        return -1;
    }
    srv->workers = calloc(srv->nworkers, sizeof *srv->workers);
    if (!srv->workers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->id = i;
        w->srv = srv;
        access_probe_init(&w->own);
        w->loop = loop_new(err, errlen);
        if (!w->loop)
            return -1;
        if (upstream_pools_init(w) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        loop_timer_init(&w->accept_timer, on_accept_timer);
        loop_timer_init(&w->drain_timer, on_drain_timeout);
        loop_timer_init(&w->trim_timer, on_trim_timer);
        loop_set_before_wait(w->loop, before_wait, w);
        struct worker_update *up = make_update(srv);
        if (!up) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        apply_update(w, up);
    }
    struct loop *loops[LIMIT_WORKERS_MAX];
    for (unsigned i = 0; i < srv->nworkers && i < LIMIT_WORKERS_MAX; i++)
        loops[i] = srv->workers[i].loop;
    resolve_set_loops(loops, srv->nworkers < LIMIT_WORKERS_MAX ? srv->nworkers : LIMIT_WORKERS_MAX);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int rc = pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
        if (rc) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(rc));
            return -1;
        }
        /* Named as the log names it ("worker 0"), for top -H and debuggers. */
        char name[24];
        snprintf(name, sizeof name, "worker %u", i);
        name[15] = '\0'; /* the kernel keeps 15 bytes; LIMIT_WORKERS_MAX fits in them */
        pthread_setname_np(srv->workers[i].thread, name);
    }
    return 0;
}

void worker_reload_all(struct server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct posted_update *p = malloc(sizeof *p);
        struct worker_update *up = make_update(srv);
        if (p && up) {
            p->w = &srv->workers[i];
            p->up = up;
        }
        if (!p || !up || loop_post(srv->workers[i].loop, on_posted_update, p) < 0) {
            log_msg(LOG_ERROR, "worker %u: out of memory; it keeps the old configuration", i);
            if (up) {
                config_unref(up->cfg);
                for (size_t k = 0; k < up->nls; k++)
                    listener_unref(up->ls[k]);
                free(up->ls);
                free(up);
            }
            free(p);
        }
    }
}

static void on_ping(struct loop *l, void *arg)
{
    struct worker *w = arg;
    __atomic_store_n(&w->pong, __atomic_load_n(&w->srv->ping, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
}

void worker_ping_all(struct server *srv)
{
    uint64_t round = __atomic_add_fetch(&srv->ping, 1, __ATOMIC_ACQ_REL);
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (loop_post(srv->workers[i].loop, on_ping, &srv->workers[i]) < 0)
            /* Counts as an answer: out of memory is not a stuck loop. */
            __atomic_store_n(&srv->workers[i].pong, round, __ATOMIC_RELEASE);
}

int worker_first_silent(const struct server *srv)
{
    uint64_t round = __atomic_load_n(&srv->ping, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (__atomic_load_n(&srv->workers[i].pong, __ATOMIC_ACQUIRE) < round)
            return (int)i;
    return -1;
}

void worker_stop_all(struct server *srv)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t tunnels = 0, idle = 0, tcp = 0, finishing = 0, cut = 0;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (loop_post(srv->workers[i].loop, on_drain, &srv->workers[i]) < 0)
            log_msg(LOG_ERROR, "worker %u: cannot post shutdown", i);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        pthread_join(w->thread, NULL);
        tunnels += w->drained.tunnels;
        idle += w->drained.idle;
        tcp += w->drained.tcp;
        finishing += w->drained.finishing;
        cut += w->drained.cut;
        if (w->cfg)
            config_unref(w->cfg);
        w->cfg = NULL;
        loop_free(w->loop);
        metrics_worker_free(&w->metrics);
    }
    peer_table_free(&srv->peers);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    log_msg(LOG_INFO,
            "drained in %ld ms: closed %zu upgraded %s, %zu idle %s and %zu quiet TCP %s at once; "
            "%zu %s finished, %zu cut at shutdown_timeout",
            ms, tunnels, log_plural(tunnels, "tunnel", "tunnels"), idle,
            log_plural(idle, "connection", "connections"), tcp,
            log_plural(tcp, "stream", "streams"), finishing - cut,
            log_plural(finishing - cut, "connection", "connections"), cut);
}
