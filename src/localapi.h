/* localapi.h - a client for tailscaled's LocalAPI over its Unix socket.
 *
 * Two ways in, sharing the request builder and the response reader:
 *   - struct localapi_client: non-blocking, inside a worker's event loop.
 *     One connection, kept alive and reused; calls wait in a small bounded
 *     queue and go out one at a time (HTTP/1.1 without pipelining, as
 *     tailscaled's Go server reads them); each has a timeout that counts
 *     from when it was queued; a completion callback gets the status and
 *     body, or a sentence saying what failed. When tailscaled is missing,
 *     stopped, restarting, slow or garbling, calls fail cleanly and the
 *     client backs off before dialling again (limits.h), so a request that
 *     needs no tailnet data never waits on it.
 *   - localapi_call_blocking: one call with a deadline, for the command line.
 *
 * What tailscaled requires (ipn/localapi/localapi.go ServeHTTP and
 * validHost at tailscale/tailscale de9ec7ee2562, v1.103.0): paths under
 * /localapi/v0/, Host "local-tailscaled.sock" (or empty), and no Origin or
 * Referer header (a CSRF guard that answers 403). Permissions come from the
 * socket's peer credentials, not from anything sent. */
#ifndef PORTICO_LOCALAPI_H
#define PORTICO_LOCALAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunked.h"
#include "http1.h"

#define LOCALAPI_DEFAULT_SOCKET "/var/run/tailscale/tailscaled.sock"
#define LOCALAPI_HOST           "local-tailscaled.sock"
#define LOCALAPI_PREFIX         "/localapi/v0/"
#define LOCALAPI_ERROR_SHOWN    300 /* bytes of an error answer quoted in a message */

struct loop;
struct metrics_worker;

/* Endpoints and outcomes, for the metric portico_localapi_calls_total. */
enum localapi_endpoint {
    LOCALAPI_EP_STATUS,
    LOCALAPI_EP_WHOIS,
    LOCALAPI_EP_SERVE_CONFIG,
    LOCALAPI_EP_PREFS,
    LOCALAPI_EP_CERT,
    LOCALAPI_EP_OTHER,
    LOCALAPI_NENDPOINTS
};

enum localapi_result {
    LOCALAPI_OK,          /* a 2xx answer */
    LOCALAPI_HTTP_ERROR,  /* another status: tailscaled refused or failed the call */
    LOCALAPI_UNAVAILABLE, /* no connection (missing, stopped, restarting) or it dropped */
    LOCALAPI_TIMEOUT,     /* no complete answer within the call's timeout */
    LOCALAPI_BAD_ANSWER,  /* not HTTP/1.1 as expected, or larger than the limits */
    LOCALAPI_QUEUE_FULL,  /* LIMIT_LOCALAPI_QUEUE calls were waiting already */
    LOCALAPI_NRESULTS
};

const char *localapi_endpoint_name(enum localapi_endpoint ep);
const char *localapi_result_name(enum localapi_result r);
/* "GET", "POST", "PUT", "PATCH" or "DELETE"; NULL for a method portico
 * never sends to tailscaled. */
const char *localapi_method_name(enum http1_method m);
/* The endpoint a path names ("/localapi/v0/whois?addr=..." -> WHOIS). */
enum localapi_endpoint localapi_endpoint_of(const char *path);

/* One call as the caller describes it. */
struct localapi_request {
    enum http1_method method; /* METHOD_GET, _POST, _PATCH, ... */
    const char *path;         /* "/localapi/v0/...", query included, already escaped */
    const char *if_match;     /* an Etag to send as If-Match, or NULL */
    const char *body;         /* JSON sent with POST and PATCH; NULL: none */
    size_t body_len;
};

/* The request head for r, written to out: its length, or -1 with a
 * sentence in err (a path outside /localapi/v0/, a byte that cannot go in
 * a request line or header, too long for cap). The body goes after it. */
long localapi_build_request(const struct localapi_request *r, char *out, size_t cap, char *err,
                            size_t errlen);

/* Percent-encode s for a query value (RFC 3986 unreserved bytes kept):
 * the length written, or -1 when out (cap bytes, NUL included) is short. */
long localapi_query_escape(const char *s, char *out, size_t cap);

/* The response reader: bytes in, one complete answer out. It owns one
 * growing buffer; the chunked coding is decoded in place, so the buffer
 * holds the head, the body decoded so far and the undecoded rest, and
 * never more than LIMIT_LOCALAPI_HEAD_BYTES + LIMIT_TS_JSON_BYTES + one
 * read. */
struct localapi_reader {
    char *buf; /* owned */
    size_t len, cap;
    size_t scan;     /* http1_find_head_end progress */
    size_t head_len; /* 0 until the head is parsed */
    size_t body_end; /* end of the decoded body in buf */
    size_t dec_pos;  /* chunked: first byte not decoded yet */
    bool done;       /* a complete answer is in buf */
    bool extra;      /* bytes came after the answer: do not reuse the connection */
    enum http1_method method;
    /* Who answers, named in messages: NULL for tailscaled; the reader also
     * reads the Tailscale control API's answers (tsapi_client.c). Kept by
     * localapi_reader_init. */
    const char *peer;
    struct chunked_decoder dec;
    struct http_response resp; /* valid once head_len is set; slices into buf once done */
};

