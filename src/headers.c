/* headers.c - rewriting message heads as they cross the proxy (see headers.h).
 *
 * Names are compared with '_' equal to '-' wherever portico removes or
 * replaces a header: many frameworks (CGI, WSGI, Rack) fold both into the
 * same variable, so "X_Real_IP" would otherwise pass as "X-Real-IP". */
#include "headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "decimal.h"

static char alias(char c)
{
    if (c >= 'A' && c <= 'Z')
        return (char)(c + ('a' - 'A'));
    return c == '_' ? '-' : c;
}

static bool alias_eq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (alias(a[i]) != alias(b[i]))
            return false;
    return true;
}

bool headers_name_alias_eq(struct http_slice a, const char *b)
{
    size_t n = strlen(b);
    return a.len == n && alias_eq_n(a.p, b, n);
}

static bool alias_prefix(struct http_slice a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && alias_eq_n(a.p, prefix, n);
}

static bool alias_in(struct http_slice name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (headers_name_alias_eq(name, names[i]))
            return true;
    return false;
}

/* A fixed list of names with their lengths, so that a header is compared
 * only with the names as long as it (every header of every head is checked
 * against these lists). */
struct name_len {
    const char *name;
    size_t len;
};
#define NAME_LEN(s)                                                                                \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }

static bool alias_in_fixed(struct http_slice name, const struct name_len *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name.len == names[i].len && alias_eq_n(name.p, names[i].name, name.len))
            return true;
    return false;
}

/* Every Tailscale-* name is tailscaled's (user, profile, app capabilities, Funnel marker,
 * headers info): a client's copy is never an identity portico or tailscaled vouched for. */
bool headers_is_identity(struct http_slice name)
{
    return alias_prefix(name, "x-tailscale-") || alias_prefix(name, "tailscale-") ||
           alias_prefix(name, "remote-");
}

/* ---- Upgrade ------------------------------------------------------------------ */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The next comma-separated element of an Upgrade value, trimmed; false at the end. */
static bool upgrade_next(const char **p, const char *end, struct http_slice *out)
{
    for (;;) {
        while (*p < end && (is_ows(**p) || **p == ','))
            (*p)++;
        if (*p >= end)
            return false;
        const char *s = *p;
        while (*p < end && **p != ',')
            (*p)++;
        const char *e = *p;
        while (e > s && is_ows(e[-1]))
            e--;
        if (e > s) {
            *out = (struct http_slice){s, (size_t)(e - s)};
            return true;
        }
    }
}

/* "websocket" and "websocket/13" are both the protocol named websocket. */
static bool upgrade_protocol_allowed(struct http_slice proto, const char *const *allow,
                                     size_t nallow)
{
    const char *slash = memchr(proto.p, '/', proto.len);
    struct http_slice name = {proto.p, slash ? (size_t)(slash - proto.p) : proto.len};
    for (size_t i = 0; i < nallow; i++)
        if (http_slice_eq(name, allow[i]))
            return true;
    return false;
}

size_t headers_filter_upgrade(struct http_slice offered, const char *const *allow, size_t nallow,
                              char *out, size_t cap)
{
    const char *p = offered.p, *end = offered.p + offered.len;
    struct http_slice proto;
    size_t n = 0;
    while (upgrade_next(&p, end, &proto)) {
        if (!upgrade_protocol_allowed(proto, allow, nallow))
            continue;
        size_t need = proto.len + (n ? 2 : 0);
        if (n + need > cap)
            return 0; /* cannot happen with cap >= offered.len; forward nothing rather than half */
        if (n) {
            out[n++] = ',';
            out[n++] = ' ';
        }
        memcpy(out + n, proto.p, proto.len);
        n += proto.len;
    }
    return n;
}

bool headers_upgrade_allowed(struct http_slice chosen, const char *const *allow, size_t nallow)
{
    const char *p = chosen.p, *end = chosen.p + chosen.len;
    struct http_slice proto;
    bool any = false;
    while (upgrade_next(&p, end, &proto)) {
        if (!upgrade_protocol_allowed(proto, allow, nallow))
            return false;
        any = true;
    }
    return any;
}

