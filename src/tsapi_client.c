/* tsapi_client.c - the blocking HTTPS client for the Tailscale control API
 * and the service-definition sync built on it (see tsapi_client.h).
 *
 * Answers are read with the LocalAPI's response reader (localapi_msg.c),
 * which already bounds and checks HTTP/1.1 answers; the JSON in them is
 * read by tsapi.c. */
#include "tsapi_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "limits.h"
#include "localapi.h"
#include "strbuf.h"
#include "tls.h"

struct tsapi_client {
    char *tailnet, *client_id, *secret_file, *url, *host;
    char host_header[300];
    unsigned port;
    SSL_CTX *ctx;
    int fd; /* the kept-alive connection, -1 when none */
    SSL *ssl;
    char token[TSAPI_TOKEN_MAX + 1];
    struct timespec token_until; /* monotonic: request a new token after this */
    unsigned tokens;
    struct localapi_reader rd;
    int cancel_fd;   /* readable: give up waiting at once; -1 when none */
    int last_status; /* of the last answer; 0 when the last request got none */
    unsigned long calls[TSAPI_CALL_RESULTS];
};

static const char *peer_name = "the Tailscale API";

static void close_conn(struct tsapi_client *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

struct tsapi_client *tsapi_client_new(const struct config_tailscale_api *api, char *err,
                                      size_t errlen)
{
    struct tsapi_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->cancel_fd = -1;
    c->port = api->port;
    c->tailnet = strdup(api->tailnet);
    c->client_id = strdup(api->client_id);
    c->secret_file = strdup(api->secret_file);
    c->url = strdup(api->url);
    c->host = strdup(api->host);
    bool v6 = strchr(api->host, ':') != NULL;
    if (api->port == 443)
        snprintf(c->host_header, sizeof c->host_header, "%s%s%s", v6 ? "[" : "", api->host,
                 v6 ? "]" : "");
    else
        snprintf(c->host_header, sizeof c->host_header, "%s%s%s:%u", v6 ? "[" : "", api->host,
                 v6 ? "]" : "", api->port);
    if (!c->tailnet || !c->client_id || !c->secret_file || !c->url || !c->host) {
        snprintf(err, errlen, "out of memory");
        tsapi_client_free(c);
        return NULL;
    }
    char why[512];
    c->ctx = tls_client_ctx_new(api->ca_file, false, why, sizeof why);
    if (!c->ctx) {
        snprintf(err, errlen, "tailscale.api: %s", why);
        tsapi_client_free(c);
        return NULL;
    }
    return c;
}

void tsapi_client_free(struct tsapi_client *c)
{
    if (!c)
        return;
    close_conn(c);
    if (c->ctx)
        tls_client_ctx_free(c->ctx);
    localapi_reader_free(&c->rd);
    explicit_bzero(c->token, sizeof c->token);
    free(c->tailnet);
    free(c->client_id);
    free(c->secret_file);
    free(c->url);
    free(c->host);
    free(c);
}

unsigned tsapi_client_tokens(const struct tsapi_client *c)
{
    return c->tokens;
}

void tsapi_client_set_cancel(struct tsapi_client *c, int fd)
{
    c->cancel_fd = fd;
}

int tsapi_client_last_status(const struct tsapi_client *c)
{
    return c->last_status;
}

void tsapi_client_take_calls(struct tsapi_client *c, unsigned long out[TSAPI_CALL_RESULTS])
{
    for (int r = 0; r < TSAPI_CALL_RESULTS; r++) {
        out[r] += c->calls[r];
        c->calls[r] = 0;
    }
}

static void count_call(struct tsapi_client *c, int status)
{
    enum tsapi_call_result r = TSAPI_CALL_HTTP_ERROR;
    if (status == 0)
        r = TSAPI_CALL_FAILED;
    else if (status >= 200 && status < 300)
        r = TSAPI_CALL_OK;
    else if (status == 404)
        r = TSAPI_CALL_NOT_FOUND;
    else if (status == 401)
        r = TSAPI_CALL_UNAUTHORIZED;
    else if (status == 403)
        r = TSAPI_CALL_FORBIDDEN;
    else if (status == 429)
        r = TSAPI_CALL_RATE_LIMITED;
    c->calls[r]++;
}

/* Wait until fd is ready for ev: 0; -1 when the deadline passes or the
 * cancel descriptor becomes readable (the daemon is stopping). */
static int wait_fd(const struct tsapi_client *c, int fd, short ev, const struct timespec *deadline)
{
    if (c->cancel_fd < 0)
        return localapi_wait_fd(fd, ev, deadline);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
                         (deadline->tv_nsec - now.tv_nsec) / 1000000;
        if (left <= 0)
            return -1;
        struct pollfd p[2] = {{.fd = fd, .events = ev}, {.fd = c->cancel_fd, .events = POLLIN}};
        int rc = poll(p, 2, left > INT32_MAX ? INT32_MAX : (int)left);
        if (rc > 0)
            return p[1].revents ? -1 : 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- one connection ------------------------------------------------------------ */

/* Wait for what an SSL call that returned rc needs: 0 to retry it, -1
 * when it failed for good (the SSL error in *e) or time ran out. */
static int ssl_wait(struct tsapi_client *c, int rc, const struct timespec *deadline, int *e)
{
    *e = SSL_get_error(c->ssl, rc);
    if (*e == SSL_ERROR_WANT_READ)
        return wait_fd(c, c->fd, POLLIN, deadline);
    if (*e == SSL_ERROR_WANT_WRITE)
        return wait_fd(c, c->fd, POLLOUT, deadline);
    return -1;
}

static int tcp_connect(struct tsapi_client *c, const struct timespec *deadline, char *err,
                       size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int g = getaddrinfo(c->host, port, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %s (tailscale.api.url): %s", c->host,
                 gai_strerror(g));
        return -1;
    }
    int e = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_fd(c, fd, POLLOUT, deadline) == 0)) {
            socklen_t len = sizeof e;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0) {
                c->fd = fd;
                break;
            }
        } else {
            e = errno == EINPROGRESS ? ETIMEDOUT : errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->url, strerror(e ? e : ETIMEDOUT));
        return -1;
    }
    return 0;
}

