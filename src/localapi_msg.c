/* localapi_msg.c - the LocalAPI messages: building a request head, reading
 * an answer (Content-Length, chunked or until close, bounded), connecting
 * to tailscaled's socket, and the blocking call for the command line. The
 * non-blocking client (localapi.c) uses the same pieces. */
#include "localapi.h"

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

#define READ_CHUNK 16384 /* bytes asked of each read */

static const char *const endpoint_names[LOCALAPI_NENDPOINTS] = {
    "status", "whois", "serve-config", "prefs", "cert", "other",
};
static const char *const result_names[LOCALAPI_NRESULTS] = {
    "ok", "http_error", "unavailable", "timeout", "bad_answer", "queue_full",
};

const char *localapi_endpoint_name(enum localapi_endpoint ep)
{
    return endpoint_names[ep < LOCALAPI_NENDPOINTS ? ep : LOCALAPI_EP_OTHER];
}

const char *localapi_result_name(enum localapi_result r)
{
    return r < LOCALAPI_NRESULTS ? result_names[r] : "?";
}

enum localapi_endpoint localapi_endpoint_of(const char *path)
{
    size_t plen = strlen(LOCALAPI_PREFIX);
    if (strncmp(path, LOCALAPI_PREFIX, plen) != 0)
        return LOCALAPI_EP_OTHER;
    const char *name = path + plen;
    size_t n = strcspn(name, "/?");
    for (int i = 0; i < LOCALAPI_EP_OTHER; i++)
        if (strlen(endpoint_names[i]) == n && memcmp(name, endpoint_names[i], n) == 0)
            return (enum localapi_endpoint)i;
    return LOCALAPI_EP_OTHER;
}

/* Bytes allowed in a request-target: visible ASCII (the caller escapes). */
static bool target_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

const char *localapi_method_name(enum http1_method m)
{
    switch (m) {
    case METHOD_GET:
        return "GET";
    case METHOD_POST:
        return "POST";
    case METHOD_PUT:
        return "PUT";
    case METHOD_PATCH:
        return "PATCH";
    case METHOD_DELETE:
        return "DELETE";
    default:
        return NULL;
    }
}

long localapi_build_request(const struct localapi_request *r, char *out, size_t cap, char *err,
                            size_t errlen)
{
    const char *m = localapi_method_name(r->method);
    if (!m) {
        snprintf(err, errlen, "LocalAPI call with a method portico does not send");
        return -1;
    }
    if (!r->path || strncmp(r->path, LOCALAPI_PREFIX, strlen(LOCALAPI_PREFIX)) != 0 ||
        !target_ok(r->path) || strlen(r->path) >= LIMIT_LOCALAPI_PATH_BYTES) {
        snprintf(err, errlen,
                 "LocalAPI path must start with %s, hold only escaped visible ASCII and be "
                 "shorter than %d bytes",
                 LOCALAPI_PREFIX, LIMIT_LOCALAPI_PATH_BYTES);
        return -1;
    }
    if (r->if_match && (!target_ok(r->if_match) || strlen(r->if_match) > 256)) {
        snprintf(err, errlen, "LocalAPI If-Match value is not a plain Etag");
        return -1;
    }
    /* Only what tailscaled needs: the Host it checks, and never Origin or
     * Referer (its CSRF guard refuses any request carrying one). */
    bool has_body =
        r->body || r->method == METHOD_POST || r->method == METHOD_PATCH || r->method == METHOD_PUT;
    int n = snprintf(out, cap,
                     "%s %s HTTP/1.1\r\nHost: " LOCALAPI_HOST "\r\n"
                     "User-Agent: portico/" PORTICO_VERSION "\r\n%s%s%s",
                     m, r->path, r->if_match ? "If-Match: " : "", r->if_match ? r->if_match : "",
                     r->if_match ? "\r\n" : "");
    if (n > 0 && (size_t)n < cap && has_body)
        n += snprintf(out + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      r->body ? r->body_len : 0);
    if (n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "\r\n");
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "LocalAPI request head longer than %zu bytes", cap);
        return -1;
    }
    return n;
}

long localapi_query_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || strchr("-._~", ch);
        if (o + (keep ? 1 : 3) >= cap)
            return -1;
        if (keep) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return (long)o;
}

