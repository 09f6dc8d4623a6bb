/* exchange.c - one exchange between a client and an upstream (see
 * proxy.h): its life from the parsed request head to the last byte of the
 * response, and its timeouts.
 *
 * The exchange is a pump: every readiness change calls proxy_run, which
 * moves bytes in both directions until each side would block. Nothing is
 * read from a side whose bytes cannot be written onward yet. The upstream
 * side of HTTP/1 is in h1client.c, the forward-auth subrequest in
 * authreq.c, splice and tunnels in tunnel.c, portico's own answers in
 * respond.c, and the routing decision in route.c. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "exchange_int.h"
#include "headers.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

uint64_t ex_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ex_touch(struct exchange *ex)
{
    ex->c->last_activity = loop_now_ms(ex_worker(ex)->loop);
}

static ssize_t sink_writev(struct sink to, const struct iovec *iov, int n)
{
    if (to.u)
        return upstream_writev(to.u, iov, n);
    if (to.c)
        return conn_writev(to.c, iov, n);
    errno = EBADF;
    return -1;
}

int sink_write(struct sink to, struct flow *f, uint64_t *wrote)
{
    while (f->idx < f->niov) {
        unsigned n = f->niov - f->idx;
        /* n <= LIMIT_BODY_IOVS + 6 < IOV_MAX */
        ssize_t w = sink_writev(to, f->iov + f->idx, (int)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -errno;
        }
        *wrote += (uint64_t)w;
        flow_advance(f, (size_t)w);
    }
    return 1;
}

/* ---- ending ---------------------------------------------------------------------- */

void ex_log_and_count(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    uint64_t usec = ex_now_us() - ex->start_us;
    size_t slot = ex->svc ? ex->svc->metrics_slot : METRICS_SLOT_NONE;
    metrics_count_request(&w->metrics, slot, ex->status, usec, ex->bytes_in, ex->bytes_out);
    if (!ex->cfg->access_log)
        return;
    struct access_entry e = {
        .service = ex->svc ? ex->svc->name : "-",
        .client = ex->c->addr,
        .user = ex->user[0] ? ex->user : "-",
        .method = ex->method[0] ? ex->method : "-",
        .path = ex->path_len ? ex->path : "-",
        .path_len = ex->path_len ? ex->path_len : 1,
        .status = ex->status,
        .bytes_in = ex->bytes_in,
        .bytes_out = ex->bytes_out,
        .usec = usec,
        .reason = ex->reason,
    };
    log_access(&w->log, &e);
}

void proxy_release(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    if (ex->u) {
        upstream_close(ex->u);
        ex->u = NULL;
    }
    buf_put(&w->bufs, ex->reqhead);
    ex->reqhead = NULL;
    buf_put(&w->bufs, ex->authreq);
    ex->authreq = NULL;
    if (ex->rq.own)
        buf_put(&w->bufs, ex->rq.own);
    if (ex->rs.own)
        buf_put(&w->bufs, ex->rs.own);
    ex->rq.own = ex->rs.own = NULL;
    if (ex->pipe[0] >= 0) {
        close(ex->pipe[0]);
        close(ex->pipe[1]);
        ex->pipe[0] = ex->pipe[1] = -1;
    }
    if (ex->cfg)
        config_unref(ex->cfg);
    ex->cfg = NULL;
    ex->c->ex = NULL;
    ex->next_free = w->free_exchanges;
    w->free_exchanges = ex;
}

/* The response is complete: pool the upstream, log, hand the client back. */
void ex_finish(struct exchange *ex)
{
    struct conn *c = ex->c;
    if (ex->u) {
        /* A connection opened with a PROXY header speaks for one client only. */
        bool reuse = ex->resp.keep_alive && ex->req_sent && ex->rsb.done &&
                     ex->phase == EX_SENDING && !ex->svc->send_proxy_protocol;
        upstream_release(ex->u, reuse);
        ex->u = NULL;
    }
    ex_log_and_count(ex);
    bool keep = !ex->close_client;
    proxy_release(ex);
    conn_exchange_done(c, keep);
}

