/* http1.c - strict HTTP/1.x head parsing (see http1.h).
 *
 * Two passes over a complete head. A strict scan of the raw bytes first
 * checks the shape of every line (CRLF endings, no obs-fold, token names
 * directly followed by ':', no control bytes) and the start line, because
 * http-parser tolerates some of that. http-parser then tokenises the head
 * and fills the request through its callbacks; where both passes see a
 * field they must agree, or the head is refused as ambiguous. The meaning
 * of the fields (framing, Host, Connection) is decided here, never guessed.
 *
 * Leading empty lines before a request line (RFC 9112 section 2.2 lets a
 * server skip them) are refused with 400: no client portico serves sends
 * them, and a stray CRLF after a body is more likely a framing bug. */
#include "http1.h"

#include <http_parser.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* tchar (RFC 9110 section 5.6.2) by table: every header name byte of
 * every head goes through it, and the strchr it replaced cost a call each. */
#define TCHAR_RANGE(a, b) [a... b] = true
static const bool tchar[256] = {
    TCHAR_RANGE('a', 'z'), TCHAR_RANGE('A', 'Z'), TCHAR_RANGE('0', '9'), ['!'] = true,
    ['#'] = true,          ['$'] = true,          ['%'] = true,          ['&'] = true,
    ['\''] = true,         ['*'] = true,          ['+'] = true,          ['-'] = true,
    ['.'] = true,          ['^'] = true,          ['_'] = true,          ['`'] = true,
    ['|'] = true,          ['~'] = true,
};
#undef TCHAR_RANGE

static bool is_tchar(unsigned char ch)
{
    return tchar[ch];
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_token(struct http_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.p[i]))
            return false;
    return true;
}

static struct http_slice trim_ows(const char *p, const char *end)
{
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    return (struct http_slice){p, (size_t)(end - p)};
}

const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (http_slice_eq(h[i].name, name))
            return &h[i];
    return NULL;
}

/* Next element of a comma-separated list (RFC 9110 section 5.6.1), OWS
 * trimmed; empty elements are returned as such. false at the end. */
static bool list_next(const char **pos, const char *end, struct http_slice *elem)
{
    const char *p = *pos;
    if (p > end)
        return false;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    *elem = trim_ows(p, e);
    *pos = e + 1;
    return true;
}

/* ---- finding the end of a head ---------------------------------------------- */

/* The limits, checked once the head's end (end > 0) or only a part of it
 * (end == 0) is known: the request line first, so a long line is a 414
 * whatever follows it. Only a buffer longer than a limit costs a search. */
static long check_limits(const char *buf, size_t len, size_t end, const struct http1_limits *lim)
{
    size_t have = end ? end : len;
    if (have > lim->max_request_line) {
        size_t upto = lim->max_request_line + 2; /* the longest line and its CRLF */
        const char *nl = memchr(buf, '\n', have < upto ? have : upto);
        if (!nl && (have >= upto || buf[have - 1] != '\r'))
            return HTTP1_URI_TOO_LONG;
        if (nl) {
            size_t line = (size_t)(nl - buf);
            if (line > 0 && buf[line - 1] == '\r')
                line--;
            if (line > lim->max_request_line)
                return HTTP1_URI_TOO_LONG;
        }
    }
    if (have > lim->max_header_bytes)
        return HTTP1_HEADERS_TOO_LARGE;
    return (long)end;
}

long http1_find_head_end(const char *buf, size_t len, size_t *scan, const struct http1_limits *lim)
{
    size_t i = *scan;
    /* An empty line ends the head: "\n\r\n", or "\n\n" so that a bare-LF
     * head is found too and then refused by the parser. memchr jumps from
     * one LF to the next (a byte loop cost more than the parse). */
    for (; i < len; i++) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl) {
            i = len;
            break;
        }
        i = (size_t)(nl - buf);
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

/* ---- the strict scan ------------------------------------------------------------ */

