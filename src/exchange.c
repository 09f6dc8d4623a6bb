/* exchange.c - one exchange between a client and an upstream (see
 * proxy.h): its life from the parsed request head to the last byte of the
 * response. Its states and timeouts are in exstate.c.
 *
 * The exchange is a pump: every readiness change calls proxy_run, which
 * moves bytes in both directions until each side would block. Nothing is
 * read from a side whose bytes cannot be written onward yet. The upstream
 * side of HTTP/1 is in h1client.c, the forward-auth subrequest in
 * authreq.c, bodies through a pipe in splice.c, tunnels in tunnel.c,
 * portico's own answers in
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
#include "access.h"
#include "headers.h"
#include "identity.h"
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
    conn_touch(ex->c);
}

int sink_write(struct sock *to, struct flow *f, uint64_t *wrote)
{
    while (f->idx < f->niov) {
        unsigned n = f->niov - f->idx;
        /* n <= LIMIT_BODY_IOVS + 6 < IOV_MAX */
        ssize_t w = sock_writev(to, f->iov + f->idx, (int)n);
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

/* Events on the upstream connection run the exchange; whether that ended
 * it is no business of the pool's. */
static void on_upstream_event(struct exchange *ex)
{
    (void)proxy_run(ex);
}

void ex_attach_upstream(struct exchange *ex, struct upconn *u)
{
    ex->u = u;
    upstream_attach(u, ex, on_upstream_event);
}

/* ---- ending ---------------------------------------------------------------------- */

void ex_log_and_count(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    uint64_t usec = ex_now_us() - ex->start_us;
    size_t slot = ex->svc ? ex->svc->metrics_slot : METRICS_SLOT_NONE;
    metrics_count_request(&w->metrics, slot, ex->status, usec, ex->bytes_in, ex->bytes_out);
    metrics_count_body(&w->metrics, ex->rqb.copied, ex->sp_req.data, ex->rsb.copied,
                       ex->sp_resp.data);
    if (conn_hairpin(ex->c))
        metrics_count_local(&w->metrics, slot);
    if (!ex->cfg->access_log)
        return;
    struct access_entry e = {
        .service = ex->svc ? ex->svc->name : "-",
        .client = ex_client(ex),
        .user = ex->user[0] ? ex->user : "-",
        .method = ex->method[0] ? ex->method : "-",
        .path = ex->path_len ? ex->path : "-",
        .path_len = ex->path_len ? ex->path_len : 1,
        .status = ex->status,
        .bytes_in = ex->bytes_in,
        .bytes_out = ex->bytes_out,
        .usec = usec,
        .reason = ex->reason,
        .via = conn_hairpin(ex->c) ? "local" : NULL,
    };
    log_access(&w->log, &e, ex->cfg->log_format);
}

/* A released exchange waits on the worker's free list for the next
 * request. In ASan builds (and with -DPORTICO_DEBUG) all of it but the
 * free-list link is filled with 0xA5 and, under ASan, poisoned, so a
 * caller that touches an exchange after EX_ENDED fails loudly instead of
 * reading the next request's state. */
#if defined(__SANITIZE_ADDRESS__)
#define EX_POISON_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EX_POISON_ASAN 1
#endif
#endif
#if defined(EX_POISON_ASAN) || defined(PORTICO_DEBUG)
#define EX_POISON 1
#endif
#ifdef EX_POISON_ASAN
#include <sanitizer/asan_interface.h>
#endif

_Static_assert(offsetof(struct exchange, next_free) == 0,
               "the free-list link stays readable in a poisoned exchange");

static void ex_poison(struct exchange *ex)
{
#ifdef EX_POISON
    char *p = (char *)ex + sizeof ex->next_free;
    size_t n = sizeof *ex - sizeof ex->next_free;
    memset(p, 0xA5, n);
#ifdef EX_POISON_ASAN
    ASAN_POISON_MEMORY_REGION(p, n);
#endif
#endif
    (void)ex;
}

static void ex_unpoison(struct exchange *ex)
{
#ifdef EX_POISON_ASAN
    ASAN_UNPOISON_MEMORY_REGION(ex, sizeof *ex);
#endif
    (void)ex;
}

