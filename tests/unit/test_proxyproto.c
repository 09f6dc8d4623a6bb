/* test_proxyproto.c - PROXY protocol v1 and v2 headers, in and out. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxyproto.h"

static struct proxyproto_result r;

/* Every proper prefix needs more bytes; the whole header parses to its
 * length, with anything after it left alone. */
static void parses_whole_and_by_prefix(const char *h, size_t len)
{
    static char buf[16384 + 16];
    assert_true(len <= sizeof buf - 5);
    memcpy(buf, h, len);
    memcpy(buf + len, "GET /", 5);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(proxyproto_parse(buf, i, &r), 0);
    assert_int_equal(proxyproto_parse(buf, len + 5, &r), (int)len);
}

static const char *src4(void)
{
    static char s[64];
    const struct sockaddr_in *in = (const void *)&r.src;
    inet_ntop(AF_INET, &in->sin_addr, s, sizeof s);
    return s;
}

static void test_proxyproto_v1_tcp4_accepted(void **state)
{
    const char *h = "PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n";
    parses_whole_and_by_prefix(h, strlen(h));
    assert_false(r.local);
    assert_int_equal(r.src.ss_family, AF_INET);
    assert_string_equal(src4(), "203.0.113.7");
    assert_int_equal(ntohs(((const struct sockaddr_in *)&r.src)->sin_port), 5555);
    assert_int_equal(ntohs(((const struct sockaddr_in *)&r.dst)->sin_port), 80);
}

static void test_proxyproto_v1_tcp6_accepted(void **state)
{
    const char *h = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 443\r\n";
    parses_whole_and_by_prefix(h, strlen(h));
    assert_int_equal(r.src.ss_family, AF_INET6);
    assert_int_equal(ntohs(((const struct sockaddr_in6 *)&r.src)->sin6_port), 65535);
}

static void test_proxyproto_v1_unknown_is_local(void **state)
{
    parses_whole_and_by_prefix("PROXY UNKNOWN\r\n", 15);
    assert_true(r.local);
    const char *h = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    parses_whole_and_by_prefix(h, strlen(h));
    assert_true(r.local);
}

static void test_proxyproto_v1_malformed_refused(void **state)
{
    const char *bad[] = {
        "PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",
        "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7  10.0.0.1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        "GET / HTTP/1.1\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(proxyproto_parse(bad[i], strlen(bad[i]), &r), -1);
}

static void test_proxyproto_v1_overlong_line_refused(void **state)
{
    char buf[200];
    memset(buf, '1', sizeof buf);
    memcpy(buf, "PROXY TCP4 ", 11);
    assert_int_equal(proxyproto_parse(buf, sizeof buf, &r), -1);
}

/* 107 bytes is the longest v1 line, CRLF included (found by fuzzing: a
 * 108-byte line was accepted). */
static void test_proxyproto_v1_line_of_108_bytes_refused(void **state)
{
    char buf[PROXYPROTO_V1_MAX + 8];
    const char *head = "PROXY UNKNOWN ";
    size_t hl = strlen(head);
    for (size_t total = PROXYPROTO_V1_MAX - 1; total <= PROXYPROTO_V1_MAX + 1; total++) {
        memcpy(buf, head, hl);
        memset(buf + hl, 'x', total - 2 - hl);
        memcpy(buf + total - 2, "\r\n", 2);
        int want = total <= PROXYPROTO_V1_MAX ? (int)total : -1;
        assert_int_equal(proxyproto_parse(buf, total, &r), want);
    }
    /* Decided as early as the bytes allow: no CR among the first 106. */
    memset(buf + hl, 'x', PROXYPROTO_V1_MAX - hl);
    assert_int_equal(proxyproto_parse(buf, PROXYPROTO_V1_MAX - 2, &r), 0);
    assert_int_equal(proxyproto_parse(buf, PROXYPROTO_V1_MAX - 1, &r), -1);
}

static size_t v2(unsigned char *b, unsigned cmdver, unsigned fam, const void *addr, size_t alen)
{
    memcpy(b, "\r\n\r\n\0\r\nQUIT\n", 12);
    b[12] = (unsigned char)cmdver;
    b[13] = (unsigned char)fam;
    b[14] = (unsigned char)(alen >> 8);
    b[15] = (unsigned char)alen;
    memcpy(b + 16, addr, alen);
    return 16 + alen;
}

static void test_proxyproto_v2_tcp4_with_tlv_accepted(void **state)
{
    unsigned char a[12 + 6] = {198,  51, 100, 9,    10, 0, 0,   1,   0x04,
                               0xd2, 0,  80,  0x04, 0,  3, 'a', 'b', 'c'};
    unsigned char b[64];
    size_t n = v2(b, 0x21, 0x11, a, sizeof a);
    parses_whole_and_by_prefix((const char *)b, n);
    assert_false(r.local);
    assert_string_equal(src4(), "198.51.100.9");
    assert_int_equal(ntohs(((const struct sockaddr_in *)&r.src)->sin_port), 1234);
}

static void test_proxyproto_v2_local_and_unspec_are_local(void **state)
{
    unsigned char b[64];
    size_t n = v2(b, 0x20, 0x00, "", 0);
    parses_whole_and_by_prefix((const char *)b, n);
    assert_true(r.local);
    n = v2(b, 0x21, 0x00, "xyz", 0);
    parses_whole_and_by_prefix((const char *)b, n);
    assert_true(r.local);
}

static void test_proxyproto_v2_malformed_refused(void **state)
{
    unsigned char a[36] = {0};
    unsigned char b[700];
    size_t n = v2(b, 0x31, 0x11, a, 12); /* version 3 */
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), -1);
    n = v2(b, 0x22, 0x11, a, 12); /* command 2 */
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), -1);
    n = v2(b, 0x21, 0x11, a, 4); /* too short for IPv4 */
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), -1);
    n = v2(b, 0x21, 0x21, a, 12); /* too short for IPv6 */
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), -1);
    n = v2(b, 0x21, 0x44, a, 12); /* unknown family */
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), -1);
    unsigned char t[15] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 0x04, 0, 9}; /* TLV overruns */
    n = v2(b, 0x21, 0x11, t, sizeof t);
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), -1);
}

