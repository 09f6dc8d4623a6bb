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

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "config.h"
#include "limits.h"
#include "list.h"
#include "resolve.h"
#include "tls.h"
#include "worker.h"

/* One endpoint's pool in one worker. It outlives configuration snapshots:
 * a reload that keeps an upstream keeps its warm connections. */
struct upstream_pool {
    struct upstream_pool *next; /* hash chain */
    char *key;
    uint64_t hash;
    /* For an upstream named by host: the address (resolve_addr.gen) its
     * idle connections go to. When the name moves, they are closed. */
    uint64_t gen;
    struct upconn *idle; /* most recently used first */
    size_t nidle;
    /* https: the client context of the newest configuration that named
     * this endpoint (a reference), and the session to resume. */
    SSL_CTX *tls_ctx;
    SSL_SESSION *session;
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
    e->next = p->buckets[h & p->mask];
    p->buckets[h & p->mask] = e;
    p->count++;
    return e;
}

static void idle_unlink(struct upconn *u)
{
    LIST_UNLINK(u->pool->idle, u, prev, next);
    u->pool->nidle--;
}

void upstream_close(struct upconn *u)
{
    if (u->dead)
        return;
    struct worker *w = u->w;
    if (!u->ex && u->pool && (u->prev || u->pool->idle == u))
        idle_unlink(u);
    u->dead = true;
    /* No close_notify (the socket closes next), but marked as shut down
     * so that OpenSSL keeps the session resumable for the pool. */
    if (u->s.ssl && SSL_is_init_finished(u->s.ssl))
        SSL_set_shutdown(u->s.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    sock_close(&u->s, w->loop, &w->bufs);
    loop_timer_disarm(w->loop, &u->idle_timer);
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
    struct upconn *u = container_of(io, struct upconn, s.io);
    if (u->dead || !sock_note_events(&u->s, events))
        return;
    if (u->ex) {
        u->on_event(u->ex);
        return;
    }
    /* Idle: the upstream closed it or sent bytes nobody asked for. A TLS
     * upstream may still send session tickets (records that carry no
     * data); those leave the connection usable. */
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    if (u->s.ssl && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        char b;
        ERR_clear_error();
        int r = SSL_read(u->s.ssl, &b, 1);
        if (r <= 0 && SSL_get_error(u->s.ssl, r) == SSL_ERROR_WANT_READ) {
            u->s.readable = false;
            return;
        }
    }
    upstream_close(u);
}

/* Make the TLS client session for a new connection to an https upstream. */
static SSL *tls_session(struct upstream_pool *pool, const struct config_upstream *up, int fd)
{
    if (pool->tls_ctx != up->tls_ctx) {
        /* A reload brought a new context (a changed CA file, say); sessions
         * of the old one are not offered to it. */
        SSL_CTX_up_ref(up->tls_ctx);
        SSL_CTX_free(pool->tls_ctx);
        pool->tls_ctx = up->tls_ctx;
        SSL_SESSION_free(pool->session);
        pool->session = NULL;
    }
    SSL *ssl = SSL_new(pool->tls_ctx);
    if (!ssl)
        return NULL;
    bool ok = SSL_set_fd(ssl, fd) == 1;
    if (up->tls_name) {
        struct in6_addr a;
        bool literal =
            inet_pton(AF_INET, up->tls_name, &a) == 1 || inet_pton(AF_INET6, up->tls_name, &a) == 1;
        if (literal)
            ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), up->tls_name) == 1;
        else
            ok = ok && SSL_set_tlsext_host_name(ssl, up->tls_name) == 1 &&
                 SSL_set1_host(ssl, up->tls_name) == 1;
    }
    if (ok && pool->session)
        SSL_set_session(ssl, pool->session); /* a stale one just costs a full handshake */
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Is an idle connection still usable, though the loop has said nothing?
 * The upstream's close (or stray bytes) may have arrived after the loop
 * last looked, or wait in the batch it is handling now, after the
 * client's request: one look at the socket, without taking anything. */
