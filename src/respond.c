/* respond.c - portico's own answers on an exchange (404, 400, 502, ...),
 * the https redirect, and the origins an upstream's redirects are
 * rewritten from. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "exchange_int.h"
#include "headers.h"
#include "upstream.h"
#include "worker.h"

enum ex_result respond_send(struct exchange *ex, struct buf *b, size_t len)
{
    struct worker *w = ex_worker(ex);
    if (ex->rs.own)
        buf_put(&w->bufs, ex->rs.own);
    flow_reset(&ex->rs);
    ex->rs.own = b;
    flow_push(&ex->rs, b->data, len);
    ex->rsb.done = true;
    ex_set_state(ex, EX_LOCAL);
    return ex_run(ex);
}

enum ex_result respond_local(struct exchange *ex, int status, const char *body, bool close,
                             const char *extra)
{
    struct worker *w = ex_worker(ex);
    /* A copy: body may be built on the caller's stack, the log comes later. */
    snprintf(ex->reason_buf, sizeof ex->reason_buf, "%s", body);
    body = ex->reason_buf;
    /* Records of an unfinished response on their way cannot be taken back. */
    if (ex->resp_started || sock_output_pending(&ex->c->s))
        return ex_fail_hard(ex, status, body);
    if (ex->u) {
        upstream_close(ex->u);
        ex->u = NULL;
    }
    if (ex->rs.own)
        buf_put(&w->bufs, ex->rs.own);
    flow_reset(&ex->rs);
    ex->rs.own = NULL;
    ex->status = status;
    ex->reason = body;
    /* Unread request bytes would be taken for the next request: close. */
    if (close || !ex->rqb.done || w->draining || conn_closing(ex->c) || !ex->req.keep_alive)
        ex->close_client = true;
    struct buf *b = buf_get(&w->bufs);
    if (!b)
        return ex_fail_hard(ex, status, "out of buffers");
    size_t blen = strlen(body);
    bool head = ex->method[0] && ex->req.method_id == METHOD_HEAD;
    int n = snprintf(b->data, BUF_SIZE,
                     "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n%s",
                     status, http_status_reason(status), extra ? extra : "", blen + 1,
                     ex->close_client ? "Connection: close\r\n"
                                      : (ex->req.minor == 0 ? "Connection: keep-alive\r\n" : ""),
                     head ? "" : body);
    if (n < 0 || n >= BUF_SIZE - 1) {
        buf_put(&w->bufs, b);
        return ex_fail_hard(ex, status, body);
    }
    if (!head)
        b->data[n++] = '\n';
    return respond_send(ex, b, (size_t)n);
}

enum ex_result ex_respond(struct exchange *ex, int status, const char *body, bool close)
{
    return respond_local(ex, status, body, close, NULL);
}

enum ex_result proxy_respond_local(struct exchange *ex, int status, const char *body, bool close)
{
    return respond_local(ex, status, body, close, NULL);
}

void respond_redirect_origins(const struct exchange *ex, struct redirect_origins *ro,
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
    rr->scheme = conn_https(ex->c) ? "https" : "http";
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
enum ex_result respond_https_redirect(struct exchange *ex, const char *host, size_t hlen)
{
    struct conn *c = ex->c;
    enum http1_method id = ex->req.method_id;
    int status = id == METHOD_GET || id == METHOD_HEAD ? 301 : 308;
    char port[8] = "";
    uint16_t p = conn_https_port(c);
    if (p && p != 443)
        snprintf(port, sizeof port, ":%u", (unsigned)p);
    /* The path and query as sent (origin-form even for an absolute-form
     * request); the Host as routed, lower-case and without its port. */
    struct http_slice t = ex->req.path, q = ex->req.query;
    static __thread char location[LIMIT_HEADER_BYTES_MAX + LIMIT_HOST_LEN + 32];
    int n = snprintf(location, sizeof location, "Location: https://%.*s%s%.*s%s%.*s\r\n", (int)hlen,
                     host, port, (int)t.len, t.p, q.len ? "?" : "", (int)q.len, q.p);
    if (n < 0 || (size_t)n >= sizeof location)
        return ex_respond(ex, 414, "URI too long: no room for the https redirect", true);
    return respond_local(ex, status, "redirect: this name is served over https", false, location);
}
