/* fuzz_response.c - the response-head parser an upstream's bytes meet.
 *
 * The first byte chooses the request method the response answers (GET,
 * HEAD, POST or CONNECT: each changes the framing rules); the rest is the
 * response. Beyond "no crash": slices inside the buffer, the framing
 * follows RFC 9112 section 6.3 (no body for HEAD, 1xx, 204 and 304; never
 * Content-Length with Transfer-Encoding), and a 2xx to CONNECT is refused. */
#include "fuzz.h"

#include <string.h>

#include "http1.h"

#define MAX_HEADS 8 /* interim responses and pipelined answers from one input */

static void check_response(const struct http_response *r, enum http1_method method, const char *buf,
                           size_t len)
{
    FUZZ_CHECK(r->head_len == len);
    FUZZ_CHECK(r->status >= 100 && r->status <= 599);
    FUZZ_CHECK(r->minor == 0 || r->minor == 1);
    FUZZ_CHECK(fuzz_within(r->reason.p, r->reason.len, buf, len));
    FUZZ_CHECK(r->nheaders <= LIMIT_HEADERS_COUNT);
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n')
            FUZZ_CHECK(i > 0 && buf[i - 1] == '\r');
        if (buf[i] == '\r')
            FUZZ_CHECK(i + 1 < len && buf[i + 1] == '\n');
    }
    size_t cls = 0, tes = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http_header *h = &r->headers[i];
        FUZZ_CHECK(fuzz_within(h->name.p, h->name.len, buf, len) && h->name.len > 0);
        FUZZ_CHECK(fuzz_within(h->value.p, h->value.len, buf, len));
        for (size_t k = 0; k < h->value.len; k++)
            FUZZ_CHECK(h->value.p[k] != '\r' && h->value.p[k] != '\n' && h->value.p[k] != '\0');
        cls += http_slice_eq(h->name, "content-length");
        tes += http_slice_eq(h->name, "transfer-encoding");
    }
    FUZZ_CHECK(!(cls && tes));
    FUZZ_CHECK(r->has_content_length == (cls > 0));
    FUZZ_CHECK(!(method == METHOD_CONNECT && r->status / 100 == 2));
    bool bodiless =
        method == METHOD_HEAD || r->status < 200 || r->status == 204 || r->status == 304;
    if (bodiless)
        FUZZ_CHECK(r->body == HTTP_BODY_NONE);
    else if (tes)
        FUZZ_CHECK(r->body == HTTP_BODY_CHUNKED);
    else if (cls)
        FUZZ_CHECK(r->body == HTTP_BODY_LENGTH);
    else
        FUZZ_CHECK(r->body == HTTP_BODY_EOF && !r->keep_alive);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum http1_method methods[] = {METHOD_GET, METHOD_HEAD, METHOD_POST,
                                                METHOD_CONNECT};
    if (size < 1)
        return 0;
    enum http1_method method = methods[data[0] % 4];
    const char *in = (const char *)data + 1;
    size--;
    const struct http1_limits lim = {LIMIT_RESPONSE_HEAD_BYTES, LIMIT_RESPONSE_HEAD_BYTES};
    static struct http_response resp;
    for (int k = 0; k < MAX_HEADS && size > 0; k++) {
        size_t scan = 0;
        long end = http1_find_head_end(in, size, &scan, &lim);
        FUZZ_CHECK(end <= (long)size);
        if (end <= 0)
            return 0;
        long r = http1_parse_response(in, (size_t)end, method, &resp);
        FUZZ_CHECK(r == end || r == HTTP1_BAD_RESPONSE);
        if (r < 0)
            return 0;
        check_response(&resp, method, in, (size_t)end);
        /* Skip a Content-Length body, as the proxy would, to reach the next head. */
        uint64_t skip = resp.body == HTTP_BODY_LENGTH ? resp.content_length : 0;
        in += end;
        size -= (size_t)end;
        if (skip > size)
            return 0;
        in += skip;
        size -= (size_t)skip;
    }
    return 0;
}