/* Who sent the answer, for messages. */
static const char *peer(const struct localapi_reader *r)
{
    return r->peer ? r->peer : "tailscaled";
}

void localapi_reader_init(struct localapi_reader *r, enum http1_method method)
{
    /* The buffer is reused across calls on one client (no allocation per
     * whois), unless a large answer (a serve config) grew it. */
    if (r->cap > 4 * READ_CHUNK)
        localapi_reader_free(r);
    http1_response_release(&r->resp);
    char *keep = r->buf;
    size_t cap = r->cap;
    const char *who = r->peer;
    memset(r, 0, sizeof *r);
    r->peer = who;
    r->buf = keep;
    r->cap = cap;
    r->method = method;
    chunked_decoder_init(&r->dec);
}

void localapi_reader_free(struct localapi_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->len = 0;
    http1_response_release(&r->resp);
}

char *localapi_reader_space(struct localapi_reader *r, size_t *avail, char *err, size_t errlen)
{
    /* One byte more than the data is kept for the body's NUL. */
    size_t max = LIMIT_LOCALAPI_HEAD_BYTES + LIMIT_TS_JSON_BYTES + READ_CHUNK + 1;
    if (r->cap - r->len < READ_CHUNK + 1 && r->cap < max) {
        size_t ncap = r->cap ? r->cap * 2 : 2 * READ_CHUNK;
        if (ncap > max)
            ncap = max;
        char *nb = realloc(r->buf, ncap);
        if (!nb) {
            snprintf(err, errlen, "out of memory reading %s's answer", peer(r));
            return NULL;
        }
        r->buf = nb;
        r->cap = ncap;
    }
    if (r->cap - r->len < 2) {
        snprintf(err, errlen, "%s's answer is larger than %u bytes", peer(r), LIMIT_TS_JSON_BYTES);
        return NULL;
    }
    *avail = r->cap - r->len - 1;
    return r->buf + r->len;
}

static int body_too_large(const struct localapi_reader *r, char *err, size_t errlen, uint64_t n)
{
    snprintf(err, errlen, "%s's answer has a %llu-byte body; portico reads at most %u", peer(r),
             (unsigned long long)n, LIMIT_TS_JSON_BYTES);
    return -1;
}

static int parse_head(struct localapi_reader *r, char *err, size_t errlen)
{
    struct http1_limits lim = {LIMIT_LOCALAPI_HEAD_BYTES, LIMIT_LOCALAPI_HEAD_BYTES};
    long end = http1_find_head_end(r->buf, r->len, &r->scan, &lim);
    if (end == 0)
        return 0;
    if (end < 0) {
        snprintf(err, errlen, "%s's answer head is over %d bytes", peer(r),
                 LIMIT_LOCALAPI_HEAD_BYTES);
        return -1;
    }
    if (http1_parse_response(r->buf, (size_t)end, r->method, &r->resp) < 0) {
        snprintf(err, errlen, "%s's answer is not a valid HTTP/1.1 response", peer(r));
        return -1;
    }
    if (r->resp.status < 200) { /* only sent for Expect or an upgrade, neither asked for */
        snprintf(err, errlen, "%s sent an interim %d answer, which portico did not ask for",
                 peer(r), r->resp.status);
        return -1;
    }
    if (r->resp.body == HTTP_BODY_LENGTH && r->resp.content_length > LIMIT_TS_JSON_BYTES)
        return body_too_large(r, err, errlen, r->resp.content_length);
    r->head_len = r->body_end = r->dec_pos = (size_t)end;
    return 1;
}

/* Decode what arrived in place: data segments move down to body_end (they
 * never overlap forwards: decoded bytes are fewer than the coded ones). */
