/* conn.c - client connections (see conn.h). */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include "access.h"
#include "buf.h"
#include "limits.h"
#include "config.h"
#include "http1.h"
#include "list.h"
#include "listener.h"
#include "metrics.h"
#include "peers.h"
#include "proxy.h"
#include "proxyproto.h"
#include "route.h"
#include "sni.h"
#include "tcp.h"
#include "tls.h"
#include "worker.h"

#define LINGER_MS 2000 /* how long a closing connection drains unread input */

static void read_heads(struct conn *c);
static void handshake(struct conn *c);
static void begin_tls(struct conn *c);

static uint64_t now_ms(const struct conn *c)
{
    return loop_now_ms(c->w->loop);
}

/* What a state's timer measures. */
enum conn_clock {
    CLOCK_NONE,   /* the exchange arms it (ex_set_state) */
    CLOCK_HEAD,   /* header_timeout; keepalive_timeout between requests */
    CLOCK_LINGER, /* LINGER_MS */
};

/* The clock of each state. Entering a state arms its clock; states that
 * share one keep its deadline running, so the PROXY header, the TLS
 * handshake and the first request head all come within one header_timeout
 * of accept. Two arms stay outside the table, as they happen within a
 * state: read_heads restarts header_timeout when a head's first byte
 * arrives, and conn_drain shortens the wait for a first request. */
static const enum conn_clock state_clock[] = {
    [CONN_PROXY] = CLOCK_HEAD, [CONN_SNI] = CLOCK_HEAD,      [CONN_TLS] = CLOCK_HEAD,
    [CONN_HEAD] = CLOCK_HEAD,  [CONN_EXCHANGE] = CLOCK_NONE, [CONN_LINGER] = CLOCK_LINGER,
};

/* Arm c's timer for its state's clock. */
static void arm_clock(struct conn *c)
{
    const struct config_limits *lim = &c->w->cfg->limits;
    uint64_t ms;
    switch (state_clock[c->state]) {
    case CLOCK_HEAD:
        /* Until the first request, and once a head has begun, the head
         * must arrive whole; otherwise the connection idles between
         * requests. */
        ms = c->nrequests == 0 || (c->s.in && buf_len(c->s.in)) ? lim->header_timeout_ms
                                                                : lim->keepalive_timeout_ms;
        break;
    case CLOCK_LINGER:
        ms = LINGER_MS;
        break;
    case CLOCK_NONE:
    default:
        return;
    }
    loop_timer_arm(c->w->loop, &c->timer, ms);
}

/* The only writer of c->state after conn_accept. */
static void conn_set_state(struct conn *c, enum conn_state st)
{
    bool same_clock = state_clock[st] == state_clock[c->state];
    c->state = st;
    if (!same_clock)
        arm_clock(c);
}

void conn_touch(struct conn *c)
{
    c->last_activity = now_ms(c);
}

void conn_arm_timer(struct conn *c, uint64_t ms)
{
    if (ms)
        loop_timer_arm(c->w->loop, &c->timer, ms);
    else
        loop_timer_disarm(c->w->loop, &c->timer);
}

void conn_arm_timer_within(struct conn *c, uint64_t ms)
{
    if (!loop_timer_armed(&c->timer) || c->timer.deadline > now_ms(c) + ms)
        loop_timer_arm(c->w->loop, &c->timer, ms);
}

void conn_release_input(struct conn *c)
{
    if (c->s.in && buf_len(c->s.in) == 0) {
        buf_put(&c->w->bufs, c->s.in);
        c->s.in = NULL;
    }
}

/* Move c to the tail of reclaim queue q (RECLAIM_NONE: out of any). */
static void reclaim_set(struct conn *c, enum conn_reclaim q)
{
    struct worker *w = c->w;
    if (c->reclaim == (int)q && q != RECLAIM_NONE)
        return;
    if (c->reclaim != RECLAIM_NONE) {
        struct conn_queue *from = &w->reclaim[c->reclaim];
        LIST_UNLINK_QUEUE(from->head, from->tail, c, rprev, rnext);
    }
    c->reclaim = (int)q;
    if (q == RECLAIM_NONE)
        return;
    struct conn_queue *to = &w->reclaim[q];
    LIST_APPEND_QUEUE(to->head, to->tail, c, rprev, rnext);
}