static bool idle_usable(struct upconn *u)
{
    char b;
    ssize_t n = recv(u->s.io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (n == 0 || !u->s.ssl)
        return false;
    /* A TLS record: a session ticket leaves the connection usable, as in
     * on_io. */
    ERR_clear_error();
    int r = SSL_read(u->s.ssl, &b, 1);
    if (r <= 0 && SSL_get_error(u->s.ssl, r) == SSL_ERROR_WANT_READ) {
        u->s.readable = false;
        return true;
    }
    return false;
}

struct upconn *upstream_acquire(struct worker *w, const struct config_upstream *up,
                                enum upstream_pick pick, int *err)
{
    const struct sockaddr *sa;
    socklen_t salen;
    uint64_t gen;
    int rc = resolve_target(&up->addr, &sa, &salen, &gen);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    struct upstream_pool *pool = pool_for(w, up);
    if (!pool) {
        *err = -ENOMEM;
        return NULL;
    }
    if (pool->gen != gen) {
        /* The name resolves elsewhere now: new requests go there. */
        while (pool->idle)
            upstream_close(pool->idle);
        pool->gen = gen;
    }
    while (pick != UPSTREAM_NEW && pool->idle) {
        struct upconn *u = pool->idle;
        idle_unlink(u);
        loop_timer_disarm(w->loop, &u->idle_timer);
        if (pick == UPSTREAM_IDLE_CHECKED && !idle_usable(u)) {
            upstream_close(u);
            continue;
        }
        u->reused = true;
        return u;
    }
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    bool connecting = false;
    if (connect(fd, sa, salen) < 0) {
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
    if (up->kind == UPSTREAM_HTTPS && !(u->s.ssl = tls_session(pool, up, fd))) {
        *err = -ENOMEM;
        close(fd);
        free(u);
        return NULL;
    }
    u->connecting = connecting || u->s.ssl;
    u->handshaking = false;
    u->s.writable = !connecting;
    loop_timer_init(&u->idle_timer, on_idle_timeout);
    rc = sock_open(&u->s, w->loop, fd, on_io);
    if (rc < 0) {
        *err = rc;
        if (u->s.ssl)
            SSL_free(u->s.ssl);
        close(fd);
        free(u);
        return NULL;
    }
    return u;
}

int upstream_connect_result(struct upconn *u, const char **why)
{
    *why = NULL;
    if (!u->handshaking) {
        if (!u->s.writable)
            return -EINPROGRESS;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(u->s.io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            return -errno;
        if (soerr)
            return -soerr;
        if (!u->s.ssl) {
            u->connecting = false;
            return 0;
        }
        size_t off = u->prefix_off;
        int sent = sock_write_rest(&u->s, u->prefix, u->prefix_len, &off, true);
        u->prefix_off = (uint32_t)off;
        if (sent <= 0)
            return sent < 0 ? sent : -EINPROGRESS;
        u->handshaking = true;
    }
    int r = sock_handshake(&u->s);
    if (r == 1) {
        u->handshaking = false;
        u->connecting = false;
        return 0;
    }
    if (r == 0)
        return -EINPROGRESS;
    long v = SSL_get_verify_result(u->s.ssl);
    if (v != X509_V_OK)
        *why = X509_verify_cert_error_string(v);
    else {
        unsigned long code = ERR_peek_last_error();
        *why = code ? ERR_reason_error_string(code) : "connection closed during the TLS handshake";
        if (!*why)
            *why = "TLS handshake failed";
    }
    return -EPROTO;
}

void upstream_set_prefix(struct upconn *u, const char *p, size_t len)
{
    u->prefix = p;
    u->prefix_len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    u->prefix_off = 0;
}

void upstream_attach(struct upconn *u, struct exchange *ex, void (*on_event)(struct exchange *ex))
{
    u->ex = ex;
    u->on_event = on_event;
}

void upstream_release(struct upconn *u, bool reusable)
{
    struct worker *w = u->w;
    u->ex = NULL;
    if (u->s.ssl && SSL_is_init_finished(u->s.ssl)) {
        /* By now a TLS 1.3 upstream has sent its tickets: keep the newest
         * resumable session for the next new connection. */
        SSL_SESSION *s = SSL_get1_session(u->s.ssl);
        if (s && SSL_SESSION_is_resumable(s) && s != u->pool->session) {
            SSL_SESSION_free(u->pool->session);
            u->pool->session = s;
        } else
            SSL_SESSION_free(s);
    }
    const struct config_limits *lim = &w->cfg->limits;
    if (!reusable || u->s.eof || (u->s.in && buf_len(u->s.in)) || w->draining ||
        !lim->upstream_keepalive) {
        upstream_close(u);
        return;
    }
    /* Past upstream_keepalive idle connections, this one is pooled briefly
     * rather than closed: while the upstream has that many requests in
     * flight from this worker, closing it here would open a new connection
     * for nearly every request (every service naming the upstream shares
     * the pool). Once the load drops, the surplus is unused and expires. */
    uint32_t ms = lim->upstream_keepalive_timeout_ms;
    if (u->pool->nidle >= lim->upstream_keepalive && ms > LIMIT_POOL_SURPLUS_IDLE_MS)
        ms = LIMIT_POOL_SURPLUS_IDLE_MS;
    buf_put(&w->bufs, u->s.in);
    u->s.in = NULL;
    LIST_PUSH(u->pool->idle, u, prev, next);
    u->pool->nidle++;
    loop_timer_arm(w->loop, &u->idle_timer, ms);
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
            SSL_SESSION_free(e->session);
            SSL_CTX_free(e->tls_ctx);
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(p->buckets);
    free(p);
    w->pools = NULL;
}
