/* fuzz_auth.c - what portico makes of an auth provider's answer.
 *
 * Input: one flags byte (provider style, a portal or not, the client's
 * method HEAD or not, Connection: close or not), then the provider's
 * response head and body as it sends them. The head goes through the same
 * parser as in the proxy, then auth_judge.
 *
 * Beyond "no crash": only a 2xx lets the request through, copied header
 * values are configured names with values that cannot split a head, and
 * every answer written for the client parses back as one response with the
 * verdict's status, one Location at most and the declared body length. */
#include "fuzz.h"

#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "http1.h"

static char *copy[] = {"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name"};

static void check_client_answer(const struct auth_verdict *v, const char *out, size_t outlen,
                                bool head_only, size_t blen)
{
    const struct http1_limits lim = {outlen, outlen};
    size_t scan = 0;
    long hl = http1_find_head_end(out, outlen, &scan, &lim);
    FUZZ_CHECK(hl > 0);
    static struct http_response r;
    if (http1_parse_response(out, (size_t)hl, head_only ? METHOD_HEAD : METHOD_GET, &r) != hl) {
        /* Only the count may exceed portico's own limit (a provider's 100
         * Set-Cookie lines plus the framing portico adds); clients have none. */
        size_t lines = 0;
        for (long i = 1; i < hl; i++)
            lines += out[i] == '\n' && out[i - 1] == '\r';
        FUZZ_CHECK(lines - 2 > LIMIT_HEADERS_COUNT);
        return;
    }
    FUZZ_CHECK(r.status == v->status);
    FUZZ_CHECK(r.has_content_length);
    size_t locations = 0;
    for (size_t i = 0; i < r.nheaders; i++)
        locations += http_slice_eq(r.headers[i].name, "location");
    FUZZ_CHECK(locations <= 1);
    if (v->result == AUTH_REDIRECTED)
        FUZZ_CHECK(locations == 1 || (v->status >= 300 && v->status < 400));
    FUZZ_CHECK((size_t)hl + (head_only ? 0 : r.content_length) == outlen);
    FUZZ_CHECK(r.content_length <= blen || v->status == 403);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const char *in = (const char *)data + 1;
    size--;
    struct config_auth a = {.name = "fuzz",
                            .style = flags & 1 ? AUTH_REQUEST : AUTH_FORWARD,
                            .path = "/api/authz/forward-auth",
                            .host = "127.0.0.1:9091",
                            .copy_headers = copy,
                            .ncopy = 1 + (flags >> 4) % 4,
                            .portal = flags & 2 ? "https://auth.example.com/?x=1" : NULL};
    bool head_only = flags & 4, close = flags & 8;

    const struct http1_limits lim = {LIMIT_AUTH_HEAD_BYTES, LIMIT_AUTH_HEAD_BYTES};
    size_t scan = 0;
    long hl = http1_find_head_end(in, size, &scan, &lim);
    if (hl <= 0)
        return 0;
    static struct http_response resp;
    if (http1_parse_response(in, (size_t)hl, METHOD_GET, &resp) < 0)
        return 0;
    const char *body = in + hl;
    size_t blen = size - (size_t)hl;
    if (blen > LIMIT_AUTH_BODY_BYTES)
        return 0; /* the proxy refuses a larger body before judging */

    struct auth_target t = {.method = head_only ? "HEAD" : "GET",
                            .proto = "https",
                            .host = "app.example.com",
                            .port = 443,
                            .uri = {"/a/b?c=d%20e", 12},
                            .client = "192.0.2.1"};
    static struct auth_verdict v;
    static char out[LIMIT_AUTH_HEAD_BYTES + LIMIT_AUTH_BODY_BYTES + 8192];
    size_t outlen = 12345;
    auth_judge(&a, &resp, body, blen, &t, head_only, close, &v, out, sizeof out, &outlen);
    FUZZ_CHECK(outlen <= sizeof out);
    switch (v.result) {
    case AUTH_ALLOWED:
        FUZZ_CHECK(resp.status >= 200 && resp.status < 300);
        FUZZ_CHECK(v.ncopy <= a.ncopy && outlen == 0);
        for (size_t i = 0; i < v.ncopy; i++) {
            bool configured = false;
            for (size_t k = 0; k < a.ncopy; k++)
                configured = configured || strcasecmp(v.copy[i].name, a.copy_headers[k]) == 0;
            FUZZ_CHECK(configured);
            FUZZ_CHECK(v.copy[i].len > 0 && v.copy[i].len < sizeof v.copy[i].value);
            FUZZ_CHECK(strlen(v.copy[i].value) == v.copy[i].len);
            FUZZ_CHECK(!strpbrk(v.copy[i].value, "\r\n"));
        }
        if (v.user) {
            bool inside = false;
            for (size_t i = 0; i < v.ncopy; i++)
                inside = inside || v.user == v.copy[i].value;
            FUZZ_CHECK(inside);
        }
        break;
    case AUTH_REDIRECTED:
    case AUTH_DENIED:
        FUZZ_CHECK(resp.status < 200 || resp.status >= 300);
        FUZZ_CHECK(outlen > 0);
        check_client_answer(&v, out, outlen, head_only, blen);
        break;
    case AUTH_ERROR:
        FUZZ_CHECK(resp.status < 200 || resp.status >= 300 || !"a 2xx is never an error");
        FUZZ_CHECK(v.error && v.status == 502);
        break;
    default:
        FUZZ_CHECK(!"unknown verdict");
    }
    return 0;
}
