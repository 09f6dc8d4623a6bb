/* http1.c - strict HTTP/1.x head parsing (see http1.h). */
#include "http1.h"

#include <http_parser.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

bool http_slice_eq(struct http_slice s, const char *name)
{
    size_t n = strlen(name);
    return s.len == n && strncasecmp(s.p, name, n) == 0;
}

const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (http_slice_eq(h[i].name, name))
            return &h[i];
    return NULL;
}

/* The limits, checked once the head's end (end > 0) or only a part of it
 * (end == 0) is known: the request line first, so a long line is a 414
 * whatever follows it. */
static long check_limits(const char *buf, size_t len, size_t end, const struct http1_limits *lim)
{
    const char *nl = memchr(buf, '\n', len);
    size_t line = nl ? (size_t)(nl - buf) : len;
    if (line > lim->max_request_line)
        return HTTP1_URI_TOO_LONG;
    if ((end ? end : len) > lim->max_header_bytes)
        return HTTP1_HEADERS_TOO_LARGE;
    return (long)end;
}

long http1_find_head_end(const char *buf, size_t len, size_t *scan, const struct http1_limits *lim)
{
    size_t i = *scan;
    /* Look for an empty line: "\n\r\n" or "\n\n" (the parser refuses bare LF later). */
    for (; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return check_limits(buf, len, i + 2, lim);
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return check_limits(buf, len, i + 3, lim);
        if (i + 2 >= len)
            break; /* may be the start of the end: look again with more bytes */
    }
    *scan = i;
    return check_limits(buf, len, 0, lim);
}

/* Split the head into lines and fields, strictly: every line ends in CRLF,
 * no obs-fold, "name: value" with a token name and no space before ':'.
 * first receives the start line. Returns 0 or a negative http1_error. */
static long split_fields(const char *buf, size_t len, struct http_slice *first,
                         struct http_header *hs, size_t *nh, long bad)
{
    const char *p = buf, *end = buf + len;
    size_t n = 0;
    bool first_line = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nl == p || nl[-1] != '\r')
            return bad; /* bare LF */
        const char *eol = nl - 1;
        if (first_line) {
            first->p = p;
            first->len = (size_t)(eol - p);
            first_line = false;
            p = nl + 1;
            continue;
        }
        if (eol == p) { /* the empty line */
            if (nl + 1 != end)
                return bad;
            *nh = n;
            return 0;
        }
        if (*p == ' ' || *p == '\t')
            return bad; /* obs-fold */
        const char *colon = p;
        while (colon < eol && is_tchar((unsigned char)*colon))
            colon++;
        if (colon == p || colon == eol || *colon != ':')
            return bad; /* empty name, bad name char, space before ':', no colon */
        const char *v = colon + 1, *ve = eol;
        for (const char *q = v; q < ve; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return bad;
        }
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (n == LIMIT_HEADERS_COUNT)
            return bad == HTTP1_BAD_REQUEST ? HTTP1_HEADERS_TOO_LARGE : bad;
        hs[n].name.p = p;
        hs[n].name.len = (size_t)(colon - p);
        hs[n].value.p = v;
        hs[n].value.len = (size_t)(ve - v);
        n++;
        p = nl + 1;
    }
    return bad; /* no empty line */
}

bool http_next_token(const char **p, const char *end, struct http_slice *tok)
{
    const char *q = *p;
    while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
        q++;
    const char *t = q;
    while (q < end && *q != ',' && *q != ' ' && *q != '\t')
        q++;
    *p = q;
    tok->p = t;
    tok->len = (size_t)(q - t);
    return q > t;
}

