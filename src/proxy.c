/* proxy.c - one exchange between a client and an upstream (see proxy.h).
 *
 * The exchange is a pump: every readiness change calls proxy_run, which
 * moves bytes in both directions until each side would block. Nothing is
 * read from a side whose bytes cannot be written onward yet. */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
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
#include "conn.h"
#include "headers.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "resolve.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

enum pump { PUMP_IDLE, PUMP_PROGRESS, PUMP_GONE };

static void start_sending(struct exchange *ex);
static void flow_reset(struct flow *f);
static void flow_push(struct flow *f, const void *p, size_t n);
static void connect_upstream(struct exchange *ex, bool allow_idle);
static void arm_timer(struct exchange *ex);
static void arm_body_timer(struct exchange *ex);
static int send_continue(struct exchange *ex);
static bool chunked_prefix_ok(const struct buf *in);

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct worker *ex_worker(const struct exchange *ex)
{
    return ex->c->w;
}

static void touch(struct exchange *ex)
{
    ex->c->last_activity = loop_now_ms(ex_worker(ex)->loop);
}

/* ---- flows -------------------------------------------------------------------- */

static void flow_reset(struct flow *f)
{
    f->niov = f->idx = 0;
    f->consumed = 0;
    f->active = false;
}

static void flow_push(struct flow *f, const void *p, size_t n)
{
    if (n == 0)
        return;
    f->iov[f->niov].iov_base = (void *)p;
    f->iov[f->niov].iov_len = n;
    f->niov++;
    f->active = true;
}

/* A peer a flow is written to: the client or an upstream connection. */
struct sink {
    struct conn *c;
    struct upconn *u;
};

static ssize_t sink_writev(struct sink to, const struct iovec *iov, int n)
{
    if (to.u)
        return upstream_writev(to.u, iov, n);
    if (to.c)
        return conn_writev(to.c, iov, n);
    errno = EBADF;
    return -1;
}

/* Write what the flow holds. 1: all written; 0: would block; -errno. */
static int flow_write(struct sink to, struct flow *f, uint64_t *wrote)
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
        size_t left = (size_t)w;
        while (left > 0) {
            struct iovec *v = &f->iov[f->idx];
            if (left >= v->iov_len) {
                left -= v->iov_len;
                f->idx++;
            } else {
                v->iov_base = (char *)v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
    }
    return 1;
}

/* Release what a fully written flow held. */
static void flow_finish(struct worker *w, struct flow *f, struct buf *src)
{
    if (src && f->consumed)
        buf_consume(src, f->consumed);
    if (f->own) {
        buf_put(&w->bufs, f->own);
        f->own = NULL;
    }
    flow_reset(f);
}

/* ---- bodies ------------------------------------------------------------------ */

static void body_init(struct body *b, enum http_body in, enum http_body out, uint64_t length)
{
    b->in = in;
    b->out = out;
    b->remaining = length;
    chunked_decoder_init(&b->dec);
    b->done = in == HTTP_BODY_NONE || (in == HTTP_BODY_LENGTH && length == 0);
}

/* Add the next batch of body bytes from src (after the bytes the flow has
 * already claimed) to f, framed for the receiver. Returns 1 if the flow
 * grew or the body ended, 0 if src had nothing usable, -1 on bad framing. */
static int body_produce(struct body *b, struct buf *src, bool src_eof, struct flow *f)
{
    if (b->done)
        return 0;
    const char *p = src ? buf_rptr(src) + f->consumed : NULL;
    size_t len = src ? buf_len(src) - f->consumed : 0;
    switch (b->in) {
    case HTTP_BODY_NONE:
        return 0;
    case HTTP_BODY_LENGTH: {
        size_t n = len < b->remaining ? len : (size_t)b->remaining;
        if (n == 0)
            return 0;
        flow_push(f, p, n);
        f->consumed += n;
        b->remaining -= n;
        b->done = b->remaining == 0;
        return 1;
    }
    case HTTP_BODY_EOF:
        if (len == 0) {
            if (!src_eof)
                return 0;
            b->done = true;
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, CHUNKED_LAST, sizeof CHUNKED_LAST - 1);
            return 1;
        }
        if (b->out == HTTP_BODY_CHUNKED) {
            flow_push(f, f->pre, chunked_size_line(len, f->pre));
            flow_push(f, p, len);
            flow_push(f, "\r\n", 2);
        } else {
            flow_push(f, p, len);
        }
        f->consumed += len;
        return 1;
    case HTTP_BODY_CHUNKED: {
        if (len == 0)
            return 0;
        struct iovec segs[LIMIT_BODY_IOVS];
        size_t nsegs = 0, used = 0, total = 0;
        int r = chunked_decode(&b->dec, p, len, &used, segs, &nsegs, LIMIT_BODY_IOVS);
        if (r == CHUNKED_ERROR)
            return -1;
        for (size_t i = 0; i < nsegs; i++)
            total += segs[i].iov_len;
        if (total) {
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, f->pre, chunked_size_line(total, f->pre));
            for (size_t i = 0; i < nsegs; i++)
                flow_push(f, segs[i].iov_base, segs[i].iov_len);
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, "\r\n", 2);
        }
        f->consumed += used;
        if (r == CHUNKED_DONE) {
            b->done = true;
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, CHUNKED_LAST, sizeof CHUNKED_LAST - 1);
        }
        return used > 0 || b->done;
    }
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------------- */

/* Read from an upstream into its buffer. Bytes read, 0 on EAGAIN (or no
 * room), -1 on EOF or error. */
static long upstream_read(struct upconn *u, bool may_compact)
{
    struct worker *w = u->w;
    if (!u->in) {
        u->in = buf_get(&w->bufs);
        if (!u->in)
            return 0;
    }
    if (buf_space(u->in) == 0 && may_compact)
        buf_compact(u->in);
    if (buf_space(u->in) == 0)
        return 0;
    for (;;) {
        ssize_t n = upstream_recv(u, u->in->data + u->in->wpos, buf_space(u->in));
        if (n > 0) {
            u->in->wpos += (size_t)n;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            u->readable = false;
            return 0;
        }
        u->eof = true;
        u->readable = false;
        return -1;
    }
}

/* ---- ending ---------------------------------------------------------------------- */