/* TLVs of any type may fill the header up to 16 KiB, the bound README
 * documents, as load balancers send them (AWS, Azure, GCP ids, HAProxy's
 * SSL TLVs); one byte more is refused as soon as the length is seen. */
#define PP2_BOUND 16384

static void test_proxyproto_v2_tlvs_up_to_the_bound_accepted(void **state)
{
    static unsigned char b[PP2_BOUND + 16], body[PP2_BOUND];
    const unsigned char addr[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0x04, 0xd2, 0, 80};
    memcpy(body, addr, sizeof addr);

    /* 4 KiB of NOOP TLV (well past the 536 bytes once accepted). */
    const unsigned char noop4k[] = {0x04, 0x0f, 0xf1};
    memcpy(body + sizeof addr, noop4k, sizeof noop4k);
    memset(body + sizeof addr + 3, 'x', 0x0ff1);
    size_t n = v2(b, 0x21, 0x11, body, sizeof addr + 3 + 0x0ff1);
    assert_int_equal(n, 4112);
    assert_int_equal(proxyproto_parse((const char *)b, n, &r), (int)n);
    assert_string_equal(src4(), "198.51.100.9");

    /* An AWS VPC endpoint id, an Azure link id, then a NOOP TLV that pads
     * the header to exactly the bound. */
    size_t off = sizeof addr;
    const char vpce[] = "\x01vpce-0123456789abcdef0";
    body[off++] = 0xea;
    body[off++] = 0;
    body[off++] = (unsigned char)(sizeof vpce - 1);
    memcpy(body + off, vpce, sizeof vpce - 1);
    off += sizeof vpce - 1;
    const unsigned char azure[] = {0xee, 0, 5, 0x01, 1, 2, 3, 4};
    memcpy(body + off, azure, sizeof azure);
    off += sizeof azure;
    size_t pad = PP2_BOUND - 16 - off - 3;
    body[off++] = 0x04;
    body[off++] = (unsigned char)(pad >> 8);
    body[off++] = (unsigned char)pad;
    memset(body + off, 'x', pad);
    off += pad;
    n = v2(b, 0x21, 0x11, body, off);
    assert_int_equal(n, PP2_BOUND);
    parses_whole_and_by_prefix((const char *)b, n);
    assert_false(r.local);
    assert_string_equal(src4(), "198.51.100.9");

    /* One byte over: refused from the first 16 bytes on. */
    n = v2(b, 0x21, 0x11, body, PP2_BOUND - 16 + 1);
    assert_int_equal(proxyproto_parse((const char *)b, 16, &r), -1);
    b[14] = b[15] = 0xff; /* the largest length the field can carry */
    assert_int_equal(proxyproto_parse((const char *)b, 16, &r), -1);
}

