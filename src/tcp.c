/* tcp.c - plain TCP forwarders (see tcp.h). */
#include "tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "config.h"
#include "list.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "proxyproto.h"
#include "relay.h"
#include "resolve.h"
#include "sock.h"
#include "whois.h"
#include "worker.h"

#define TCP_PIPE_BYTES 65536 /* pipe size asked for: at most this much in flight per direction */

struct tcp_side {
    struct sock s;
    struct tcp_fwd *t;
};

struct tcp_fwd {
    struct tcp_side c, u; /* client, upstream */
    struct worker *w;
    struct tcp_fwd *prev, *next;
    struct config *cfg; /* reference: svc lives in it */
    const struct config_service *svc;
    const struct config_addr *ua; /* svc's tcp.upstream or passthrough */
    bool passthrough;
    struct relay up, down; /* client -> upstream, upstream -> client */
    struct loop_timer timer;
    uint64_t last_activity;
    uint64_t start_us;
    int status; /* as logged: 200 once connected, 502/504 when the upstream failed, 403 denied */
    bool connecting, dead;
    /* The service has an allow list and whois has not answered yet: the
     * client's bytes stay in its socket and no upstream is dialled. */
    bool deciding;
    struct whois_waiter wait;
    struct sockaddr_storage peer;
    bool peer_tailnet; /* peer may have a tailnet identity (access_peer_tailnet) */
    char addr[64];
    char user[128]; /* the caller's login or tag, for the access log */
    /* PROXY header for the upstream (send_proxy_protocol), written before
     * any client byte. */
    char pp[PROXYPROTO_OUT_MAX];
    size_t pp_len, pp_off;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void tcp_close(struct tcp_fwd *t)
{
    if (t->dead)
        return;
    struct worker *w = t->w;
    t->dead = true;
    whois_detach(&t->wait);
    uint64_t usec = now_us() - t->start_us;
    struct metrics_service *m = metrics_service(&w->metrics, t->svc->metrics_slot);
    if (m) {
        m->bytes_in += t->up.bytes;
        m->bytes_out += t->down.bytes;
    }
    if (t->cfg->access_log) {
        struct access_entry e = {
            .service = t->svc->name,
            .client = t->addr,
            .user = t->user[0] ? t->user : "-",
            .method = t->passthrough ? "TLS" : "TCP",
            .path = "-",
            .path_len = 1,
            .status = t->status,
            .bytes_in = t->up.bytes,
            .bytes_out = t->down.bytes,
            .usec = usec,
        };
        log_access(&w->log, &e, t->cfg->log_format);
    }
    sock_close(&t->c.s, w->loop, &w->bufs);
    sock_close(&t->u.s, w->loop, &w->bufs);
    relay_close(&t->up);
    relay_close(&t->down);
    loop_timer_disarm(w->loop, &t->timer);
    LIST_UNLINK(w->tcps, t, prev, next);
    /* Freed before the loop next waits: an event for it may still be queued. */
    t->next = w->dead_tcps;
    w->dead_tcps = t;
    config_unref(t->cfg);
    t->cfg = NULL;
    metrics_conn_close(&w->metrics);
    worker_conn_closed(w);
}

/* How long the stream may stay silent: tunnel_timeout, and once the
 * worker drains, LIMIT_DRAIN_TCP_QUIET_MS. */
static uint64_t quiet_limit(const struct tcp_fwd *t)
{
    uint64_t limit = t->cfg->limits.tunnel_timeout_ms;
    return t->w->draining && limit > LIMIT_DRAIN_TCP_QUIET_MS ? LIMIT_DRAIN_TCP_QUIET_MS : limit;
}

static void arm(struct tcp_fwd *t)
{
    uint64_t ms = t->deciding     ? t->cfg->tailscale.whois_wait_ms
                  : t->connecting ? t->svc->connect_timeout_ms
                                  : quiet_limit(t);
    loop_timer_arm(t->w->loop, &t->timer, ms);
}

static void run(struct tcp_fwd *t)
{
    struct worker *w = t->w;
    if (t->connecting) {
        if (!t->u.s.writable)
            return;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(t->u.s.io.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr) {
            metrics_count_connect_error(&w->metrics, t->svc->metrics_slot);
            log_msg(LOG_WARN, "service %s: cannot connect to %s: %s", t->svc->name, t->ua->text,
                    strerror(soerr));
            t->status = 502;
            tcp_close(t);
            return;
        }
        t->connecting = false;
        t->status = 200;
        arm(t);
    }
    if (t->pp_off < t->pp_len) {
        if (!t->u.s.writable)
            return;
        int r = sock_write_rest(&t->u.s, t->pp, t->pp_len, &t->pp_off, true);
        if (r < 0)
            tcp_close(t);
        if (r <= 0)
            return;
    }
    for (;;) {
        enum relay_result a = relay_pump(&t->up, &t->c.s, &t->u.s, &w->bufs);
        enum relay_result b =
            a == RELAY_ERROR ? RELAY_ERROR : relay_pump(&t->down, &t->u.s, &t->c.s, &w->bufs);
        if (a == RELAY_ERROR || b == RELAY_ERROR || (t->up.shut && t->down.shut)) {
            tcp_close(t);
            return;
        }
        if (a == RELAY_IDLE && b == RELAY_IDLE)
            return;
        t->last_activity = loop_now_ms(w->loop);
    }
}

static void on_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct tcp_side *side = container_of(io, struct tcp_side, s.io);
    struct tcp_fwd *t = side->t;
    if (t->dead || !sock_note_events(&side->s, events) || t->deciding)
        return; /* while deciding, what the client sends waits in its socket */
    run(t);
}

