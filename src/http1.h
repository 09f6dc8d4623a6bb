/* http1.h - HTTP/1.x message heads: strict parsing and validation.
 *
 * Pure functions over a buffer, no I/O. The request line and header fields
 * are tokenised by http-parser (libhttp-parser); portico adds the checks a
 * proxy needs on top and refuses anything ambiguous instead of guessing:
 * bare LF, obs-fold, whitespace before a colon, repeated or malformed
 * Content-Length, Content-Length together with Transfer-Encoding, a
 * Transfer-Encoding whose final coding is not chunked, more than one Host.
 *
 * A parsed head refers into the caller's buffer (struct http_slice); it is
 * valid as long as those bytes are. */
#ifndef PORTICO_HTTP1_H
#define PORTICO_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "limits.h"

struct http_slice {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_slice name;
    struct http_slice value; /* leading and trailing whitespace removed */
};

enum http_body {
    HTTP_BODY_NONE,    /* no body */
    HTTP_BODY_LENGTH,  /* Content-Length bytes follow */
    HTTP_BODY_CHUNKED, /* chunked framing follows */
    HTTP_BODY_EOF,     /* responses only: body runs until the connection closes */
};

/* Bits for http_request.conn_flags / http_response.conn_flags: the tokens
 * of the Connection header(s) that portico acts on. */
#define HTTP_CONN_CLOSE      0x1
#define HTTP_CONN_KEEP_ALIVE 0x2
#define HTTP_CONN_UPGRADE    0x4

/* The request methods portico tells apart. Any other token is a valid
 * method too (WebDAV's PROPFIND, say): METHOD_OTHER, forwarded by its
 * name as sent. */
enum http1_method {
    METHOD_OTHER,
    METHOD_GET,
    METHOD_HEAD,
    METHOD_POST,
    METHOD_PUT,
    METHOD_DELETE,
    METHOD_OPTIONS,
    METHOD_TRACE,
    METHOD_CONNECT,
    METHOD_PATCH,
};

/* Header lines a parsed head holds in its own struct. A head with more
 * (the limit stays LIMIT_HEADERS_COUNT) puts them in an allocation of their
 * count, so a request in flight does not carry room for 100 lines it does
 * not have: most browsers send 10 to 20. */
#define HTTP1_HEADERS_INLINE 24

struct http_request {
    struct http_slice method;    /* as sent, e.g. "GET" */
    enum http1_method method_id; /* METHOD_OTHER for one portico does not tell apart */
    struct http_slice target;    /* request-target as sent */
    struct http_slice path;      /* path part of target ("/" for "*" or an authority-only URI) */
    struct http_slice query;     /* after '?', without it; len 0 if none */
    int minor;                   /* HTTP/1.<minor>: 0 or 1 */
    struct http_header *headers; /* nheaders lines: headers_inline or headers_heap */
    size_t nheaders;
    struct http_slice host; /* authority of an absolute-form target, else the Host
                               header value; len 0 if neither */
    enum http_body body;    /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    unsigned conn_flags;  /* HTTP_CONN_* seen in Connection */
    bool keep_alive;      /* the client allows reuse after this exchange */
    bool expect_continue; /* Expect: 100-continue */
    bool upgrade;         /* Connection: upgrade and an Upgrade header */
    size_t head_len;      /* bytes of the head, including the final CRLF */
    /* When http1_parse_request refuses the head: the rule that fired, a
     * phrase such as "more than one Host header" (static storage). */
    const char *error;
    /* Storage for the header lines, sized to what a head uses: up to
     * HTTP1_HEADERS_INLINE here, more (up to LIMIT_HEADERS_COUNT) in an
     * allocation the parse makes and http1_request_release frees. NULL and
     * 0 before the first parse (a zeroed struct is ready). */
    struct http_header *headers_heap;
    size_t headers_cap;
    struct http_header headers_inline[HTTP1_HEADERS_INLINE];
};