void proxy_abort(struct exchange *ex)
{
    if (ex->u) {
        upstream_close(ex->u);
        ex->u = NULL;
    }
}

/* Something broke after the client saw part of the response: all we can
 * do is cut the connection so the client knows the response is incomplete.
 * The access log keeps the status the client got and says why it was cut;
 * a response cut on the upstream's side (status_if_unsent 5xx) is counted
 * in portico_responses_incomplete_total, never as a clean one. */
void ex_fail_hard(struct exchange *ex, int status_if_unsent, const char *why)
{
    struct conn *c = ex->c;
    if (!ex->resp_started)
        ex->status = status_if_unsent;
    else if (status_if_unsent >= 500 && ex->svc)
        metrics_count_incomplete(&ex_worker(ex)->metrics, ex->svc->metrics_slot);
    if (why)
        ex->reason = why;
    proxy_abort(ex);
    ex_log_and_count(ex);
    proxy_release(ex);
    conn_close(c);
}

bool proxy_close_tunnel(struct exchange *ex)
{
    if (ex->phase != EX_TUNNEL)
        return false;
    ex_fail_hard(ex, 101, "tunnel closed: portico is shutting down");
    return true;
}

/* ---- starting --------------------------------------------------------------------- */

struct exchange *proxy_new(struct conn *c)
{
    struct worker *w = c->w;
    struct exchange *ex = w->free_exchanges;
    if (ex)
        w->free_exchanges = ex->next_free;
    else if (!(ex = malloc(sizeof *ex)))
        return NULL;
    memset(ex, 0, offsetof(struct exchange, req));
    ex->pipe[0] = ex->pipe[1] = -1;
    ex->c = c;
    ex->cfg = config_ref(w->cfg);
    ex->start_us = ex_now_us();
    ex->phase = EX_SENDING;
    ex->user[0] = '\0';
    c->ex = ex;
    return ex;
}

/* The request head portico sends upstream, into ex->reqhead: its length,
 * or a negative HEADERS_* error. */
static long build_request_head(struct exchange *ex, const struct route_result *rt)
{
    struct conn *c = ex->c;
    const struct http_request *req = &ex->req;
    const struct config_route *route = rt->route;
    struct request_rewrite rw = {
        .client_addr = c->addr,
        .proto = c->https ? "https" : "http",
        .service_headers = ex->svc->headers,
        .nservice_headers = ex->svc->nheaders,
        .body = req->body,
        .content_length = req->content_length,
        .target = rt->target,
        .prefix = rt->prefix,
    };
    /* Only the protocols the service allows go upstream (WebSocket unless
     * configured): a 101 to anything else, h2c above all, would carry the
     * client's later requests past forward auth and header rewriting. A
     * request offering none of them is forwarded as a plain request. */
    static __thread char upgrade[LIMIT_HEADER_BYTES_MAX];
    const struct http_header *uh =
        req->upgrade ? http_find_header(req->headers, req->nheaders, "upgrade") : NULL;
    if (uh) {
        rw.upgrade.p = upgrade;
        rw.upgrade.len = headers_filter_upgrade(uh->value, (const char *const *)ex->svc->upgrade,
                                                ex->svc->nupgrade, upgrade, sizeof upgrade);
    }
    ex->upgrade = rw.upgrade.len > 0;
    if (ex->svc->auth) {
        rw.strip_names = (const char *const *)ex->svc->auth->copy_headers;
        rw.nstrip_names = ex->svc->auth->ncopy;
    }
    if (ex->svc->host_header) {
        rw.host.p = ex->svc->host_header;
        rw.host.len = strlen(ex->svc->host_header);
    } else if (ex->svc->host_header_upstream) {
        const char *a = route ? route->authority : ex->svc->authority;
        rw.host.p = a ? a : "localhost"; /* unix: upstreams have no authority */
        rw.host.len = strlen(rw.host.p);
    }
    static __thread char origin[LIMIT_HEADER_BYTES_MAX + 16];
    if (rw.host.len) {
        const char *scheme = ex->up && ex->up->kind == UPSTREAM_HTTPS ? "https" : "http";
        int on = snprintf(origin, sizeof origin, "%s://%.*s", scheme, (int)rw.host.len, rw.host.p);
        if (on > 0 && (size_t)on < sizeof origin) {
            rw.origin.p = origin;
            rw.origin.len = (size_t)on;
        }
    }
    /* The head portico sends must have no more lines than portico accepts
     * itself, room kept for the lines a provider's answer may add. (Its
     * bytes may exceed max_header_bytes by what portico adds: a client head
     * of max_header_bytes is served, as documented.) */
    rw.max_fields = LIMIT_HEADERS_COUNT - (rt->auth ? rt->auth->ncopy : 0);
    ex->reqhead = buf_get(&ex_worker(ex)->bufs);
    long n = ex->reqhead ? headers_build_request(req, &rw, ex->reqhead->data, BUF_SIZE) : -1;
    if (n >= 0)
        ex->reqhead_len = (size_t)n;
    return n;
}