void localapi_reader_init(struct localapi_reader *r, enum http1_method method);
void localapi_reader_free(struct localapi_reader *r);
/* Room to read into (*avail bytes at the result), or NULL with a sentence
 * in err when the answer outgrew its limits or memory ran out. */
char *localapi_reader_space(struct localapi_reader *r, size_t *avail, char *err, size_t errlen);
/* n bytes were read into the space (n == 0 with eof: the peer closed).
 * 1: the answer is complete; 0: more is needed; -1: a sentence in err. */
int localapi_reader_feed(struct localapi_reader *r, size_t n, bool eof, char *err, size_t errlen);
/* The body of a complete answer, NUL-terminated (the NUL is not counted). */
const char *localapi_reader_body(const struct localapi_reader *r, size_t *len);

/* The Etag header of a complete answer, NUL-terminated in out: true, or
 * false when there is none, it is longer than cap - 1, or it holds a
 * control character (so it can go back as If-Match). */
bool localapi_reader_etag(const struct localapi_reader *r, char *out, size_t cap);
/* The same, from an answer's head (struct localapi_answer.head). */
bool localapi_etag(const struct http_response *resp, char *out, size_t cap);

/* The message of an error answer: the "error" field of tailscaled's JSON
 * errors ({"error": "..."}, WriteErrorJSON), else the body's text (http.Error);
 * trailing blanks dropped, control characters shown as '?', at most
 * LOCALAPI_ERROR_SHOWN bytes; "" when there is none. */
void localapi_error_text(const struct localapi_reader *r, char *out, size_t cap);
/* The same, from an answer's body (n bytes at s). */
void localapi_error_text_of(const char *s, size_t n, char *out, size_t cap);

/* A sentence for a non-2xx answer: "tailscaled answered 404 to GET
 * /localapi/v0/whois?addr=...: no match for IP:port" (its
 * localapi_error_text). */
void localapi_status_error(const struct localapi_reader *r, const char *what, size_t what_len,
                           char *err, size_t errlen);

/* Connect to the socket at path, non-blocking and close-on-exec: the fd,
 * or -1 with errno set by connect and a sentence in err (naming the path
 * and saying what to do). */
int localapi_connect(const char *path, char *err, size_t errlen);

/* Wait for fd to be ready for ev (POLLIN, POLLOUT) before deadline
 * (CLOCK_MONOTONIC), through EINTR: 0, or -1 when time ran out or poll
 * failed. For the blocking calls (also tsapi_client.c's). */
struct timespec;
int localapi_wait_fd(int fd, short ev, const struct timespec *deadline);

/* One call on a connection of its own, blocking up to timeout_ms in all:
 * 0 when an answer came (any status: see out->resp.status and
 * localapi_reader_body; free out with localapi_reader_free), or -1 with a
 * sentence in err (out holds nothing) and errno set: connect's error when
 * the socket could not be reached (EACCES: its permissions), else EIO. */
int localapi_call_blocking(const char *sockpath, const struct localapi_request *r,
                           uint32_t timeout_ms, struct localapi_reader *out, char *err,
                           size_t errlen);

/* ---- the non-blocking client ------------------------------------------- */

/* What a call ended with. Everything points into the client and is valid
 * only during the callback. */
struct localapi_answer {
    enum localapi_result result;
    int status;       /* the HTTP status; 0 when no answer came */
    const char *body; /* NUL-terminated; "" when no answer came */
    size_t body_len;
    const struct http_response *head; /* NULL when no answer came */
    const char *error;                /* a sentence when result != LOCALAPI_OK, else "" */
};

typedef void (*localapi_done_fn)(void *arg, const struct localapi_answer *a);

struct localapi_client;

/* A client for the socket at path (NULL: LOCALAPI_DEFAULT_SOCKET) in loop
 * l; metrics may be NULL. NULL with a sentence in err. */
struct localapi_client *localapi_client_new(struct loop *l, const char *path, uint32_t timeout_ms,
                                            struct metrics_worker *metrics, char *err,
                                            size_t errlen);
/* Close the connection and drop every call without calling it back. Not
 * from inside a callback. */
void localapi_client_free(struct localapi_client *c);

/* Queue a call: 0, and fn(arg, answer) runs exactly once, later, from the
 * loop (never from inside this function), unless localapi_cancel drops it;
 * or -1 with a sentence in err (a bad request, or the queue is full) and fn
 * never runs. The request is copied. */
int localapi_call(struct localapi_client *c, const struct localapi_request *r, localapi_done_fn fn,
                  void *arg, char *err, size_t errlen);

/* Drop every call queued with this fn and arg: none of them is called
 * back. A call already sent still completes on the wire (so the connection
 * stays usable) and its answer is discarded. */
void localapi_cancel(struct localapi_client *c, localapi_done_fn fn, const void *arg);

/* Calls queued or in flight (for tests and shutdown). */
size_t localapi_pending(const struct localapi_client *c);

#endif