static void judge(struct tcp_fwd *t, const struct identity *id, const char *why);

static void on_timer(struct loop *l, struct loop_timer *tm)
{
    struct tcp_fwd *t = container_of(tm, struct tcp_fwd, timer);
    struct worker *w = t->w;
    if (t->deciding) {
        whois_detach(&t->wait);
        judge(t, NULL, "no whois answer in time");
        return;
    }
    if (t->connecting) {
        metrics_count_timeout(&w->metrics, t->svc->metrics_slot);
        log_msg(LOG_WARN, "service %s: connect to %s timed out", t->svc->name, t->ua->text);
        t->status = 504;
        tcp_close(t);
        return;
    }
    uint64_t idle = loop_now_ms(l) - t->last_activity;
    uint64_t limit = quiet_limit(t);
    if (idle < limit) {
        loop_timer_arm(l, tm, limit - idle);
        return;
    }
    tcp_close(t);
}

/* Dial t's upstream: 0 with the socket in *ufd (connecting or connected),
 * or -1 (logged, counted) with *ufd closed. */
static int dial(struct tcp_fwd *t, int *ufd)
{
    struct worker *w = t->w;
    const struct config_service *svc = t->svc;
    const struct sockaddr *sa;
    socklen_t salen;
    uint64_t gen;
    *ufd = -1;
    if (resolve_target(t->ua, &sa, &salen, &gen) < 0) {
        metrics_count_connect_error(&w->metrics, svc->metrics_slot);
        log_msg(LOG_WARN, "service %s: upstream name not resolved: \"%s\" (%s); connection closed",
                svc->name, t->ua->host, resolve_error(t->ua));
        return -1;
    }
    if (relay_use_pipe(&t->up, TCP_PIPE_BYTES) < 0 ||
        relay_use_pipe(&t->down, TCP_PIPE_BYTES) < 0 ||
        (*ufd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        log_msg(LOG_ERROR, "service %s: cannot set up a TCP forwarder: %s", svc->name,
                strerror(errno));
        return -1;
    }
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(*ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(*ufd, sa, salen) < 0) {
        if (errno != EINPROGRESS) {
            metrics_count_connect_error(&w->metrics, svc->metrics_slot);
            log_msg(LOG_WARN, "service %s: cannot connect to %s: %s", svc->name, t->ua->text,
                    strerror(errno));
            close(*ufd);
            *ufd = -1;
            return -1;
        }
        t->connecting = true;
    }
    return 0;
}

/* The caller may pass: dial the upstream, then move the bytes that
 * waited in the client's socket. */
static void admit(struct tcp_fwd *t)
{
    struct worker *w = t->w;
    int ufd;
    t->deciding = false;
    bool open = dial(t, &ufd) == 0;
    if (open && sock_open(&t->u.s, w->loop, ufd, on_io) < 0) {
        t->u.s.io.fd = -1;
        close(ufd);
        open = false;
    }
    if (!open) {
        t->status = 502;
        tcp_close(t);
        return;
    }
    t->status = t->connecting ? 0 : 200;
    metrics_count_stream(&w->metrics, t->svc->metrics_slot);
    t->last_activity = loop_now_ms(w->loop);
    arm(t);
    run(t);
}

/* The caller may not pass (id NULL: it has no identity): closed before
 * anything reaches the upstream, logged and counted. */
static void deny(struct tcp_fwd *t, const char *why)
{
    struct worker *w = t->w;
    metrics_count_access_denied(&w->metrics, t->svc->metrics_slot);
    log_msg(LOG_WARN,
            "service %s: tailnet caller %s (%s) is not on the allow list%s%s; connection "
            "closed",
            t->svc->name, t->addr, t->user[0] ? t->user : "unknown", why ? ": " : "",
            why ? why : "");
    t->status = 403;
    tcp_close(t);
}

/* The caller's identity (NULL: none) against the service's allow list. */
static void judge(struct tcp_fwd *t, const struct identity *id, const char *why)
{
    if (id) {
        const char *name = identity_get(id, IDENTITY_LOGIN);
        if (identity_is_tagged(id) && id->nlist[IDENTITY_TAGS])
            name = identity_item(id, IDENTITY_TAGS, 0);
        snprintf(t->user, sizeof t->user, "%s", name);
    }
    if (id && access_list_allows(&t->svc->allow, id))
        admit(t);
    else
        deny(t, why);
}

static void on_whois(struct whois_waiter *wt, const struct identity *id, const char *err)
{
    struct tcp_fwd *t = container_of(wt, struct tcp_fwd, wait);
    loop_timer_disarm(t->w->loop, &t->timer);
    judge(t, id, err);
}

/* Who is the caller? Only a tailnet address can be anyone; whois says who
 * (the worker's cache, shared with the HTTP path); the decision waits for
 * it in the deciding state, at most tailscale.whois_wait_ms. */
static void decide(struct tcp_fwd *t)
{
    if (!t->peer_tailnet) {
        judge(t, NULL,
              access_tailnet_address(&t->peer) ? "an address of this host"
                                               : "not a tailnet address");
        return;
    }
    struct whois_cache *wc =
        t->cfg->tailscale.enabled ? tailnet_whois_cache(t->w, &t->cfg->tailscale) : NULL;
    if (!wc) {
        judge(t, NULL, "no tailscale LocalAPI to ask whois");
        return;
    }
    static __thread struct identity found;
    char err[256];
    t->wait.fn = on_whois;
    switch (whois_lookup(wc, t->addr, &t->wait, &found, err, sizeof err)) {
    case WHOIS_FOUND:
        judge(t, &found, NULL);
        return;
    case WHOIS_UNKNOWN:
        judge(t, NULL, err);
        return;
    case WHOIS_PENDING:
        break;
    }
    t->deciding = true;
    arm(t);
}

/* Set up a forwarder for client socket fd toward ua. counted: the
 * connection already counts in the worker's totals (handed over by conn).
 * cfg: the snapshot svc belongs to. */
static int start(struct worker *w, struct config *cfg, int fd, const struct sockaddr_storage *peer,
                 const char *addr, const struct sockaddr_storage *local,
                 const struct config_service *svc, const struct config_addr *ua, bool passthrough,
                 bool counted, bool peer_tailnet)
{
    struct tcp_fwd *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        return -1;
    }
    t->w = w;
    t->svc = svc;
    t->ua = ua;
    t->passthrough = passthrough;
    t->start_us = now_us();
    t->c.t = t->u.t = t;
    t->c.s.io.fd = t->u.s.io.fd = -1;
    t->peer = *peer;
    t->peer_tailnet = peer_tailnet;
    relay_init(&t->up);
    relay_init(&t->down);
    snprintf(t->addr, sizeof t->addr, "%s", addr);
    loop_timer_init(&t->timer, on_timer);
    if (svc->send_proxy_protocol)
        t->pp_len = svc->send_proxy_protocol == 1
                        ? proxyproto_build_v1(peer, local, t->pp, sizeof t->pp)
                        : proxyproto_build_v2(peer, local, t->pp, sizeof t->pp);
    int ufd = -1;
    if (svc->allow.n) {
        /* The client's socket is watched (its bytes wait in it) while
         * whois answers; the upstream is dialled only once it may pass. */
        if (sock_open(&t->c.s, w->loop, fd, on_io) < 0)
            goto fail;
    } else {
        if (dial(t, &ufd) < 0 || sock_open(&t->c.s, w->loop, fd, on_io) < 0)
            goto fail;
        if (sock_open(&t->u.s, w->loop, ufd, on_io) < 0) {
            loop_io_del(w->loop, &t->c.s.io);
            goto fail;
        }
        metrics_count_stream(&w->metrics, svc->metrics_slot);
    }
    t->cfg = config_ref(cfg);
    t->status = t->connecting ? 0 : 200;
    LIST_PUSH(w->tcps, t, prev, next);
    if (!counted) {
        w->nconns++;
        metrics_conn_open(&w->metrics);
    }
    t->last_activity = loop_now_ms(w->loop);
    if (svc->allow.n)
        decide(t); /* may close t */
    else
        arm(t);
    return 0;
fail:
    close(fd);
    if (ufd >= 0)
        close(ufd);
    relay_close(&t->up);
    relay_close(&t->down);
    free(t);
    return -1;
}