bool conn_reclaimable(const struct worker *w)
{
    return w->reclaim[RECLAIM_IDLE].head || w->reclaim[RECLAIM_WAITING].head;
}

/* A warning the worker may repeat is logged at most once per
 * LIMIT_WARN_INTERVAL_MS: true (and *last_ms updated) when it is due. */
static bool warn_due(const struct conn *c, uint64_t *last_ms)
{
    uint64_t now = now_ms(c);
    if (*last_ms && now - *last_ms < LIMIT_WARN_INTERVAL_MS)
        return false;
    *last_ms = now;
    return true;
}

bool conn_reclaim(struct worker *w)
{
    enum conn_reclaim q = w->reclaim[RECLAIM_IDLE].head ? RECLAIM_IDLE : RECLAIM_WAITING;
    struct conn *c = w->reclaim[q].head;
    if (!c)
        return false;
    metrics_count_reclaim(&w->metrics, q == RECLAIM_IDLE);
    if (warn_due(c, &w->warned_full_ms))
        log_msg(LOG_WARN,
                "worker %u: at limits.max_connections (%u); closing the oldest %s connections "
                "to accept new ones (counted in portico_connections_reclaimed_total)",
                w->id, w->cfg->limits.max_connections,
                q == RECLAIM_IDLE ? "idle keep-alive" : "request-less");
    conn_close(c);
    return true;
}

/* limits.max_connections_per_client: count c under its client address, or
 * refuse it (false) when that address has as many open already. A socket
 * peer on loopback is a frontend on this host carrying many users, so it
 * is not counted; an address from a PROXY header (proxied_local set) is
 * the real client and counted even on loopback. */
static bool count_peer(struct conn *c)
{
    struct worker *w = c->w;
    uint32_t limit = w->cfg->limits.max_connections_per_client;
    uint8_t key[16];
    if (limit == 0 || !peer_key_of(&c->peer, key))
        return true;
    if (!c->proxied_local && peer_key_loopback(key))
        return true;
    if (peer_table_acquire(&w->srv->peers, key, limit, &c->peer_counted))
        return true;
    metrics_count_refused_peer(&w->metrics);
    if (warn_due(c, &w->warned_peer_ms))
        log_msg(LOG_WARN,
                "client %s: already has %u connections open (limits.max_connections_per_client); "
                "new ones are closed (counted in portico_connections_refused_total)",
                c->addr, limit);
    return false;
}

/* Uncount c in the peer table (its key comes from peer, which does not
 * change once counted). */
static void uncount_peer(struct conn *c)
{
    uint8_t key[16];
    if (c->peer_counted && peer_key_of(&c->peer, key))
        peer_table_release(&c->w->srv->peers, key);
    c->peer_counted = false;
}

void conn_local(const struct conn *c, struct sockaddr_storage *out)
{
    if (c->proxied_local) {
        *out = *c->proxied_local;
        return;
    }
    socklen_t len = sizeof *out;
    if (c->s.io.fd < 0 || getsockname(c->s.io.fd, (struct sockaddr *)out, &len) < 0)
        memset(out, 0, sizeof *out);
}

void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    struct worker *w = c->w;
    c->dead = true;
    reclaim_set(c, RECLAIM_NONE);
    uncount_peer(c);
    free(c->proxied_local);
    c->proxied_local = NULL;
    if (c->forward_cfg) {
        config_unref(c->forward_cfg);
        c->forward_cfg = NULL;
    }
    if (c->ex) {
        /* The exchange ended with an error, or the connection dies under
         * it (shutdown). */
        proxy_release(c->ex);
        c->ex = NULL;
    }
    sock_close(&c->s, w->loop, &w->bufs);
    if (c->tls_active)
        metrics_tls_close(&w->metrics);
    loop_timer_disarm(w->loop, &c->timer);
    loop_task_cancel(w->loop, &c->task);
    LIST_UNLINK(w->conns, c, prev, next);
    /* Freed before the loop next waits: an event for it may still be queued. */
    c->next = w->dead_conns;
    w->dead_conns = c;
    if (c->handed_off)
        return; /* counted as open until its forwarder closes */
    metrics_conn_close(&w->metrics);
    worker_conn_closed(w);
}