bool proxy_poisons_released(void)
{
#ifdef EX_POISON
    return true;
#else
    return false;
#endif
}

void proxy_release(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    whois_detach(&ex->whois_wait);
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
    body_splice_close(&ex->sp_req);
    body_splice_close(&ex->sp_resp);
    http1_request_release(&ex->req);
    http1_response_release(&ex->resp);
    if (ex->path != ex->path_inline)
        free(ex->path);
    ex->path = NULL;
    if (ex->cfg)
        config_unref(ex->cfg);
    ex->cfg = NULL;
    if (w->nfree_exchanges >= EXCHANGE_FREELIST_MAX) {
        free(ex);
        w->released += sizeof *ex;
        return;
    }
    ex->next_free = w->free_exchanges;
    w->free_exchanges = ex;
    w->nfree_exchanges++;
    ex_poison(ex);
}

enum ex_result ex_finish(struct exchange *ex)
{
    struct conn *c = ex->c;
    if (ex->u) {
        /* A connection opened with a PROXY header speaks for one client only. */
        bool reuse = ex->resp.keep_alive && ex->state == EX_RESPONDING && ex->rsb.done &&
                     !ex->svc->send_proxy_protocol;
        upstream_release(ex->u, reuse);
        ex->u = NULL;
    }
    ex_log_and_count(ex);
    bool keep = !ex->close_client;
    proxy_release(ex);
    conn_exchange_done(c, keep);
    return EX_ENDED;
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
enum ex_result ex_fail_hard(struct exchange *ex, int status_if_unsent, const char *why)
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
    conn_close(c); /* releases ex */
    return EX_ENDED;
}

bool proxy_close_tunnel(struct exchange *ex)
{
    if (ex->state != EX_TUNNEL)
        return false;
    return ex_fail_hard(ex, 101, "tunnel closed: portico is shutting down") == EX_ENDED;
}

/* ---- starting --------------------------------------------------------------------- */

struct exchange *proxy_new(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct exchange *ex = w->free_exchanges;
    if (ex) {
        w->free_exchanges = ex->next_free;
        w->nfree_exchanges--;
    } else if (!(ex = malloc(sizeof *ex)))
        return NULL;
    ex_unpoison(ex);
    memset(ex, 0, offsetof(struct exchange, req));
    /* A released exchange freed these (proxy_release); a new one has none. */
    ex->req.headers_heap = NULL;
    ex->req.headers_cap = 0;
    ex->resp.headers_heap = NULL;
    ex->resp.headers_cap = 0;
    body_splice_init(&ex->sp_req);
    body_splice_init(&ex->sp_resp);
    relay_init(&ex->tunnel_up);
    relay_init(&ex->tunnel_down);
    ex->c = c;
    ex->cfg = config_ref(w->cfg);
    ex->start_us = ex_now_us();
    ex->state = EX_ROUTING;
    ex->user[0] = '\0';
    identity_init(&ex->id);
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
        .client_addr = ex_client(ex),
        .forwarded_for_ends_with_client = ex->client[0] != '\0',
        .proto = conn_https(c) ? "https" : "http",
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
    static __thread struct identity_headers ids;
    ids.n = 0;
    if (ex->id.source != IDENTITY_NONE)
        tailnet_headers(ex, &ids);
    rw.add = ids.h;
    rw.nadd = ids.n;
    /* A page holds a typical head; a longer one is built again in a large
     * buffer, which every head within the limits fits. */
    struct buf_pool *bufs = &ex_worker(ex)->bufs;
    ex->reqhead = buf_get_small(bufs);
    long n = ex->reqhead ? headers_build_request(req, &rw, ex->reqhead->data, ex->reqhead->cap)
                         : HEADERS_TOO_LONG;
    if (n == HEADERS_TOO_LONG) {
        buf_put(bufs, ex->reqhead);
        ex->reqhead = buf_get(bufs);
        n = ex->reqhead ? headers_build_request(req, &rw, ex->reqhead->data, ex->reqhead->cap)
                        : HEADERS_TOO_LONG;
    }
    if (n >= 0) {
        ex->reqhead_len = (size_t)n;
        /* Kept until the response begins (for a retry): only its bytes,
         * not a page, for each of 10,000 requests waiting upstream. */
        buf_fit(bufs, &ex->reqhead, ex->reqhead_len);
    }
    return n;
}

