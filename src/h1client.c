/* h1client.c - the upstream side of HTTP/1 for an exchange: connect (and
 * retry a reused connection the upstream had closed), send the request
 * head and body, read and parse the response head, pump the response. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "exchange_int.h"
#include "headers.h"
#include "log.h"
#include "metrics.h"
#include "resolve.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

/* Read from an upstream into its buffer. Bytes read, 0 on EAGAIN (or no
 * room), -1 on EOF or error. */
long h1client_read(struct upconn *u, bool may_compact)
{
    return sock_read(&u->s, &u->w->bufs, may_compact);
}

static bool idempotent(enum http1_method method_id)
{
    switch (method_id) {
    case METHOD_GET:
    case METHOD_HEAD:
    case METHOD_PUT:
    case METHOD_DELETE:
    case METHOD_OPTIONS:
    case METHOD_TRACE:
        return true;
    case METHOD_OTHER:
    case METHOD_POST:
    case METHOD_CONNECT:
    case METHOD_PATCH:
        break;
    }
    return false;
}

/* The upstream broke its response body. Until the response head has
 * reached the client, the client still gets a real 502; after it, only a
 * cut connection can say the response is incomplete. */
enum ex_result h1client_bad_body(struct exchange *ex, const char *what)
{
    log_msg(LOG_WARN, "service %s: upstream %s %s%s", ex->svc->name, ex->up->key, what,
            ex->resp_started ? "; client connection cut" : "; 502 sent");
    return ex_respond(ex, 502, "bad gateway: upstream response broken", false);
}

/* The upstream could not be reached (err: negative errno): 502 at once. */
enum ex_result h1client_connect_failed(struct exchange *ex, int err)
{
    struct worker *w = ex_worker(ex);
    metrics_count_connect_error(&w->metrics, ex->svc->metrics_slot);
    if (err == UPSTREAM_UNRESOLVED) {
        log_msg(LOG_WARN, "service %s: upstream name not resolved: \"%s\" (%s)", ex->svc->name,
                ex->up->addr.host, resolve_error(&ex->up->addr));
        return ex_respond(ex, 502, "bad gateway: upstream name not resolved", false);
    }
    log_msg(LOG_WARN, "service %s: cannot connect to %s: %s", ex->svc->name, ex->up->key,
            strerror(-err));
    return ex_respond(ex, 502, "bad gateway: upstream unreachable", false);
}

/* The TLS handshake with an https upstream failed: 502, and a log line
 * that says why (an untrusted or mismatched certificate, usually). */
enum ex_result h1client_tls_failed(struct exchange *ex, const char *why)
{
    struct worker *w = ex_worker(ex);
    metrics_count_connect_error(&w->metrics, ex->svc->metrics_slot);
    log_msg(LOG_WARN, "service %s: TLS handshake with %s failed: %s", ex->svc->name,
            ex->up->addr.text, why);
    return ex_respond(ex, 502, "bad gateway: upstream TLS handshake failed", false);
}

/* The upstream went away in the middle of a response body. */
enum ex_result h1client_body_cut(struct exchange *ex)
{
    return h1client_bad_body(ex, "closed the connection mid-response");
}

/* Can the request be sent once more on a new connection if the reused
 * one it went out on turns out to have been closed by the upstream? Only
 * an idempotent one with no body to send again (RFC 9110 section 9.2.2). */
static bool resendable(const struct exchange *ex)
{
    return idempotent(ex->req.method_id) &&
           (ex->req.body == HTTP_BODY_NONE ||
            (ex->req.body == HTTP_BODY_LENGTH && ex->req.content_length == 0));
}

enum ex_result h1client_connect(struct exchange *ex, bool allow_idle)
{
    struct worker *w = ex_worker(ex);
    int err = 0;
    enum upstream_pick pick = UPSTREAM_NEW;
    if (allow_idle && !ex->svc->send_proxy_protocol)
        pick = resendable(ex) ? UPSTREAM_IDLE : UPSTREAM_IDLE_CHECKED;
    struct upconn *u = upstream_acquire(w, ex->up, pick, &err);
    if (!u) {
        return h1client_connect_failed(ex, err);
    }
    ex_attach_upstream(ex, u);
    ex->upstream_spoke = false;
    ex->resp_scan = 0;
    ex->pp_len = 0;
    if (ex->svc->send_proxy_protocol) {
        const struct conn *c = ex->c;
        struct sockaddr_storage local;
        conn_local(c, &local);
        ex->pp_len = ex->svc->send_proxy_protocol == 1
                         ? proxyproto_build_v1(conn_peer(c), &local, ex->pp, sizeof ex->pp)
                         : proxyproto_build_v2(conn_peer(c), &local, ex->pp, sizeof ex->pp);
        if (u->s.ssl) {
            /* The PROXY header precedes the TLS handshake, in the clear. */
            upstream_set_prefix(u, ex->pp, ex->pp_len);
        }
    }
    if (u->connecting) {
        ex_touch(ex);
        ex_set_state(ex, EX_CONNECTING);
        return EX_CONTINUE; /* on_io calls proxy_run when the socket becomes writable */
    }
    return h1client_start(ex);
}