static unsigned connection_flags(const struct http_header *h, size_t n)
{
    unsigned f = 0;
    for (size_t i = 0; i < n; i++) {
        if (!http_slice_eq(h[i].name, "connection"))
            continue;
        const char *p = h[i].value.p, *end = p + h[i].value.len;
        struct http_slice tok;
        while (http_next_token(&p, end, &tok)) {
            if (http_slice_eq(tok, "close"))
                f |= HTTP_CONN_CLOSE;
            else if (http_slice_eq(tok, "keep-alive"))
                f |= HTTP_CONN_KEEP_ALIVE;
            else if (http_slice_eq(tok, "upgrade"))
                f |= HTTP_CONN_UPGRADE;
        }
    }
    return f;
}

static bool parse_digits(struct http_slice v, uint64_t *out)
{
    if (v.len == 0 || v.len > 19)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = n;
    return true;
}

/* Framing headers shared by requests and responses. *te: 0 none,
 * 1 chunked last, -400 bad, -501 unsupported coding. */
static long framing(const struct http_header *h, size_t n, bool response, int *te, bool *has_cl,
                    uint64_t *cl)
{
    long bad = response ? HTTP1_BAD_RESPONSE : HTTP1_BAD_REQUEST;
    *te = 0;
    *has_cl = false;
    bool chunked_seen = false, other = false, chunked_last = false;
    for (size_t i = 0; i < n; i++) {
        if (http_slice_eq(h[i].name, "content-length")) {
            uint64_t v;
            if (!parse_digits(h[i].value, &v))
                return bad;
            if (*has_cl && (!response || v != *cl))
                return bad; /* repeated: ambiguous */
            *has_cl = true;
            *cl = v;
        } else if (http_slice_eq(h[i].name, "transfer-encoding")) {
            const char *p = h[i].value.p, *end = p + h[i].value.len;
            bool any = false;
            while (p <= end) {
                while (p < end && (*p == ' ' || *p == '\t'))
                    p++;
                const char *t = p;
                while (p < end && *p != ',')
                    p++;
                const char *te_end = p;
                while (te_end > t && (te_end[-1] == ' ' || te_end[-1] == '\t'))
                    te_end--;
                struct http_slice tok = {t, (size_t)(te_end - t)};
                if (tok.len == 0)
                    return bad;
                any = true;
                if (http_slice_eq(tok, "chunked")) {
                    if (chunked_seen)
                        return bad;
                    chunked_seen = true;
                    chunked_last = true;
                } else {
                    for (size_t k = 0; k < tok.len; k++)
                        if (!is_tchar((unsigned char)tok.p[k]))
                            return bad;
                    if (chunked_seen)
                        return bad; /* a coding after chunked */
                    other = true;
                    chunked_last = false;
                }
                p++;
            }
            if (!any)
                return bad;
            *te = 1;
        }
    }
    if (*te) {
        /* Only a lone final "chunked" can be re-framed safely: other codings
         * would have to be forwarded with their framing. */
        if (*has_cl || !chunked_last)
            return bad;
        if (other)
            return response ? bad : HTTP1_NOT_IMPLEMENTED;
    }
    return 0;
}

static int method_id(struct http_slice m)
{
    for (int i = 0;; i++) {
        const char *name = http_method_str((enum http_method)i);
        if (!name || strcmp(name, "<unknown>") == 0)
            return -1;
        if (strlen(name) == m.len && memcmp(name, m.p, m.len) == 0)
            return i;
    }
}

static bool host_value_ok(struct http_slice h)
{
    for (size_t i = 0; i < h.len; i++) {
        unsigned char ch = (unsigned char)h.p[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '/' || ch == '@' || ch == '\\' || ch == '?' ||
            ch == '#' || ch == ',')
            return false;
    }
    return true;
}

/* "HTTP/1.0" or "HTTP/1.1": the minor version; -505 for another version,
 * -400 for something that is not an HTTP version at all. */
static int parse_version(const char *p, size_t len)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return HTTP1_BAD_REQUEST;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return HTTP1_BAD_VERSION;
    return p[7] - '0';
}

