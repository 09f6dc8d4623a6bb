/* authreq.c - the forward-auth subrequest of an exchange: ask the
 * provider on a pooled connection (or the decision cache), read its
 * answer, and let the request through, redirect or refuse it. The pure
 * half (building the subrequest, judging the answer) is in auth.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "exchange_int.h"
#include "log.h"
#include "metrics.h"
#include "resolve.h"
#include "upstream.h"
#include "worker.h"

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
    t->proto = conn_https(ex->c) ? "https" : "http";
    t->host = ex->auth_host;
    t->port = ex->auth_port;
    t->uri.p = uri;
    t->uri.len = end ? (size_t)(end - uri) : 1;
    t->client = ex_client(ex);
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
int authreq_prepare(struct exchange *ex, const struct config_auth *a, const char *host,
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

static void auth_release_provider(struct exchange *ex, bool reusable)
{
    if (!ex->u)
        return;
    ex->u->ex = NULL;
    upstream_release(ex->u, reusable);
    ex->u = NULL;
}

/* The provider failed: fail closed, nothing reaches the upstream. */
enum ex_result authreq_error(struct exchange *ex, int status, const char *why)
{
    struct worker *w = ex_worker(ex);
    if (ex->u) {
        upstream_close(ex->u);
        ex->u = NULL;
    }
    log_msg(LOG_WARN, "service %s: auth provider %s (%s): %s; request refused", ex->svc->name,
            ex->auth->name, ex->auth->url, why);
    metrics_count_auth(&w->metrics, ex->svc->metrics_slot, AUTH_ERROR,
                       (int64_t)(ex_now_us() - ex->auth_start_us));
    return ex_respond(ex, status,
                      status == 504 ? "gateway timeout: the auth provider did not answer"
                                    : "bad gateway: the auth provider failed",
                      false);
}

/* A pooled connection the provider had closed: try once more on a new one. */
EX_MUST_USE static enum ex_result auth_lost(struct exchange *ex, const char *why)
{
    if (ex->u && ex->u->reused && !ex->auth_retried && !ex->auth_head_len) {
        upstream_close(ex->u);
        ex->u = NULL;
        ex->auth_retried = true;
        return authreq_begin(ex);
    }
    return authreq_error(ex, 502, why);
}

/* The first len bytes of the upstream head, built in a small buffer, into
 * a large one (where every head within the limits fits). 0, or -1 when out
 * of memory. */
static int grow_reqhead(struct exchange *ex, size_t len)
{
    struct buf_pool *bufs = &ex_worker(ex)->bufs;
    struct buf *big = buf_get(bufs);
    if (!big)
        return -1;
    memcpy(big->data, ex->reqhead->data, len);
    buf_put(bufs, ex->reqhead);
    ex->reqhead = big;
    return 0;
}

/* A 2xx: the copied headers go into the upstream head, before its blank line. */
EX_MUST_USE static enum ex_result auth_allow(struct exchange *ex, const struct auth_verdict *v)
{
    size_t len = ex->reqhead_len - 2; /* drop the final CRLF, append, put it back */
    for (size_t i = 0; i < v->ncopy; i++) {
        size_t nl = strlen(v->copy[i].name);
        size_t need = len + nl + 2 + v->copy[i].len + 2 + 2;
        if (need > ex->reqhead->cap && need <= BUF_SIZE && grow_reqhead(ex, len) < 0)
            return ex_respond(ex, 503, "service unavailable: out of buffers", true);
        char *head = ex->reqhead->data;
        if (need > ex->reqhead->cap)
            return ex_respond(ex, 431,
                              "request header fields too large with the headers the auth "
                              "provider adds",
                              true);
        memcpy(head + len, v->copy[i].name, nl);
        len += nl;
        memcpy(head + len, ": ", 2);
        len += 2;
        memcpy(head + len, v->copy[i].value, v->copy[i].len);
        len += v->copy[i].len;
        memcpy(head + len, "\r\n", 2);
        len += 2;
    }
    memcpy(ex->reqhead->data + len, "\r\n", 2);
    ex->reqhead_len = len + 2;
    if (v->user) {
        /* For the access log: a logfmt-safe copy. */
        size_t n = 0;
        for (const char *p = v->user; *p && n < sizeof ex->user - 1; p++)
            ex->user[n++] =
                (*p > ' ' && *p < 0x7f && *p != '"' && *p != '\\' && *p != '=') ? *p : '?';
        ex->user[n] = '\0';
    }
    ex_set_state(ex, EX_ROUTING);
    return ex_proceed(ex);
}