bool headers_is_hop_by_hop(struct http_slice n)
{
    static const struct name_len names[] = {
        NAME_LEN("connection"), NAME_LEN("keep-alive"), NAME_LEN("proxy-connection"),
        NAME_LEN("te"),         NAME_LEN("trailer"),    NAME_LEN("transfer-encoding"),
        NAME_LEN("upgrade")};
    return alias_in_fixed(n, names, sizeof names / sizeof names[0]);
}

/* Client headers portico always removes because it sets or answers them
 * itself: framing, Expect, and the forwarding set. A client could put
 * anything in Forwarded, X-Forwarded-Port or X-Forwarded-Prefix, and apps
 * that trust them would believe it, so they go too (portico sets its own). */
static bool portico_owned(struct http_slice n)
{
    static const struct name_len names[] = {
        NAME_LEN("content-length"),   NAME_LEN("expect"),           NAME_LEN("x-forwarded-proto"),
        NAME_LEN("x-forwarded-host"), NAME_LEN("x-real-ip"),        NAME_LEN("x-forwarded-for"),
        NAME_LEN("forwarded"),        NAME_LEN("x-forwarded-port"), NAME_LEN("x-forwarded-prefix")};
    return alias_in_fixed(n, names, sizeof names / sizeof names[0]);
}

/* Is name listed as a token in any of the Connection headers? */
static bool named_by_connection(const struct http_header *h, size_t nh, struct http_slice name)
{
    for (size_t i = 0; i < nh; i++) {
        if (!http_slice_eq(h[i].name, "connection"))
            continue;
        const char *p = h[i].value.p, *end = p + h[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *t = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > t && (size_t)(p - t) == name.len && alias_eq_n(t, name.p, name.len))
                return true;
        }
    }
    return false;
}

/* An output buffer that remembers running out of room, so the builders can
 * write unconditionally and check once at the end. */
struct out {
    char *p;
    size_t len, cap;
    bool over;
    size_t fields; /* header field lines written */
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

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A whole field line, "Name: value\r\n", as written. */
static void put_field_line(struct out *o, const char *line)
{
    put_str(o, line);
    o->fields++;
}

static void put_header(struct out *o, const char *name, size_t nlen, const char *value, size_t vlen)
{
    o->fields++;
    put(o, name, nlen);
    put(o, ": ", 2);
    put(o, value, vlen);
    put(o, "\r\n", 2);
}

static void put_header_str(struct out *o, const char *name, const char *value)
{
    put_header(o, name, strlen(name), value, strlen(value));
}

static void put_u64_header(struct out *o, const char *name, uint64_t v)
{
    char num[DECIMAL_U64_DIGITS];
    size_t n = decimal_format_u64(num, v);
    put_header(o, name, strlen(name), num, n);
}

static bool in_service_headers(struct http_slice name, const struct config_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (headers_name_alias_eq(name, h[i].name))
            return true;
    return false;
}

/* Write the client's target in origin-form: an absolute-form target loses
 * "scheme://authority" (and gains a "/" when its path is empty). */
static void put_origin_form(struct out *o, struct http_slice t)
{
    if (t.len == 0 || t.p[0] == '/' || (t.len == 1 && t.p[0] == '*')) {
        put(o, t.p, t.len);
        return;
    }
    const char *end = t.p + t.len;
    const char *auth = memchr(t.p, ':', t.len);
    auth = auth && end - auth >= 3 ? auth + 3 : t.p; /* past "://" (checked by the parser) */
    const char *rest = auth;
    while (rest < end && *rest != '/' && *rest != '?')
        rest++;
    if (rest == end || *rest == '?')
        put(o, "/", 1);
    put(o, rest, (size_t)(end - rest));
}

/* X-Forwarded-For: the client's own list (all its X-Forwarded-For fields,
 * in order, joined), then the peer portico saw unless the list already
 * ends with it. */
static void put_forwarded_for(struct out *o, const struct http_request *req, const char *client,
                              bool has_client)
{
    o->fields++;
    put_str(o, "X-Forwarded-For: ");
    const char *sep = "";
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (http_slice_eq(h->name, "x-forwarded-for") && h->value.len) {
            put_str(o, sep);
            put(o, h->value.p, h->value.len);
            sep = ", ";
        }
    }
    if (!has_client || !*sep) {
        put_str(o, sep);
        put_str(o, client);
    }
    put(o, "\r\n", 2);
}