static void test_proxyproto_round_trip_v1_and_v2(void **state)
{
    struct sockaddr_storage s4 = {0}, d4 = {0}, s6 = {0}, d6 = {0};
    struct sockaddr_in *a = (void *)&s4, *b = (void *)&d4;
    a->sin_family = b->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.1", &a->sin_addr);
    inet_pton(AF_INET, "192.0.2.2", &b->sin_addr);
    a->sin_port = htons(40000);
    b->sin_port = htons(443);
    struct sockaddr_in6 *c = (void *)&s6, *d = (void *)&d6;
    c->sin6_family = d->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &c->sin6_addr);
    inet_pton(AF_INET6, "2001:db8::2", &d->sin6_addr);
    c->sin6_port = htons(1);
    char out[PROXYPROTO_OUT_MAX];
    size_t n = proxyproto_build_v1(&s4, &d4, out, sizeof out);
    assert_int_equal(n, strlen("PROXY TCP4 192.0.2.1 192.0.2.2 40000 443\r\n"));
    assert_memory_equal(out, "PROXY TCP4 192.0.2.1 192.0.2.2 40000 443\r\n", n);
    assert_int_equal(proxyproto_parse(out, n, &r), (int)n);
    assert_string_equal(src4(), "192.0.2.1");
    n = proxyproto_build_v2(&s4, &d4, out, sizeof out);
    assert_int_equal(n, 28);
    assert_int_equal(proxyproto_parse(out, n, &r), 28);
    assert_string_equal(src4(), "192.0.2.1");
    n = proxyproto_build_v2(&s6, &d6, out, sizeof out);
    assert_int_equal(n, 52);
    assert_int_equal(proxyproto_parse(out, n, &r), 52);
    assert_memory_equal(&((struct sockaddr_in6 *)&r.src)->sin6_addr, &c->sin6_addr, 16);
    n = proxyproto_build_v1(&s6, &d6, out, sizeof out);
    assert_int_equal(proxyproto_parse(out, n, &r), (int)n);
    assert_int_equal(r.src.ss_family, AF_INET6);
    /* Mixed or non-inet families: UNKNOWN / LOCAL. */
    n = proxyproto_build_v1(&s4, &d6, out, sizeof out);
    assert_memory_equal(out, "PROXY UNKNOWN\r\n", n);
    n = proxyproto_build_v2(&s4, &d6, out, sizeof out);
    assert_int_equal(n, 16);
    assert_int_equal(proxyproto_parse(out, n, &r), 16);
    assert_true(r.local);
    assert_int_equal(proxyproto_build_v2(&s4, &d4, out, 20), 0);
}

/* The v2 encoder against bytes written from the specification (section
 * 2.2 of the PROXY protocol text), not against portico's own parser: a
 * mistake made the same way in both would pass a round trip. */
static void test_proxyproto_v2_encoder_matches_bytes_written_by_hand(void **state)
{
    static const unsigned char v4[28] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21,                   /* version 2, command PROXY */
        0x11,                   /* AF_INET, STREAM */
        0x00, 0x0c,             /* 12 address bytes follow */
        0xc0, 0x00, 0x02, 0x01, /* source 192.0.2.1 */
        0xc6, 0x33, 0x64, 0x07, /* destination 198.51.100.7 */
        0x9c, 0x40,             /* source port 40000 */
        0x01, 0xbb,             /* destination port 443 */
    };
    static const unsigned char v6[52] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21, 0x21, 0x00, 0x24, /* PROXY, AF_INET6 STREAM, 36 address bytes */
        0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0,    0,    0,    0,    0,
        0,    0,    0,    0x0a, /* 2001:db8::a */
        0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0,    0,    0,    0,    0,
        0,    0,    0,    0x0b, /* 2001:db8::b */
        0x00, 0x01,             /* source port 1 */
        0x20, 0xfb,             /* destination port 8443 */
    };
    static const unsigned char local[16] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55,
        0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00, /* version 2, command LOCAL, AF_UNSPEC, no
                                                     addresses */
    };
    struct sockaddr_storage s4 = {0}, d4 = {0}, s6 = {0}, d6 = {0};
    struct sockaddr_in *a = (void *)&s4, *b = (void *)&d4;
    a->sin_family = b->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.1", &a->sin_addr);
    inet_pton(AF_INET, "198.51.100.7", &b->sin_addr);
    a->sin_port = htons(40000);
    b->sin_port = htons(443);
    struct sockaddr_in6 *c = (void *)&s6, *d = (void *)&d6;
    c->sin6_family = d->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::a", &c->sin6_addr);
    inet_pton(AF_INET6, "2001:db8::b", &d->sin6_addr);
    c->sin6_port = htons(1);
    d->sin6_port = htons(8443);
    char out[PROXYPROTO_V2_MAX];
    assert_int_equal(proxyproto_build_v2(&s4, &d4, out, sizeof out), sizeof v4);
    assert_memory_equal(out, v4, sizeof v4);
    assert_int_equal(proxyproto_build_v2(&s6, &d6, out, sizeof out), sizeof v6);
    assert_memory_equal(out, v6, sizeof v6);
    assert_int_equal(proxyproto_build_v2(&s4, &d6, out, sizeof out), sizeof local);
    assert_memory_equal(out, local, sizeof local);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxyproto_v1_tcp4_accepted),
        cmocka_unit_test(test_proxyproto_v1_tcp6_accepted),
        cmocka_unit_test(test_proxyproto_v1_unknown_is_local),
        cmocka_unit_test(test_proxyproto_v1_malformed_refused),
        cmocka_unit_test(test_proxyproto_v1_overlong_line_refused),
        cmocka_unit_test(test_proxyproto_v2_tcp4_with_tlv_accepted),
        cmocka_unit_test(test_proxyproto_v2_local_and_unspec_are_local),
        cmocka_unit_test(test_proxyproto_v2_malformed_refused),
        cmocka_unit_test(test_proxyproto_v2_tlvs_up_to_the_bound_accepted),
        cmocka_unit_test(test_proxyproto_round_trip_v1_and_v2),
        cmocka_unit_test(test_proxyproto_v2_encoder_matches_bytes_written_by_hand),
        cmocka_unit_test(test_proxyproto_v1_line_of_108_bytes_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