static void log_and_count(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    uint64_t usec = now_us() - ex->start_us;
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
static void finish(struct exchange *ex)
{
    struct conn *c = ex->c;
    if (ex->u) {
        /* A connection opened with a PROXY header speaks for one client only. */
        bool reuse = ex->resp.keep_alive && ex->req_sent && ex->rsb.done &&
                     ex->phase == EX_SENDING && !ex->svc->send_proxy_protocol;
        upstream_release(ex->u, reuse);
        ex->u = NULL;
    }
    log_and_count(ex);
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
static void fail_hard(struct exchange *ex, int status_if_unsent, const char *why)
{
    struct conn *c = ex->c;
    if (!ex->resp_started)
        ex->status = status_if_unsent;
    else if (status_if_unsent >= 500 && ex->svc)
        metrics_count_incomplete(&ex_worker(ex)->metrics, ex->svc->metrics_slot);
    if (why)
        ex->reason = why;
    proxy_abort(ex);
    log_and_count(ex);
    proxy_release(ex);
    conn_close(c);
}

bool proxy_close_tunnel(struct exchange *ex)
{
    if (ex->phase != EX_TUNNEL)
        return false;
    fail_hard(ex, 101, "tunnel closed: portico is shutting down");
    return true;
}

/* portico's own answer: status, a one-line body, and extra header lines
 * ("Name: value\r\n"..., or NULL). */
static void respond_local(struct exchange *ex, int status, const char *body, bool close,
                          const char *extra)
{
    struct worker *w = ex_worker(ex);
    /* A copy: body may be built on the caller's stack, the log comes later. */
    snprintf(ex->reason_buf, sizeof ex->reason_buf, "%s", body);
    body = ex->reason_buf;
    if (ex->resp_started) {
        fail_hard(ex, status, body);
        return;
    }
    if (ex->u) {
        upstream_close(ex->u);
        ex->u = NULL;
    }
    if (ex->rs.own)
        buf_put(&w->bufs, ex->rs.own);
    flow_reset(&ex->rs);
    ex->rs.own = NULL;
    ex->phase = EX_LOCAL;
    ex->status = status;
    ex->reason = body;
    /* Unread request bytes would be taken for the next request: close. */
    if (close || !ex->rqb.done || w->draining || ex->c->closing || !ex->req.keep_alive)
        ex->close_client = true;
    struct buf *b = buf_get(&w->bufs);
    if (!b) {
        fail_hard(ex, status, "out of buffers");
        return;
    }
    size_t blen = strlen(body);
    bool head = ex->method[0] && ex->req.method_id == HTTP_HEAD;
    int n = snprintf(b->data, BUF_SIZE,
                     "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n%s",
                     status, http_status_reason(status), extra ? extra : "", blen + 1,
                     ex->close_client ? "Connection: close\r\n"
                                      : (ex->req.minor == 0 ? "Connection: keep-alive\r\n" : ""),
                     head ? "" : body);
    if (n < 0 || n >= BUF_SIZE - 1) {
        buf_put(&w->bufs, b);
        fail_hard(ex, status, body);
        return;
    }
    if (!head)
        b->data[n++] = '\n';
    ex->rs.own = b;
    flow_push(&ex->rs, b->data, (size_t)n);
    ex->resp_head_done = true;
    ex->rsb.done = true;
    arm_timer(ex);
    proxy_run(ex);
}

void proxy_respond_local(struct exchange *ex, int status, const char *body, bool close)
{
    respond_local(ex, status, body, close, NULL);
}

/* The addresses an app may put in an absolute redirect that the client
 * cannot reach: its upstream's own origin (with and without a default
 * port) and the Host portico sent it in place of the client's. */
struct redirect_origins {
    char buf[4][LIMIT_HOST_LEN + 24];
    const char *from[4];
};

static void redirect_origins_of(const struct exchange *ex, struct redirect_origins *ro,
                                struct redirect_rewrite *rr)
{
    const struct config_service *svc = ex->svc;
    const char *authority = ex->route ? ex->route->authority : svc->authority;
    bool https = ex->up && ex->up->kind == UPSTREAM_HTTPS;
    const char *scheme = https ? "https" : "http";
    size_t n = 0;
    if (authority) {
        size_t alen = strlen(authority);
        const char *dflt = https ? ":443" : ":80";
        size_t dlen = strlen(dflt);
        snprintf(ro->buf[n++], sizeof ro->buf[0], "%s://%s", scheme, authority);
        bool has_port =
            authority[0] == '[' ? strstr(authority, "]:") != NULL : strchr(authority, ':') != NULL;
        if (!has_port)
            snprintf(ro->buf[n++], sizeof ro->buf[0], "%s://%s%s", scheme, authority, dflt);
        else if (alen > dlen && strcmp(authority + alen - dlen, dflt) == 0)
            snprintf(ro->buf[n++], sizeof ro->buf[0], "%s://%.*s", scheme, (int)(alen - dlen),
                     authority);
    }
    if (svc->host_header) {
        snprintf(ro->buf[n++], sizeof ro->buf[0], "http://%s", svc->host_header);
        snprintf(ro->buf[n++], sizeof ro->buf[0], "https://%s", svc->host_header);
    }
    for (size_t i = 0; i < n; i++)
        ro->from[i] = ro->buf[i];
    rr->from = ro->from;
    rr->nfrom = n;
    rr->scheme = ex->c->https ? "https" : "http";
    rr->host.p = ex->host;
    rr->host.len = ex->host_len;
    rr->prefix.len = 0;
    if (ex->route && ex->route->strip_prefix) {
        rr->prefix.p = ex->route->prefix;
        rr->prefix.len = ex->route->prefix_len;
        while (rr->prefix.len && rr->prefix.p[rr->prefix.len - 1] == '/')
            rr->prefix.len--;
    }
}

/* A plain-HTTP listener with redirect_https: send the client to the same
 * name and target over https. 301 keeps GET and HEAD simple for old
 * clients; 308 makes other methods repeat themselves with their body. */
static void respond_https_redirect(struct exchange *ex, const char *host, size_t hlen)
{
    struct conn *c = ex->c;
    int id = ex->req.method_id;
    int status = id == HTTP_GET || id == HTTP_HEAD ? 301 : 308;
    char port[8] = "";
    if (c->https_port && c->https_port != 443)
        snprintf(port, sizeof port, ":%u", (unsigned)c->https_port);
    /* The path and query as sent (origin-form even for an absolute-form
     * request); the Host as routed, lower-case and without its port. */
    struct http_slice t = ex->req.path, q = ex->req.query;
    static __thread char location[LIMIT_HEADER_BYTES_MAX + LIMIT_HOST_LEN + 32];
    int n = snprintf(location, sizeof location, "Location: https://%.*s%s%.*s%s%.*s\r\n", (int)hlen,
                     host, port, (int)t.len, t.p, q.len ? "?" : "", (int)q.len, q.p);
    if (n < 0 || (size_t)n >= sizeof location) {
        proxy_respond_local(ex, 414, "URI too long: no room for the https redirect", true);
        return;
    }
    respond_local(ex, status, "redirect: this name is served over https", false, location);
}

/* ---- forward auth ------------------------------------------------------------------ */

/* What the provider is told about the request (see auth.h). */
static void auth_target_of(const struct exchange *ex, struct auth_target *t)
{
    /* The request line of the upstream head carries the target exactly as
     * it goes upstream. */
    const char *line = ex->reqhead->data;
    const char *sp = memchr(line, ' ', ex->reqhead_len);
    const char *uri = sp ? sp + 1 : "/";
    const char *end = sp ? memchr(uri, ' ', ex->reqhead_len - (size_t)(uri - line)) : NULL;
    t->method = ex->method;
    t->proto = ex->c->https ? "https" : "http";
    t->host = ex->auth_host;
    t->port = ex->auth_port;
    t->uri.p = uri;
    t->uri.len = end ? (size_t)(end - uri) : 1;
    t->client = ex->c->addr;
}

/* The port in a Host header value ("h:8443", "[::1]:8443"), or 0. */
static int host_port(struct http_slice h)
{
    const char *p = h.p, *end = h.p + h.len;
    if (h.len && p[0] == '[') {
        const char *close = memchr(p, ']', h.len);
        if (!close)
            return 0;
        p = close + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon)
        return 0;
    int port = 0;
    for (const char *q = colon + 1; q < end && port <= 65535; q++)
        if (*q >= '0' && *q <= '9')
            port = port * 10 + (*q - '0');
        else
            return 0;
    return port <= 65535 ? port : 0;
}

static struct auth_cache *auth_cache_of(struct worker *w, const struct config *cfg,
                                        const struct config_auth *a)
{
    if (w->auth_serial != cfg->serial) {
        for (size_t i = 0; i < w->nauth_caches; i++)
            auth_cache_free(w->auth_caches[i]);
        free(w->auth_caches);
        w->nauth_caches = 0;
        w->auth_caches = calloc(cfg->nauths ? cfg->nauths : 1, sizeof *w->auth_caches);
        if (!w->auth_caches)
            return NULL;
        w->nauth_caches = cfg->nauths;
        w->auth_serial = cfg->serial;
    }
    if (a->idx >= w->nauth_caches)
        return NULL;
    if (!w->auth_caches[a->idx])
        w->auth_caches[a->idx] = auth_cache_new();
    return w->auth_caches[a->idx];
}

/* Build the subrequest while the client's head is still in its buffer. */
static int auth_prepare(struct exchange *ex, const struct config_auth *a, const char *host,
                        const struct http_request *req)
{
    struct worker *w = ex_worker(ex);
    ex->auth = a;
    snprintf(ex->auth_host, sizeof ex->auth_host, "%s", host);
    ex->auth_port = host_port(req->host);
    ex->authreq = buf_get(&w->bufs);
    if (!ex->authreq)
        return -1;
    struct auth_target t;
    auth_target_of(ex, &t);
    long n = auth_build_request(a, req, &t, ex->authreq->data, BUF_SIZE);
    if (n < 0)
        return -1;
    ex->authreq_len = (size_t)n;
    if (a->cache_ms)
        auth_cache_digest(a, req, &t, ex->auth_digest);
    return 0;
}

static void proceed(struct exchange *ex);
static void auth_begin(struct exchange *ex);

static void auth_release_provider(struct exchange *ex, bool reusable)
{
    if (!ex->u)
        return;
    ex->u->ex = NULL;
    upstream_release(ex->u, reusable);
    ex->u = NULL;
}

/* The provider failed: fail closed, nothing reaches the upstream. */
static void auth_error(struct exchange *ex, int status, const char *why)
{
    struct worker *w = ex_worker(ex);
    if (ex->u) {
        upstream_close(ex->u);
        ex->u = NULL;
    }
    log_msg(LOG_WARN, "service %s: auth provider %s (%s): %s; request refused", ex->svc->name,
            ex->auth->name, ex->auth->url, why);
    metrics_count_auth(&w->metrics, ex->svc->metrics_slot, AUTH_ERROR,
                       (int64_t)(now_us() - ex->auth_start_us));
    proxy_respond_local(ex, status,
                        status == 504 ? "gateway timeout: the auth provider did not answer"
                                      : "bad gateway: the auth provider failed",
                        false);
}

/* A pooled connection the provider had closed: try once more on a new one. */
static void auth_lost(struct exchange *ex, const char *why)
{
    if (ex->u && ex->u->reused && !ex->auth_retried && !ex->auth_head_len) {
        upstream_close(ex->u);
        ex->u = NULL;
        ex->auth_retried = true;
        auth_begin(ex);
        return;
    }
    auth_error(ex, 502, why);
}

/* A 2xx: the copied headers go into the upstream head, before its blank line. */
static void auth_allow(struct exchange *ex, const struct auth_verdict *v)
{
    char *head = ex->reqhead->data;
    size_t len = ex->reqhead_len - 2; /* drop the final CRLF, append, put it back */
    for (size_t i = 0; i < v->ncopy; i++) {
        size_t nl = strlen(v->copy[i].name);
        if (len + nl + 2 + v->copy[i].len + 2 + 2 > BUF_SIZE) {
            proxy_respond_local(ex, 431,
                                "request header fields too large with the headers the auth "
                                "provider adds",
                                true);
            return;
        }
        memcpy(head + len, v->copy[i].name, nl);
        len += nl;
        memcpy(head + len, ": ", 2);
        len += 2;
        memcpy(head + len, v->copy[i].value, v->copy[i].len);
        len += v->copy[i].len;
        memcpy(head + len, "\r\n", 2);
        len += 2;
    }
    memcpy(head + len, "\r\n", 2);
    ex->reqhead_len = len + 2;
    if (v->user) {
        /* For the access log: a logfmt-safe copy. */
        size_t n = 0;
        for (const char *p = v->user; *p && n < sizeof ex->user - 1; p++)
            ex->user[n++] =
                (*p > ' ' && *p < 0x7f && *p != '"' && *p != '\\' && *p != '=') ? *p : '?';
        ex->user[n] = '\0';
    }
    ex->phase = EX_SENDING;
    proceed(ex);
}

static void auth_done(struct exchange *ex, const char *body, size_t blen, bool reusable)
{
    struct worker *w = ex_worker(ex);
    const struct config_auth *a = ex->auth;
    int64_t usec = (int64_t)(now_us() - ex->auth_start_us);
    static __thread struct auth_verdict v;
    struct auth_target t;
    auth_target_of(ex, &t);
    bool head = ex->req.method_id == HTTP_HEAD;
    bool close =
        !ex->rqb.done || w->draining || ex->c->closing || !ex->req.keep_alive || ex->req.minor == 0;
    struct buf *out = buf_get(&w->bufs);
    size_t outlen = 0;
    if (!out) {
        auth_error(ex, 502, "out of buffers");
        return;
    }
    auth_judge(a, &ex->resp, body, blen, &t, head, close, &v, out->data, BUF_SIZE, &outlen);
    auth_release_provider(ex, reusable);
    if (v.result == AUTH_ERROR) {
        buf_put(&w->bufs, out);
        char why[128];
        snprintf(why, sizeof why, "%s (status %d)", v.error, ex->resp.status);
        auth_error(ex, v.status, why);
        return;
    }
    metrics_count_auth(&w->metrics, ex->svc->metrics_slot, (int)v.result, usec);
    if (v.result == AUTH_ALLOWED) {
        buf_put(&w->bufs, out);
        if (a->cache_ms) {
            struct auth_cache *cache = auth_cache_of(w, ex->cfg, a);
            if (cache)
                auth_cache_put(cache, ex->auth_digest, loop_now_ms(w->loop) + a->cache_ms, &v);
        }
        auth_allow(ex, &v);
        return;
    }
    /* Redirected or denied: the provider's answer (or its translation) goes
     * to the client, and nothing to the upstream. */
    ex->phase = EX_LOCAL;
    ex->status = v.status;
    ex->close_client = close;
    flow_reset(&ex->rs);
    ex->rs.own = out;
    flow_push(&ex->rs, out->data, outlen);
    ex->resp_head_done = true;
    ex->rsb.done = true;
    arm_timer(ex);
    proxy_run(ex);
}

/* The provider's answer so far: 0 while more is needed, 1 when the exchange
 * has moved on (decided, failed or retried). */
static int auth_parse(struct exchange *ex)
{
    struct upconn *u = ex->u;
    size_t have = u->in ? buf_len(u->in) : 0;
    const char *d = have ? u->in->data + u->in->rpos : "";
    if (!ex->auth_head_len) {
        struct http1_limits lim = {LIMIT_AUTH_HEAD_BYTES, LIMIT_AUTH_HEAD_BYTES};
        long hl = have ? http1_find_head_end(d, have, &ex->auth_scan, &lim) : 0;
        if (hl < 0) {
            auth_error(ex, 502, "its answer's head is too large");
            return 1;
        }
        if (hl == 0) {
            if (!u->eof)
                return 0;
            if (have == 0)
                auth_lost(ex, "it closed the connection without answering");
            else
                auth_error(ex, 502, "it closed the connection in the middle of its answer");
            return 1;
        }
        if (http1_parse_response(d, (size_t)hl, HTTP_GET, &ex->resp) < 0 || ex->resp.status < 200) {
            auth_error(ex, 502, "its answer is malformed");
            return 1;
        }
        ex->auth_head_len = (size_t)hl;
    }
    const char *body = d + ex->auth_head_len;
    size_t avail = have - ex->auth_head_len, blen = 0, wire = 0;
    static __thread char dechunked[LIMIT_AUTH_BODY_BYTES];
    switch (ex->resp.body) {
    case HTTP_BODY_NONE:
        break;
    case HTTP_BODY_LENGTH:
        if (ex->resp.content_length > LIMIT_AUTH_BODY_BYTES) {
            auth_error(ex, 502, "its answer's body is too large");
            return 1;
        }
        blen = wire = (size_t)ex->resp.content_length;
        if (avail < blen)
            goto more;
        break;
    case HTTP_BODY_CHUNKED: {
        struct chunked_decoder dec;
        chunked_decoder_init(&dec);
        for (;;) {
            struct iovec segs[LIMIT_BODY_IOVS];
            size_t nsegs = 0, used = 0;
            int r = chunked_decode(&dec, body + wire, avail - wire, &used, segs, &nsegs,
                                   LIMIT_BODY_IOVS);
            if (r == CHUNKED_ERROR) {
                auth_error(ex, 502, "its answer's chunked body is malformed");
                return 1;
            }
            for (size_t i = 0; i < nsegs; i++) {
                if (blen + segs[i].iov_len > sizeof dechunked) {
                    auth_error(ex, 502, "its answer's body is too large");
                    return 1;
                }
                memcpy(dechunked + blen, segs[i].iov_base, segs[i].iov_len);
                blen += segs[i].iov_len;
            }
            wire += used;
            if (r == CHUNKED_DONE)
                break;
            if (used == 0 || wire == avail)
                goto more;
        }
        body = dechunked;
        break;
    }
    case HTTP_BODY_EOF:
        if (avail > LIMIT_AUTH_BODY_BYTES) {
            auth_error(ex, 502, "its answer's body is too large");
            return 1;
        }
        if (!u->eof)
            return 0;
        blen = wire = avail;
        break;
    }
    bool reusable = ex->resp.keep_alive && ex->resp.body != HTTP_BODY_EOF && wire == avail;
    /* The bytes stay where they are until auth_done has judged them. */
    buf_consume(u->in, ex->auth_head_len + wire);
    auth_done(ex, body, blen, reusable);
    return 1;
more:
    if (u->eof) {
        auth_error(ex, 502, "it closed the connection in the middle of its answer");
        return 1;
    }
    return 0;
}

static void auth_pump(struct exchange *ex)
{
    struct upconn *u = ex->u;
    if (u->connecting) {
        const char *why;
        int err = upstream_connect_result(u, &why);
        if (err == -EINPROGRESS)
            return;
        if (err < 0) {
            auth_error(ex, 502, why ? why : strerror(-err));
            return;
        }
        touch(ex);
    }
    while (ex->authreq_off < ex->authreq_len) {
        if (!u->writable)
            return;
        struct iovec v = {ex->authreq->data + ex->authreq_off, ex->authreq_len - ex->authreq_off};
        ssize_t n = upstream_writev(u, &v, 1);
        if (n > 0) {
            ex->authreq_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            u->writable = false;
            return;
        }
        auth_lost(ex, "the connection broke while sending the subrequest");
        return;
    }
    for (;;) {
        if (auth_parse(ex))
            return;
        long n = upstream_read(u, true);
        if (n > 0)
            continue;
        if (n == 0 && u->in && buf_space(u->in) == 0) {
            auth_error(ex, 502, "its answer is too large");
            return;
        }
        if (n == 0)
            return;
        /* EOF or error: auth_parse decides with u->eof set. */
        if (auth_parse(ex))
            return;
        auth_error(ex, 502, "the connection broke");
        return;
    }
}

static void auth_begin(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    const struct config_auth *a = ex->auth;
    if (a->cache_ms && !ex->auth_retried) {
        struct auth_cache *cache = auth_cache_of(w, ex->cfg, a);
        static __thread struct auth_verdict v;
        if (cache && auth_cache_get(cache, ex->auth_digest, loop_now_ms(w->loop), &v)) {
            metrics_count_auth(&w->metrics, ex->svc->metrics_slot, AUTH_ALLOWED, -1);
            auth_allow(ex, &v);
            return;
        }
    }
    if (!ex->auth_retried)
        ex->auth_start_us = now_us();
    int err = 0;
    struct upconn *u = upstream_acquire(w, &a->up, !ex->auth_retried, &err);
    if (!u) {
        if (err == UPSTREAM_UNRESOLVED) {
            char why[300];
            snprintf(why, sizeof why, "auth provider name not resolved: \"%s\" (%s)",
                     a->up.addr.host, resolve_error(&a->up.addr));
            auth_error(ex, 502, why);
        } else {
            auth_error(ex, 502, strerror(-err));
        }
        return;
    }
    ex->u = u;
    u->ex = ex;
    ex->phase = EX_AUTH;
    ex->authreq_off = 0;
    ex->auth_scan = 0;
    ex->auth_head_len = 0;
    touch(ex);
    arm_timer(ex);
    auth_pump(ex);
}

/* ---- starting --------------------------------------------------------------------- */

static bool idempotent(int method_id)
{
    switch (method_id) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
        return true;
    }
    return false;
}

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
    ex->start_us = now_us();
    ex->phase = EX_SENDING;
    ex->user[0] = '\0';
    c->ex = ex;
    return ex;
}