/* Close after the response, without losing it: a close() with unread input
 * makes the kernel send a reset, which can destroy the response before the
 * client reads it. So shut the write side and drain input for a moment. */
static void close_politely(struct conn *c)
{
    /* A short read leaves a plain socket marked not readable although the
     * client may have sent more since (its event not handled yet): look. */
    bool pending =
        (c->s.in && buf_len(c->s.in)) || c->s.readable || (!c->s.ssl && sock_peek(&c->s) > 0);
    if (!pending || c->s.eof) {
        conn_close(c);
        return;
    }
    sock_shutdown(&c->s);
    reclaim_set(c, RECLAIM_NONE);
    buf_put(&c->w->bufs, c->s.in);
    c->s.in = NULL;
    conn_set_state(c, CONN_LINGER);
}

static void linger_drain(struct conn *c)
{
    if (c->s.readable && sock_discard(&c->s) < 0)
        conn_close(c);
}

long conn_read(struct conn *c)
{
    long n = sock_read(&c->s, &c->w->bufs, true);
    if (n > 0)
        conn_touch(c);
    return n;
}

/* Hand the connection to a new exchange; NULL (and c closed) when out of
 * memory. */
static struct exchange *begin_exchange(struct conn *c)
{
    struct exchange *ex = proxy_new(c);
    if (!ex) {
        conn_close(c);
        return NULL;
    }
    c->ex = ex;
    conn_set_state(c, CONN_EXCHANGE);
    reclaim_set(c, RECLAIM_NONE);
    return ex;
}

/* Answer a request head that could not be parsed, then close. */
static void reject(struct conn *c, int status, const char *body)
{
    struct exchange *ex = begin_exchange(c);
    if (!ex)
        return;
    if (c->s.in)
        c->s.in->rpos = c->s.in->wpos = 0; /* nothing after a bad head can be trusted */
    proxy_respond_local(ex, status, body, true);
}

/* The start of portico's answer to a refused head; the rule follows it. */
static const char *reject_what(int status)
{
    switch (status) {
    case 414:
        return "request line too long";
    case 431:
        return "request header fields too large";
    case 501:
        return "not implemented";
    case 503:
        return "service unavailable";
    case 505:
        return "HTTP version not supported";
    default:
        return "bad request";
    }
}

/* A head over a limit before its end was found: which limit. */
static void reject_limit(struct conn *c, int status, const struct config_limits *lim)
{
    char body[160];
    if (status == 414)
        snprintf(body, sizeof body, "%s: longer than limits.max_request_line (%u bytes)",
                 reject_what(status), lim->max_request_line);
    else
        snprintf(body, sizeof body,
                 "%s: the head is larger than limits.max_header_bytes (%u bytes)",
                 reject_what(status), lim->max_header_bytes);
    reject(c, status, body);
}

static void start_request(struct conn *c, size_t head_len)
{
    struct exchange *ex = begin_exchange(c);
    if (!ex)
        return;
    c->nrequests++;
    long r = http1_parse_request(buf_rptr(c->s.in), head_len, &ex->req);
    if (r < 0) {
        /* The body and the access log say which rule refused the head. */
        char body[LIMIT_LOG_REASON_BYTES];
        snprintf(body, sizeof body, "%s: %s", reject_what((int)-r),
                 ex->req.error ? ex->req.error : "malformed head");
        c->s.in->rpos = c->s.in->wpos = 0;
        proxy_respond_local(ex, (int)-r, body, true);
        return;
    }
    proxy_start(ex);
}