/* The port of a Host value ("h:8443", "[::1]:8443") as a slice, or len 0. */
static struct http_slice host_port_of(struct http_slice h)
{
    struct http_slice none = {h.p, 0};
    const char *p = h.p, *end = h.p + h.len;
    if (h.len && p[0] == '[') {
        p = memchr(p, ']', h.len);
        if (!p)
            return none;
        p++;
    } else {
        p = memchr(p, ':', h.len);
        if (!p)
            return none;
    }
    if (p >= end || *p != ':' || end - p < 2)
        return none;
    return (struct http_slice){p + 1, (size_t)(end - p - 1)};
}

/* Forwarded (RFC 7239) for the hop portico saw: the peer, the Host the
 * client sent and its scheme. Values are quoted, since IPv6 addresses and
 * host:port are not tokens; a Unix-socket peer is "unknown". */
static void put_forwarded(struct out *o, const struct http_request *req, const char *client,
                          const char *proto)
{
    o->fields++;
    put_str(o, "Forwarded: for=");
    if (strncmp(client, "unix:", 5) == 0) {
        put_str(o, "unknown");
    } else if (strchr(client, ':')) {
        put_str(o, "\"[");
        put_str(o, client);
        put_str(o, "]\"");
    } else {
        put_str(o, client);
    }
    if (req->host.len) {
        put_str(o, ";host=\"");
        put(o, req->host.p, req->host.len); /* the parser allows no '"' or '\\' in Host */
        put_str(o, "\"");
    }
    put_str(o, ";proto=");
    put_str(o, proto);
    put(o, "\r\n", 2);
}

/* Whether an Origin value names the origin the client is at: proto, "://"
 * and the Host it sent, compared case-insensitively. */
static bool origin_is_public(struct http_slice v, const char *proto, struct http_slice host)
{
    size_t plen = strlen(proto);
    return host.len && v.len == plen + 3 + host.len && strncasecmp(v.p, proto, plen) == 0 &&
           memcmp(v.p + plen, "://", 3) == 0 && strncasecmp(v.p + plen + 3, host.p, host.len) == 0;
}

