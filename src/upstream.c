/* upstream.c - upstream connections and per-worker keep-alive pools. */
#include "upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "proxy.h"
#include "worker.h"

/* One endpoint's pool in one worker. It outlives configuration snapshots:
 * a reload that keeps an upstream keeps its warm connections. */
struct upstream_pool {
    struct upstream_pool *next; /* hash chain */
    char *key;
    uint64_t hash;
    struct config_addr addr;
    struct upconn *idle; /* most recently used first */
    size_t nidle;
};

struct upstream_pools {
    struct upstream_pool **buckets;
    size_t mask;
    size_t count;
};

static uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int upstream_pools_init(struct worker *w)
{
    struct upstream_pools *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->buckets = calloc(64, sizeof *p->buckets);
    if (!p->buckets) {
        free(p);
        return -ENOMEM;
    }
    p->mask = 63;
    w->pools = p;
    return 0;
}

static int pools_grow(struct upstream_pools *p)
{
    size_t cap = (p->mask + 1) * 2;
    struct upstream_pool **b = calloc(cap, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i <= p->mask; i++) {
        struct upstream_pool *e = p->buckets[i];
        while (e) {
            struct upstream_pool *next = e->next;
            e->next = b[e->hash & (cap - 1)];
            b[e->hash & (cap - 1)] = e;
            e = next;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->mask = cap - 1;
    return 0;
}

static struct upstream_pool *pool_for(struct worker *w, const struct config_upstream *up)
{
    struct upstream_pools *p = w->pools;
    uint64_t h = key_hash(up->key);
    for (struct upstream_pool *e = p->buckets[h & p->mask]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, up->key) == 0)
            return e;
    if (p->count + 1 > (p->mask + 1) * 2)
        pools_grow(p); /* on failure the chains just get longer */
    struct upstream_pool *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->key = strdup(up->key);
    if (!e->key) {
        free(e);
        return NULL;
    }
    e->hash = h;
    e->addr = up->addr;
    e->next = p->buckets[h & p->mask];
    p->buckets[h & p->mask] = e;
    p->count++;
    return e;
}

static void idle_unlink(struct upconn *u)
{
    struct upstream_pool *pool = u->pool;
    if (u->prev)
        u->prev->next = u->next;
    else
        pool->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    pool->nidle--;
}

void upstream_close(struct upconn *u)
{
    if (u->dead)
        return;
    struct worker *w = u->w;
    if (!u->ex && u->pool && (u->prev || u->pool->idle == u))
        idle_unlink(u);
    u->dead = true;
    loop_io_del(w->loop, &u->io);
    close(u->io.fd);
    u->io.fd = -1;
    loop_timer_disarm(w->loop, &u->idle_timer);
    buf_put(&w->bufs, u->in);
    u->in = NULL;
    u->ex = NULL;
    /* Freed after this loop iteration: an event for it may still be queued. */
    u->next = w->dead_upconns;
    w->dead_upconns = u;
}

static void on_idle_timeout(struct loop *l, struct loop_timer *t)
{
    upstream_close(container_of(t, struct upconn, idle_timer));
}

static void on_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct upconn *u = container_of(io, struct upconn, io);
    if (u->dead)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        u->writable = true;
    if (u->ex) {
        proxy_run(u->ex);
        return;
    }
    /* Idle: the upstream closed it or sent bytes nobody asked for. */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        upstream_close(u);
}

struct upconn *upstream_acquire(struct worker *w, const struct config_upstream *up, bool allow_idle,
                                int *err)
{
    struct upstream_pool *pool = pool_for(w, up);
    if (!pool) {
        *err = -ENOMEM;
        return NULL;
    }
    if (allow_idle && pool->idle) {
        struct upconn *u = pool->idle;
        idle_unlink(u);
        loop_timer_disarm(w->loop, &u->idle_timer);
        u->reused = true;
        return u;
    }
    int fd = socket(pool->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    if (pool->addr.sa.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    bool connecting = false;
    if (connect(fd, (const struct sockaddr *)&pool->addr.sa, pool->addr.salen) < 0) {
        if (errno != EINPROGRESS) {
            *err = -errno;
            close(fd);
            return NULL;
        }
        connecting = true;
    }
    struct upconn *u = calloc(1, sizeof *u);
    if (!u) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    u->w = w;
    u->pool = pool;
    u->connecting = connecting;
    u->writable = !connecting;
    loop_timer_init(&u->idle_timer, on_idle_timeout);
    int rc = loop_io_add(w->loop, &u->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_io);
    if (rc < 0) {
        *err = rc;
        close(fd);
        free(u);
        return NULL;
    }
    return u;
}

int upstream_connect_result(struct upconn *u)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(u->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return -errno;
    if (soerr)
        return -soerr;
    u->connecting = false;
    return 0;
}

void upstream_release(struct upconn *u, bool reusable)
{
    struct worker *w = u->w;
    u->ex = NULL;
    u->requests++;
    const struct config_limits *lim = &w->cfg->limits;
    if (!reusable || u->eof || (u->in && buf_len(u->in)) || w->draining ||
        u->pool->nidle >= lim->upstream_keepalive) {
        upstream_close(u);
        return;
    }
    buf_put(&w->bufs, u->in);
    u->in = NULL;
    u->next = u->pool->idle;
    u->prev = NULL;
    if (u->next)
        u->next->prev = u;
    u->pool->idle = u;
    u->pool->nidle++;
    loop_timer_arm(w->loop, &u->idle_timer, lim->upstream_keepalive_timeout_ms);
}

void upstream_pools_close_idle(struct worker *w)
{
    struct upstream_pools *p = w->pools;
    if (!p)
        return;
    for (size_t i = 0; i <= p->mask; i++)
        for (struct upstream_pool *e = p->buckets[i]; e; e = e->next)
            while (e->idle)
                upstream_close(e->idle);
}

void upstream_pools_free(struct worker *w)
{
    struct upstream_pools *p = w->pools;
    if (!p)
        return;
    upstream_pools_close_idle(w);
    for (size_t i = 0; i <= p->mask; i++) {
        struct upstream_pool *e = p->buckets[i];
        while (e) {
            struct upstream_pool *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(p->buckets);
    free(p);
    w->pools = NULL;
}