/* auth_skip and routes are decided on the normalised path, but the upstream
 * gets the raw one, and origins read "%2F", a backslash and ";" differently. A
 * prefix that let the request through (a skip entry, or a route with its
 * own upstream) must hold under every common reading, or the request is
 * refused: "/health/..%2fsecret" would be "/secret" to a server that
 * decodes before it resolves dot-segments. */
static bool readings_agree(const struct config_service *svc, struct http_slice raw, int skip,
                           const struct config_route *route)
{
    static const unsigned readings[] = {
        ROUTE_READ_DECODE,
        ROUTE_READ_PARAMS,
        ROUTE_READ_PARAMS | ROUTE_READ_DECODE,
        ROUTE_READ_PARAMS_RAW | ROUTE_READ_DECODE,
        ROUTE_READ_BACKSLASH,
        ROUTE_READ_BACKSLASH | ROUTE_READ_DECODE,
        ROUTE_READ_BACKSLASH | ROUTE_READ_PARAMS,
        ROUTE_READ_BACKSLASH | ROUTE_READ_PARAMS | ROUTE_READ_DECODE,
        ROUTE_READ_BACKSLASH | ROUTE_READ_PARAMS_RAW | ROUTE_READ_DECODE,
    };
    static __thread char path[LIMIT_HEADER_BYTES_MAX + 2];
    for (size_t i = 0; i < sizeof readings / sizeof readings[0]; i++) {
        int n = route_path_read(raw.p, raw.len, readings[i], path, sizeof path);
        if (n < 0)
            return false;
        if (skip >= 0 && !auth_skip_covers(svc->auth_skip[skip], path, (size_t)n))
            return false;
        if (route &&
            ((size_t)n < route->prefix_len || memcmp(path, route->prefix, route->prefix_len) != 0))
            return false;
    }
    return true;
}