EX_MUST_USE static enum ex_result auth_done(struct exchange *ex, const char *body, size_t blen,
                                            bool reusable)
{
    struct worker *w = ex_worker(ex);
    const struct config_auth *a = ex->auth;
    int64_t usec = (int64_t)(ex_now_us() - ex->auth_start_us);
    static __thread struct auth_verdict v;
    struct auth_target t;
    auth_target_of(ex, &t);
    bool head = ex->req.method_id == METHOD_HEAD;
    bool close = !ex->rqb.done || w->draining || conn_closing(ex->c) || !ex->req.keep_alive ||
                 ex->req.minor == 0;
    struct buf *out = buf_get(&w->bufs);
    size_t outlen = 0;
    if (!out)
        return authreq_error(ex, 502, "out of buffers");
    auth_judge(a, &ex->resp, body, blen, &t, head, close, &v, out->data, BUF_SIZE, &outlen);
    auth_release_provider(ex, reusable);
    if (v.result == AUTH_ERROR) {
        buf_put(&w->bufs, out);
        char why[128];
        snprintf(why, sizeof why, "%s (status %d)", v.error, ex->resp.status);
        return authreq_error(ex, v.status, why);
    }
    metrics_count_auth(&w->metrics, ex->svc->metrics_slot, (int)v.result, usec);
    if (v.result == AUTH_ALLOWED) {
        buf_put(&w->bufs, out);
        if (a->cache_ms) {
            struct auth_cache *cache = auth_cache_of(w, ex->cfg, a);
            if (cache)
                auth_cache_put(cache, ex->auth_digest, loop_now_ms(w->loop) + a->cache_ms, &v);
        }
        return auth_allow(ex, &v);
    }
    /* Redirected or denied: the provider's answer (or its translation) goes
     * to the client, and nothing to the upstream. */
    ex->status = v.status;
    ex->close_client = close;
    return respond_send(ex, out, outlen);
}

/* The provider's answer so far: PUMP_IDLE while more is needed; else the
 * exchange has moved on (decided, failed or retried) and may have ended. */