static int decode_chunked(struct localapi_reader *r, char *err, size_t errlen)
{
    struct iovec seg[16];
    for (;;) {
        size_t used = 0, nseg = 0;
        int rc = chunked_decode(&r->dec, r->buf + r->dec_pos, r->len - r->dec_pos, &used, seg,
                                &nseg, 16);
        if (rc == CHUNKED_ERROR) {
            snprintf(err, errlen, "%s's answer has a malformed chunked body", peer(r));
            return -1;
        }
        for (size_t i = 0; i < nseg; i++) {
            if (r->body_end - r->head_len + seg[i].iov_len > LIMIT_TS_JSON_BYTES)
                return body_too_large(r, err, errlen, r->body_end - r->head_len + seg[i].iov_len);
            memmove(r->buf + r->body_end, seg[i].iov_base, seg[i].iov_len);
            r->body_end += seg[i].iov_len;
        }
        r->dec_pos += used;
        if (rc == CHUNKED_DONE) {
            r->extra = r->dec_pos < r->len;
            return 1;
        }
        if (nseg < 16 || used == 0)
            break;
    }
    /* Keep only the undecoded tail after the body. */
    memmove(r->buf + r->body_end, r->buf + r->dec_pos, r->len - r->dec_pos);
    r->len = r->body_end + (r->len - r->dec_pos);
    r->dec_pos = r->body_end;
    return 0;
}

static int finish(struct localapi_reader *r)
{
    /* Re-parse so the head's slices point into the buffer as it now is
     * (it may have moved when it grew); the head bytes never change. */
    (void)http1_parse_response(r->buf, r->head_len, r->method, &r->resp);
    r->buf[r->body_end] = '\0';
    r->done = true;
    return 1;
}

int localapi_reader_feed(struct localapi_reader *r, size_t n, bool eof, char *err, size_t errlen)
{
    r->len += n;
    if (!r->head_len) {
        int rc = parse_head(r, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            if (eof)
                snprintf(err, errlen, "%s closed the connection %s", peer(r),
                         r->len ? "in the middle of its answer" : "without answering");
            return eof ? -1 : 0;
        }
    }
    switch (r->resp.body) {
    case HTTP_BODY_NONE:
        r->extra = r->len > r->head_len;
        return finish(r);
    case HTTP_BODY_LENGTH:
        if (r->len - r->head_len >= r->resp.content_length) {
            r->body_end = r->head_len + (size_t)r->resp.content_length;
            r->extra = r->len > r->body_end;
            return finish(r);
        }
        break;
    case HTTP_BODY_CHUNKED: {
        int rc = decode_chunked(r, err, errlen);
        if (rc != 0)
            return rc < 0 ? -1 : finish(r);
        break;
    }
    case HTTP_BODY_EOF:
        if (r->len - r->head_len > LIMIT_TS_JSON_BYTES)
            return body_too_large(r, err, errlen, r->len - r->head_len);
        r->body_end = r->len;
        if (eof) {
            r->extra = true; /* the connection is gone: never reuse it */
            return finish(r);
        }
        return 0;
    }
    if (eof) {
        snprintf(err, errlen, "%s closed the connection in the middle of its answer", peer(r));
        return -1;
    }
    return 0;
}

const char *localapi_reader_body(const struct localapi_reader *r, size_t *len)
{
    *len = r->body_end - r->head_len;
    return r->buf + r->head_len;
}

bool localapi_reader_etag(const struct localapi_reader *r, char *out, size_t cap)
{
    return localapi_etag(&r->resp, out, cap);
}

bool localapi_etag(const struct http_response *resp, char *out, size_t cap)
{
    const struct http_header *h = http_find_header(resp->headers, resp->nheaders, "Etag");
    if (!h || h->value.len >= cap)
        return false;
    for (size_t i = 0; i < h->value.len; i++)
        if ((unsigned char)h->value.p[i] < 0x20 || h->value.p[i] == 0x7f)
            return false;
    memcpy(out, h->value.p, h->value.len);
    out[h->value.len] = '\0';
    return true;
}

void localapi_error_text(const struct localapi_reader *r, char *out, size_t cap)
{
    size_t n;
    const char *s = localapi_reader_body(r, &n);
    localapi_error_text_of(s, n, out, cap);
}