void proxy_start(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct worker *w = c->w;
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

    char host[LIMIT_HOST_LEN + 8];
    int hl =
        req->host.len ? route_host_normalize(req->host.p, req->host.len, host, sizeof host) : -2;
    if (hl == -1) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 400, "bad request: invalid Host header", true);
        return;
    }
    /* A connection is for the names its certificate covers: a handshake for
     * a.example carrying "Host: b.example" was misdirected (RFC 9110
     * 15.5.20); the client should open a connection for b.example. */
    if (hl > 0 && c->ssl && c->strict_sni_host &&
        !tls_session_covers_host(c->ssl, host, (size_t)hl)) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 421,
                            "misdirected request: this connection's certificate does not cover "
                            "the Host",
                            true);
        return;
    }
    ex->svc = hl > 0 ? route_table_lookup(ex->cfg->routes, host, (size_t)hl) : NULL;
    if (ex->svc && ex->svc->passthrough)
        ex->svc = NULL; /* its names are TLS passthrough only; no HTTP upstream to ask */
    if (!ex->svc) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 404, "not found: no service for this host", false);
        return;
    }
    if (c->redirect_https) {
        buf_consume(c->in, req->head_len);
        respond_https_redirect(ex, host, (size_t)hl);
        return;
    }

    /* Route on the normalised path, so "/api/../admin" and "/%61pi/" cannot
     * pick a route that the path does not really name. */
    static __thread char npath[LIMIT_HEADER_BYTES_MAX + 2];
    int np = route_path_normalize(req->path.p, req->path.len, npath, sizeof npath);
    if (np < 0) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 400, "bad request: invalid path", true);
        return;
    }
    const struct config_route *route = route_match(ex->svc, npath, (size_t)np);
    ex->route = route;
    ex->up = route ? route->upstream : ex->svc->upstream;
    /* Client copies of the provider's headers go even where auth is skipped. */
    const struct config_auth *auth = ex->svc->auth;
    int skip = auth ? auth_skip_match(ex->svc, npath, (size_t)np) : -1;
    if ((skip >= 0 || route) && route_path_ambiguous(req->path.p, req->path.len) &&
        !readings_agree(ex->svc, req->path, skip, route)) {
        buf_consume(c->in, req->head_len);
        proxy_respond_local(ex, 400,
                            "bad request: ambiguous path (an encoded '/' or '\\', a '\\' or a "
                            "';' parameter would take it out of its auth_skip or route prefix "
                            "for some servers)",
                            true);
        return;
    }
    if (skip >= 0)
        auth = NULL;

    struct request_rewrite rw = {
        .client_addr = c->addr,
        .proto = c->https ? "https" : "http",
        .service_headers = ex->svc->headers,
        .nservice_headers = ex->svc->nheaders,
        .body = req->body,
        .content_length = req->content_length,
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
    rw.max_fields = LIMIT_HEADERS_COUNT - (auth ? auth->ncopy : 0);
    static __thread char target[LIMIT_HEADER_BYTES_MAX + 8];
    if (route && route->strip_prefix) {
        const char *rest = npath + route->prefix_len;
        size_t rlen = (size_t)np - route->prefix_len;
        size_t t = 0;
        if (rlen == 0 || rest[0] != '/')
            target[t++] = '/';
        memcpy(target + t, rest, rlen);
        t += rlen;
        if (req->query.len) {
            target[t++] = '?';
            memcpy(target + t, req->query.p, req->query.len);
            t += req->query.len;
        }
        rw.target.p = target;
        rw.target.len = t;
        rw.prefix.p = route->prefix;
        rw.prefix.len = route->prefix_len;
        while (rw.prefix.len && rw.prefix.p[rw.prefix.len - 1] == '/')
            rw.prefix.len--;
    }
    ex->reqhead = buf_get(&w->bufs);
    long n = ex->reqhead ? headers_build_request(req, &rw, ex->reqhead->data, BUF_SIZE) : -1;
    if (n >= 0)
        ex->reqhead_len = (size_t)n;
    bool auth_ok = n < 0 || !auth || auth_prepare(ex, auth, host, req) == 0;
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
    if (req->body == HTTP_BODY_CHUNKED && !chunked_prefix_ok(c->in)) {
        proxy_respond_local(ex, 400, "bad request: malformed chunked body", true);
        return;
    }
    if (auth) {
        auth_begin(ex); /* before any 100 Continue: a refused client sends no body */
        return;
    }
    proceed(ex);
}