enum ex_result h1client_start(struct exchange *ex)
{
    /* The body is read from now on: its rate clock starts here, after any
     * connect or forward-auth wait, which are not the client's doing. */
    ex->body_start_ms = loop_now_ms(ex_worker(ex)->loop);
    ex->body_paused_ms = ex->body_paused_at = 0;
    ex->body_read = ex->c->s.in ? buf_len(ex->c->s.in) : 0;
    flow_reset(&ex->rq);
    if (ex->pp_len && !ex->u->s.ssl)
        flow_push(&ex->rq, ex->pp, ex->pp_len);
    flow_push(&ex->rq, ex->reqhead->data, ex->reqhead_len);
    body_produce(&ex->rqb, ex->c->s.in, false, &ex->rq);
    ex_touch(ex);
    ex_set_state(ex, EX_SENDING);
    return ex_run(ex);
}

static bool may_retry(const struct exchange *ex)
{
    return ex->u && ex->u->reused && !ex->retried && !ex->upstream_spoke && resendable(ex);
}

/* The upstream failed before answering. A request sent on a reused
 * connection that the upstream closed meanwhile is retried once on a new
 * connection when it is safe to send again. */
EX_MUST_USE static enum ex_result upstream_failed(struct exchange *ex, const char *what)
{
    struct worker *w = ex_worker(ex);
    if (may_retry(ex)) {
        upstream_close(ex->u);
        ex->u = NULL;
        ex->retried = true;
        body_init(&ex->rqb, ex->req.body, ex->req.body, ex->req.content_length);
        return h1client_connect(ex, false);
    }
    if (ex->resp_started) {
        return ex_fail_hard(ex, 502, "upstream connection failed mid-response");
    }
    metrics_count_connect_error(&w->metrics, ex->svc->metrics_slot);
    log_msg(LOG_WARN, "service %s: upstream %s %s", ex->svc->name, ex->up->key, what);
    return ex_respond(ex, 502, "bad gateway: upstream closed the connection", false);
}

/* ---- the response head -------------------------------------------------------------- */

/* The upstream's response head, rewritten for the client, goes first in
 * the client flow, and its head_len bytes are released once it is
 * written. PUMP_PROGRESS, or what answering 502 did when it does not fit. */
EX_MUST_USE static enum pump queue_response_head(struct exchange *ex,
                                                 const struct response_rewrite *rw, size_t head_len)
{
    struct worker *w = ex_worker(ex);
    /* A page first, as for the request head (build_request_head). */
    struct buf *b = buf_get_small(&w->bufs);
    long n = b ? headers_build_response(&ex->resp, rw, b->data, b->cap) : -1;
    if (n < 0) {
        buf_put(&w->bufs, b);
        b = buf_get(&w->bufs);
        n = b ? headers_build_response(&ex->resp, rw, b->data, b->cap) : -1;
    }
    if (n < 0) {
        buf_put(&w->bufs, b);
        return ex_pump_result(
            ex_respond(ex, 502, "bad gateway: upstream response head too large", true));
    }
    ex->rs.own = b;
    flow_push(&ex->rs, b->data, (size_t)n);
    ex->rs.consumed = head_len;
    return PUMP_PROGRESS;
}