static void read_heads(struct conn *c)
{
    struct worker *w = c->w;
    const struct config_limits *lim = &w->cfg->limits;
    struct http1_limits hl = {lim->max_header_bytes, lim->max_request_line};
    for (;;) {
        if (c->dead || c->state != CONN_HEAD)
            return;
        if (c->s.in && buf_len(c->s.in)) {
            long end = http1_find_head_end(buf_rptr(c->s.in), buf_len(c->s.in), &c->head_scan, &hl);
            if (end < 0) {
                reject_limit(c, (int)-end, lim);
                return;
            }
            if (end > 0) {
                c->head_scan = 0;
                start_request(c, (size_t)end);
                return;
            }
        }
        if (c->s.eof) {
            /* The client closed between requests, or gave up mid-head. */
            conn_close(c);
            return;
        }
        if (!c->s.readable) {
            conn_release_input(c);
            return;
        }
        bool was_empty = !c->s.in || buf_len(c->s.in) == 0;
        long n = conn_read(c);
        if (n > 0) {
            /* A head has begun: it must now arrive whole within header_timeout,
             * however slowly its bytes trickle in. */
            if (was_empty) {
                arm_clock(c);
                if (c->reclaim == RECLAIM_IDLE)
                    reclaim_set(c, RECLAIM_WAITING);
            }
            continue;
        }
        if (n == 0)
            return; /* EAGAIN, or out of memory until the next event */
    }
}

static void on_task(struct loop *l, struct loop_task *t)
{
    struct conn *c = container_of(t, struct conn, task);
    read_heads(c);
}

void conn_exchange_done(struct conn *c, bool keep_alive)
{
    struct worker *w = c->w;
    c->ex = NULL;
    if (!keep_alive || c->closing || w->draining) {
        close_politely(c); /* to CONN_LINGER, or closed */
        return;
    }
    c->head_scan = 0;
    conn_release_input(c);
    /* A pipelined request waiting gets header_timeout from now, an idle
     * connection keepalive_timeout. */
    conn_set_state(c, CONN_HEAD);
    if (c->s.in && buf_len(c->s.in)) {
        reclaim_set(c, RECLAIM_WAITING);
        loop_task_queue(w->loop, &c->task);
    } else {
        reclaim_set(c, RECLAIM_IDLE);
        if (c->s.readable || c->s.eof)
            loop_task_queue(w->loop, &c->task);
    }
}

enum conn_drain_result conn_drain(struct conn *c)
{
    c->closing = true;
    if (c->state == CONN_EXCHANGE && c->ex && proxy_close_tunnel(c->ex))
        return CONN_DRAIN_TUNNEL;
    if (c->state != CONN_HEAD || (c->s.in && buf_len(c->s.in)) || sock_peek(&c->s) > 0)
        return CONN_DRAIN_KEPT;
    if (c->nrequests == 0) {
        /* Accepted, its request not read yet: closing now would fail a
         * request the client has sent or is about to send. */
        conn_arm_timer_within(c, LIMIT_DRAIN_FIRST_REQUEST_MS);
        return CONN_DRAIN_KEPT;
    }
    conn_close(c);
    return CONN_DRAIN_IDLE;
}

static void on_timer(struct loop *l, struct loop_timer *t)
{
    struct conn *c = container_of(t, struct conn, timer);
    switch (c->state) {
    case CONN_EXCHANGE:
        proxy_timeout(c->ex);
        return;
    case CONN_HEAD:
        if (c->s.in && buf_len(c->s.in)) {
            reject(c, 408, "request timeout: the request head did not arrive in time");
            return;
        }
        conn_close(c); /* keep-alive expired */
        return;
    case CONN_PROXY:
    case CONN_SNI:
    case CONN_TLS:
        conn_close(c); /* no PROXY header or handshake within header_timeout */
        return;
    case CONN_LINGER:
        conn_close(c);
        return;
    }
}

