/* fuzz_proxyproto.c - the PROXY protocol parser (v1 and v2).
 *
 * Beyond "no crash": an accepted header is no longer than the input and the
 * protocol's bound, every shorter prefix of it asks for more bytes (never
 * refused: the header may arrive in any number of segments), the answer
 * does not change with bytes after the header, and addresses survive a
 * round trip through portico's own v1 and v2 encoders. */
#include "fuzz.h"

#include <netinet/in.h>
#include <string.h>

#include "proxyproto.h"

static void check_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    FUZZ_CHECK(a->ss_family == b->ss_family);
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        FUZZ_CHECK(x->sin_port == y->sin_port);
        FUZZ_CHECK(memcmp(&x->sin_addr, &y->sin_addr, sizeof x->sin_addr) == 0);
    } else {
        FUZZ_CHECK(a->ss_family == AF_INET6);
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        FUZZ_CHECK(x->sin6_port == y->sin6_port);
        FUZZ_CHECK(memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0);
    }
}

static void round_trip(const struct proxyproto_result *r)
{
    char out[PROXYPROTO_V2_MAX];
    struct proxyproto_result back;
    size_t n = proxyproto_build_v1(&r->src, &r->dst, out, sizeof out);
    FUZZ_CHECK(n > 0 && n <= PROXYPROTO_V1_MAX);
    FUZZ_CHECK(proxyproto_parse(out, n, &back) == (int)n && !back.local);
    check_same_addr(&r->src, &back.src);
    check_same_addr(&r->dst, &back.dst);
    n = proxyproto_build_v2(&r->src, &r->dst, out, sizeof out);
    FUZZ_CHECK(n > 0 && n <= PROXYPROTO_V2_MAX);
    FUZZ_CHECK(proxyproto_parse(out, n, &back) == (int)n && !back.local);
    check_same_addr(&r->src, &back.src);
    check_same_addr(&r->dst, &back.dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct proxyproto_result r, again;
    int n = proxyproto_parse(in, size, &r);
    FUZZ_CHECK(n >= -1 && n <= (int)size);
    if (n == 0)
        FUZZ_CHECK(size < PROXYPROTO_V2_MAX);
    if (n <= 0)
        return 0;
    FUZZ_CHECK(n <= (in[0] == 'P' ? PROXYPROTO_V1_MAX : PROXYPROTO_V2_MAX));
    /* Exactly the header's bytes give the same header. */
    FUZZ_CHECK(proxyproto_parse(in, (size_t)n, &again) == n);
    FUZZ_CHECK(again.local == r.local);
    for (int k = 0; k < n; k++)
        FUZZ_CHECK(proxyproto_parse(in, (size_t)k, &again) == 0);
    if (r.local)
        return 0;
    FUZZ_CHECK(r.src.ss_family == r.dst.ss_family);
    FUZZ_CHECK(r.srclen > 0 && r.srclen <= sizeof r.src && r.dstlen == r.srclen);
    round_trip(&r);
    return 0;
}
