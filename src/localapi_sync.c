/* localapi_sync.c - the blocking LocalAPI client (see localapi_sync.h).
 *
 * The `portico tailscale` commands make a handful of calls and exit, so
 * they block: one connection per call, a deadline for the whole call. The
 * daemon's own client is non-blocking (a state in the event loop) and is
 * built separately; when both are in the tree it shares
 * localapi_format_request and struct localapi_reader from this file, and
 * only localapi_sync_call stays specific to the commands. */
#include "localapi_sync.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "limits.h"

#define HEAD_MAX (64u << 10) /* an answer's head: tailscaled's are a few hundred bytes */

char *localapi_format_request(const char *method, const char *path, const char *if_match, bool body,
                              size_t blen)
{
    if (strpbrk(path, "\r\n ") || (if_match && strpbrk(if_match, "\r\n")))
        return NULL;
    char *out = NULL;
    /* Connection: close: one call per connection, so the end of the answer
     * is also where the framing says it is, whichever comes first. */
    int n = asprintf(&out,
                     "%s %s HTTP/1.1\r\nHost: " LOCALAPI_HOST "\r\nUser-Agent: portico/%s\r\n"
                     "Connection: close\r\n%s%s%s",
                     method, path, PORTICO_VERSION, if_match ? "If-Match: " : "",
                     if_match ? if_match : "", if_match ? "\r\n" : "");
    if (n < 0)
        return NULL;
    char *full = NULL;
    if (body)
        n = asprintf(&full, "%sContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", out,
                     blen);
    else
        n = asprintf(&full, "%s\r\n", out);
    free(out);
    return n < 0 ? NULL : full;
}

void localapi_reader_init(struct localapi_reader *r, struct localapi_answer *out)
{
    memset(r, 0, sizeof *r);
    memset(out, 0, sizeof *out);
    r->out = out;
    chunked_decoder_init(&r->chunk);
}

void localapi_reader_free(struct localapi_reader *r)
{
    free(r->raw);
    r->raw = NULL;
}

char *localapi_reader_space(struct localapi_reader *r, size_t want)
{
    if (r->rawcap - r->rawlen >= want)
        return r->raw + r->rawlen;
    size_t cap = r->rawcap ? r->rawcap * 2 : 16384;
    while (cap - r->rawlen < want)
        cap *= 2;
    if (cap > (size_t)LIMIT_TS_JSON_BYTES * 2 + HEAD_MAX)
        return NULL;
    char *p = realloc(r->raw, cap);
    if (!p)
        return NULL;
    r->raw = p;
    r->rawcap = cap;
    return r->raw + r->rawlen;
}

/* Append body bytes to the answer (kept NUL-terminated). */
static int add_body(struct localapi_reader *r, const char *p, size_t n, char *err, size_t errlen)
{
    struct localapi_answer *a = r->out;
    if (a->len + n > LIMIT_TS_JSON_BYTES) {
        snprintf(err, errlen, "the answer is larger than %u bytes", LIMIT_TS_JSON_BYTES);
        return -1;
    }
    char *b = realloc(a->body, a->len + n + 1);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(b + a->len, p, n);
    a->body = b;
    a->len += n;
    b[a->len] = '\0';
    return 0;
}

static int read_head(struct localapi_reader *r, char *err, size_t errlen)
{
    struct http1_limits lim = {HEAD_MAX, HEAD_MAX};
    long end = http1_find_head_end(r->raw, r->rawlen, &r->scan, &lim);
    if (end == 0)
        return 0;
    struct http_response resp;
    if (end < 0 || http1_parse_response(r->raw, (size_t)end, METHOD_GET, &resp) < 0) {
        snprintf(err, errlen, "the answer is not a valid HTTP/1.1 response");
        return -1;
    }
    if (resp.status < 200) { /* only sent for Expect or an upgrade, neither asked for */
        snprintf(err, errlen, "an interim %d answer, which the request did not ask for",
                 resp.status);
        return -1;
    }
    r->out->status = resp.status;
    const struct http_header *etag = http_find_header(resp.headers, resp.nheaders, "Etag");
    if (etag && etag->value.len < sizeof r->out->etag) {
        memcpy(r->out->etag, etag->value.p, etag->value.len);
        r->out->etag[etag->value.len] = '\0';
    }
    r->have_head = true;
    r->framing = resp.body;
    r->left = resp.content_length;
    r->pos = (size_t)end;
    return add_body(r, "", 0, err, errlen) < 0 ? -1 : 1; /* a body, even an empty one */
}

int localapi_reader_feed(struct localapi_reader *r, size_t n, char *err, size_t errlen)
{
    bool eof = n == 0;
    r->rawlen += n;
    if (!r->have_head) {
        int rc = read_head(r, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            if (eof)
                snprintf(err, errlen, "the connection closed before an answer");
            return eof ? -1 : 0;
        }
    }
    while (r->framing == HTTP_BODY_CHUNKED) {
        struct iovec segs[16];
        size_t nsegs = 0, used = 0;
        int st =
            chunked_decode(&r->chunk, r->raw + r->pos, r->rawlen - r->pos, &used, segs, &nsegs, 16);
        r->pos += used;
        for (size_t i = 0; i < nsegs; i++)
            if (add_body(r, segs[i].iov_base, segs[i].iov_len, err, errlen) < 0)
                return -1;
        if (st == CHUNKED_DONE)
            return 1;
        if (st == CHUNKED_ERROR) {
            snprintf(err, errlen, "the answer's chunked body is malformed");
            return -1;
        }
        if (nsegs == 0)
            break; /* all input used: wait for more */
    }
    if (r->framing == HTTP_BODY_NONE)
        return 1;
    if (r->framing != HTTP_BODY_CHUNKED) {
        size_t avail = r->rawlen - r->pos;
        if (r->framing == HTTP_BODY_LENGTH && avail > r->left)
            avail = (size_t)r->left;
        if (add_body(r, r->raw + r->pos, avail, err, errlen) < 0)
            return -1;
        r->pos += avail;
        if (r->framing == HTTP_BODY_LENGTH)
            r->left -= avail;
        if ((r->framing == HTTP_BODY_LENGTH && r->left == 0) ||
            (r->framing == HTTP_BODY_EOF && eof))
            return 1;
    }
    if (eof)
        snprintf(err, errlen, "the connection closed in the middle of the answer");
    return eof ? -1 : 0;
}