void proxy_start(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct http_request *req = &ex->req;
    ex->bytes_in = req->head_len;
    size_t ml = req->method.len < sizeof ex->method - 1 ? req->method.len : sizeof ex->method - 1;
    memcpy(ex->method, req->method.p, ml);
    ex->method[ml] = '\0';
    ex->path_len = log_target(
        req->target.p, req->target.len, ex->cfg->log_query == LOG_QUERY_DROP,
        ex->cfg->log_query == LOG_QUERY_REDACT ? (const char *const *)ex->cfg->log_redact : NULL,
        ex->cfg->log_query == LOG_QUERY_REDACT ? ex->cfg->nlog_redact : 0, ex->path,
        sizeof ex->path);
    ex->host_len = req->host.len < sizeof ex->host ? req->host.len : 0;
    memcpy(ex->host, req->host.p, ex->host_len);
    body_init(&ex->rqb, req->body, req->body, req->content_length);

    static __thread struct route_result rt;
    struct route_request rq = {.host = req->host, .path = req->path, .query = req->query};
    enum route_outcome o = route_resolve(ex->cfg->routes, &rq, &rt);
    if (o == ROUTE_BAD_HOST) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 400, "bad request: invalid Host header", true);
        return;
    }
    /* A connection is for the names its certificate covers: a handshake for
     * a.example carrying "Host: b.example" was misdirected (RFC 9110
     * 15.5.20); the client should open a connection for b.example. */
    if (rt.host_len > 0 && c->ssl && c->strict_sni_host &&
        !tls_session_covers_host(c->ssl, rt.host, (size_t)rt.host_len)) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 421,
                            "misdirected request: this connection's certificate does not cover "
                            "the Host",
                            true);
        return;
    }
    ex->svc = rt.svc;
    if (o == ROUTE_NO_SERVICE) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 404, "not found: no service for this host", false);
        return;
    }
    if (c->redirect_https) {
        buf_consume(c->in, req->head_len);
        respond_https_redirect(ex, rt.host, (size_t)rt.host_len);
        return;
    }
    if (o == ROUTE_BAD_PATH) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 400, "bad request: invalid path", true);
        return;
    }
    ex->route = rt.route;
    ex->up = rt.up;
    if (o == ROUTE_AMBIGUOUS) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 400,
                            "bad request: ambiguous path (an encoded '/' or '\\', a '\\' or a "
                            "';' parameter would take it out of its auth_skip or route prefix "
                            "for some servers)",
                            true);
        return;
    }
    const struct config_auth *auth = rt.auth;
    long n = build_request_head(ex, &rt);
    bool auth_ok = n < 0 || !auth || authreq_prepare(ex, auth, rt.host, req) == 0;
    buf_consume(c->in, req->head_len);
    if (n == HEADERS_TOO_MANY) {
        proxy_respond_local(
            ex, 431,
            "request header fields too large: more than 100 header lines with "
            "the ones portico adds (X-Forwarded-*, Forwarded, X-Real-IP, service headers)",
            true);
        return;
    }
    if (n < 0) {
        proxy_respond_local(ex, 431, "request header fields too large", true);
        return;
    }
    if (!auth_ok) {
        proxy_respond_local(ex, 431, "request header fields too large for the auth request", true);
        return;
    }
    if (req->body == HTTP_BODY_CHUNKED && !body_chunked_prefix_ok(c->in)) {
        proxy_respond_local(ex, 400, "bad request: malformed chunked body", true);
        return;
    }
    if (auth) {
        authreq_begin(ex); /* before any 100 Continue: a refused client sends no body */
        return;
    }
    ex_proceed(ex);
}