EX_MUST_USE static enum pump auth_parse(struct exchange *ex)
{
    struct upconn *u = ex->u;
    size_t have = u->s.in ? buf_len(u->s.in) : 0;
    const char *d = have ? u->s.in->data + u->s.in->rpos : "";
    if (!ex->auth_head_len) {
        struct http1_limits lim = {LIMIT_AUTH_HEAD_BYTES, LIMIT_AUTH_HEAD_BYTES};
        long hl = have ? http1_find_head_end(d, have, &ex->auth_scan, &lim) : 0;
        if (hl < 0)
            return ex_pump_result(authreq_error(ex, 502, "its answer's head is too large"));
        if (hl == 0) {
            if (!u->s.eof)
                return PUMP_IDLE;
            if (have == 0)
                return ex_pump_result(auth_lost(ex, "it closed the connection without answering"));
            return ex_pump_result(
                authreq_error(ex, 502, "it closed the connection in the middle of its answer"));
        }
        if (http1_parse_response(d, (size_t)hl, METHOD_GET, &ex->resp) < 0 || ex->resp.status < 200)
            return ex_pump_result(authreq_error(ex, 502, "its answer is malformed"));
        ex->auth_head_len = (size_t)hl;
    }
    const char *body = d + ex->auth_head_len;
    size_t avail = have - ex->auth_head_len, blen = 0, wire = 0;
    static __thread char dechunked[LIMIT_AUTH_BODY_BYTES];
    switch (ex->resp.body) {
    case HTTP_BODY_NONE:
        break;
    case HTTP_BODY_LENGTH:
        if (ex->resp.content_length > LIMIT_AUTH_BODY_BYTES)
            return ex_pump_result(authreq_error(ex, 502, "its answer's body is too large"));
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
            if (r == CHUNKED_ERROR)
                return ex_pump_result(
                    authreq_error(ex, 502, "its answer's chunked body is malformed"));
            for (size_t i = 0; i < nsegs; i++) {
                if (blen + segs[i].iov_len > sizeof dechunked)
                    return ex_pump_result(authreq_error(ex, 502, "its answer's body is too large"));
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
        if (avail > LIMIT_AUTH_BODY_BYTES)
            return ex_pump_result(authreq_error(ex, 502, "its answer's body is too large"));
        if (!u->s.eof)
            return PUMP_IDLE;
        blen = wire = avail;
        break;
    }
    bool reusable = ex->resp.keep_alive && ex->resp.body != HTTP_BODY_EOF && wire == avail;
    /* The bytes stay where they are until auth_done has judged them. */
    buf_consume(u->s.in, ex->auth_head_len + wire);
    return ex_pump_result(auth_done(ex, body, blen, reusable));
more:
    if (u->s.eof)
        return ex_pump_result(
            authreq_error(ex, 502, "it closed the connection in the middle of its answer"));
    return PUMP_IDLE;
}

enum ex_result authreq_pump(struct exchange *ex)
{
    struct upconn *u = ex->u;
    if (u->connecting) {
        const char *why;
        int err = upstream_connect_result(u, &why);
        if (err == -EINPROGRESS)
            return EX_CONTINUE;
        if (err < 0)
            return authreq_error(ex, 502, why ? why : strerror(-err));
        ex_touch(ex);
    }
    if (ex->authreq_off < ex->authreq_len) {
        if (!u->s.writable)
            return EX_CONTINUE;
        int r = sock_write_rest(&u->s, ex->authreq->data, ex->authreq_len, &ex->authreq_off, false);
        if (r < 0)
            return auth_lost(ex, "the connection broke while sending the subrequest");
        if (r == 0)
            return EX_CONTINUE;
    }
    for (;;) {
        enum pump p = auth_parse(ex);
        if (p != PUMP_IDLE)
            return pump_ex_result(p);
        long n = h1client_read(u, true);
        if (n > 0)
            continue;
        if (n == 0 && u->s.in && buf_space(u->s.in) == 0)
            return authreq_error(ex, 502, "its answer is too large");
        if (n == 0)
            return EX_CONTINUE;
        /* EOF or error: auth_parse decides with u->s.eof set. */
        p = auth_parse(ex);
        if (p != PUMP_IDLE)
            return pump_ex_result(p);
        return authreq_error(ex, 502, "the connection broke");
    }
}

enum ex_result authreq_begin(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    const struct config_auth *a = ex->auth;
    if (a->cache_ms && !ex->auth_retried) {
        struct auth_cache *cache = auth_cache_of(w, ex->cfg, a);
        static __thread struct auth_verdict v;
        if (cache && auth_cache_get(cache, ex->auth_digest, loop_now_ms(w->loop), &v)) {
            metrics_count_auth(&w->metrics, ex->svc->metrics_slot, AUTH_ALLOWED, -1);
            return auth_allow(ex, &v);
        }
    }
    if (!ex->auth_retried)
        ex->auth_start_us = ex_now_us();
    int err = 0;
    struct upconn *u =
        upstream_acquire(w, &a->up, ex->auth_retried ? UPSTREAM_NEW : UPSTREAM_IDLE, &err);
    if (!u) {
        if (err == UPSTREAM_UNRESOLVED) {
            char why[300];
            snprintf(why, sizeof why, "auth provider name not resolved: \"%s\" (%s)",
                     a->up.addr.host, resolve_error(&a->up.addr));
            return authreq_error(ex, 502, why);
        }
        return authreq_error(ex, 502, strerror(-err));
    }
    ex_attach_upstream(ex, u);
    ex->authreq_off = 0;
    ex->auth_scan = 0;
    ex->auth_head_len = 0;
    ex_touch(ex);
    ex_set_state(ex, EX_AUTH);
    return authreq_pump(ex);
}