/* The request may go upstream. */
static void proceed(struct exchange *ex)
{
    struct conn *c = ex->c;
    const struct http_request *req = &ex->req;
    if (req->expect_continue && req->minor >= 1 && !ex->rqb.done && buf_len(c->in) == 0 &&
        send_continue(ex) < 0)
        return;
    connect_upstream(ex, true);
}

/* A chunked body that arrived with its head is checked before anything is
 * sent upstream, so a smuggling attempt in one packet never reaches it.
 * (What arrives later is checked as it streams; a framing error then cuts
 * the upstream connection mid-body, which no server takes as a request.) */
static bool chunked_prefix_ok(const struct buf *in)
{
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    const char *p = in->data + in->rpos;
    size_t len = buf_len(in);
    while (len > 0) {
        struct iovec segs[LIMIT_BODY_IOVS];
        size_t nsegs = 0, used = 0;
        int r = chunked_decode(&d, p, len, &used, segs, &nsegs, LIMIT_BODY_IOVS);
        if (r == CHUNKED_ERROR)
            return false;
        if (r == CHUNKED_DONE || used == 0)
            return true;
        p += used;
        len -= used;
    }
    return true;
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
        fail_hard(ex, 400, "could not send 100 Continue");
        return -1;
    }
    ex->bytes_out += (uint64_t)n;
    return 0;
}

/* The upstream broke its response body. Until the response head has
 * reached the client, the client still gets a real 502; after it, only a
 * cut connection can say the response is incomplete. */
static void bad_body(struct exchange *ex, const char *what)
{
    log_msg(LOG_WARN, "service %s: upstream %s %s%s", ex->svc->name, ex->up->key, what,
            ex->resp_started ? "; client connection cut" : "; 502 sent");
    proxy_respond_local(ex, 502, "bad gateway: upstream response broken", false);
}

/* The upstream could not be reached (err: negative errno): 502 at once. */
static void connect_failed(struct exchange *ex, int err)
{
    struct worker *w = ex_worker(ex);
    metrics_count_connect_error(&w->metrics, ex->svc->metrics_slot);
    if (err == UPSTREAM_UNRESOLVED) {
        log_msg(LOG_WARN, "service %s: upstream name not resolved: \"%s\" (%s)", ex->svc->name,
                ex->up->addr.host, resolve_error(&ex->up->addr));
        proxy_respond_local(ex, 502, "bad gateway: upstream name not resolved", false);
        return;
    }
    log_msg(LOG_WARN, "service %s: cannot connect to %s: %s", ex->svc->name, ex->up->key,
            strerror(-err));
    proxy_respond_local(ex, 502, "bad gateway: upstream unreachable", false);
}

/* The TLS handshake with an https upstream failed: 502, and a log line
 * that says why (an untrusted or mismatched certificate, usually). */
static void tls_failed(struct exchange *ex, const char *why)
{
    struct worker *w = ex_worker(ex);
    metrics_count_connect_error(&w->metrics, ex->svc->metrics_slot);
    log_msg(LOG_WARN, "service %s: TLS handshake with %s failed: %s", ex->svc->name,
            ex->up->addr.text, why);
    proxy_respond_local(ex, 502, "bad gateway: upstream TLS handshake failed", false);
}

/* The upstream went away in the middle of a response body. */
static void body_cut(struct exchange *ex)
{
    bad_body(ex, "closed the connection mid-response");
}

