/* fuzz_request.c - the request-head path a client's bytes take: find the
 * end of the head (incrementally, as bytes arrive), parse and validate it,
 * then build the forward-auth subrequest from it.
 *
 * Beyond "no crash": every slice lies inside the buffer, an accepted head
 * holds none of what the parser promises to refuse (bare CR or LF, obs-fold,
 * a second Host, Content-Length with Transfer-Encoding), finding the end
 * byte by byte agrees with finding it at once, and the subrequest built
 * from an accepted head parses back with the same header count. */
#include "fuzz.h"

#include <string.h>

#include "auth.h"
#include "config.h"
#include "http1.h"

#define MAX_PIPELINED 8 /* heads parsed from one input, as a pipelining client sends them */

static void check_slice(struct http_slice s, const char *buf, size_t len)
{
    FUZZ_CHECK(fuzz_within(s.p, s.len, buf, len));
}

static void check_request(const struct http_request *req, const char *buf, size_t len)
{
    FUZZ_CHECK(req->head_len == len);
    FUZZ_CHECK(len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0);
    /* Strict line ends: every LF follows a CR and every CR precedes an LF. */
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n')
            FUZZ_CHECK(i > 0 && buf[i - 1] == '\r');
        if (buf[i] == '\r')
            FUZZ_CHECK(i + 1 < len && buf[i + 1] == '\n');
    }
    check_slice(req->method, buf, len);
    check_slice(req->target, buf, len);
    FUZZ_CHECK(req->method.len > 0 && req->target.len > 0);
    if (req->path.p != req->target.p || req->path.len != req->target.len) {
        if (!(req->path.len == 1 && strncmp(req->path.p, "/", 1) == 0))
            check_slice(req->path, req->target.p, req->target.len);
    }
    FUZZ_CHECK(req->path.len > 0 && req->path.p[0] == '/');
    check_slice(req->query, buf, len);
    FUZZ_CHECK(req->minor == 0 || req->minor == 1);
    FUZZ_CHECK(req->nheaders <= LIMIT_HEADERS_COUNT);
    FUZZ_CHECK(req->method_id != METHOD_CONNECT);
    size_t hosts = 0, cls = 0, tes = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        check_slice(h->name, buf, len);
        check_slice(h->value, buf, len);
        FUZZ_CHECK(h->name.len > 0);
        for (size_t k = 0; k < h->name.len; k++)
            FUZZ_CHECK(h->name.p[k] > 0x20 && h->name.p[k] != ':' && h->name.p[k] < 0x7f);
        for (size_t k = 0; k < h->value.len; k++)
            FUZZ_CHECK(h->value.p[k] != '\r' && h->value.p[k] != '\n' && h->value.p[k] != '\0');
        if (h->value.len) {
            FUZZ_CHECK(h->value.p[0] != ' ' && h->value.p[0] != '\t');
            char last = h->value.p[h->value.len - 1];
            FUZZ_CHECK(last != ' ' && last != '\t');
        }
        hosts += http_slice_eq(h->name, "host");
        cls += http_slice_eq(h->name, "content-length");
        tes += http_slice_eq(h->name, "transfer-encoding");
    }
    FUZZ_CHECK(hosts <= 1);
    FUZZ_CHECK(!(cls && tes));
    FUZZ_CHECK(req->minor == 0 || hosts == 1);
    if (req->host.len)
        check_slice(req->host, buf, len);
    switch (req->body) {
    case HTTP_BODY_NONE:
        FUZZ_CHECK(!cls && !tes && req->content_length == 0);
        break;
    case HTTP_BODY_LENGTH:
        FUZZ_CHECK(cls >= 1);
        break;
    case HTTP_BODY_CHUNKED:
        FUZZ_CHECK(tes >= 1 && req->minor == 1);
        break;
    default:
        FUZZ_CHECK(!"a request body runs to EOF");
    }
}

/* The subrequest carries client header values: it must stay one
 * well-formed head (no header injection through them). */
static void check_subrequest(const struct http_request *req)
{
    static char *copy[] = {"Remote-User"};
    static const struct config_auth a = {.name = "fuzz",
                                         .style = AUTH_REQUEST,
                                         .path = "/api/authz/auth-request",
                                         .host = "127.0.0.1:9091",
                                         .copy_headers = copy,
                                         .ncopy = 1};
    struct auth_target t = {.method = "GET",
                            .proto = "https",
                            .host = "app.example.com",
                            .port = 8443,
                            .uri = req->target,
                            .client = "192.0.2.1"};
    static char out[LIMIT_OUT_HEAD_BYTES * 2];
    long n = auth_build_request(&a, req, &t, out, sizeof out);
    if (n < 0)
        return;
    static struct http_request sub;
    long r = http1_parse_request(out, (size_t)n, &sub);
    if (r == HTTP1_HEADERS_TOO_LARGE) {
        /* Only the count can exceed portico's own limit (a client's 100
         * credential lines plus what portico adds); providers have none. */
        size_t lines = 0;
        for (long i = 1; i < n; i++)
            lines += out[i] == '\n' && out[i - 1] == '\r';
        FUZZ_CHECK(lines - 2 > LIMIT_HEADERS_COUNT);
        return;
    }
    FUZZ_CHECK(r == n);
    size_t passed = 0;
    for (size_t i = 0; i < sub.nheaders; i++)
        passed += !http_slice_eq(sub.headers[i].name, "host") &&
                  strncasecmp(sub.headers[i].name.p, "x-", 2) != 0;
    FUZZ_CHECK(passed <= req->nheaders);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    /* Odd-sized inputs use small limits so that 414 and 431 are reachable. */
    struct http1_limits lim = {LIMIT_HEADER_BYTES_DEFAULT, LIMIT_REQUEST_LINE_DEFAULT};
    if (size & 1)
        lim = (struct http1_limits){1024, 256};
    static struct http_request req;
    for (int k = 0; k < MAX_PIPELINED && size > 0; k++) {
        size_t scan = 0;
        long whole = http1_find_head_end(in, size, &scan, &lim);
        FUZZ_CHECK(whole <= (long)size);
        /* The same bytes arriving in pieces (of 1 to 16 bytes, chosen by
         * the data) give the same answer. */
        size_t scan2 = 0, have = 0;
        long step = 0;
        while (step == 0 && have < size) {
            have += 1 + (unsigned char)in[have] % 16;
            if (have > size)
                have = size;
            step = http1_find_head_end(in, have, &scan2, &lim);
            FUZZ_CHECK(scan2 <= have);
        }
        FUZZ_CHECK(step == whole);
        if (whole <= 0)
            return 0;
        long r = http1_parse_request(in, (size_t)whole, &req);
        FUZZ_CHECK(r == whole || (r < 0 && r != HTTP1_INCOMPLETE));
        if (r < 0)
            return 0;
        check_request(&req, in, (size_t)whole);
        check_subrequest(&req);
        in += whole;
        size -= (size_t)whole;
    }
    return 0;
}