EX_MUST_USE static enum pump on_response_head(struct exchange *ex, size_t head_len)
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
            return ex_pump_result(ex_respond(
                ex, 502, "bad gateway: too many interim responses from upstream", false));
        }
        if (ex->req.minor == 0) {
            buf_consume(u->s.in, head_len);
            return PUMP_PROGRESS;
        }
        struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_NONE};
        return queue_response_head(ex, &rw, head_len);
    }

    if (resp->status == 101 && !ex->upgrade)
        return ex_pump_result(
            ex_respond(ex, 502, "bad gateway: upstream switched protocols unasked", true));
    if (resp->status == 101) {
        const struct http_header *uh = http_find_header(resp->headers, resp->nheaders, "upgrade");
        if (!uh || !headers_upgrade_allowed(uh->value, (const char *const *)ex->svc->upgrade,
                                            ex->svc->nupgrade))
            return ex_pump_result(
                ex_respond(ex, 502,
                           "bad gateway: upstream switched to a protocol the service "
                           "does not allow",
                           true));
    }

    ex->status = resp->status;
    enum http_body out = resp->body;
    if (out == HTTP_BODY_CHUNKED || out == HTTP_BODY_EOF)
        out = ex->req.minor >= 1 ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF;
    bool upgrade = resp->status == 101;
    ex->close_client = ex->close_client || !ex->req.keep_alive || conn_closing(c) || w->draining ||
                       out == HTTP_BODY_EOF || !ex->rqb.done || upgrade;
    body_init(&ex->rsb, upgrade ? HTTP_BODY_NONE : resp->body, out, resp->content_length);
    /* From the head's timeout to the body's idle_timeout. */
    ex_set_state(ex, ex->state == EX_SENDING ? EX_STREAMING : EX_RESPONDING);

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
        respond_redirect_origins(ex, &ro, &rr);
        rw.redirect = &rr;
    }
    enum pump p = queue_response_head(ex, &rw, head_len);
    if (p != PUMP_PROGRESS)
        return p;
    if (upgrade) {
        ex_set_state(ex, EX_TUNNEL);
        return PUMP_PROGRESS;
    }
    if (body_produce(&ex->rsb, u->s.in, false, &ex->rs) < 0)
        return ex_pump_result(h1client_bad_body(ex, "sent a malformed chunked body"));
    return PUMP_PROGRESS;
}

/* ---- pumps ---------------------------------------------------------------------------- */

/* Whether a body goes (or goes on) through its pipe now: a plain source,
 * a destination that is plain or whose TLS records the kernel writes
 * (kTLS: spliced bytes are encrypted on their way out), the flow written
 * (nothing of it left in OpenSSL either), nothing of the body in the
 * source's buffer. */
static bool splice_now(const struct body_splice *s, const struct body *b, const struct sock *src,
                       const struct sock *dst, const struct flow *f)
{
    if (src->ssl || (dst->ssl && !tls_kernel_send(dst->ssl)) || f->active ||
        (src->in && buf_len(src->in)))
        return false;
    return body_splice_busy(s) || body_splice_wanted(s, b);
}

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

/* The request body, client -> pipe -> upstream. */
EX_MUST_USE static enum pump splice_request(struct exchange *ex)
{
    struct sock *c = &ex->c->s, *u = &ex->u->s;
    uint64_t rd = 0, wr = 0;
    enum splice_result r = body_splice_pump(&ex->sp_req, &ex->rqb, c, u, &rd, &wr);
    if (rd) {
        ex->body_read += rd;
        ex->bytes_in += rd;
        conn_touch(ex->c);
    }
    if (rd || wr)
        ex_touch(ex);
    body_pause(ex, !u->writable && body_splice_pending(&ex->sp_req));
    switch (r) {
    case SPLICE_DONE:
    case SPLICE_HANDOFF:
        return PUMP_PROGRESS;
    case SPLICE_NO_PIPE:
        return PUMP_IDLE;
    case SPLICE_BAD_FRAMING:
        return ex_pump_result(ex_respond(ex, 400, "bad request: malformed chunked body", true));
    case SPLICE_SRC_CUT:
        ex->close_client = true;
        return ex_pump_result(ex_fail_hard(
            ex, 400, "client closed the connection in the middle of its request body"));
    case SPLICE_DST_FAIL:
        if (ex->upstream_spoke) {
            /* It answered and stopped reading (an early 413, say): the
             * rest of the body has nowhere to go. */
            ex->rqb.done = true;
            ex->close_client = true;
            return PUMP_PROGRESS;
        }
        return ex_pump_result(
            upstream_failed(ex, "closed the connection while the request was sent"));
    case SPLICE_PROGRESS:
        return PUMP_PROGRESS;
    case SPLICE_IDLE:
        break;
    }
    if (!c->readable)
        ex_arm_body_timer(ex);
    return PUMP_IDLE;
}