static int tls_connect(struct tsapi_client *c, const struct timespec *deadline, char *err,
                       size_t errlen)
{
    unsigned char a[16];
    bool literal = inet_pton(AF_INET, c->host, a) == 1 || inet_pton(AF_INET6, c->host, a) == 1;
    c->ssl = SSL_new(c->ctx);
    bool ok = c->ssl && SSL_set_fd(c->ssl, c->fd) == 1;
    if (ok && literal)
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host) == 1;
    else if (ok)
        ok = SSL_set_tlsext_host_name(c->ssl, c->host) == 1 && SSL_set1_host(c->ssl, c->host) == 1;
    if (!ok) {
        snprintf(err, errlen, "cannot set up TLS towards %s", c->url);
        return -1;
    }
    ERR_clear_error();
    for (;;) {
        int rc = SSL_connect(c->ssl), e;
        if (rc == 1)
            return 0;
        if (ssl_wait(c, rc, deadline, &e) == 0)
            continue;
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK)
            snprintf(err, errlen,
                     "refusing %s: its certificate does not verify (%s); set tailscale.api.ca_file "
                     "if it is signed by a private CA",
                     c->url, X509_verify_cert_error_string(v));
        else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            snprintf(err, errlen, "TLS handshake with %s timed out", c->url);
        else {
            unsigned long first = ERR_peek_error();
            snprintf(err, errlen, "TLS handshake with %s failed: %s", c->url,
                     first ? ERR_reason_error_string(first) : "the connection closed");
        }
        ERR_clear_error();
        return -1;
    }
}

