/* localapi_sync.h - a blocking client for tailscaled's LocalAPI, for the
 * one-shot `portico tailscale ...` commands (never the event loop).
 *
 * One request per connection over the Unix socket: "Host:
 * local-tailscaled.sock", no Origin or Referer (tailscaled refuses a
 * request carrying either, ipn/localapi/localapi.go ServeHTTP, read at
 * tailscale/tailscale de9ec7ee25627e0e518f53c710a3fc3d947c86c1, 1.103.0).
 *
 * The request head (localapi_format_request) and the answer's parsing
 * (struct localapi_reader) are pure and separate from the blocking I/O, so
 * that the non-blocking client of the daemon can share them when both are
 * in the tree. */
#ifndef PORTICO_LOCALAPI_SYNC_H
#define PORTICO_LOCALAPI_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "chunked.h"
#include "http1.h"

#define LOCALAPI_HOST        "local-tailscaled.sock"
#define LOCALAPI_TIMEOUT_MS  10000 /* one whole call */
#define LOCALAPI_ETAG_BYTES  128   /* hex sha256 is 64 */
#define LOCALAPI_ERROR_SHOWN 300   /* bytes of an error answer quoted in a message */

/* Why a call failed before an answer came. */
enum localapi_fail {
    LOCALAPI_OK,
    LOCALAPI_DOWN,   /* no socket file, or nothing listens on it */
    LOCALAPI_DENIED, /* the socket file cannot be opened (permissions) */
    LOCALAPI_BROKEN, /* timeout, reset, or an answer that is not HTTP */
};

struct localapi_answer {
    int status;
    char *body; /* NUL-terminated (the body may hold NULs; len counts them) */
    size_t len;
    char etag[LOCALAPI_ETAG_BYTES]; /* the Etag header; "" when absent */
};

/* The request head for method and path ("/localapi/v0/..."), with
 * Content-Length blen when body is sent (blen may be 0 for an empty body),
 * and If-Match when if_match is not NULL. Returns a malloc'ed string or
 * NULL (out of memory, or a CR/LF/NUL in path or if_match). */
char *localapi_format_request(const char *method, const char *path, const char *if_match, bool body,
                              size_t blen);

/* Reading one answer from bytes as they come. */
struct localapi_reader {
    char *raw; /* bytes received; the head, then the body's framing */
    size_t rawlen, rawcap, pos, scan;
    bool have_head;
    enum http_body framing; /* of the answer */
    unsigned long long left;
    struct chunked_decoder chunk;
    struct localapi_answer *out;
};

void localapi_reader_init(struct localapi_reader *r, struct localapi_answer *out);
/* Room for at least want more bytes at raw + rawlen; NULL when out of
 * memory or the answer would pass LIMIT_TS_JSON_BYTES and its head. */
char *localapi_reader_space(struct localapi_reader *r, size_t want);
/* n more bytes are at raw + rawlen (n == 0: the peer closed). Returns 1
 * when the answer is complete, 0 for more, -1 with a message in err. */
int localapi_reader_feed(struct localapi_reader *r, size_t n, char *err, size_t errlen);
void localapi_reader_free(struct localapi_reader *r);

/* One call, blocking for at most LOCALAPI_TIMEOUT_MS. Returns LOCALAPI_OK
 * with *out filled (any HTTP status), or why not with one sentence in err
 * that names the socket. Free out with localapi_answer_free in both cases. */
enum localapi_fail localapi_sync_call(const char *socket_path, const char *method, const char *path,
                                      const char *if_match, const char *body, size_t blen,
                                      struct localapi_answer *out, char *err, size_t errlen);
void localapi_answer_free(struct localapi_answer *a);

/* The message of an error answer: the "error" field of tailscaled's JSON
 * errors ({"error": "..."}), else the text, one line, control characters
 * shown as '?', at most LOCALAPI_ERROR_SHOWN bytes. */
void localapi_error_text(const struct localapi_answer *a, char *out, size_t cap);

#endif