/* The response body, upstream -> pipe -> client. */
EX_MUST_USE static enum pump splice_response(struct exchange *ex)
{
    struct sock *c = &ex->c->s, *u = &ex->u->s;
    uint64_t rd = 0, wr = 0;
    enum splice_result r = body_splice_pump(&ex->sp_resp, &ex->rsb, u, c, &rd, &wr);
    if (wr) {
        ex->bytes_out += wr;
        ex->resp_started = true;
    }
    if (rd || wr)
        ex_touch(ex);
    switch (r) {
    case SPLICE_DONE:
    case SPLICE_HANDOFF:
        return PUMP_PROGRESS;
    case SPLICE_NO_PIPE:
        return PUMP_IDLE;
    case SPLICE_BAD_FRAMING:
        return ex_pump_result(h1client_bad_body(ex, "sent a malformed chunked body"));
    case SPLICE_SRC_CUT:
        return ex_pump_result(h1client_body_cut(ex));
    case SPLICE_DST_FAIL:
        return ex_pump_result(
            ex_fail_hard(ex, 499, "client connection failed while the response was sent"));
    case SPLICE_PROGRESS:
        return PUMP_PROGRESS;
    case SPLICE_IDLE:
        break;
    }
    if (!c->writable)
        ex_arm_timer(ex);
    return PUMP_IDLE;
}

enum pump h1client_pump_request(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct worker *w = conn_worker(c);
    enum pump progress = PUMP_IDLE;
    for (;;) {
        struct upconn *u = ex->u;
        if (ex->rq.active) {
            if (!u->s.writable) {
                body_pause(ex, true);
                return progress;
            }
            uint64_t wrote = 0;
            int r = sink_write(&u->s, &ex->rq, &wrote);
            if (wrote) {
                progress = PUMP_PROGRESS;
                ex_touch(ex);
            }
            body_pause(ex, r == 0);
            if (r < 0) {
                if (ex->upstream_spoke) {
                    /* It answered and stopped reading (an early 413, say):
                     * the rest of the body has nowhere to go. */
                    flow_finish(&w->bufs, &ex->rq, NULL);
                    ex->rqb.done = true;
                    ex->close_client = true;
                    return PUMP_PROGRESS;
                }
                return ex_pump_result(
                    upstream_failed(ex, "closed the connection while the request was sent"));
            }
            if (r == 0) {
                u->s.writable = false;
                return progress;
            }
            ex->bytes_in += ex->rq.consumed;
            flow_finish(&w->bufs, &ex->rq, c->s.in);
        }
        if (ex->rqb.done) {
            /* The whole request is upstream: now waiting on the upstream. */
            if (ex->state == EX_SENDING)
                ex_set_state(ex, EX_WAITING);
            else if (ex->state == EX_STREAMING)
                ex_set_state(ex, EX_RESPONDING);
            return progress;
        }
        if (splice_now(&ex->sp_req, &ex->rqb, &c->s, &u->s, &ex->rq)) {
            enum pump p = splice_request(ex);
            if (p != PUMP_IDLE) {
                if (pump_stopped(p))
                    return p;
                progress = PUMP_PROGRESS;
                continue;
            }
            if (!ex->sp_req.no_pipe)
                return progress; /* waiting on one of the sockets; else copied */
        }
        if (c->s.in && buf_len(c->s.in)) {
            int r = body_produce(&ex->rqb, c->s.in, false, &ex->rq);
            if (r < 0)
                return ex_pump_result(
                    ex_respond(ex, 400, "bad request: malformed chunked body", true));
            if (!ex->rq.active && ex->rq.consumed) {
                ex->bytes_in += ex->rq.consumed;
                flow_finish(&w->bufs, &ex->rq, c->s.in);
            }
            if (ex->rq.active || ex->rqb.done)
                continue;
        }
        if (c->s.eof) {
            /* The client went away in the middle of its body. */
            ex->close_client = true;
            return ex_pump_result(ex_fail_hard(
                ex, 400, "client closed the connection in the middle of its request body"));
        }
        if (!c->s.readable) {
            ex_arm_body_timer(ex);
            return progress;
        }
        long n = conn_read(c);
        if (n > 0) {
            ex->body_read += (uint64_t)n;
            progress = PUMP_PROGRESS;
            ex_touch(ex);
        } else if (n == 0 && !c->s.eof) {
            ex_arm_body_timer(ex);
            return progress;
        }
    }
}

/* A large body copied to a TLS client (OpenSSL making the records) is
 * read into a bulk buffer once the buffer it streams through is drained:
 * the body is large when its Content-Length says so, or when reads keep
 * filling a large buffer (a slow stream, server-sent events, does not). */
static void use_bulk_buffer(struct exchange *ex, struct upconn *u, struct buf_pool *bufs)
{
    const struct sock *c = &ex->c->s;
    if (!ex_resp_head_done(ex) || ex->rs.active || !u->s.in || buf_len(u->s.in) ||
        u->s.in->cap > BUF_SIZE || !c->ssl || tls_kernel_send(c->ssl))
        return;
    bool large = ex->rsb.in == HTTP_BODY_LENGTH ? ex->rsb.remaining >= LIMIT_SPLICE_MIN_BODY
                                                : ex->resp_full_reads >= 2;
    struct buf *b = large ? buf_get_bulk(bufs) : NULL;
    if (!b)
        return;
    buf_put(bufs, u->s.in);
    u->s.in = b;
}