static void connect_upstream(struct exchange *ex, bool allow_idle)
{
    struct worker *w = ex_worker(ex);
    int err = 0;
    if (ex->svc->send_proxy_protocol)
        allow_idle = false;
    struct upconn *u = upstream_acquire(w, ex->up, allow_idle, &err);
    if (!u) {
        connect_failed(ex, err);
        return;
    }
    ex->u = u;
    u->ex = ex;
    ex->upstream_spoke = false;
    ex->resp_scan = 0;
    ex->pp_len = 0;
    if (ex->svc->send_proxy_protocol) {
        const struct conn *c = ex->c;
        ex->pp_len = ex->svc->send_proxy_protocol == 1
                         ? proxyproto_build_v1(&c->peer, &c->local, ex->pp, sizeof ex->pp)
                         : proxyproto_build_v2(&c->peer, &c->local, ex->pp, sizeof ex->pp);
        if (u->ssl) {
            /* The PROXY header precedes the TLS handshake, in the clear. */
            u->prefix = ex->pp;
            u->prefix_len = ex->pp_len;
        }
    }
    if (u->connecting) {
        ex->phase = EX_CONNECTING;
        touch(ex);
        arm_timer(ex);
        return; /* on_io calls proxy_run when the socket becomes writable */
    }
    start_sending(ex);
}

static void start_sending(struct exchange *ex)
{
    ex->phase = EX_SENDING;
    /* The body is read from now on: its rate clock starts here, after any
     * connect or forward-auth wait, which are not the client's doing. */
    ex->body_start_ms = loop_now_ms(ex_worker(ex)->loop);
    ex->body_paused_ms = ex->body_paused_at = 0;
    ex->body_read = ex->c->in ? buf_len(ex->c->in) : 0;
    flow_reset(&ex->rq);
    if (ex->pp_len && !ex->u->ssl)
        flow_push(&ex->rq, ex->pp, ex->pp_len);
    flow_push(&ex->rq, ex->reqhead->data, ex->reqhead_len);
    body_produce(&ex->rqb, ex->c->in, false, &ex->rq);
    touch(ex);
    arm_timer(ex);
    proxy_run(ex);
}

static bool may_retry(const struct exchange *ex)
{
    return ex->u && ex->u->reused && !ex->retried && !ex->upstream_spoke &&
           idempotent(ex->req.method_id) &&
           (ex->req.body == HTTP_BODY_NONE ||
            (ex->req.body == HTTP_BODY_LENGTH && ex->req.content_length == 0));
}

/* The upstream failed before answering. A request sent on a reused
 * connection that the upstream closed meanwhile is retried once on a new
 * connection when it is safe to send again. */
static void upstream_failed(struct exchange *ex, const char *what)
{
    struct worker *w = ex_worker(ex);
    if (may_retry(ex)) {
        upstream_close(ex->u);
        ex->u = NULL;
        ex->retried = true;
        body_init(&ex->rqb, ex->req.body, ex->req.body, ex->req.content_length);
        connect_upstream(ex, false);
        return;
    }
    if (ex->resp_started) {
        fail_hard(ex, 502, "upstream connection failed mid-response");
        return;
    }
    metrics_count_connect_error(&w->metrics, ex->svc->metrics_slot);
    log_msg(LOG_WARN, "service %s: upstream %s %s", ex->svc->name, ex->up->key, what);
    proxy_respond_local(ex, 502, "bad gateway: upstream closed the connection", false);
}

/* ---- the response head -------------------------------------------------------------- */

static enum pump on_response_head(struct exchange *ex, size_t head_len)
{
    struct worker *w = ex_worker(ex);
    struct conn *c = ex->c;
    struct upconn *u = ex->u;
    struct http_response *resp = &ex->resp;
    ex->resp_scan = 0;

    if (resp->status < 200 && resp->status != 101) {
        /* Interim (100 Continue, 103 Early Hints): relay to HTTP/1.1 clients,
         * a few of them: an endless stream would hold the client forever. */
        if (++ex->ninterim > LIMIT_INTERIM_RESPONSES) {
            log_msg(LOG_WARN, "service %s: upstream %s sent more than %d interim (1xx) responses",
                    ex->svc->name, ex->up->key, LIMIT_INTERIM_RESPONSES);
            proxy_respond_local(ex, 502, "bad gateway: too many interim responses from upstream",
                                false);
            return PUMP_GONE;
        }
        if (ex->req.minor == 0) {
            buf_consume(u->in, head_len);
            return PUMP_PROGRESS;
        }
        struct buf *b = buf_get(&w->bufs);
        struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_NONE};
        long n = b ? headers_build_response(resp, &rw, b->data, BUF_SIZE) : -1;
        if (n < 0) {
            buf_put(&w->bufs, b);
            proxy_respond_local(ex, 502, "bad gateway: upstream response head too large", true);
            return PUMP_GONE;
        }
        ex->rs.own = b;
        flow_push(&ex->rs, b->data, (size_t)n);
        ex->rs.consumed = head_len;
        return PUMP_PROGRESS;
    }

    if (resp->status == 101 && !ex->upgrade) {
        proxy_respond_local(ex, 502, "bad gateway: upstream switched protocols unasked", true);
        return PUMP_GONE;
    }
    if (resp->status == 101) {
        const struct http_header *uh = http_find_header(resp->headers, resp->nheaders, "upgrade");
        if (!uh || !headers_upgrade_allowed(uh->value, (const char *const *)ex->svc->upgrade,
                                            ex->svc->nupgrade)) {
            proxy_respond_local(ex, 502,
                                "bad gateway: upstream switched to a protocol the service "
                                "does not allow",
                                true);
            return PUMP_GONE;
        }
    }

    ex->resp_head_done = true;
    ex->status = resp->status;
    enum http_body out = resp->body;
    if (out == HTTP_BODY_CHUNKED || out == HTTP_BODY_EOF)
        out = ex->req.minor >= 1 ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF;
    bool upgrade = resp->status == 101;
    ex->close_client = ex->close_client || !ex->req.keep_alive || c->closing || w->draining ||
                       out == HTTP_BODY_EOF || !ex->rqb.done || upgrade;
    body_init(&ex->rsb, upgrade ? HTTP_BODY_NONE : resp->body, out, resp->content_length);
    arm_timer(ex); /* from the head's timeout to the body's idle_timeout */

    struct buf *b = buf_get(&w->bufs);
    struct response_rewrite rw = {
        .close = ex->close_client && !upgrade,
        .client_minor = ex->req.minor,
        .body = out,
        .upgrade = upgrade,
    };
    struct redirect_origins ro;
    struct redirect_rewrite rr;
    if (ex->svc->rewrite_redirects && ex->host_len &&
        (http_find_header(resp->headers, resp->nheaders, "location") ||
         http_find_header(resp->headers, resp->nheaders, "refresh"))) {
        redirect_origins_of(ex, &ro, &rr);
        rw.redirect = &rr;
    }
    long n = b ? headers_build_response(resp, &rw, b->data, BUF_SIZE) : -1;
    if (n < 0) {
        buf_put(&w->bufs, b);
        proxy_respond_local(ex, 502, "bad gateway: upstream response head too large", true);
        return PUMP_GONE;
    }
    ex->rs.own = b;
    flow_push(&ex->rs, b->data, (size_t)n);
    ex->rs.consumed = head_len;
    if (upgrade) {
        ex->phase = EX_TUNNEL;
        arm_timer(ex);
        return PUMP_PROGRESS;
    }
    if (body_produce(&ex->rsb, u->in, false, &ex->rs) < 0) {
        bad_body(ex, "sent a malformed chunked body");
        return PUMP_GONE;
    }
    return PUMP_PROGRESS;
}

/* ---- pumps ---------------------------------------------------------------------------- */

/* The upstream stopped (paused) or resumed taking request bytes: a
 * paused body clock does not count against the client's body rate. */