long headers_build_request(const struct http_request *req, const struct request_rewrite *rw,
                           char *out, size_t cap)
{
    struct out o = {out, 0, cap, false, 0};
    put(&o, req->method.p, req->method.len);
    put(&o, " ", 1);
    if (rw->target.len)
        put(&o, rw->target.p, rw->target.len);
    else
        put_origin_form(&o, req->target);
    put_str(&o, " HTTP/1.1\r\n");

    /* Host first. It is the host portico routed on: the Host field as sent,
     * or the authority of an absolute-form target, which RFC 9112 3.2.2
     * says wins over Host. Empty only for an HTTP/1.0 request without one. */
    if (rw->host.len)
        put_header(&o, "Host", 4, rw->host.p, rw->host.len);
    else
        put_header(&o, "Host", 4, req->host.p, req->host.len);

    const struct http_header *h = req->headers;
    size_t nh = req->nheaders;
    for (size_t i = 0; i < nh; i++) {
        struct http_slice name = h[i].name;
        if (http_slice_eq(name, "host") || headers_is_hop_by_hop(name) || portico_owned(name) ||
            headers_is_identity(name) || alias_in(name, rw->strip_names, rw->nstrip_names) ||
            in_service_headers(name, rw->service_headers, rw->nservice_headers) ||
            named_by_connection(h, nh, name))
            continue;
        if (rw->origin.len && http_slice_eq(name, "origin") &&
            origin_is_public(h[i].value, rw->proto, req->host)) {
            put_header(&o, name.p, name.len, rw->origin.p, rw->origin.len);
            continue;
        }
        put_header(&o, name.p, name.len, h[i].value.p, h[i].value.len);
    }

    put_forwarded_for(&o, req, rw->client_addr, rw->forwarded_for_ends_with_client);
    put_header_str(&o, "X-Forwarded-Proto", rw->proto);
    if (req->host.len)
        put_header(&o, "X-Forwarded-Host", 16, req->host.p, req->host.len);
    put_header_str(&o, "X-Real-IP", rw->client_addr);
    struct http_slice port = host_port_of(req->host);
    if (port.len)
        put_header(&o, "X-Forwarded-Port", 16, port.p, port.len);
    else
        put_header_str(&o, "X-Forwarded-Port", strcmp(rw->proto, "https") == 0 ? "443" : "80");
    if (rw->prefix.len)
        put_header(&o, "X-Forwarded-Prefix", 18, rw->prefix.p, rw->prefix.len);
    put_forwarded(&o, req, rw->client_addr, rw->proto);
    for (size_t i = 0; i < rw->nservice_headers; i++)
        put_header_str(&o, rw->service_headers[i].name, rw->service_headers[i].value);
    for (size_t i = 0; i < rw->nadd; i++)
        put_header_str(&o, rw->add[i].name, rw->add[i].value);
    if (rw->body == HTTP_BODY_LENGTH)
        put_u64_header(&o, "Content-Length", rw->content_length);
    else if (rw->body == HTTP_BODY_CHUNKED)
        put_field_line(&o, "Transfer-Encoding: chunked\r\n");
    if (rw->upgrade.len) {
        put_header(&o, "Upgrade", 7, rw->upgrade.p, rw->upgrade.len);
        put_field_line(&o, "Connection: upgrade\r\n");
    }
    put(&o, "\r\n", 2);
    if (o.fields > (rw->max_fields ? rw->max_fields : LIMIT_HEADERS_COUNT))
        return HEADERS_TOO_MANY;
    return o.over ? HEADERS_TOO_LONG : (long)o.len;
}

long headers_build_response(const struct http_response *resp, const struct response_rewrite *rw,
                            char *out, size_t cap)
{
    struct out o = {out, 0, cap, false, 0};
    /* "HTTP/1.1 %03d ": the parser lets only three digits through. */
    char line[24] = "HTTP/1.1 ";
    size_t n = 9;
    if (resp->status >= 0 && resp->status <= 999) {
        line[n++] = (char)('0' + resp->status / 100);
        line[n++] = (char)('0' + resp->status / 10 % 10);
        line[n++] = (char)('0' + resp->status % 10);
        line[n++] = ' ';
    } else {
        n = (size_t)snprintf(line, sizeof line, "HTTP/1.1 %03d ", resp->status);
    }
    put(&o, line, n);
    if (resp->reason.len)
        put(&o, resp->reason.p, resp->reason.len);
    else
        put_str(&o, http_status_reason(resp->status));
    put(&o, "\r\n", 2);

    const struct http_header *h = resp->headers;
    for (size_t i = 0; i < resp->nheaders; i++) {
        struct http_slice name = h[i].name;
        if (headers_is_hop_by_hop(name) || headers_name_alias_eq(name, "content-length") ||
            named_by_connection(h, resp->nheaders, name))
            continue;
        bool loc = http_slice_eq(name, "location"), refresh = http_slice_eq(name, "refresh");
        if (rw->redirect && (loc || refresh) && !o.over) {
            put(&o, name.p, name.len);
            put(&o, ": ", 2);
            long rn = o.over ? -1
                             : headers_rewrite_redirect(h[i].value, refresh, rw->redirect,
                                                        o.p + o.len, o.cap - o.len);
            if (rn < 0)
                o.over = true;
            else if (rn == 0)
                put(&o, h[i].value.p, h[i].value.len);
            else
                o.len += (size_t)rn;
            put(&o, "\r\n", 2);
            continue;
        }
        put_header(&o, name.p, name.len, h[i].value.p, h[i].value.len);
    }

    /* Framing toward the client. A response without a body by definition
     * (HEAD, 304) keeps the length the upstream announced; 1xx and 204 may
     * never carry one (RFC 9110 section 8.6). */
    bool may_have_length = resp->status >= 200 && resp->status != 204;
    if (rw->body == HTTP_BODY_LENGTH ||
        (rw->body == HTTP_BODY_NONE && resp->has_content_length && may_have_length))
        put_u64_header(&o, "Content-Length", resp->content_length);
    else if (rw->body == HTTP_BODY_CHUNKED)
        put_str(&o, "Transfer-Encoding: chunked\r\n");
    if (rw->upgrade) {
        const struct http_header *up = http_find_header(h, resp->nheaders, "upgrade");
        if (up)
            put_header(&o, "Upgrade", 7, up->value.p, up->value.len);
        put_str(&o, "Connection: upgrade\r\n");
    } else if (rw->close) {
        put_str(&o, "Connection: close\r\n");
    } else if (rw->client_minor == 0) {
        put_str(&o, "Connection: keep-alive\r\n");
    }
    put(&o, "\r\n", 2);
    return o.over ? -1 : (long)o.len;
}