/* Look at what the client sent without consuming it (the PROXY header and
 * ClientHello stages). Bytes seen; 0 when nothing is there yet (or not
 * readable); -1 when the client is gone, and the connection is closed. */
static ssize_t peek(struct conn *c, void *buf, size_t cap)
{
    if (!c->s.readable)
        return 0;
    ssize_t n = recv(c->s.io.fd, buf, cap, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        c->s.readable = false;
        return 0;
    }
    if (n <= 0) {
        conn_close(c);
        return -1;
    }
    return n;
}

/* Give the socket to a forwarder for svc: its passthrough upstream, or
 * the upstream of the TCP forwarder whose listener the connection came in
 * on (after its PROXY header). The forwarder keeps the connection's place
 * in the count. */
static void hand_off(struct conn *c, const struct config_service *svc)
{
    struct worker *w = c->w;
    int fd = c->s.io.fd;
    struct sockaddr_storage local;
    conn_local(c, &local);
    loop_io_del(w->loop, &c->s.io);
    c->s.io.fd = -1;
    c->handed_off = tcp_handoff(w, fd, &c->peer, c->addr, &local, svc, c->peer_tailnet) == 0;
    conn_close(c);
}

/* The PROXY header is peeked at and then consumed exactly, so whatever
 * follows it (a TLS ClientHello, a request) stays in the socket for the
 * next stage. A missing or malformed header closes the connection. */
static void read_proxy_header(struct conn *c)
{
    static __thread char hdr[PROXYPROTO_V2_MAX];
    ssize_t n = peek(c, hdr, sizeof hdr);
    if (n <= 0)
        return;
    struct proxyproto_result pp;
    int len = proxyproto_parse(hdr, (size_t)n, &pp);
    if (len == 0) {
        /* Incomplete: the next bytes raise a new edge. */
        c->s.readable = false;
        return;
    }
    if (len < 0 || recv(c->s.io.fd, hdr, (size_t)len, 0) != len) {
        log_msg(LOG_WARN, "client %s: %s PROXY protocol header; connection closed", c->addr,
                len < 0 ? "malformed or missing" : "unreadable");
        conn_close(c);
        return;
    }
    if (!pp.local) {
        c->proxied_local = malloc(sizeof *c->proxied_local);
        if (!c->proxied_local) {
            conn_close(c);
            return;
        }
        *c->proxied_local = pp.dst;
        listener_format_peer(&pp.src, pp.srclen, c->addr, sizeof c->addr);
        c->peer = pp.src;
        /* A LOCAL header (the proxy's own health check) names no client:
         * the sender itself is no tailnet caller. */
        c->peer_tailnet =
            !c->tailnet && !c->hairpin && access_peer_tailnet(&c->w->own, &c->peer, true);
    }
    if (!count_peer(c)) {
        conn_close(c);
        return;
    }
    if (c->forward)
        hand_off(c, c->forward);
    else if (c->tls)
        begin_tls(c);
    else {
        conn_set_state(c, CONN_HEAD);
        read_heads(c);
    }
}

/* A failed handshake is usually the client's business (an unknown name,
 * an old protocol, a scanner), but an operator needs to see them: count
 * each, and log at most one line per second per worker, saying how many
 * were not logged since. */
static void handshake_failed(struct conn *c, size_t slot, const char *why)
{
    static __thread uint64_t last_ms, quiet;
    metrics_tls_handshake(&c->w->metrics, slot, false, false);
    uint64_t now = now_ms(c);
    if (last_ms && now - last_ms < 1000) {
        quiet++;
    } else {
        const char *sni = c->s.ssl ? SSL_get_servername(c->s.ssl, TLSEXT_NAMETYPE_host_name) : NULL;
        char more[64] = "";
        if (quiet)
            snprintf(more, sizeof more, " (%llu more since the last one logged)",
                     (unsigned long long)quiet);
        log_msg(LOG_WARN, "TLS handshake with %s%s%s failed: %s%s", c->addr, sni ? " for " : "",
                sni ? sni : "", why, more);
        last_ms = now;
        quiet = 0;
    }
    conn_close(c);
}