long http1_parse_request(const char *buf, size_t len, struct http_request *req)
{
    struct http_slice line;
    req->nheaders = 0;
    long r = split_fields(buf, len, &line, req->headers, &req->nheaders, HTTP1_BAD_REQUEST);
    if (r < 0)
        return r;
    /* METHOD SP target SP HTTP/1.x */
    const char *sp1 = memchr(line.p, ' ', line.len);
    if (!sp1 || sp1 == line.p)
        return HTTP1_BAD_REQUEST;
    const char *rest = sp1 + 1, *end = line.p + line.len;
    const char *sp2 = memchr(rest, ' ', (size_t)(end - rest));
    if (!sp2 || sp2 == rest || memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)))
        return HTTP1_BAD_REQUEST;
    req->method.p = line.p;
    req->method.len = (size_t)(sp1 - line.p);
    for (size_t i = 0; i < req->method.len; i++)
        if (!is_tchar((unsigned char)req->method.p[i]))
            return HTTP1_BAD_REQUEST;
    req->target.p = rest;
    req->target.len = (size_t)(sp2 - rest);
    for (size_t i = 0; i < req->target.len; i++) {
        unsigned char ch = (unsigned char)req->target.p[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return HTTP1_BAD_REQUEST;
    }
    int minor = parse_version(sp2 + 1, (size_t)(end - sp2 - 1));
    if (minor < 0)
        return minor;
    req->minor = minor;
    req->method_id = method_id(req->method);
    if (req->method_id < 0 || req->method_id == HTTP_CONNECT)
        return HTTP1_NOT_IMPLEMENTED;

    /* Target forms. */
    struct http_slice t = req->target, authority = {NULL, 0};
    req->query.p = NULL;
    req->query.len = 0;
    if (t.len == 1 && t.p[0] == '*') {
        if (req->method_id != HTTP_OPTIONS)
            return HTTP1_BAD_REQUEST;
        req->path.p = "/";
        req->path.len = 1;
    } else if (t.p[0] == '/') {
        req->path = t;
    } else {
        size_t sl;
        if (t.len > 7 && strncasecmp(t.p, "http://", 7) == 0)
            sl = 7;
        else if (t.len > 8 && strncasecmp(t.p, "https://", 8) == 0)
            sl = 8;
        else
            return HTTP1_BAD_REQUEST;
        const char *a = t.p + sl, *te = t.p + t.len, *q = a;
        while (q < te && *q != '/' && *q != '?' && *q != '#')
            q++;
        authority.p = a;
        authority.len = (size_t)(q - a);
        if (authority.len == 0 || memchr(a, '@', authority.len))
            return HTTP1_BAD_REQUEST;
        if (q < te && *q == '/') {
            req->path.p = q;
            req->path.len = (size_t)(te - q);
        } else {
            req->path.p = "/";
            req->path.len = 1;
            if (q < te && *q == '?') {
                req->query.p = q + 1;
                req->query.len = (size_t)(te - q - 1);
            }
        }
    }
    if (req->path.p[0] == '/') {
        const char *qm = memchr(req->path.p, '?', req->path.len);
        if (qm) {
            req->query.p = qm + 1;
            req->query.len = req->path.len - (size_t)(qm - req->path.p) - 1;
            req->path.len = (size_t)(qm - req->path.p);
        }
        if (memchr(req->path.p, '#', req->path.len))
            return HTTP1_BAD_REQUEST;
    }

    /* Host. */
    const struct http_header *host = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (http_slice_eq(req->headers[i].name, "host")) {
            if (host)
                return HTTP1_BAD_REQUEST;
            host = &req->headers[i];
        }
    }
    if (!host && minor == 1)
        return HTTP1_BAD_REQUEST;
    if (host && (host->value.len == 0 || !host_value_ok(host->value)))
        return HTTP1_BAD_REQUEST;
    if (authority.len) {
        if (!host_value_ok(authority))
            return HTTP1_BAD_REQUEST;
        req->host = authority;
    } else if (host) {
        req->host = host->value;
    } else {
        req->host.p = NULL;
        req->host.len = 0;
    }

    /* Framing. */
    int te;
    bool has_cl;
    uint64_t cl = 0;
    r = framing(req->headers, req->nheaders, false, &te, &has_cl, &cl);
    if (r < 0)
        return r;
    if (te && minor == 0)
        return HTTP1_BAD_REQUEST;
    req->body = te ? HTTP_BODY_CHUNKED : (has_cl && cl > 0) ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    req->content_length = te ? 0 : cl;
    if (has_cl && cl == 0)
        req->body = HTTP_BODY_LENGTH;

    req->conn_flags = connection_flags(req->headers, req->nheaders);
    req->keep_alive = minor == 1 ? !(req->conn_flags & HTTP_CONN_CLOSE)
                                 : (req->conn_flags & HTTP_CONN_KEEP_ALIVE) &&
                                       !(req->conn_flags & HTTP_CONN_CLOSE);
    const struct http_header *ex = http_find_header(req->headers, req->nheaders, "expect");
    req->expect_continue = ex && minor == 1 && http_slice_eq(ex->value, "100-continue");
    req->upgrade = (req->conn_flags & HTTP_CONN_UPGRADE) &&
                   http_find_header(req->headers, req->nheaders, "upgrade") && minor == 1;
    req->head_len = len;
    return (long)len;
}