struct http_response {
    int status;
    struct http_slice reason;
    int minor;
    struct http_header *headers; /* nheaders lines: headers_inline or headers_heap */
    size_t nheaders;
    enum http_body body;     /* framing of the body that follows this head */
    uint64_t content_length; /* the Content-Length value if has_content_length */
    bool has_content_length; /* also for HEAD and 304 answers, whose body is NONE */
    unsigned conn_flags;
    bool keep_alive; /* the upstream allows reuse after this response */
    size_t head_len;
    /* As in struct http_request; freed by http1_response_release. */
    struct http_header *headers_heap;
    size_t headers_cap;
    struct http_header headers_inline[HTTP1_HEADERS_INLINE];
};

/* Parse errors. Each maps to the status portico answers with. */
enum http1_error {
    HTTP1_INCOMPLETE = 0,      /* need more bytes */
    HTTP1_BAD_REQUEST = -400,  /* malformed or ambiguous */
    HTTP1_URI_TOO_LONG = -414, /* request line over the limit */
    HTTP1_HEADERS_TOO_LARGE = -431,
    HTTP1_NOT_IMPLEMENTED = -501, /* unknown method, or a Transfer-Encoding we refuse */
    HTTP1_NO_MEMORY = -503,       /* no memory for the header lines */
    HTTP1_BAD_VERSION = -505,     /* not HTTP/1.0 or HTTP/1.1 */
    HTTP1_BAD_RESPONSE = -502,    /* malformed upstream response */
};

struct http1_limits {
    size_t max_header_bytes; /* whole head including request line */
    size_t max_request_line;
};

/* Find the end of a message head. *scan carries progress between calls on
 * a growing buffer (start at 0), so each byte is scanned once. Returns the
 * head length (through the blank line) when found, 0 when more bytes are
 * needed, or a negative enum http1_error when the limits are exceeded
 * before the end is found (414 while still in the request line, else 431).
 * For responses pass max_request_line = max_header_bytes. */
long http1_find_head_end(const char *buf, size_t len, size_t *scan, const struct http1_limits *lim);

/* Parse and validate a complete request head (len = the value returned by
 * http1_find_head_end). Returns head length or a negative enum http1_error. */
long http1_parse_request(const char *buf, size_t len, struct http_request *req);

/* Free the header storage a parse allocated (a head with more than
 * HTTP1_HEADERS_INLINE lines); the struct can be parsed into again. */
void http1_request_release(struct http_request *req);
void http1_response_release(struct http_response *resp);

/* Room for n header lines (n <= LIMIT_HEADERS_COUNT, as the parser
 * counted them): inl when n <= HTTP1_HEADERS_INLINE, else *heap grown to
 * exactly n (*cap lines). NULL when memory ran out. For the parsers. */
struct http_header *http1_header_room(struct http_header *inl, struct http_header **heap,
                                      size_t *cap, size_t n);

/* Parse and validate a complete response head. request_method is the
 * method the response answers (a HEAD response has no body; a 2xx to
 * CONNECT is a tunnel and is refused). Returns head length or
 * HTTP1_BAD_RESPONSE. 1xx heads parse with body NONE. */
long http1_parse_response(const char *buf, size_t len, enum http1_method request_method,
                          struct http_response *resp);

/* Case-insensitive comparison of a slice with a NUL-terminated name.
 * Inline so that the strlen of a literal name is folded at compile time:
 * heads are searched by name many times per request. */
static inline bool http_slice_eq(struct http_slice s, const char *name)
{
    size_t n = strlen(name);
    return s.len == n && strncasecmp(s.p, name, n) == 0;
}

/* Find a header by name (case-insensitive); NULL if absent. */
const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name);

/* Step through a comma-separated list such as a Connection value: the next
 * non-empty token from *p (before end) into tok. False when none is left. */
bool http_next_token(const char **p, const char *end, struct http_slice *tok);

/* The version of the HTTP/1 tokeniser (http-parser) portico runs with, and
 * the one it was built against, "MAJOR.MINOR.PATCH" each. */
void http1_parser_version(char *run, size_t run_cap, char *built, size_t built_cap);

#endif