/* "Expect: 100-continue" is answered here, not by the upstream (the header
 * is not forwarded): the body is what portico streams upstream anyway. The
 * connection has no response pending, so the few bytes go out at once. */
static int send_continue(struct exchange *ex)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec v = {(void *)cont, sizeof cont - 1};
    ssize_t n = conn_writev(ex->c, &v, 1);
    if (n != (ssize_t)sizeof cont - 1) {
        ex_fail_hard(ex, 400, "could not send 100 Continue");
        return -1;
    }
    ex->bytes_out += (uint64_t)n;
    return 0;
}

/* The request may go upstream. */
void ex_proceed(struct exchange *ex)
{
    struct conn *c = ex->c;
    const struct http_request *req = &ex->req;
    if (req->expect_continue && req->minor >= 1 && !ex->rqb.done && buf_len(c->in) == 0 &&
        send_continue(ex) < 0)
        return;
    h1client_connect(ex, true);
}

/* Did the client close its side while the exchange waits on the upstream
 * (a browser tab closed during a long-poll)? Then the exchange ends now,
 * so the upstream sees EOF at once, and is logged as nginx's 499. Only a
 * client that asked to keep the connection open counts: one that sent
 * "Connection: close" (or HTTP/1.0 without keep-alive) may half-close
 * after its request and still wait for the answer, and a request it
 * pipelined before its FIN is answered first. */