long http1_parse_response(const char *buf, size_t len, int request_method_id,
                          struct http_response *resp)
{
    struct http_slice line;
    resp->nheaders = 0;
    long r = split_fields(buf, len, &line, resp->headers, &resp->nheaders, HTTP1_BAD_RESPONSE);
    if (r < 0)
        return HTTP1_BAD_RESPONSE;
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (line.len < 12 || line.p[8] != ' ')
        return HTTP1_BAD_RESPONSE;
    int minor = parse_version(line.p, 8);
    if (minor < 0)
        return HTTP1_BAD_RESPONSE;
    const char *d = line.p + 9;
    if (d[0] < '1' || d[0] > '5' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9')
        return HTTP1_BAD_RESPONSE;
    if (line.len > 12 && line.p[12] != ' ')
        return HTTP1_BAD_RESPONSE;
    resp->status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    resp->minor = minor;
    resp->reason.p = line.len > 13 ? line.p + 13 : line.p + line.len;
    resp->reason.len = line.len > 13 ? line.len - 13 : 0;
    for (size_t i = 0; i < resp->reason.len; i++) {
        unsigned char ch = (unsigned char)resp->reason.p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return HTTP1_BAD_RESPONSE;
    }
    int te;
    bool has_cl;
    uint64_t cl = 0;
    if (framing(resp->headers, resp->nheaders, true, &te, &has_cl, &cl) < 0)
        return HTTP1_BAD_RESPONSE;
    resp->has_content_length = has_cl;
    resp->content_length = cl;
    resp->conn_flags = connection_flags(resp->headers, resp->nheaders);
    resp->keep_alive = minor == 1 ? !(resp->conn_flags & HTTP_CONN_CLOSE)
                                  : (resp->conn_flags & HTTP_CONN_KEEP_ALIVE) &&
                                        !(resp->conn_flags & HTTP_CONN_CLOSE);
    if (request_method_id == HTTP_CONNECT && resp->status / 100 == 2)
        return HTTP1_BAD_RESPONSE;
    if (request_method_id == HTTP_HEAD || resp->status < 200 || resp->status == 204 ||
        resp->status == 304) {
        resp->body = HTTP_BODY_NONE;
    } else if (te) {
        resp->body = HTTP_BODY_CHUNKED;
    } else if (has_cl) {
        resp->body = HTTP_BODY_LENGTH;
    } else {
        resp->body = HTTP_BODY_EOF;
        resp->keep_alive = false;
    }
    resp->head_len = len;
    return (long)len;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}