/* Where the URL of a Refresh value ("5; url=https://x/") starts and ends,
 * or false when it names none. */
static bool refresh_url(struct http_slice v, size_t *start, size_t *end)
{
    const char *semi = memchr(v.p, ';', v.len);
    if (!semi)
        return false;
    size_t i = (size_t)(semi - v.p) + 1;
    while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
        i++;
    if (v.len - i < 3 || strncasecmp(v.p + i, "url", 3) != 0)
        return false;
    i += 3;
    while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
        i++;
    if (i >= v.len || v.p[i] != '=')
        return false;
    i++;
    while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
        i++;
    size_t e = v.len;
    if (i < v.len && (v.p[i] == '\'' || v.p[i] == '"')) {
        const char *q = memchr(v.p + i + 1, v.p[i], v.len - i - 1);
        i++;
        e = q ? (size_t)(q - v.p) : v.len;
    }
    *start = i;
    *end = e;
    return true;
}

long headers_rewrite_redirect(struct http_slice v, bool refresh, const struct redirect_rewrite *rr,
                              char *out, size_t cap)
{
    size_t us = 0, ue = v.len;
    if (refresh && !refresh_url(v, &us, &ue))
        return 0;
    const char *url = v.p + us;
    size_t ulen = ue - us, flen = 0;
    bool hit = false;
    for (size_t i = 0; i < rr->nfrom && !hit; i++) {
        flen = strlen(rr->from[i]);
        hit = ulen >= flen && strncasecmp(url, rr->from[i], flen) == 0 &&
              (ulen == flen || url[flen] == '/' || url[flen] == '?' || url[flen] == '#');
    }
    if (!hit)
        return 0;
    struct out o = {out, 0, cap, false, 0};
    const char *rest = url + flen;
    size_t rlen = ulen - flen;
    put(&o, v.p, us);
    put_str(&o, rr->scheme);
    put(&o, "://", 3);
    put(&o, rr->host.p, rr->host.len);
    if (rr->prefix.len) {
        put(&o, rr->prefix.p, rr->prefix.len);
        if (rlen == 0 || rest[0] != '/')
            put(&o, "/", 1);
    }
    put(&o, rest, rlen);
    put(&o, v.p + ue, v.len - ue);
    return o.over ? -1 : (long)o.len;
}

/* ---- status lines ------------------------------------------------------------ */

const char *http_status_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {203, "Non-Authoritative Information"},
        {204, "No Content"},
        {205, "Reset Content"},
        {206, "Partial Content"},
        {300, "Multiple Choices"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {421, "Misdirected Request"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {428, "Precondition Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}