static void body_pause(struct exchange *ex, bool paused)
{
    uint64_t now = loop_now_ms(ex_worker(ex)->loop);
    if (paused && !ex->body_paused_at)
        ex->body_paused_at = now;
    else if (!paused && ex->body_paused_at) {
        ex->body_paused_ms += now - ex->body_paused_at;
        ex->body_paused_at = 0;
    }
}

static enum pump pump_request(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct worker *w = c->w;
    enum pump progress = PUMP_IDLE;
    for (;;) {
        struct upconn *u = ex->u;
        if (ex->rq.active) {
            if (!u->writable) {
                body_pause(ex, true);
                return progress;
            }
            uint64_t wrote = 0;
            int r = flow_write((struct sink){.u = u}, &ex->rq, &wrote);
            if (wrote) {
                progress = PUMP_PROGRESS;
                touch(ex);
            }
            body_pause(ex, r == 0);
            if (r < 0) {
                if (ex->upstream_spoke) {
                    /* It answered and stopped reading (an early 413, say):
                     * the rest of the body has nowhere to go. */
                    flow_finish(w, &ex->rq, NULL);
                    ex->rqb.done = true;
                    ex->close_client = true;
                    return PUMP_PROGRESS;
                }
                upstream_failed(ex, "closed the connection while the request was sent");
                return PUMP_GONE;
            }
            if (r == 0) {
                u->writable = false;
                return progress;
            }
            ex->bytes_in += ex->rq.consumed;
            flow_finish(w, &ex->rq, c->in);
        }
        if (ex->rqb.done) {
            if (!ex->req_sent) {
                ex->req_sent = true;
                arm_timer(ex); /* now waiting on the upstream */
            }
            return progress;
        }
        if (c->in && buf_len(c->in)) {
            int r = body_produce(&ex->rqb, c->in, false, &ex->rq);
            if (r < 0) {
                proxy_respond_local(ex, 400, "bad request: malformed chunked body", true);
                return PUMP_GONE;
            }
            if (!ex->rq.active && ex->rq.consumed) {
                ex->bytes_in += ex->rq.consumed;
                flow_finish(w, &ex->rq, c->in);
            }
            if (ex->rq.active || ex->rqb.done)
                continue;
        }
        if (c->eof) {
            /* The client went away in the middle of its body. */
            ex->close_client = true;
            fail_hard(ex, 400, "client closed the connection in the middle of its request body");
            return PUMP_GONE;
        }
        if (!c->readable) {
            arm_body_timer(ex);
            return progress;
        }
        long n = conn_read(c);
        if (n > 0) {
            ex->body_read += (uint64_t)n;
            progress = PUMP_PROGRESS;
            touch(ex);
        } else if (n == 0 && !c->eof) {
            arm_body_timer(ex);
            return progress;
        }
    }
}

#define SPLICE_MIN_BODY   (256u << 10) /* smaller bodies are not worth a pipe */
#define SPLICE_PIPE_BYTES (256u << 10) /* pipe capacity asked for; 64 KiB if refused */

/* Whether the rest of the response body can bypass user space: a
 * Content-Length body sent on as it is, to a client without TLS, with no
 * body bytes already read into the buffer. */
static bool splice_eligible(const struct exchange *ex)
{
    const struct upconn *u = ex->u;
    return ex->rsb.in == HTTP_BODY_LENGTH && ex->rsb.out == HTTP_BODY_LENGTH && !ex->rsb.done &&
           !ex->c->ssl && !u->ssl && !ex->rs.active && (!u->in || buf_len(u->in) == 0) &&
           (ex->pipe[0] >= 0 || ex->rsb.remaining >= SPLICE_MIN_BODY);
}

/* Move body bytes upstream -> pipe -> client. Returns PUMP_GONE when the
 * exchange ended badly, else whether anything moved. */