/* Why SSL_do_handshake failed, from its result and the first queued error. */
static const char *handshake_error(int e)
{
    unsigned long first = ERR_peek_error();
    const char *r = first ? ERR_reason_error_string(first) : NULL;
    if (e == SSL_ERROR_SSL && r)
        return r; /* "no shared cipher", "unsupported protocol", "http request", ... */
    if (e == SSL_ERROR_SYSCALL && errno)
        return strerror(errno);
    return "the client closed the connection during the handshake";
}

/* No certificates (a passthrough-only setup) and a name that matched no
 * passthrough service: nobody can serve it. Refuse it as a listener with
 * certificates does, with a fatal unrecognized_name alert. The ClientHello
 * (peeked, still unread) is read first, so that the close sends a FIN and
 * not a reset, which could destroy the alert before the client reads it. */
static void refuse_unknown_name(struct conn *c)
{
    /* An alert record (TLS 1.2 framing, 2 bytes long): fatal, unrecognized_name. */
    static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 112};
    char scratch[4096];
    while (read(c->s.io.fd, scratch, sizeof scratch) > 0)
        ;
    if (write(c->s.io.fd, alert, sizeof alert) < 0) {
        /* the client is gone; nothing left to tell it */
    }
    handshake_failed(c, METRICS_SLOT_NONE,
                     "no certificate and no passthrough service for its name");
}

/* Start the TLS session with the certificate store of the current
 * configuration. */
static void start_tls(struct conn *c)
{
    struct tls_store *store = c->w->cfg->tls;
    if (!store) {
        refuse_unknown_name(c);
        return;
    }
    c->s.ssl = tls_store_new_ssl(store);
    if (!c->s.ssl || SSL_set_fd(c->s.ssl, c->s.io.fd) != 1) {
        handshake_failed(c, METRICS_SLOT_NONE, "out of memory");
        return;
    }
    conn_set_state(c, CONN_TLS);
    handshake(c);
}

/* Hand the socket, its ClientHello still unread, to a forwarder. */

/* With passthrough services configured, the ClientHello is peeked at (it
 * stays in the socket, for OpenSSL or for the passthrough upstream) until
 * its server name is known. A ClientHello that is malformed or larger than
 * LIMIT_CLIENT_HELLO_BYTES closes the connection. */
static void read_client_hello(struct conn *c)
{
    static __thread uint8_t hello[LIMIT_CLIENT_HELLO_BYTES + 1024];
    size_t cap = sni_peek_max() < sizeof hello ? sni_peek_max() : sizeof hello;
    ssize_t n = peek(c, hello, cap);
    if (n <= 0)
        return;
    char name[LIMIT_HOST_LEN + 8];
    enum sni_result r = sni_parse(hello, (size_t)n, name, sizeof name);
    if (r == SNI_MORE) {
        c->s.readable = false; /* the next bytes raise a new edge */
        return;
    }
    if (r == SNI_BAD) {
        handshake_failed(c, METRICS_SLOT_NONE, "not a TLS ClientHello, or a malformed one");
        return;
    }
    const struct config_service *svc =
        r == SNI_FOUND ? route_table_lookup(c->w->cfg->routes, name, strlen(name)) : NULL;
    if (svc && svc->passthrough)
        hand_off(c, svc);
    else
        start_tls(c);
}

static void begin_tls(struct conn *c)
{
    if (c->w->cfg->npassthrough) {
        conn_set_state(c, CONN_SNI);
        read_client_hello(c);
    } else
        start_tls(c);
}

/* The metrics slot of the service the client's SNI names. */
static size_t sni_slot(const struct conn *c)
{
    const char *sni = SSL_get_servername(c->s.ssl, TLSEXT_NAMETYPE_host_name);
    char host[LIMIT_HOST_LEN + 8];
    int hl = sni ? route_host_normalize(sni, strlen(sni), host, sizeof host) : -1;
    const struct config_service *svc =
        hl > 0 ? route_table_lookup(c->w->cfg->routes, host, (size_t)hl) : NULL;
    return svc ? svc->metrics_slot : METRICS_SLOT_NONE;
}