enum pump h1client_pump_response(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct worker *w = conn_worker(c);
    enum pump progress = PUMP_IDLE;
    for (;;) {
        struct upconn *u = ex->u;
        if (ex->rs.active) {
            if (!c->s.writable)
                return progress;
            uint64_t wrote = 0;
            int r = sink_write(&c->s, &ex->rs, &wrote);
            if (wrote) {
                ex->bytes_out += wrote;
                /* Whole interim responses (1xx) may still be followed by
                 * portico's own final answer; anything else may not. */
                if (ex_resp_head_done(ex) || r != 1)
                    ex->resp_started = true;
                progress = PUMP_PROGRESS;
                ex_touch(ex);
            }
            if (r < 0)
                return ex_pump_result(
                    ex_fail_hard(ex, 499, "client connection failed while the response was sent"));
            if (r == 0) {
                c->s.writable = false;
                ex_arm_timer(ex);
                return progress;
            }
            flow_finish(&w->bufs, &ex->rs, u ? u->s.in : NULL);
        }
        if (ex->state == EX_TUNNEL)
            return PUMP_PROGRESS;
        if (ex->state == EX_LOCAL || (ex_resp_head_done(ex) && ex->rsb.done)) {
            if (ex->state == EX_STREAMING && !ex->close_client)
                return progress; /* the request is still going up */
            return ex_pump_result(ex_finish(ex));
        }
        if (ex_resp_head_done(ex) && splice_now(&ex->sp_resp, &ex->rsb, &u->s, &c->s, &ex->rs)) {
            enum pump p = splice_response(ex);
            if (p != PUMP_IDLE) {
                if (pump_stopped(p))
                    return p;
                progress = PUMP_PROGRESS;
                continue;
            }
            if (!ex->sp_resp.no_pipe)
                return progress; /* waiting on one of the sockets; else copied */
        }
        if (u->s.in && buf_len(u->s.in)) {
            if (!ex_resp_head_done(ex)) {
                struct http1_limits lim = {LIMIT_RESPONSE_HEAD_BYTES, LIMIT_RESPONSE_HEAD_BYTES};
                long end =
                    http1_find_head_end(buf_rptr(u->s.in), buf_len(u->s.in), &ex->resp_scan, &lim);
                if (end < 0)
                    return ex_pump_result(ex_respond(
                        ex, 502, "bad gateway: upstream response head too large", false));
                if (end > 0) {
                    long r = http1_parse_response(buf_rptr(u->s.in), (size_t)end, ex->req.method_id,
                                                  &ex->resp);
                    if (r < 0) {
                        log_msg(LOG_WARN, "service %s: malformed response from %s", ex->svc->name,
                                ex->up->key);
                        return ex_pump_result(
                            ex_respond(ex, 502, "bad gateway: malformed upstream response", false));
                    }
                    enum pump p = on_response_head(ex, (size_t)end);
                    if (pump_stopped(p))
                        return p;
                    progress = PUMP_PROGRESS;
                    continue;
                }
            } else {
                int r = body_produce(&ex->rsb, u->s.in, false, &ex->rs);
                if (r < 0)
                    return ex_pump_result(h1client_bad_body(ex, "sent a malformed chunked body"));
                if (!ex->rs.active && ex->rs.consumed)
                    flow_finish(&w->bufs, &ex->rs, u->s.in);
                if (ex->rs.active || ex->rsb.done)
                    continue;
            }
        }
        if (u->s.eof) {
            if (!ex_resp_head_done(ex))
                return ex_pump_result(
                    upstream_failed(ex, "closed the connection before answering"));
            if (ex->rsb.in == HTTP_BODY_EOF) {
                body_produce(&ex->rsb, u->s.in, true, &ex->rs);
                continue;
            }
            return ex_pump_result(h1client_body_cut(ex));
        }
        if (!u->s.readable)
            return progress;
        use_bulk_buffer(ex, u, &w->bufs);
        long n = h1client_read(u, !ex->rs.active);
        if (n > 0) {
            if (buf_space(u->s.in) == 0 && u->s.in->cap == BUF_SIZE && ex->resp_full_reads < 2)
                ex->resp_full_reads++;
            ex->upstream_spoke = true;
            progress = PUMP_PROGRESS;
            ex_touch(ex);
        } else if (n == 0 && !u->s.eof) {
            return progress;
        }
    }
}