/* The target as the access log shows it, into ex->path: path_inline, or
 * an allocation of its length when longer (out of memory: the inline
 * part, cut). */
static void keep_logged_path(struct exchange *ex)
{
    const struct http_request *req = &ex->req;
    bool drop = ex->cfg->log_query == LOG_QUERY_DROP;
    bool redact = ex->cfg->log_query == LOG_QUERY_REDACT;
    const char *const *names = redact ? (const char *const *)ex->cfg->log_redact : NULL;
    size_t nnames = redact ? ex->cfg->nlog_redact : 0;
    ex->path = ex->path_inline;
    ex->path_len = log_target(req->target.p, req->target.len, drop, names, nnames, ex->path_inline,
                              sizeof ex->path_inline);
    if (ex->path_len < sizeof ex->path_inline)
        return;
    char full[LIMIT_LOG_PATH_BYTES];
    size_t n = log_target(req->target.p, req->target.len, drop, names, nnames, full, sizeof full);
    char *p = malloc(n);
    if (!p)
        return;
    memcpy(p, full, n);
    ex->path = p;
    ex->path_len = n;
}

enum ex_result proxy_start(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct http_request *req = &ex->req;
    ex->bytes_in = req->head_len;
    size_t ml = req->method.len < sizeof ex->method - 1 ? req->method.len : sizeof ex->method - 1;
    memcpy(ex->method, req->method.p, ml);
    ex->method[ml] = '\0';
    keep_logged_path(ex);
    body_init(&ex->rqb, req->body, req->body, req->content_length);
    const struct route_table *by_name = NULL;
    if (conn_tailnet(c)) {
        /* tailscaled put the caller's Host in X-Forwarded-Host: route by it and
         * send it upstream as Host, as tsnsrv does. Without it there is no
         * name to route by, and no default service to guess. */
        enum identity_forward f =
            identity_forwarded(req, &req->host, ex->client, sizeof ex->client);
        if (f != IDENTITY_FWD_OK) {
            buf_consume(c->s.in, req->head_len);
            return ex_respond(ex, 400,
                              f == IDENTITY_FWD_NO_HOST
                                  ? "bad request: no X-Forwarded-Host; this listener serves "
                                    "only what tailscaled forwards"
                                  : "bad request: more than one X-Forwarded-Host",
                              true);
        }
        by_name = ex->cfg->tailnet_names;
    } else if (conn_hairpin(c)) {
        /* The hairpin listener serves the published names, NAME.<suffix>,
         * routed by their first label as tailscaled's are; the certificate
         * check below limits them to the names portico has certificates
         * for. Its callers are "local": an allow entry `local` admits
         * them, and they never have a tailnet identity to bypass auth with. */
        by_name = ex->cfg->tailnet_names;
        ex->id.local = true;
    }
    ex->host_len = req->host.len < sizeof ex->host ? req->host.len : 0;
    memcpy(ex->host, req->host.p, ex->host_len);

    static __thread struct route_result rt;
    struct route_request rq = {
        .host = req->host, .path = req->path, .query = req->query, .by_name = by_name};
    enum route_outcome o = route_resolve(ex->cfg->routes, &rq, &rt);
    if (o == ROUTE_BAD_HOST) {
        buf_consume(c->s.in, req->head_len);
        return ex_respond(ex, 400, "bad request: invalid Host header", true);
    }
    /* A connection is for the names its certificate covers: a handshake for
     * a.example carrying "Host: b.example" was misdirected (RFC 9110
     * 15.5.20); the client should open a connection for b.example. */
    if (rt.host_len > 0 && c->s.ssl && conn_strict_sni_host(c) &&
        !tls_session_covers_host(c->s.ssl, rt.host, (size_t)rt.host_len)) {
        buf_consume(c->s.in, req->head_len);
        return ex_respond(ex, 421,
                          "misdirected request: this connection's certificate does not cover "
                          "the Host",
                          true);
    }
    ex->svc = rt.svc;
    if (o == ROUTE_NO_SERVICE) {
        buf_consume(c->s.in, req->head_len);
        return ex_respond(ex, 404, "not found: no service for this host", false);
    }
    if (conn_redirect_https(c)) {
        buf_consume(c->s.in, req->head_len);
        return respond_https_redirect(ex, rt.host, (size_t)rt.host_len);
    }
    if (o == ROUTE_BAD_PATH) {
        buf_consume(c->s.in, req->head_len);
        return ex_respond(ex, 400, "bad request: invalid path", true);
    }
    ex->route = rt.route;
    ex->up = rt.up;
    if (o == ROUTE_AMBIGUOUS) {
        buf_consume(c->s.in, req->head_len);
        return ex_respond(ex, 400,
                          "bad request: ambiguous path (an encoded '/' or '\\', a '\\' or a "
                          "';' parameter would take it out of its auth_skip or route prefix "
                          "for some servers)",
                          true);
    }
    if (!tailnet_identify(ex))
        return EX_CONTINUE; /* whois answers later; the head stays in c->s.in */
    return ex_routed(ex, &rt);
}