void localapi_error_text_of(const char *s, size_t n, char *out, size_t cap)
{
    /* tailscaled's errors are {"error": "..."} (WriteErrorJSON) or text
     * (http.Error); the JSON is read as JSON, so a quote or an escaped
     * newline in the message neither cuts it short nor shows as "\n". */
    json_t *j = n && s[0] == '{' ? json_loadb(s, n, 0, NULL) : NULL;
    const json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
    if (json_is_string(e)) {
        s = json_string_value(e);
        n = json_string_length(e);
    }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    if (n > LOCALAPI_ERROR_SHOWN)
        n = LOCALAPI_ERROR_SHOWN;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        out[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (cap)
        out[o] = '\0';
    json_decref(j);
}

void localapi_status_error(const struct localapi_reader *r, const char *what, size_t what_len,
                           char *err, size_t errlen)
{
    char text[LOCALAPI_ERROR_SHOWN + 1];
    localapi_error_text(r, text, sizeof text);
    snprintf(err, errlen, "tailscaled answered %d to %.*s%s%s", r->resp.status, (int)what_len, what,
             text[0] ? ": " : "", text);
}

int localapi_connect(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "tailscaled socket path %s is longer than %zu bytes", path,
                 sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket for tailscaled's LocalAPI: %s", strerror(errno));
        return -1;
    }
    /* A Unix stream connect completes at once or fails: EAGAIN means the
     * listen queue is full, which is tailscaled not keeping up. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
            snprintf(err, errlen,
                     "tailscaled is not running: %s %s (start tailscaled, or set "
                     "tailscale.socket to the socket it uses)",
                     e == ECONNREFUSED ? "nothing listens on" : "there is no socket at", path);
        else if (e == EACCES || e == EPERM)
            snprintf(err, errlen,
                     "permission denied opening tailscaled's socket %s (run portico as a user "
                     "allowed to open it)",
                     path);
        else
            snprintf(err, errlen, "cannot connect to tailscaled's socket %s: %s%s", path,
                     strerror(e), e == EAGAIN ? " (tailscaled is not accepting connections)" : "");
        errno = e;
        return -1;
    }
    return fd;
}

static int64_t ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

int localapi_wait_fd(int fd, short ev, const struct timespec *deadline)
{
    for (;;) {
        int64_t left = ms_left(deadline);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = ev};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int send_all(int fd, const char *p, size_t len, const struct timespec *deadline)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EAGAIN)
            if (localapi_wait_fd(fd, POLLOUT, deadline) < 0)
                return -1;
            else
                continue;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            return -1;
    }
    return 0;
}

int localapi_call_blocking(const char *sockpath, const struct localapi_request *r,
                           uint32_t timeout_ms, struct localapi_reader *out, char *err,
                           size_t errlen)
{
    char head[LIMIT_LOCALAPI_PATH_BYTES + 512];
    long hlen = localapi_build_request(r, head, sizeof head, err, errlen);
    if (hlen < 0)
        return -1;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    int fd = localapi_connect(sockpath ? sockpath : LOCALAPI_DEFAULT_SOCKET, err, errlen);
    if (fd < 0)
        return -1; /* errno is connect's */
    const char *what = head;
    size_t what_len = strcspn(head, "\r") - strlen(" HTTP/1.1");
    memset(out, 0, sizeof *out);
    localapi_reader_init(out, r->method);
    int rc = -1;
    if (send_all(fd, head, (size_t)hlen, &deadline) < 0 ||
        (r->body && send_all(fd, r->body, r->body_len, &deadline) < 0)) {
        snprintf(err, errlen, "sending %.*s to tailscaled failed or timed out after %u ms",
                 (int)what_len, what, timeout_ms);
        goto out;
    }
    char why[256];
    for (;;) {
        size_t avail;
        char *p = localapi_reader_space(out, &avail, why, sizeof why);
        if (!p) {
            snprintf(err, errlen, "%.*s: %s", (int)what_len, what, why);
            goto out;
        }
        ssize_t n = recv(fd, p, avail, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (localapi_wait_fd(fd, POLLIN, &deadline) < 0) {
                snprintf(err, errlen, "tailscaled did not answer %.*s within %u ms", (int)what_len,
                         what, timeout_ms);
                goto out;
            }
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "reading tailscaled's answer: %s", strerror(errno));
            goto out;
        }
        int f = localapi_reader_feed(out, (size_t)n, n == 0, why, sizeof why);
        if (f < 0) {
            snprintf(err, errlen, "%.*s: %s", (int)what_len, what, why);
            goto out;
        }
        if (f > 0) {
            rc = 0;
            break;
        }
    }
out:
    close(fd);
    if (rc < 0) {
        localapi_reader_free(out);
        errno = EIO;
    }
    return rc;
}