/* Check the line structure of a head: every line ends in CRLF, no obs-fold,
 * "name: value" with a token name, no whitespace before ':', no control
 * bytes but HT in a value, an empty line at the very end. first receives
 * the start line (without CRLF), *nfields the number of field lines. */
static long scan_head(const char *buf, size_t len, struct http_slice *first, size_t *nfields,
                      long bad, const char **why)
{
    const char *p = buf, *end = buf + len;
    size_t n = 0;
    bool first_line = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nl == p || nl[-1] != '\r')
            return *why = "a line ends in a bare LF, not CRLF", bad;
        const char *eol = nl - 1;
        if (memchr(p, '\r', (size_t)(eol - p)))
            return *why = "a bare CR inside a line", bad;
        if (first_line) {
            first->p = p;
            first->len = (size_t)(eol - p);
            first_line = false;
            p = nl + 1;
            continue;
        }
        if (eol == p) { /* the empty line */
            if (nl + 1 != end)
                return *why = "bytes after the empty line that ends the head", bad;
            *nfields = n;
            return 0;
        }
        if (is_ows(*p))
            return *why = "obs-fold: a header line starts with whitespace", bad;
        const char *colon = p;
        while (colon < eol && is_tchar((unsigned char)*colon))
            colon++;
        if (colon == p)
            return *why = "a header line without a name", bad;
        if (colon < eol && is_ows(*colon))
            return *why = "whitespace between a header name and its colon", bad;
        if (colon == eol)
            return *why = "a header line without a colon", bad;
        if (*colon != ':')
            return *why = "an invalid character in a header name", bad;
        for (const char *q = colon + 1; q < eol; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return *why = "a control character in a header value", bad;
        }
        if (n == LIMIT_HEADERS_COUNT) {
            *why = "more than 100 header lines";
            return bad == HTTP1_BAD_REQUEST ? HTTP1_HEADERS_TOO_LARGE : bad;
        }
        n++;
        p = nl + 1;
    }
    return *why = "no empty line ends the head", bad;
}

/* "HTTP/1.0" or "HTTP/1.1": the minor version; HTTP1_BAD_VERSION for
 * another version, HTTP1_BAD_REQUEST for what is not an HTTP version. */
static int parse_version(const char *p, size_t len)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return HTTP1_BAD_REQUEST;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return HTTP1_BAD_VERSION;
    return p[7] - '0';
}

/* ---- tokenising with http-parser ------------------------------------------------ */

struct tok {
    struct http_header *hs;
    size_t cap; /* lines hs has room for: the count scan_head found */
    size_t n;
    bool in_value; /* the last callback was a value */
    bool broken;   /* a field arrived in pieces or overflowed: refuse */
    bool over;     /* more fields than the first pass counted */
    struct http_slice url;
};

/* Extend *s with [at, at+len) when it continues it (http-parser may split
 * a field between callbacks); anything else is refused. */