/* The access log names a tailnet caller by its login (a forward-auth
 * provider's user replaces it). */
static void log_identity(struct exchange *ex)
{
    const char *login = identity_get(&ex->id, IDENTITY_LOGIN);
    if (identity_is_tagged(&ex->id) && ex->id.nlist[IDENTITY_TAGS])
        login = identity_item(&ex->id, IDENTITY_TAGS, 0);
    const char *who = ex->id.funnel ? "funnel" : login;
    size_t n = strnlen(who, sizeof ex->user - 1); /* cut as snprintf would, without its cost */
    memcpy(ex->user, who, n);
    ex->user[n] = '\0';
}

enum ex_result ex_routed(struct exchange *ex, const struct route_result *rt)
{
    struct conn *c = ex->c;
    struct http_request *req = &ex->req;
    const struct config_auth *auth = rt->auth;
    if (auth && ex->svc->auth_bypass_tailnet && identity_is_user(&ex->id))
        auth = NULL; /* a person tailscaled vouched for; everyone else asks the provider */
    log_identity(ex);
    /* Before forward auth and the upstream: a caller outside the list gets
     * nowhere, whatever a provider would say. */
    if (ex->svc->allow.n && !access_list_allows(&ex->svc->allow, &ex->id)) {
        metrics_count_access_denied(&ex_worker(ex)->metrics, ex->svc->metrics_slot);
        buf_consume(c->s.in, req->head_len);
        return ex_respond(ex, 403, "forbidden: you are not on this service's allow list", false);
    }
    long n = build_request_head(ex, rt);
    bool auth_ok = n < 0 || !auth || authreq_prepare(ex, auth, rt->host, req) == 0;
    buf_consume(c->s.in, req->head_len);
    if (n == HEADERS_TOO_MANY) {
        return ex_respond(
            ex, 431,
            "request header fields too large: more than 100 header lines with "
            "the ones portico adds (X-Forwarded-*, Forwarded, X-Real-IP, service headers)",
            true);
    }
    if (n < 0) {
        return ex_respond(ex, 431, "request header fields too large", true);
    }
    if (!auth_ok) {
        return ex_respond(ex, 431, "request header fields too large for the auth request", true);
    }
    if (req->body == HTTP_BODY_CHUNKED && !body_chunked_prefix_ok(c->s.in)) {
        return ex_respond(ex, 400, "bad request: malformed chunked body", true);
    }
    /* The head is in reqhead now: an empty input buffer goes back while the
     * request waits for its upstream, as an idle connection's does. */
    conn_release_input(c);
    if (auth)
        return authreq_begin(ex); /* before any 100 Continue: a refused client sends no body */
    return ex_proceed(ex);
}

/* "Expect: 100-continue" is answered here, not by the upstream (the header
 * is not forwarded): the body is what portico streams upstream anyway. The
 * connection has no response pending, so the few bytes go out at once. */