int tcp_accept(struct worker *w, int fd, const struct sockaddr_storage *sa, socklen_t salen,
               const struct config_service *svc)
{
    char addr[64];
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    listener_format_peer(sa, salen, addr, sizeof addr);
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        memset(&local, 0, sizeof local);
    return start(w, w->cfg, fd, sa, addr, &local, svc, &svc->tcp->upstream, false, false,
                 access_peer_tailnet(&w->own, sa, false));
}

int tcp_handoff(struct worker *w, int fd, const struct sockaddr_storage *peer, const char *addr,
                const struct sockaddr_storage *local, const struct config_service *svc,
                bool peer_tailnet)
{
    return svc->passthrough ? start(w, w->cfg, fd, peer, addr, local, svc, svc->passthrough, true,
                                    true, peer_tailnet)
                            : start(w, w->cfg, fd, peer, addr, local, svc, &svc->tcp->upstream,
                                    false, true, peer_tailnet);
}

size_t tcp_drain(struct worker *w)
{
    size_t closed = 0;
    uint64_t now = loop_now_ms(w->loop);
    for (struct tcp_fwd *t = w->tcps, *next; t; t = next) {
        next = t->next;
        if (t->connecting || t->deciding)
            continue; /* its timer ends it, or it starts moving bytes */
        if (now - t->last_activity >= LIMIT_DRAIN_TCP_QUIET_MS) {
            tcp_close(t);
            closed++;
        } else {
            arm(t); /* now measured against LIMIT_DRAIN_TCP_QUIET_MS */
        }
    }
    return closed;
}

void tcp_close_all(struct worker *w)
{
    while (w->tcps)
        tcp_close(w->tcps);
}

void tcp_free_dead(struct worker *w)
{
    while (w->dead_tcps) {
        struct tcp_fwd *t = w->dead_tcps;
        w->dead_tcps = t->next;
        free(t);
    }
}