void localapi_answer_free(struct localapi_answer *a)
{
    free(a->body);
    a->body = NULL;
    a->len = 0;
}

static long ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Wait until fd is ready for events, at most until the deadline. */
static bool wait_fd(int fd, short events, const struct timespec *deadline)
{
    for (;;) {
        long left = ms_left(deadline);
        if (left <= 0)
            return false;
        struct pollfd pfd = {fd, events, 0};
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

static enum localapi_fail connect_socket(const char *path, int *fdp, char *err, size_t errlen)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof un.sun_path) {
        snprintf(err, errlen, "the socket path %s is too long", path);
        return LOCALAPI_BROKEN;
    }
    memcpy(un.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot make a socket: %s", strerror(errno));
        return LOCALAPI_BROKEN;
    }
    if (connect(fd, (struct sockaddr *)&un, sizeof un) == 0) {
        *fdp = fd;
        return LOCALAPI_OK;
    }
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) {
        snprintf(err, errlen,
                 "tailscaled is not running: %s %s (start tailscaled, or set tailscale.socket "
                 "to the socket it uses)",
                 e == ECONNREFUSED ? "nothing listens on" : "there is no socket at", path);
        return LOCALAPI_DOWN;
    }
    if (e == EACCES || e == EPERM) {
        snprintf(err, errlen, "permission denied opening tailscaled's socket %s", path);
        return LOCALAPI_DENIED;
    }
    snprintf(err, errlen, "cannot connect to tailscaled's socket %s: %s", path, strerror(e));
    return LOCALAPI_BROKEN;
}

static bool send_all(int fd, const char *p, size_t n, const struct timespec *deadline)
{
    while (n > 0) {
        if (!wait_fd(fd, POLLOUT, deadline))
            return false;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static enum localapi_fail exchange(int fd, const char *head, const char *body, size_t blen,
                                   struct localapi_reader *r, const struct timespec *deadline,
                                   char *err, size_t errlen)
{
    if (!send_all(fd, head, strlen(head), deadline) ||
        (body && !send_all(fd, body, blen, deadline))) {
        snprintf(err, errlen, "sending the request failed (%s)",
                 ms_left(deadline) <= 0 ? "timed out" : "connection closed");
        return LOCALAPI_BROKEN;
    }
    for (;;) {
        char *space = localapi_reader_space(r, 16384);
        if (!space) {
            snprintf(err, errlen, "the answer is larger than %u bytes", LIMIT_TS_JSON_BYTES);
            return LOCALAPI_BROKEN;
        }
        if (!wait_fd(fd, POLLIN, deadline)) {
            snprintf(err, errlen, "no answer within %d s", LOCALAPI_TIMEOUT_MS / 1000);
            return LOCALAPI_BROKEN;
        }
        ssize_t got = recv(fd, space, r->rawcap - r->rawlen, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0) {
            snprintf(err, errlen, "reading the answer failed: %s", strerror(errno));
            return LOCALAPI_BROKEN;
        }
        int rc = localapi_reader_feed(r, (size_t)got, err, errlen);
        if (rc != 0)
            return rc > 0 ? LOCALAPI_OK : LOCALAPI_BROKEN;
    }
}

enum localapi_fail localapi_sync_call(const char *socket_path, const char *method, const char *path,
                                      const char *if_match, const char *body, size_t blen,
                                      struct localapi_answer *out, char *err, size_t errlen)
{
    struct localapi_reader r;
    localapi_reader_init(&r, out);
    int fd = -1;
    enum localapi_fail f = connect_socket(socket_path, &fd, err, errlen);
    if (f != LOCALAPI_OK)
        return f;
    char *head = localapi_format_request(method, path, if_match, body != NULL, blen);
    if (!head) {
        close(fd);
        snprintf(err, errlen, "%s %s: cannot build the request", method, path);
        return LOCALAPI_BROKEN;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += LOCALAPI_TIMEOUT_MS / 1000;
    char why[256];
    f = exchange(fd, head, body, blen, &r, &deadline, why, sizeof why);
    if (f != LOCALAPI_OK)
        snprintf(err, errlen, "%s %s on tailscaled's socket %s: %s", method, path, socket_path,
                 why);
    free(head);
    close(fd);
    localapi_reader_free(&r);
    return f;
}

void localapi_error_text(const struct localapi_answer *a, char *out, size_t cap)
{
    const char *s = a->body ? a->body : "";
    size_t n = a->len;
    /* WriteErrorJSON: {"error":"..."} */
    json_t *j = a->body ? json_loadb(a->body, a->len, 0, NULL) : NULL;
    const json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
    if (json_is_string(e)) {
        s = json_string_value(e);
        n = json_string_length(e);
    }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        n--;
    if (n > LOCALAPI_ERROR_SHOWN)
        n = LOCALAPI_ERROR_SHOWN;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        out[o++] = (s[i] >= 0 && s[i] < 32) || s[i] == 127 ? '?' : s[i];
    if (cap)
        out[o] = '\0';
    json_decref(j);
}