EX_MUST_USE static enum ex_result send_continue(struct exchange *ex)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec v = {(void *)cont, sizeof cont - 1};
    ssize_t n = sock_writev(&ex->c->s, &v, 1);
    if (n != (ssize_t)sizeof cont - 1)
        return ex_fail_hard(ex, 400, "could not send 100 Continue");
    ex->bytes_out += (uint64_t)n;
    return EX_CONTINUE;
}

enum ex_result ex_proceed(struct exchange *ex)
{
    struct conn *c = ex->c;
    const struct http_request *req = &ex->req;
    if (req->expect_continue && req->minor >= 1 && !ex->rqb.done &&
        (!c->s.in || buf_len(c->s.in) == 0) && send_continue(ex) == EX_ENDED)
        return EX_ENDED;
    return h1client_connect(ex, true);
}

/* Did the client close its side while the exchange waits on the upstream
 * (a browser tab closed during a long-poll)? Then the exchange ends now,
 * so the upstream sees EOF at once, and is logged as nginx's 499. Only a
 * client that asked to keep the connection open counts: one that sent
 * "Connection: close" (or HTTP/1.0 without keep-alive) may half-close
 * after its request and still wait for the answer, and a request it
 * pipelined before its FIN is answered first. */
EX_MUST_USE static enum ex_result client_gone(struct exchange *ex)
{
    struct conn *c = ex->c;
    if (!c->s.rdhup || !ex->rqb.done || !ex->req.keep_alive || ex->state == EX_TUNNEL ||
        ex->state == EX_LOCAL)
        return EX_CONTINUE;
    if (c->s.in && buf_len(c->s.in) > 0)
        return EX_CONTINUE; /* it pipelined another request first */
    if (!c->s.ssl && sock_peek(&c->s) >= 0)
        return EX_CONTINUE;
    if (ex->u)
        log_msg(LOG_INFO,
                "service %s: client %s closed the connection before the response was "
                "complete; upstream request aborted",
                ex->svc ? ex->svc->name : "-", ex_client(ex));
    return ex_fail_hard(ex, 499, "client closed the connection before the response was complete");
}

enum ex_result ex_run(struct exchange *ex)
{
    if (client_gone(ex) == EX_ENDED)
        return EX_ENDED;
    switch (ex->state) {
    case EX_ROUTING:
    case EX_IDENTITY:       /* the whois answer goes on by itself */
        return EX_CONTINUE; /* nothing is in flight yet */
    case EX_AUTH:
        return authreq_pump(ex);
    case EX_CONNECTING: {
        const char *why;
        int err = upstream_connect_result(ex->u, &why);
        if (err == -EINPROGRESS)
            return EX_CONTINUE;
        if (err == -EPROTO && why)
            return h1client_tls_failed(ex, why);
        if (err < 0)
            return h1client_connect_failed(ex, err);
        return h1client_start(ex);
    }
    case EX_TUNNEL:
        /* The 101 head goes out first, through the response pump. */
        if (ex->rs.own) {
            enum pump p = h1client_pump_response(ex);
            if (pump_stopped(p))
                return pump_ex_result(p);
            if (ex->rs.active)
                return EX_CONTINUE;
        }
        return tunnel_run(ex);
    case EX_SENDING:
    case EX_WAITING:
    case EX_STREAMING:
    case EX_RESPONDING:
    case EX_LOCAL:
        break;
    }
    for (;;) {
        enum pump a = PUMP_IDLE;
        if (ex->state == EX_SENDING || ex->state == EX_STREAMING) {
            a = h1client_pump_request(ex);
            if (pump_stopped(a))
                return pump_ex_result(a);
        }
        enum pump b = h1client_pump_response(ex);
        if (pump_stopped(b))
            return pump_ex_result(b);
        if (ex->state == EX_TUNNEL)
            return ex_run(ex);
        if (a == PUMP_IDLE && b == PUMP_IDLE)
            return EX_CONTINUE;
    }
}

enum ex_result proxy_run(struct exchange *ex)
{
    return ex_run(ex);
}