static int ssl_send(struct tsapi_client *c, const char *p, size_t n,
                    const struct timespec *deadline)
{
    while (n) {
        int rc = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n), e;
        if (rc > 0) {
            p += rc;
            n -= (size_t)rc;
        } else if (ssl_wait(c, rc, deadline, &e) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Send one request on the connection and read its answer into c->rd:
 * 1 when an answer came; 0 when the connection failed before any byte
 * of an answer (a kept-alive connection the server closed: worth one
 * retry on a new one); -1 with a sentence in err. */
static int exchange(struct tsapi_client *c, const char *head, size_t hlen, const char *body,
                    size_t blen, enum http1_method m, const char *what,
                    const struct timespec *deadline, char *err, size_t errlen)
{
    localapi_reader_init(&c->rd, m);
    c->rd.peer = peer_name;
    if (ssl_send(c, head, hlen, deadline) < 0 || (blen && ssl_send(c, body, blen, deadline) < 0)) {
        snprintf(err, errlen, "%s: sending to %s failed or timed out", what, c->url);
        return 0;
    }
    char why[256];
    for (;;) {
        size_t avail;
        char *p = localapi_reader_space(&c->rd, &avail, why, sizeof why);
        if (!p) {
            snprintf(err, errlen, "%s: %s", what, why);
            return -1;
        }
        ERR_clear_error();
        int rc = SSL_read(c->ssl, p, avail > INT32_MAX ? INT32_MAX : (int)avail), e = 0;
        if (rc <= 0 && ssl_wait(c, rc, deadline, &e) == 0)
            continue;
        bool eof = rc <= 0;
        if (eof && e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL && e != SSL_ERROR_SSL) {
            snprintf(err, errlen, "%s: %s did not answer in time", what, c->url);
            return -1;
        }
        if (eof && c->rd.len == 0) {
            snprintf(err, errlen, "%s: %s closed the connection without answering", what, c->url);
            return 0;
        }
        int f = localapi_reader_feed(&c->rd, eof ? 0 : (size_t)rc, eof, why, sizeof why);
        if (f < 0) {
            snprintf(err, errlen, "%s: %s", what, why);
            return -1;
        }
        if (f > 0)
            return 1;
    }
}

/* One request and its answer in c->rd (any status): 0, or -1 with a
 * sentence in err. */
static int request(struct tsapi_client *c, const char *method, enum http1_method m,
                   const char *path, const char *bearer, const char *ctype, const char *body,
                   char *err, size_t errlen)
{
    char head[TSAPI_HEAD_MAX], what[LIMIT_LOCALAPI_PATH_BYTES + 16];
    size_t blen = body ? strlen(body) : 0;
    struct tsapi_request r = {method, path, c->host_header, bearer, ctype, blen};
    long hlen = tsapi_build_head(&r, head, sizeof head, err, errlen);
    if (hlen < 0)
        return -1;
    snprintf(what, sizeof what, "%s %s", method, path);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += TIMEOUT_TSAPI_MS / 1000;
    int rc = 0;
    c->last_status = 0;
    for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
        bool reused = c->fd >= 0;
        if (!reused && (tcp_connect(c, &deadline, err, errlen) < 0 ||
                        tls_connect(c, &deadline, err, errlen) < 0)) {
            rc = -1;
            break;
        }
        rc = exchange(c, head, (size_t)hlen, body, blen, m, what, &deadline, err, errlen);
        if (rc <= 0)
            close_conn(c);
        if (rc == 0 && !reused)
            rc = -1; /* a new connection that fails is not retried */
    }
    explicit_bzero(head, sizeof head);
    if (rc < 0) {
        count_call(c, 0);
        return -1;
    }
    c->last_status = c->rd.resp.status;
    count_call(c, c->last_status);
    if (!c->rd.resp.keep_alive || c->rd.extra)
        close_conn(c);
    return 0;
}

/* ---- the token ------------------------------------------------------------------ */

static void answer_text(const struct tsapi_client *c, char *out, size_t cap)
{
    size_t len;
    const char *b = localapi_reader_body(&c->rd, &len);
    tsapi_error_text(b, len, out, cap);
    if (!out[0])
        snprintf(out, cap, "(no message)");
}

static int get_token(struct tsapi_client *c, char *err, size_t errlen)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (c->token[0] && now.tv_sec < c->token_until.tv_sec)
        return 0;
    char secret[TSAPI_SECRET_MAX + 1], why[512], msg[TSAPI_ERROR_SHOWN + 16];
    c->token[0] = '\0';
    if (tsapi_read_secret(c->secret_file, secret, sizeof secret, why, sizeof why) < 0) {
        snprintf(err, errlen, "tailscale.api: %s", why);
        return -1;
    }
    char *form = tsapi_token_form(c->client_id, secret);
    explicit_bzero(secret, sizeof secret);
    if (!form) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = request(c, "POST", METHOD_POST, "/api/v2/oauth/token", NULL,
                     "application/x-www-form-urlencoded", form, err, errlen);
    explicit_bzero(form, strlen(form));
    free(form);
    if (rc < 0)
        return -1;
    int st = c->rd.resp.status;
    if (st != 200) {
        answer_text(c, msg, sizeof msg);
        if (st == 400 || st == 401 || st == 403)
            snprintf(err, errlen,
                     "OAuth client rejected by %s (%d: %s): check "
                     "tailscale.api.oauth_client_id and the secret in %s",
                     c->url, st, msg, c->secret_file);
        else
            snprintf(err, errlen, "%s answered %d to the token request: %s", c->url, st, msg);
        return -1;
    }
    size_t len;
    const char *b = localapi_reader_body(&c->rd, &len);
    long expires;
    if (tsapi_parse_token(b, len, c->token, sizeof c->token, &expires, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", c->url, why);
        c->token[0] = '\0';
        return -1;
    }
    explicit_bzero(c->rd.buf, c->rd.len);
    /* renew shortly before it expires: a minute early, or at half its
     * life when it is shorter than two minutes */
    long early = expires >= 120 ? 60 : expires / 2;
    c->token_until = now;
    c->token_until.tv_sec += expires - early;
    c->tokens++;
    return 0;
}

/* One API call with the token: the answer in c->rd (any status). A 401
 * with a token kept from before (revoked, or the clock jumped) gets one
 * more try with a new token. */
static int api_call(struct tsapi_client *c, const char *method, enum http1_method m,
                    const char *path, const char *body, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        unsigned before = c->tokens;
        if (get_token(c, err, errlen) < 0 ||
            request(c, method, m, path, c->token, body ? "application/json" : NULL, body, err,
                    errlen) < 0)
            return -1;
        if (c->rd.resp.status != 401 || c->tokens != before)
            return 0;
        c->token[0] = '\0';
    }
    return 0;
}

