/* headers.c - rewriting message heads as they cross the proxy (see headers.h). */
#include "headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static char alias(char c)
{
    c = lower(c);
    return c == '_' ? '-' : c;
}

bool headers_name_alias_eq(struct http_slice a, const char *b)
{
    size_t n = strlen(b);
    if (a.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (alias(a.p[i]) != alias(b[i]))
            return false;
    return true;
}

static bool alias_prefix(struct http_slice a, const char *prefix)
{
    size_t n = strlen(prefix);
    if (a.len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (alias(a.p[i]) != alias(prefix[i]))
            return false;
    return true;
}

bool headers_is_identity(struct http_slice name)
{
    return alias_prefix(name, "x-tailscale-") || alias_prefix(name, "tailscale-user-") ||
           alias_prefix(name, "remote-");
}

bool headers_is_hop_by_hop(struct http_slice n)
{
    static const char *const names[] = {"connection", "keep-alive",        "proxy-connection", "te",
                                        "trailer",    "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (http_slice_eq(n, names[i]))
            return true;
    return false;
}

/* Is name listed as a token in any of the Connection headers? */
static bool named_by_connection(const struct http_header *h, size_t nh, struct http_slice name)
{
    for (size_t i = 0; i < nh; i++) {
        if (!http_slice_eq(h[i].name, "connection"))
            continue;
        const char *p = h[i].value.p, *end = p + h[i].value.len;
        struct http_slice tok;
        while (http_next_token(&p, end, &tok))
            if (tok.len == name.len && strncasecmp(tok.p, name.p, name.len) == 0)
                return true;
    }
    return false;
}

struct out {
    char *p;
    size_t len, cap;
    bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->over || o->cap - o->len < n) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_header(struct out *o, const char *name, size_t nlen, const char *value, size_t vlen)
{
    put(o, name, nlen);
    put(o, ": ", 2);
    put(o, value, vlen);
    put(o, "\r\n", 2);
}

static void put_slice_header(struct out *o, const struct http_header *h)
{
    put_header(o, h->name.p, h->name.len, h->value.p, h->value.len);
}

static bool in_list(struct http_slice name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (headers_name_alias_eq(name, names[i]))
            return true;
    return false;
}

static bool in_service_headers(struct http_slice name, const struct config_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (http_slice_eq(name, h[i].name))
            return true;
    return false;
}

/* The origin-form of an absolute-form target: from the first '/' after
 * "scheme://authority", or "/" when there is none. */
static struct http_slice origin_form(struct http_slice t)
{
    if (t.len == 0 || t.p[0] == '/' || (t.len == 1 && t.p[0] == '*'))
        return t;
    const char *p = memchr(t.p, ':', t.len);
    if (!p || (size_t)(t.p + t.len - p) < 3 || p[1] != '/' || p[2] != '/')
        return t;
    const char *auth = p + 3, *end = t.p + t.len;
    for (const char *q = auth; q < end; q++) {
        if (*q == '/' || *q == '?') {
            struct http_slice s = {q, (size_t)(end - q)};
            if (*q == '?') {
                /* "/?query" is built by the caller only when needed; keep it simple */
                return s;
            }
            return s;
        }
    }
    struct http_slice root = {"/", 1};
    return root;
}

long headers_build_request(const struct http_request *req, const struct request_rewrite *rw,
                           char *out, size_t cap)
{
    struct out o = {out, 0, cap, false};
    struct http_slice target = rw->target.len ? rw->target : origin_form(req->target);
    put(&o, req->method.p, req->method.len);
    put(&o, " ", 1);
    if (target.len && target.p[0] == '?')
        put(&o, "/", 1);
    put(&o, target.p, target.len);
    puts_(&o, " HTTP/1.1\r\n");

    const struct http_header *h = req->headers;
    size_t nh = req->nheaders;
    const struct http_header *host = NULL;
    /* X-Forwarded-For: the client's values, in order, then the peer. */
    char xff[8192];
    size_t xlen = 0;
    bool xff_over = false;
    for (size_t i = 0; i < nh; i++) {
        struct http_slice name = h[i].name;
        if (http_slice_eq(name, "host")) {
            if (!host)
                host = &h[i];
            continue;
        }
        if (http_slice_eq(name, "x-forwarded-for")) {
            if (h[i].value.len) {
                if (xlen + h[i].value.len + 2 > sizeof xff) {
                    xff_over = true;
                } else {
                    if (xlen) {
                        memcpy(xff + xlen, ", ", 2);
                        xlen += 2;
                    }
                    memcpy(xff + xlen, h[i].value.p, h[i].value.len);
                    xlen += h[i].value.len;
                }
            }
            continue;
        }
        if (headers_is_hop_by_hop(name) || http_slice_eq(name, "content-length") ||
            http_slice_eq(name, "expect") || http_slice_eq(name, "x-forwarded-proto") ||
            http_slice_eq(name, "x-forwarded-host") || http_slice_eq(name, "x-real-ip") ||
            headers_is_identity(name) || in_list(name, rw->strip_names, rw->nstrip_names) ||
            in_service_headers(name, rw->service_headers, rw->nservice_headers) ||
            named_by_connection(h, nh, name))
            continue;
        put_slice_header(&o, &h[i]);
    }
    if (xff_over)
        return -1;
    struct http_slice hostv = host ? host->value : req->host;
    if (hostv.len)
        put_header(&o, "Host", 4, hostv.p, hostv.len);
    size_t clen = strlen(rw->client_addr);
    if (xlen + clen + 2 > sizeof xff)
        return -1;
    if (xlen) {
        memcpy(xff + xlen, ", ", 2);
        xlen += 2;
    }
    memcpy(xff + xlen, rw->client_addr, clen);
    xlen += clen;
    put_header(&o, "X-Forwarded-For", 15, xff, xlen);
    put_header(&o, "X-Forwarded-Proto", 17, rw->proto, strlen(rw->proto));
    if (hostv.len)
        put_header(&o, "X-Forwarded-Host", 16, hostv.p, hostv.len);
    put_header(&o, "X-Real-IP", 9, rw->client_addr, clen);
    for (size_t i = 0; i < rw->nservice_headers; i++)
        put_header(&o, rw->service_headers[i].name, strlen(rw->service_headers[i].name),
                   rw->service_headers[i].value, strlen(rw->service_headers[i].value));
    for (size_t i = 0; i < rw->nadd; i++)
        put_header(&o, rw->add[i].name, strlen(rw->add[i].name), rw->add[i].value,
                   strlen(rw->add[i].value));
    if (rw->body == HTTP_BODY_LENGTH) {
        char num[32];
        int n = snprintf(num, sizeof num, "%llu", (unsigned long long)rw->content_length);
        put_header(&o, "Content-Length", 14, num, (size_t)n);
    } else if (rw->body == HTTP_BODY_CHUNKED) {
        puts_(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (rw->upgrade) {
        const struct http_header *up = http_find_header(h, nh, "upgrade");
        if (up)
            put_header(&o, "Upgrade", 7, up->value.p, up->value.len);
        puts_(&o, "Connection: upgrade\r\n");
    }
    put(&o, "\r\n", 2);
    return o.over ? -1 : (long)o.len;
}

long headers_build_response(const struct http_response *resp, const struct response_rewrite *rw,
                            char *out, size_t cap)
{
    struct out o = {out, 0, cap, false};
    char line[64];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %03d ", resp->status);
    put(&o, line, (size_t)n);
    if (resp->reason.len)
        put(&o, resp->reason.p, resp->reason.len);
    else
        puts_(&o, http_status_reason(resp->status));
    put(&o, "\r\n", 2);
    const struct http_header *h = resp->headers;
    for (size_t i = 0; i < resp->nheaders; i++) {
        struct http_slice name = h[i].name;
        if (headers_is_hop_by_hop(name) || http_slice_eq(name, "content-length") ||
            named_by_connection(h, resp->nheaders, name))
            continue;
        put_slice_header(&o, &h[i]);
    }
    if (rw->body == HTTP_BODY_LENGTH || (rw->body == HTTP_BODY_NONE && resp->has_content_length)) {
        n = snprintf(line, sizeof line, "Content-Length: %llu\r\n",
                     (unsigned long long)resp->content_length);
        put(&o, line, (size_t)n);
    } else if (rw->body == HTTP_BODY_CHUNKED) {
        puts_(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (rw->upgrade) {
        const struct http_header *up = http_find_header(h, resp->nheaders, "upgrade");
        if (up)
            put_header(&o, "Upgrade", 7, up->value.p, up->value.len);
        puts_(&o, "Connection: upgrade\r\n");
    } else if (rw->close) {
        puts_(&o, "Connection: close\r\n");
    } else if (rw->client_minor == 0) {
        puts_(&o, "Connection: keep-alive\r\n");
    }
    put(&o, "\r\n", 2);
    return o.over ? -1 : (long)o.len;
}