/* Drive the TLS handshake; on success the connection reads request heads. */
static void handshake(struct conn *c)
{
    int r = sock_handshake(&c->s);
    if (r == 1) {
        metrics_tls_handshake(&c->w->metrics, sni_slot(c), true, tls_kernel_send(c->s.ssl));
        c->tls_active = true;
        conn_set_state(c, CONN_HEAD);
        read_heads(c);
        return;
    }
    if (r < 0)
        handshake_failed(c, sni_slot(c), handshake_error(-r));
}

static void on_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct conn *c = container_of(io, struct conn, s.io);
    if (c->dead || !sock_note_events(&c->s, events))
        return;
    switch (c->state) {
    case CONN_HEAD:
        read_heads(c);
        return;
    case CONN_EXCHANGE:
        proxy_run(c->ex);
        return;
    case CONN_PROXY:
        read_proxy_header(c);
        return;
    case CONN_SNI:
        begin_tls(c);
        return;
    case CONN_TLS:
        handshake(c);
        return;
    case CONN_LINGER:
        linger_drain(c);
        return;
    }
}

static struct conn *accept_conn(struct worker *w, int fd, const struct sockaddr_storage *sa,
                                socklen_t salen, const struct config_listen *l)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->s.io.fd = -1;
    c->w = w;
    c->tls = l->tls;
    c->strict_sni_host = l->strict_sni_host;
    c->https = l->https;
    c->redirect_https = l->redirect_https;
    c->https_port = l->https_port;
    c->tailnet = l->tailnet;
    c->hairpin = l->local;
    bool tls = l->tls, proxy_protocol = l->proxy_protocol;
    /* CONN_SNI waits for the first bytes; begin_tls decides on them. */
    c->state = proxy_protocol ? CONN_PROXY : tls ? CONN_SNI : CONN_HEAD;
    c->s.writable = true;
    listener_format_peer(sa, salen, c->addr, sizeof c->addr);
    memcpy(&c->peer, sa, salen < sizeof c->peer ? salen : sizeof c->peer);
    /* Behind a PROXY header only the header may name a tailnet caller. */
    c->peer_tailnet = !proxy_protocol && !l->tailnet && !l->local &&
                      access_peer_tailnet(&w->own, &c->peer, false);
    /* Behind a PROXY header the client is known once the header is read. */
    /* Every tailnet caller comes through tailscaled's few connections: they
     * are not one client to limit. */
    if (!proxy_protocol && !l->tailnet && !count_peer(c)) {
        close(fd);
        free(c);
        return NULL;
    }
    loop_timer_init(&c->timer, on_timer);
    loop_task_init(&c->task, on_task);
    if (sock_open(&c->s, w->loop, fd, on_io) < 0) {
        uncount_peer(c);
        close(fd);
        free(c);
        return NULL;
    }
    LIST_PUSH(w->conns, c, prev, next);
    w->nconns++;
    metrics_conn_open(&w->metrics);
    conn_touch(c);
    /* A new connection gets header_timeout to deliver its first head. */
    arm_clock(c);
    reclaim_set(c, RECLAIM_WAITING);
    return c;
}

int conn_accept(struct worker *w, int fd, const struct sockaddr_storage *sa, socklen_t salen,
                const struct config_listen *l)
{
    return accept_conn(w, fd, sa, salen, l) ? 0 : -1;
}

int conn_accept_forwarder(struct worker *w, int fd, const struct sockaddr_storage *sa,
                          socklen_t salen, const struct config_service *svc)
{
    static const struct config_listen proxied = {.proxy_protocol = true};
    struct conn *c = accept_conn(w, fd, sa, salen, &proxied);
    if (!c)
        return -1;
    c->forward = svc;
    c->forward_cfg = config_ref(w->cfg);
    return 0;
}