static int api_error(const struct tsapi_client *c, const char *method, const char *path, char *err,
                     size_t errlen)
{
    char msg[TSAPI_ERROR_SHOWN + 16];
    int st = c->rd.resp.status;
    answer_text(c, msg, sizeof msg);
    if (st == 401)
        snprintf(err, errlen,
                 "OAuth client rejected: %s refused its token for %s %s (401: %s); check "
                 "tailscale.api.oauth_client_id and the secret in %s",
                 c->url, method, path, msg, c->secret_file);
    else if (st == 403)
        snprintf(err, errlen,
                 "%s refused %s %s (403: %s): the OAuth client lacks the scope for Services; give "
                 "it the \"services\" scope (write) in the admin console",
                 c->url, method, path, msg);
    else if (st == 404)
        snprintf(err, errlen, "%s answered 404 to %s %s: %s; check tailscale.api.tailnet (\"%s\")",
                 c->url, method, path, msg, c->tailnet);
    else if (st == 429)
        snprintf(err, errlen, "%s is rate-limiting %s %s (429: %s); try again later", c->url,
                 method, path, msg);
    else
        snprintf(err, errlen, "%s answered %d to %s %s: %s", c->url, st, method, path, msg);
    return -1;
}

/* ---- the definitions ------------------------------------------------------------ */

static void plan_list(struct strbuf *plan, const char *const *v, size_t n)
{
    strbuf_printf(plan, "[");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(plan, "%s%s", i ? " " : "", v[i]);
    strbuf_printf(plan, "]");
}

static int define_one(struct tsapi_client *c, const struct tsapi_want *w, bool dry_run,
                      struct strbuf *plan, struct tsapi_counts *counts, char *err, size_t errlen)
{
    char path[LIMIT_LOCALAPI_PATH_BYTES], what[512], why[512];
    if (tsapi_service_path(c->tailnet, w->label, path, sizeof path) < 0) {
        snprintf(err, errlen, "svc:%s: the path is too long", w->label);
        return -1;
    }
    if (api_call(c, "GET", METHOD_GET, path, NULL, err, errlen) < 0)
        return -1;
    int st = c->rd.resp.status;
    char *put = NULL;
    int cmp;
    if (st == 404) {
        put = tsapi_new_body(w);
        if (!put) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        strbuf_printf(plan, "+ define svc:%s  ports ", w->label);
        plan_list(plan, w->ports, w->nports);
        strbuf_printf(plan, " tags ");
        plan_list(plan, w->tags, w->ntags);
        strbuf_printf(plan, "\n");
        counts->created++;
    } else if (st != 200) {
        return api_error(c, "GET", path, err, errlen);
    } else {
        size_t len;
        const char *b = localapi_reader_body(&c->rd, &len);
        cmp = tsapi_compare(b, len, w, &put, what, sizeof what, why, sizeof why);
        if (cmp < 0) {
            snprintf(err, errlen, "%s: %s", c->url, why);
            return -1;
        }
        if (cmp == 0) {
            counts->unchanged++;
            return 0;
        }
        strbuf_printf(plan, "~ define svc:%s  %s\n", w->label, what);
        counts->updated++;
    }
    int rc = 0;
    if (!dry_run) {
        rc = api_call(c, "PUT", METHOD_PUT, path, put, err, errlen);
        if (rc == 0 && c->rd.resp.status != 200)
            rc = api_error(c, "PUT", path, err, errlen);
    }
    free(put);
    return rc;
}

int tsapi_define_services(struct tsapi_client *c, const struct tsapi_want *wants, size_t n,
                          bool dry_run, struct strbuf *plan, struct tsapi_counts *counts, char *err,
                          size_t errlen)
{
    memset(counts, 0, sizeof *counts);
    for (size_t i = 0; i < n; i++)
        if (define_one(c, &wants[i], dry_run, plan, counts, err, errlen) < 0)
            return -1;
    return 0;
}