static int append(struct tok *t, struct http_slice *s, const char *at, size_t len)
{
    if (!s->p) {
        s->p = at;
        s->len = len;
    } else if (s->p + s->len == at) {
        s->len += len;
    } else {
        t->broken = true;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct tok *t = p->data;
    return append(t, &t->url, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct tok *t = p->data;
    if (t->in_value || t->n == 0) {
        if (t->n == t->cap) {
            t->broken = t->over = true;
            return -1;
        }
        t->hs[t->n].name = (struct http_slice){NULL, 0};
        t->hs[t->n].value = (struct http_slice){NULL, 0};
        t->n++;
        t->in_value = false;
    }
    return append(t, &t->hs[t->n - 1].name, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct tok *t = p->data;
    if (t->n == 0) {
        t->broken = true;
        return -1;
    }
    t->in_value = true;
    return append(t, &t->hs[t->n - 1].value, at, len);
}

static int on_headers_complete(http_parser *p)
{
    /* Stop here: the body, if any, is the caller's business. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings tok_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

/* Run http-parser over the head. Returns HPE_OK when it reached the end of
 * the headers, else its error number. Header values come out OWS-trimmed
 * and never NULL. */
static enum http_errno tokenise(const char *buf, size_t len, enum http_parser_type type,
                                http_parser *p, struct tok *t)
{
    http_parser_init(p, type);
    p->data = t;
    http_parser_execute(p, &tok_settings, buf, len); /* the errno says how it ended */
    enum http_errno e = HTTP_PARSER_ERRNO(p);
    if (e != HPE_PAUSED)
        return e == HPE_OK ? HPE_UNKNOWN : e;
    if (t->broken)
        return HPE_UNKNOWN;
    for (size_t i = 0; i < t->n; i++) {
        struct http_slice *v = &t->hs[i].value;
        if (!v->p) {
            v->p = t->hs[i].name.p + t->hs[i].name.len;
            v->len = 0;
        }
        *v = trim_ows(v->p, v->p + v->len);
    }
    return HPE_OK;
}

/* http-parser refuses a tab after the digits of a Content-Length, although
 * OWS around a field value is legal (RFC 9110 section 5.5) and the value is
 * the same number. Such a head is tokenised again from a copy in which the
 * tabs of Content-Length lines are spaces, which http-parser skips, and the
 * slices are moved back onto buf; framing() still reads the trimmed value
 * strictly, so "5\t5" stays refused. Responses can be the larger heads. */
static enum http_errno tokenise_tab_ows(const char *buf, size_t len, enum http_parser_type type,
                                        http_parser *p, struct tok *t)
{
    enum {
        CAP = LIMIT_RESPONSE_HEAD_BYTES > LIMIT_HEADER_BYTES_MAX ? LIMIT_RESPONSE_HEAD_BYTES
                                                                 : LIMIT_HEADER_BYTES_MAX
    };
    static __thread char copy[CAP];
    if (len > CAP)
        return HPE_INVALID_CONTENT_LENGTH;
    memcpy(copy, buf, len);
    bool changed = false;
    for (char *line = copy, *end = copy + len; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *eol = nl ? nl : end;
        if ((size_t)(eol - line) > 15 && strncasecmp(line, "content-length:", 15) == 0)
            for (char *q = line + 15; q < eol; q++)
                if (*q == '\t') {
                    *q = ' ';
                    changed = true;
                }
        line = eol + 1;
    }
    if (!changed)
        return HPE_INVALID_CONTENT_LENGTH;
    struct http_header *hs = t->hs;
    size_t cap = t->cap;
    *t = (struct tok){.hs = hs, .cap = cap};
    enum http_errno e = tokenise(copy, len, type, p, t);
    if (e != HPE_OK)
        return e;
    ptrdiff_t shift = buf - copy;
    for (size_t i = 0; i < t->n; i++) {
        hs[i].name.p += shift;
        hs[i].value.p += shift;
    }
    if (t->url.p)
        t->url.p += shift;
    return HPE_OK;
}

/* Tokenise, accepting a Content-Length whose OWS includes a tab. */
static enum http_errno tokenise_head(const char *buf, size_t len, enum http_parser_type type,
                                     http_parser *p, struct tok *t)
{
    enum http_errno e = tokenise(buf, len, type, p, t);
    return e == HPE_INVALID_CONTENT_LENGTH ? tokenise_tab_ows(buf, len, type, p, t) : e;
}

/* ---- meaning of the fields ------------------------------------------------------ */

static unsigned connection_flags(const struct http_header *h, size_t n)
{
    unsigned f = 0;
    for (size_t i = 0; i < n; i++) {
        if (!http_slice_eq(h[i].name, "connection"))
            continue;
        const char *p = h[i].value.p, *end = p + h[i].value.len;
        struct http_slice tok;
        while (list_next(&p, end, &tok)) {
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

static bool keep_alive(int minor, unsigned flags)
{
    if (flags & HTTP_CONN_CLOSE)
        return false;
    return minor == 1 || (flags & HTTP_CONN_KEEP_ALIVE);
}

/* 1*DIGIT without sign, space or list, within 63 bits. */
static bool parse_length(struct http_slice v, uint64_t *out)
{
    if (v.len == 0)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        uint64_t d = (uint64_t)(v.p[i] - '0');
        if (n > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

struct framing {
    bool has_te; /* a Transfer-Encoding whose last coding is chunked */
    bool other;  /* ... after codings other than chunked */
    bool has_cl; /* Content-Length */
    uint64_t cl;
};

/* Framing headers shared by requests and responses: refuses repeated or
 * malformed Content-Length, a Transfer-Encoding not ending in a single
 * chunked, and both together. */
static long framing(const struct http_header *h, size_t n, long bad, struct framing *f,
                    const char **why)
{
    bool chunked_seen = false, te_seen = false, chunked_last = false;
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        if (http_slice_eq(h[i].name, "content-length")) {
            if (f->has_cl) /* even with the same value */
                return *why = "Content-Length given more than once", bad;
            if (!parse_length(h[i].value, &f->cl))
                return *why = "a Content-Length that is not a decimal number", bad;
            f->has_cl = true;
        } else if (http_slice_eq(h[i].name, "transfer-encoding")) {
            te_seen = true;
            const char *p = h[i].value.p, *end = p + h[i].value.len;
            struct http_slice tok;
            while (list_next(&p, end, &tok)) {
                /* A coding may carry parameters ("gzip;q=1"): only its name matters. */
                const char *semi = memchr(tok.p, ';', tok.len);
                struct http_slice name = semi ? trim_ows(tok.p, semi) : tok;
                if (!is_token(name))
                    return *why = "an invalid coding in Transfer-Encoding", bad;
                if (http_slice_eq(tok, "chunked")) {
                    if (chunked_seen)
                        return *why = "chunked given twice in Transfer-Encoding", bad;
                    chunked_seen = chunked_last = true;
                } else {
                    if (chunked_seen)
                        return *why = "a coding after chunked in Transfer-Encoding", bad;
                    f->other = true;
                }
            }
        }
    }
    if (te_seen) {
        if (f->has_cl)
            return *why = "both Content-Length and Transfer-Encoding", bad;
        if (!chunked_last)
            return *why = "a Transfer-Encoding that does not end in chunked", bad;
        f->has_te = true;
    }
    return 0;
}

static bool host_value_ok(struct http_slice h)
{
    if (h.len == 0)
        return false;
    for (size_t i = 0; i < h.len; i++) {
        unsigned char ch = (unsigned char)h.p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '@' || ch == '\\' || ch == '?' ||
            ch == '#' || ch == ',' || ch == '"' || ch == '<' || ch == '>')
            return false;
    }
    return true;
}

/* Split the request-target into path, query and authority. */
static long parse_target(struct http_request *req, struct http_slice *authority)
{
    const char **why = &req->error;
    struct http_slice t = req->target;
    authority->p = NULL;
    authority->len = 0;
    req->query.p = t.p + t.len;
    req->query.len = 0;
    for (size_t i = 0; i < t.len; i++) {
        unsigned char ch = (unsigned char)t.p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#') /* a fragment is never sent */
            return *why = "a space, control, non-ASCII byte or '#' in the target",
                   HTTP1_BAD_REQUEST;
    }
    if (t.len == 1 && t.p[0] == '*') {
        if (req->method_id != METHOD_OPTIONS)
            return *why = "the target * with a method other than OPTIONS", HTTP1_BAD_REQUEST;
        req->path.p = "/";
        req->path.len = 1;
        return 0;
    }
    const char *end = t.p + t.len, *path;
    if (t.p[0] == '/') {
        path = t.p;
    } else {
        size_t sl;
        if (t.len > 7 && strncasecmp(t.p, "http://", 7) == 0)
            sl = 7;
        else if (t.len > 8 && strncasecmp(t.p, "https://", 8) == 0)
            sl = 8;
        else
            return *why = "a target that is neither a path nor an http(s) URL", HTTP1_BAD_REQUEST;
        const char *a = t.p + sl;
        path = a;
        while (path < end && *path != '/' && *path != '?')
            path++;
        authority->p = a;
        authority->len = (size_t)(path - a);
        if (!host_value_ok(*authority)) /* empty, or with userinfo */
            return *why = "an invalid host in the target URL", HTTP1_BAD_REQUEST;
    }
    const char *qm = memchr(path, '?', (size_t)(end - path));
    const char *pend = qm ? qm : end;
    if (pend == path) {
        req->path.p = "/"; /* "http://host" or "http://host?q" */
        req->path.len = 1;
    } else {
        req->path.p = path;
        req->path.len = (size_t)(pend - path);
    }
    if (qm) {
        req->query.p = qm + 1;
        req->query.len = (size_t)(end - qm - 1);
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------------- */

/* "METHOD SP target SP HTTP/1.x", single spaces, token method. */
static long scan_request_line(struct http_slice line, struct http_request *req)
{
    const char **why = &req->error;
    const char *end = line.p + line.len;
    const char *sp1 = memchr(line.p, ' ', line.len);
    const char *rest = sp1 ? sp1 + 1 : end;
    const char *sp2 = sp1 ? memchr(rest, ' ', (size_t)(end - rest)) : NULL;
    if (!sp2)
        return *why = "a request line that is not METHOD TARGET VERSION", HTTP1_BAD_REQUEST;
    req->method = (struct http_slice){line.p, (size_t)(sp1 - line.p)};
    req->target = (struct http_slice){rest, (size_t)(sp2 - rest)};
    if (!is_token(req->method))
        return *why = "an invalid method name", HTTP1_BAD_REQUEST;
    if (req->target.len == 0)
        return *why = "an empty target (two spaces in the request line)", HTTP1_BAD_REQUEST;
    int minor = parse_version(sp2 + 1, (size_t)(end - sp2 - 1));
    if (minor == HTTP1_BAD_VERSION)
        return *why = "only HTTP/1.0 and HTTP/1.1 are served", minor;
    if (minor < 0) /* a third space lands here as a bad version string */
        return *why = "a malformed HTTP version in the request line", minor;
    req->minor = minor;
    return 0;
}

/* Case-sensitive, as methods are (RFC 9110 section 9.1). */
static bool method_is(struct http_slice m, unsigned id)
{
    const char *name = http_method_str((enum http_method)id);
    return strlen(name) == m.len && memcmp(name, m.p, m.len) == 0;
}

static long map_request_errno(enum http_errno e, const char **why)
{
    switch (e) {
    case HPE_INVALID_METHOD:
        return *why = "an unknown method", HTTP1_NOT_IMPLEMENTED;
    case HPE_HEADER_OVERFLOW:
        return *why = "the head is too large", HTTP1_HEADERS_TOO_LARGE;
    case HPE_UNEXPECTED_CONTENT_LENGTH: /* http-parser sees these before framing() */
        return *why = "Content-Length given more than once, or with Transfer-Encoding",
               HTTP1_BAD_REQUEST;
    case HPE_INVALID_CONTENT_LENGTH:
        return *why = "a Content-Length that is not a decimal number", HTTP1_BAD_REQUEST;
    case HPE_INVALID_TRANSFER_ENCODING:
        return *why = "a Transfer-Encoding that does not end in chunked", HTTP1_BAD_REQUEST;
    default:
        *why = http_errno_description(e); /* http-parser's own words */
        return HTTP1_BAD_REQUEST;
    }
}

/* http-parser's method, as portico tells methods apart; http-parser's
 * constants stay in this file. */
static enum http1_method method_of(unsigned m)
{
    static const enum http1_method methods[] = {
        [HTTP_GET] = METHOD_GET,       [HTTP_HEAD] = METHOD_HEAD,
        [HTTP_POST] = METHOD_POST,     [HTTP_PUT] = METHOD_PUT,
        [HTTP_DELETE] = METHOD_DELETE, [HTTP_OPTIONS] = METHOD_OPTIONS,
        [HTTP_TRACE] = METHOD_TRACE,   [HTTP_CONNECT] = METHOD_CONNECT,
        [HTTP_PATCH] = METHOD_PATCH,
    }; /* the rest: METHOD_OTHER (0) */
    return m < sizeof methods / sizeof methods[0] ? methods[m] : METHOD_OTHER;
}

void http1_parser_version(char *run, size_t run_cap, char *built, size_t built_cap)
{
    unsigned long v = http_parser_version();
    snprintf(run, run_cap, "%lu.%lu.%lu", (v >> 16) & 255, (v >> 8) & 255, v & 255);
    snprintf(built, built_cap, "%d.%d.%d", HTTP_PARSER_VERSION_MAJOR, HTTP_PARSER_VERSION_MINOR,
             HTTP_PARSER_VERSION_PATCH);
}

long http1_parse_request(const char *buf, size_t len, struct http_request *req)
{
    struct http_slice line;
    size_t nfields = 0;
    req->headers = req->headers_inline;
    req->nheaders = 0;
    req->error = NULL;
    const char **why = &req->error;
    long r = scan_head(buf, len, &line, &nfields, HTTP1_BAD_REQUEST, why);
    if (r < 0)
        return r;
    r = scan_request_line(line, req);
    if (r < 0)
        return r;

    req->headers =
        http1_header_room(req->headers_inline, &req->headers_heap, &req->headers_cap, nfields);
    if (!req->headers) {
        req->headers = req->headers_inline;
        return *why = "no memory for the header lines", HTTP1_NO_MEMORY;
    }
    http_parser p;
    struct tok t = {.hs = req->headers, .cap = nfields};
    enum http_errno e = tokenise_head(buf, len, HTTP_REQUEST, &p, &t);
    if (t.over)
        return *why = "an ambiguous head (two parsers read it differently)", HTTP1_BAD_REQUEST;
    if (e != HPE_OK)
        return map_request_errno(e, why);
    /* Both passes must have seen the same message. */
    if (t.n != nfields || t.url.p != req->target.p || t.url.len != req->target.len ||
        p.http_major != 1 || p.http_minor != req->minor || !method_is(req->method, p.method))
        return *why = "an ambiguous head (two parsers read it differently)", HTTP1_BAD_REQUEST;
    req->nheaders = t.n;
    req->method_id = method_of(p.method);
    if (req->method_id == METHOD_CONNECT)
        return *why = "CONNECT: portico is not a forward proxy", HTTP1_NOT_IMPLEMENTED;

    struct http_slice authority;
    r = parse_target(req, &authority);
    if (r < 0)
        return r;

    const struct http_header *host = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (http_slice_eq(req->headers[i].name, "host")) {
            if (host)
                return *why = "more than one Host header", HTTP1_BAD_REQUEST;
            host = &req->headers[i];
        }
    }
    if (!host && req->minor == 1)
        return *why = "no Host header (HTTP/1.1 requires one)", HTTP1_BAD_REQUEST;
    if (host && !host_value_ok(host->value))
        return *why = "an invalid Host header", HTTP1_BAD_REQUEST;
    if (authority.len)
        req->host = authority; /* RFC 9112 3.2.2: the target's authority wins */
    else if (host)
        req->host = host->value;
    else
        req->host = (struct http_slice){buf, 0};

    struct framing f;
    r = framing(req->headers, req->nheaders, HTTP1_BAD_REQUEST, &f, why);
    if (r < 0)
        return r;
    if (f.has_te && req->minor == 0) /* RFC 9112 6.1 */
        return *why = "Transfer-Encoding in an HTTP/1.0 request", HTTP1_BAD_REQUEST;
    if (f.other) /* codings portico would have to decode */
        return *why = "a transfer coding other than chunked", HTTP1_NOT_IMPLEMENTED;
    if (f.has_te) {
        req->body = HTTP_BODY_CHUNKED;
        req->content_length = 0;
    } else if (f.has_cl) {
        req->body = HTTP_BODY_LENGTH; /* also for 0, so the upstream sees the length */
        req->content_length = f.cl;
    } else {
        req->body = HTTP_BODY_NONE;
        req->content_length = 0;
    }

    req->conn_flags = connection_flags(req->headers, req->nheaders);
    req->keep_alive = keep_alive(req->minor, req->conn_flags);
    const struct http_header *ex = http_find_header(req->headers, req->nheaders, "expect");
    req->expect_continue = ex && req->minor == 1 && http_slice_eq(ex->value, "100-continue");
    req->upgrade = req->minor == 1 && (req->conn_flags & HTTP_CONN_UPGRADE) &&
                   http_find_header(req->headers, req->nheaders, "upgrade");
    req->head_len = len;
    return (long)len;
}

/* ---- responses ------------------------------------------------------------------ */

/* "HTTP/1.x SP 3DIGIT SP reason", or without " reason" as many servers send. */
static long scan_status_line(struct http_slice line, struct http_response *resp)
{
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
    return 0;
}

long http1_parse_response(const char *buf, size_t len, enum http1_method request_method,
                          struct http_response *resp)
{
    struct http_slice line;
    size_t nfields = 0;
    const char *why; /* upstream errors are logged by status only */
    resp->headers = resp->headers_inline;
    resp->nheaders = 0;
    if (scan_head(buf, len, &line, &nfields, HTTP1_BAD_RESPONSE, &why) < 0 ||
        scan_status_line(line, resp) < 0)
        return HTTP1_BAD_RESPONSE;
    /* Out of memory: the answer cannot be relayed, as for a bad one. */
    resp->headers =
        http1_header_room(resp->headers_inline, &resp->headers_heap, &resp->headers_cap, nfields);
    if (!resp->headers) {
        resp->headers = resp->headers_inline;
        return HTTP1_BAD_RESPONSE;
    }
    http_parser p;
    struct tok t = {.hs = resp->headers, .cap = nfields};
    if (tokenise_head(buf, len, HTTP_RESPONSE, &p, &t) != HPE_OK || t.n != nfields ||
        p.status_code != (unsigned)resp->status || p.http_major != 1 || p.http_minor != resp->minor)
        return HTTP1_BAD_RESPONSE;
    resp->nheaders = t.n;

    /* Framing is decided here (RFC 9112 section 6.3), not by http-parser,
     * which cannot know the request method. Transfer codings other than
     * chunked are refused: portico re-frames bodies and would lose them. */
    struct framing f;
    if (framing(resp->headers, resp->nheaders, HTTP1_BAD_RESPONSE, &f, &why) < 0 || f.other)
        return HTTP1_BAD_RESPONSE;
    if (request_method == METHOD_CONNECT && resp->status / 100 == 2)
        return HTTP1_BAD_RESPONSE; /* a tunnel portico never asked for */
    resp->has_content_length = f.has_cl;
    resp->content_length = f.has_cl ? f.cl : 0;
    resp->conn_flags = connection_flags(resp->headers, resp->nheaders);
    resp->keep_alive = keep_alive(resp->minor, resp->conn_flags);
    if (request_method == METHOD_HEAD || resp->status < 200 || resp->status == 204 ||
        resp->status == 304) {
        resp->body = HTTP_BODY_NONE;
    } else if (f.has_te) {
        resp->body = HTTP_BODY_CHUNKED;
    } else if (f.has_cl) {
        resp->body = HTTP_BODY_LENGTH;
    } else {
        resp->body = HTTP_BODY_EOF;
        resp->keep_alive = false;
    }
    resp->head_len = len;
    return (long)len;
}