static enum pump splice_body(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct upconn *u = ex->u;
    enum pump progress = PUMP_IDLE;
    if (ex->pipe[0] < 0) {
        if (pipe2(ex->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
            ex->pipe[0] = ex->pipe[1] = -1;
            return PUMP_IDLE; /* no pipe: the copying path takes over */
        }
        int sz = fcntl(ex->pipe[1], F_SETPIPE_SZ, (int)SPLICE_PIPE_BYTES);
        ex->pipe_cap = sz > 0 ? (size_t)sz : 65536;
    }
    for (;;) {
        if (ex->piped && c->writable) {
            ssize_t n = splice(ex->pipe[0], NULL, c->io.fd, NULL, ex->piped,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                ex->piped -= (size_t)n;
                ex->bytes_out += (uint64_t)n;
                ex->resp_started = true;
                progress = PUMP_PROGRESS;
                touch(ex);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN) {
                fail_hard(ex, 499, "client connection failed while the response was sent");
                return PUMP_GONE;
            }
            c->writable = false;
            arm_timer(ex);
        }
        if (ex->rsb.remaining && u->readable && ex->piped < ex->pipe_cap) {
            size_t want = ex->pipe_cap - ex->piped;
            if (want > ex->rsb.remaining)
                want = (size_t)ex->rsb.remaining;
            ssize_t n =
                splice(u->io.fd, NULL, ex->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                ex->piped += (size_t)n;
                ex->rsb.remaining -= (uint64_t)n;
                progress = PUMP_PROGRESS;
                touch(ex);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0 || errno != EAGAIN) {
                body_cut(ex);
                return PUMP_GONE;
            }
            if (ex->piped == 0) /* else the pipe may be what is full */
                u->readable = false;
        }
        if (ex->rsb.remaining == 0 && ex->piped == 0) {
            ex->rsb.done = true;
            return PUMP_PROGRESS;
        }
        return progress;
    }
}

static enum pump pump_response(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct worker *w = c->w;
    enum pump progress = PUMP_IDLE;
    for (;;) {
        struct upconn *u = ex->u;
        if (ex->rs.active) {
            if (!c->writable)
                return progress;
            uint64_t wrote = 0;
            int r = flow_write((struct sink){.c = c}, &ex->rs, &wrote);
            if (wrote) {
                ex->bytes_out += wrote;
                /* Whole interim responses (1xx) may still be followed by
                 * portico's own final answer; anything else may not. */
                if (ex->resp_head_done || r != 1)
                    ex->resp_started = true;
                progress = PUMP_PROGRESS;
                touch(ex);
            }
            if (r < 0) {
                fail_hard(ex, 499, "client connection failed while the response was sent");
                return PUMP_GONE;
            }
            if (r == 0) {
                c->writable = false;
                arm_timer(ex);
                return progress;
            }
            flow_finish(w, &ex->rs, u ? u->in : NULL);
        }
        if (ex->phase == EX_TUNNEL)
            return PUMP_PROGRESS;
        if (ex->phase == EX_LOCAL || (ex->resp_head_done && ex->rsb.done)) {
            if (ex->phase == EX_SENDING && !ex->req_sent && !ex->close_client)
                return progress; /* the request is still going up */
            finish(ex);
            return PUMP_GONE;
        }
        if (ex->resp_head_done && splice_eligible(ex)) {
            enum pump p = splice_body(ex);
            if (p == PUMP_GONE)
                return p;
            if (p == PUMP_PROGRESS) {
                progress = PUMP_PROGRESS;
                continue;
            }
            if (ex->pipe[0] >= 0)
                return progress; /* waiting on one of the sockets */
        }
        if (u->in && buf_len(u->in)) {
            if (!ex->resp_head_done) {
                struct http1_limits lim = {LIMIT_RESPONSE_HEAD_BYTES, LIMIT_RESPONSE_HEAD_BYTES};
                long end =
                    http1_find_head_end(buf_rptr(u->in), buf_len(u->in), &ex->resp_scan, &lim);
                if (end < 0) {
                    proxy_respond_local(ex, 502, "bad gateway: upstream response head too large",
                                        false);
                    return PUMP_GONE;
                }
                if (end > 0) {
                    long r = http1_parse_response(buf_rptr(u->in), (size_t)end, ex->req.method_id,
                                                  &ex->resp);
                    if (r < 0) {
                        log_msg(LOG_WARN, "service %s: malformed response from %s", ex->svc->name,
                                ex->up->key);
                        proxy_respond_local(ex, 502, "bad gateway: malformed upstream response",
                                            false);
                        return PUMP_GONE;
                    }
                    enum pump p = on_response_head(ex, (size_t)end);
                    if (p == PUMP_GONE)
                        return p;
                    progress = PUMP_PROGRESS;
                    continue;
                }
            } else {
                int r = body_produce(&ex->rsb, u->in, false, &ex->rs);
                if (r < 0) {
                    bad_body(ex, "sent a malformed chunked body");
                    return PUMP_GONE;
                }
                if (!ex->rs.active && ex->rs.consumed)
                    flow_finish(w, &ex->rs, u->in);
                if (ex->rs.active || ex->rsb.done)
                    continue;
            }
        }
        if (u->eof) {
            if (!ex->resp_head_done) {
                upstream_failed(ex, "closed the connection before answering");
                return PUMP_GONE;
            }
            if (ex->rsb.in == HTTP_BODY_EOF) {
                body_produce(&ex->rsb, u->in, true, &ex->rs);
                continue;
            }
            body_cut(ex);
            return PUMP_GONE;
        }
        if (!u->readable)
            return progress;
        long n = upstream_read(u, !ex->rs.active);
        if (n > 0) {
            ex->upstream_spoke = true;
            progress = PUMP_PROGRESS;
            touch(ex);
        } else if (n == 0 && !u->eof) {
            return progress;
        }
    }
}

/* One direction of a tunnel: src bytes to dst, then propagate its EOF. */
static enum pump relay(struct exchange *ex, bool up_to_client)
{
    struct conn *c = ex->c;
    struct worker *w = c->w;
    struct upconn *u = ex->u;
    struct flow *f = up_to_client ? &ex->rs : &ex->rq;
    bool *src_eof = up_to_client ? &ex->tunnel_u_eof : &ex->tunnel_c_eof;
    bool *shut = up_to_client ? &ex->tunnel_c_shut : &ex->tunnel_u_shut;
    enum pump progress = PUMP_IDLE;
    for (;;) {
        struct buf *src = up_to_client ? u->in : c->in;
        if (f->active) {
            bool *writable = up_to_client ? &c->writable : &u->writable;
            if (!*writable)
                return progress;
            uint64_t wrote = 0;
            struct sink to = {.c = up_to_client ? c : NULL, .u = up_to_client ? NULL : u};
            int r = flow_write(to, f, &wrote);
            if (wrote) {
                if (up_to_client) {
                    ex->bytes_out += wrote;
                    ex->resp_started = true;
                }
                progress = PUMP_PROGRESS;
                touch(ex);
            }
            if (r < 0)
                return PUMP_GONE;
            if (r == 0) {
                *writable = false;
                return progress;
            }
            if (!up_to_client)
                ex->bytes_in += f->consumed;
            flow_finish(w, f, src);
        }
        if (src && buf_len(src)) {
            flow_push(f, buf_rptr(src), buf_len(src));
            f->consumed = buf_len(src);
            continue;
        }
        if (*src_eof) {
            if (!*shut) {
                if (up_to_client)
                    conn_shutdown_write(c);
                else
                    upstream_shutdown_write(u);
                *shut = true;
                progress = PUMP_PROGRESS;
            }
            return progress;
        }
        long n;
        if (up_to_client) {
            if (!u->readable)
                return progress;
            n = upstream_read(u, true);
            if (n < 0)
                *src_eof = true;
        } else {
            if (!c->readable)
                return progress;
            n = conn_read(c);
            if (n < 0)
                *src_eof = true;
        }
        if (n > 0) {
            progress = PUMP_PROGRESS;
            touch(ex);
        } else if (n == 0) {
            return progress;
        }
    }
}

static void run_tunnel(struct exchange *ex)
{
    for (;;) {
        enum pump a = relay(ex, true);
        enum pump b = a == PUMP_GONE ? PUMP_GONE : relay(ex, false);
        if (a == PUMP_GONE || b == PUMP_GONE) {
            fail_hard(ex, 101, NULL);
            return;
        }
        if (ex->tunnel_c_shut && ex->tunnel_u_shut) {
            /* Both sides said all they had to say. */
            ex->close_client = true;
            proxy_abort(ex);
            log_and_count(ex);
            struct conn *c = ex->c;
            proxy_release(ex);
            conn_close(c);
            return;
        }
        if (a == PUMP_IDLE && b == PUMP_IDLE)
            return;
    }
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
    fail_hard(ex, 499, "client closed the connection before the response was complete");
    return true;
}

void proxy_run(struct exchange *ex)
{
    if (client_gone(ex))
        return;
    if (ex->phase == EX_AUTH) {
        auth_pump(ex);
        return;
    }
    if (ex->phase == EX_CONNECTING) {
        const char *why;
        int err = upstream_connect_result(ex->u, &why);
        if (err == -EINPROGRESS)
            return;
        if (err == -EPROTO && why) {
            tls_failed(ex, why);
            return;
        }
        if (err < 0) {
            connect_failed(ex, err);
            return;
        }
        start_sending(ex);
        return;
    }
    if (ex->phase == EX_TUNNEL) {
        /* The 101 head goes out first, through the response pump. */
        if (ex->rs.own) {
            enum pump p = pump_response(ex);
            if (p == PUMP_GONE || ex->rs.active)
                return;
        }
        run_tunnel(ex);
        return;
    }
    for (;;) {
        enum pump a = PUMP_IDLE;
        if (ex->phase == EX_SENDING) {
            a = pump_request(ex);
            if (a == PUMP_GONE)
                return;
        }
        enum pump b = pump_response(ex);
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
static void arm_timer(struct exchange *ex)
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
static void arm_body_timer(struct exchange *ex)
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
        fail_hard(ex, 408, "client sent its request body too slowly");
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
    uint64_t idle = on == WAIT_AUTH ? (now_us() - ex->auth_start_us) / 1000
                                    : loop_now_ms(w->loop) - ex->c->last_activity;
    if (limit == 0)
        return; /* armed for an earlier wait; this one has no limit */
    if (idle < limit) {
        loop_timer_arm(w->loop, &ex->c->timer, limit - idle);
        return;
    }
    switch (on) {
    case WAIT_AUTH:
        auth_error(ex, 504, "no answer in time");
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
            fail_hard(ex, 504, "upstream did not answer in time (timeout)");
        else
            proxy_respond_local(ex, 504, "gateway timeout: upstream did not answer in time", false);
        return;
    case WAIT_UPSTREAM_BODY:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN,
                "service %s: upstream %s was silent for %ums in the middle of a response "
                "(idle_timeout); response cut",
                ex->svc->name, ex->up->key, ex->svc->idle_timeout_ms);
        fail_hard(ex, 504, "upstream went silent in the middle of the response (idle_timeout)");
        return;
    case WAIT_CLIENT_BODY: /* handled above */
    case WAIT_CLIENT_WRITE:
    case WAIT_TUNNEL:
        fail_hard(ex, ex->status ? ex->status : 408,
                  on == WAIT_TUNNEL ? "tunnel idle (tunnel_timeout)"
                                    : "client not reading (send_timeout)");
        return;
    }
}