static bool client_gone(struct exchange *ex)
{
    struct conn *c = ex->c;
    if (!c->rdhup || !ex->rqb.done || !ex->req.keep_alive || ex->phase == EX_TUNNEL ||
        ex->phase == EX_LOCAL)
        return false;
    if (c->in && buf_len(c->in) > 0)
        return false; /* it pipelined another request first */
    if (!c->ssl) {
        char b;
        ssize_t n = recv(c->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
            return false;
    }
    if (ex->u)
        log_msg(LOG_INFO,
                "service %s: client %s closed the connection before the response was "
                "complete; upstream request aborted",
                ex->svc ? ex->svc->name : "-", c->addr);
    ex_fail_hard(ex, 499, "client closed the connection before the response was complete");
    return true;
}

void proxy_run(struct exchange *ex)
{
    if (client_gone(ex))
        return;
    if (ex->phase == EX_AUTH) {
        authreq_pump(ex);
        return;
    }
    if (ex->phase == EX_CONNECTING) {
        const char *why;
        int err = upstream_connect_result(ex->u, &why);
        if (err == -EINPROGRESS)
            return;
        if (err == -EPROTO && why) {
            h1client_tls_failed(ex, why);
            return;
        }
        if (err < 0) {
            h1client_connect_failed(ex, err);
            return;
        }
        h1client_start(ex);
        return;
    }
    if (ex->phase == EX_TUNNEL) {
        /* The 101 head goes out first, through the response pump. */
        if (ex->rs.own) {
            enum pump p = h1client_pump_response(ex);
            if (p == PUMP_GONE || ex->rs.active)
                return;
        }
        tunnel_run(ex);
        return;
    }
    for (;;) {
        enum pump a = PUMP_IDLE;
        if (ex->phase == EX_SENDING) {
            a = h1client_pump_request(ex);
            if (a == PUMP_GONE)
                return;
        }
        enum pump b = h1client_pump_response(ex);
        if (b == PUMP_GONE)
            return;
        if (ex->phase == EX_TUNNEL) {
            proxy_run(ex);
            return;
        }
        if (a == PUMP_IDLE && b == PUMP_IDLE)
            return;
    }
}

/* ---- timeouts ------------------------------------------------------------------------- */

enum wait_on {
    WAIT_UPSTREAM,      /* for the response head: the service's timeout */
    WAIT_UPSTREAM_BODY, /* for more of the response body: its idle_timeout */
    WAIT_CLIENT_BODY,
    WAIT_CLIENT_WRITE,
    WAIT_TUNNEL,
    WAIT_CONNECT,
    WAIT_AUTH
};

static enum wait_on waiting_on(const struct exchange *ex)
{
    switch (ex->phase) {
    case EX_CONNECTING:
        return WAIT_CONNECT;
    case EX_TUNNEL:
        return WAIT_TUNNEL;
    case EX_LOCAL:
        return WAIT_CLIENT_WRITE;
    case EX_AUTH:
        return WAIT_AUTH;
    case EX_SENDING:
        break;
    }
    if ((ex->rs.active || ex->piped) && !ex->c->writable)
        return WAIT_CLIENT_WRITE;
    if (!ex->rqb.done && !ex->rq.active)
        return WAIT_CLIENT_BODY;
    return ex->resp_head_done ? WAIT_UPSTREAM_BODY : WAIT_UPSTREAM;
}

static uint32_t timeout_for(const struct exchange *ex, enum wait_on on)
{
    const struct config_limits *lim = &ex->cfg->limits;
    switch (on) {
    case WAIT_CONNECT:
        return ex->svc->connect_timeout_ms;
    case WAIT_TUNNEL:
        return lim->tunnel_timeout_ms;
    case WAIT_CLIENT_WRITE:
        return lim->send_timeout_ms;
    case WAIT_CLIENT_BODY:
        return lim->body_timeout_ms;
    case WAIT_AUTH:
        return ex->auth->timeout_ms;
    case WAIT_UPSTREAM_BODY:
        return ex->svc ? ex->svc->idle_timeout_ms : lim->send_timeout_ms;
    case WAIT_UPSTREAM:
        break;
    }
    return ex->svc ? ex->svc->timeout_ms : lim->send_timeout_ms;
}

/* While the client's body is awaited, two rules hold: no pause longer than
 * limits.body_timeout, and, once limits.body_rate_grace has passed, an
 * average of at least limits.body_min_rate bytes per second since the body
 * began (as Apache's mod_reqtimeout MinRate: each byte buys 1/rate s). The
 * ms left before one breaks (0: broken), and which one. */
static uint64_t body_time_left(const struct exchange *ex, const char **rule)
{
    const struct config_limits *lim = &ex->cfg->limits;
    uint64_t now = loop_now_ms(ex_worker(ex)->loop);
    uint64_t idle = now - ex->c->last_activity;
    uint64_t left = idle < lim->body_timeout_ms ? lim->body_timeout_ms - idle : 0;
    *rule = "body_timeout";
    if (left == 0 || lim->body_min_rate == 0)
        return left;
    uint64_t paused = ex->body_paused_ms + (ex->body_paused_at ? now - ex->body_paused_at : 0);
    uint64_t span = now - ex->body_start_ms;
    uint64_t elapsed = span > paused ? span - paused : 0;
    uint64_t allowed = lim->body_rate_grace_ms + ex->body_read * 1000 / lim->body_min_rate;
    uint64_t rate_left = allowed > elapsed ? allowed - elapsed : 0;
    if (rate_left < left) {
        left = rate_left;
        *rule = "body_min_rate";
    }
    return left;
}

/* Arm the exchange's timer for what it waits on; a limit of 0 ("off")
 * leaves it unarmed: a long-poll or an event stream may be silent for as
 * long as the upstream likes, and a client that leaves is noticed on its
 * own (see client_gone). */
void ex_arm_timer(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    enum wait_on on = waiting_on(ex);
    uint64_t ms = timeout_for(ex, on);
    if (on == WAIT_CLIENT_BODY) {
        const char *rule;
        ms = body_time_left(ex, &rule);
        ms = ms ? ms : 1;
    }
    if (ms)
        loop_timer_arm(w->loop, &ex->c->timer, ms);
    else
        loop_timer_disarm(w->loop, &ex->c->timer);
}

/* Waiting for body bytes: make sure the timer fires by the time a body
 * rule would break (it may be armed for a later, upstream deadline). */
void ex_arm_body_timer(struct exchange *ex)
{
    struct loop *l = ex_worker(ex)->loop;
    const char *rule;
    uint64_t left = body_time_left(ex, &rule);
    uint64_t at = loop_now_ms(l) + (left ? left : 1);
    if (!loop_timer_armed(&ex->c->timer) || ex->c->timer.deadline > at)
        loop_timer_arm(l, &ex->c->timer, left ? left : 1);
}

/* The client's request body broke a rule of body_time_left: 408. */
static void body_too_slow(struct exchange *ex, const char *rule)
{
    const struct config_limits *lim = &ex->cfg->limits;
    if (strcmp(rule, "body_timeout") == 0)
        log_msg(LOG_WARN,
                "service %s: client %s sent no request body bytes for %ums "
                "(limits.body_timeout); 408",
                ex->svc->name, ex->c->addr, lim->body_timeout_ms);
    else
        log_msg(LOG_WARN,
                "service %s: client %s sent its request body too slowly: %llu bytes "
                "in %llums, under limits.body_min_rate (%u bytes/s); 408",
                ex->svc->name, ex->c->addr, (unsigned long long)ex->body_read,
                (unsigned long long)(loop_now_ms(ex_worker(ex)->loop) - ex->body_start_ms),
                lim->body_min_rate);
    if (ex->resp_started)
        ex_fail_hard(ex, 408, "client sent its request body too slowly");
    else
        proxy_respond_local(ex, 408, "request timeout: the request body arrived too slowly", true);
}

void proxy_timeout(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    enum wait_on on = waiting_on(ex);
    if (on == WAIT_CLIENT_BODY) {
        const char *rule;
        uint64_t left = body_time_left(ex, &rule);
        if (left)
            loop_timer_arm(w->loop, &ex->c->timer, left);
        else
            body_too_slow(ex, rule);
        return;
    }
    uint64_t limit = timeout_for(ex, on);
    /* The provider gets timeout in total, not per byte. */
    uint64_t idle = on == WAIT_AUTH ? (ex_now_us() - ex->auth_start_us) / 1000
                                    : loop_now_ms(w->loop) - ex->c->last_activity;
    if (limit == 0)
        return; /* armed for an earlier wait; this one has no limit */
    if (idle < limit) {
        loop_timer_arm(w->loop, &ex->c->timer, limit - idle);
        return;
    }
    switch (on) {
    case WAIT_AUTH:
        authreq_error(ex, 504, "no answer in time");
        return;
    case WAIT_CONNECT:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN, "service %s: connect to %s timed out", ex->svc->name, ex->up->key);
        proxy_respond_local(ex, 504, "gateway timeout: upstream did not accept the connection",
                            false);
        return;
    case WAIT_UPSTREAM:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN, "service %s: upstream %s sent no response within %ums (timeout)",
                ex->svc->name, ex->up->key, ex->svc->timeout_ms);
        if (ex->resp_started)
            ex_fail_hard(ex, 504, "upstream did not answer in time (timeout)");
        else
            proxy_respond_local(ex, 504, "gateway timeout: upstream did not answer in time", false);
        return;
    case WAIT_UPSTREAM_BODY:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN,
                "service %s: upstream %s was silent for %ums in the middle of a response "
                "(idle_timeout); response cut",
                ex->svc->name, ex->up->key, ex->svc->idle_timeout_ms);
        ex_fail_hard(ex, 504, "upstream went silent in the middle of the response (idle_timeout)");
        return;
    case WAIT_CLIENT_BODY: /* handled above */
    case WAIT_CLIENT_WRITE:
    case WAIT_TUNNEL:
        ex_fail_hard(ex, ex->status ? ex->status : 408,
                     on == WAIT_TUNNEL ? "tunnel idle (tunnel_timeout)"
                                       : "client not reading (send_timeout)");
        return;
    }
}
