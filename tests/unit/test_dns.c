/* test_dns.c - the DNS responder's answers (dns.c): every kind of answer,
 * malformed queries, EDNS, truncation and the amplification bound. */
#include "unit.h"

#include <arpa/inet.h>

#include "dns.h"
#include "limits.h"

static struct dns_name names[8];
static struct in_addr v4[LIMIT_DNS_ANSWERS];
static struct in6_addr v6[2];
static struct dns_zone zone;
static uint8_t out[LIMIT_DNS_ANSWER_BYTES];
static struct dns_result res;

/* home.example.com with grafana.home.example.com, *.apps.home.example.com
 * and a.b.home.example.com; answers 100.101.102.103 and fd7a:115c:a1e0::1. */
static int setup(void **state)
{
    assert_int_equal(dns_name_from_text("home.example.com", &names[0]), 0);
    assert_int_equal(dns_name_from_text("grafana.home.example.com", &names[1]), 0);
    assert_int_equal(dns_name_from_text("*.apps.home.example.com", &names[2]), 0);
    assert_int_equal(dns_name_from_text("a.b.home.example.com", &names[3]), 0);
    inet_pton(AF_INET, "100.101.102.103", &v4[0]);
    inet_pton(AF_INET6, "fd7a:115c:a1e0::1", &v6[0]);
    zone = (struct dns_zone){.zones = names,
                             .nzones = 1,
                             .hosts = names + 1,
                             .nhosts = 3,
                             .v4 = v4,
                             .nv4 = 1,
                             .v6 = v6,
                             .nv6 = 1,
                             .ttl_s = 60,
                             .serial = 7};
    return 0;
}

/* A query for name (dotted, sent as written) with an OPT record of edns
 * bytes when edns is not 0. */
static size_t query(uint8_t *q, uint16_t id, const char *name, uint16_t type, uint16_t edns)
{
    size_t n = 0;
    q[n++] = (uint8_t)(id >> 8);
    q[n++] = (uint8_t)id;
    q[n++] = 0x01; /* RD */
    q[n++] = 0x00;
    const uint8_t counts[8] = {0, 1, 0, 0, 0, 0, 0, (uint8_t)(edns ? 1 : 0)};
    memcpy(q + n, counts, 8);
    n += 8;
    for (const char *s = name; *s;) {
        size_t len = strcspn(s, ".");
        q[n++] = (uint8_t)len;
        memcpy(q + n, s, len);
        n += len;
        s += len + (s[len] == '.');
    }
    q[n++] = 0;
    q[n++] = (uint8_t)(type >> 8);
    q[n++] = (uint8_t)type;
    q[n++] = 0;
    q[n++] = DNS_CLASS_IN;
    if (edns) {
        const uint8_t opt[11] = {
            0, 0, DNS_TYPE_OPT, (uint8_t)(edns >> 8), (uint8_t)edns, 0, 0, 0, 0, 0, 0};
        memcpy(q + n, opt, sizeof opt);
        n += sizeof opt;
    }
    return n;
}

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

#define RCODE(b) ((b)[3] & 0xF)
#define QD(b)    u16((b) + 4)
#define AN(b)    u16((b) + 6)
#define NS(b)    u16((b) + 8)
#define AR(b)    u16((b) + 10)
#define AA(b)    (((b)[2] & 0x04) != 0)
#define TC(b)    (((b)[2] & 0x02) != 0)

static size_t ask(const uint8_t *q, size_t qlen, bool tcp)
{
    return dns_answer(&zone, q, qlen, tcp, out, sizeof out, &res);
}

static void test_dns_name_from_text_accepts_host_names_and_folds_case(void **state)
{
    struct dns_name n;
    assert_int_equal(dns_name_from_text("Home.Example.COM.", &n), 0);
    assert_int_equal(n.len, 18);
    assert_memory_equal(n.wire, "\004home\007example\003com", 18);
    assert_false(n.wildcard);
    assert_int_equal(dns_name_from_text("*.apps.example.com", &n), 0);
    assert_true(n.wildcard);
    assert_memory_equal(n.wire, "\004apps\007example\003com", 18);
    char label63[80];
    memset(label63, 'a', 63);
    strcpy(label63 + 63, ".com");
    assert_int_equal(dns_name_from_text(label63, &n), 0);
}

static void test_dns_name_from_text_refuses_what_is_no_host_name(void **state)
{
    struct dns_name n;
    const char *bad[] = {"",  ".",  "a..b",  ".a",  "a b.com", "a/b",
                         "*", "*.", "a.*.b", "a..", "é.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(dns_name_from_text(bad[i], &n), -1);
    char label64[80], long_name[300];
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".com");
    assert_int_equal(dns_name_from_text(label64, &n), -1);
    for (size_t i = 0; i < 127; i++)
        memcpy(long_name + 2 * i, "a.", 2);
    strcpy(long_name + 254, "a"); /* 255 bytes */
    assert_int_equal(dns_name_from_text(long_name, &n), -1);
}

static void test_dns_a_answer_is_authoritative_with_the_case_echoed(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 0x1234, "GraFana.HOME.example.com", DNS_TYPE_A, 0);
    size_t n = ask(q, ql, false);
    assert_int_equal(res.drop, DNS_DROP_NONE);
    assert_int_equal(res.qkind, DNS_Q_A);
    assert_int_equal(res.rkind, DNS_R_NOERROR);
    assert_int_equal(u16(out), 0x1234);
    assert_true(out[2] & 0x80); /* QR */
    assert_true(AA(out));
    assert_true(out[2] & 0x01); /* RD echoed */
    assert_int_equal(RCODE(out), DNS_NOERROR);
    assert_int_equal(QD(out), 1);
    assert_int_equal(AN(out), 1);
    assert_int_equal(NS(out), 0);
    assert_int_equal(AR(out), 0);
    assert_memory_equal(out + 12, q + 12, ql - 12); /* the question as sent */
    const uint8_t rr[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 100, 101, 102, 103};
    assert_int_equal(n, ql + sizeof rr);
    assert_memory_equal(out + ql, rr, sizeof rr);
}

static void test_dns_aaaa_and_wildcard_hosts_answered(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 1, "grafana.home.example.com", DNS_TYPE_AAAA, 0);
    size_t n = ask(q, ql, false);
    assert_int_equal(AN(out), 1);
    assert_int_equal(n, ql + 12 + 16);
    assert_memory_equal(out + n - 16, &v6[0], 16);
    /* Below the wildcard at any depth, as route.c routes them. */
    const char *hits[] = {"x.apps.home.example.com", "deep.x.apps.home.example.com"};
    for (size_t i = 0; i < 2; i++) {
        ql = query(q, 2, hits[i], DNS_TYPE_A, 0);
        n = ask(q, ql, false);
        assert_int_equal(RCODE(out), DNS_NOERROR);
        assert_int_equal(AN(out), 1);
    }
}

static void test_dns_unknown_name_in_zone_is_nxdomain_with_soa(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 3, "nope.home.example.com", DNS_TYPE_A, 0);
    size_t n = ask(q, ql, false);
    assert_int_equal(res.rkind, DNS_R_NXDOMAIN);
    assert_int_equal(RCODE(out), DNS_NXDOMAIN);
    assert_true(AA(out));
    assert_int_equal(AN(out), 0);
    assert_int_equal(NS(out), 1);
    /* The SOA's owner points at "home.example.com" inside the question. */
    const uint8_t *soa = out + ql;
    assert_int_equal(u16(soa), 0xC000 | (12 + 5));
    assert_int_equal(u16(soa + 2), DNS_TYPE_SOA);
    assert_int_equal(n, ql + 12 + 35);
    assert_int_equal(u16(soa + 10), 35);
    assert_memory_equal(soa + 14, "\012hostmaster", 11);
    assert_int_equal(u16(soa + 27), 0);
    assert_int_equal(u16(soa + 29), 7); /* the serial */
}

static void test_dns_other_types_and_empty_names_are_nodata(void **state)
{
    uint8_t q[512];
    /* MX of a host; A of the wildcard's parent; A of an empty non-terminal. */
    const char *names_q[] = {"grafana.home.example.com", "apps.home.example.com",
                             "b.home.example.com"};
    const uint16_t types[] = {15, DNS_TYPE_A, DNS_TYPE_A};
    for (size_t i = 0; i < 3; i++) {
        size_t ql = query(q, 4, names_q[i], types[i], 0);
        ask(q, ql, false);
        assert_int_equal(RCODE(out), DNS_NOERROR);
        assert_true(AA(out));
        assert_int_equal(AN(out), 0);
        assert_int_equal(NS(out), 1);
        assert_int_equal(u16(out + ql + 2), DNS_TYPE_SOA);
    }
}

static void test_dns_apex_has_soa_ns_and_addresses(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 5, "home.example.com", DNS_TYPE_SOA, 0);
    ask(q, ql, false);
    assert_int_equal(AN(out), 1);
    assert_int_equal(u16(out + ql + 2), DNS_TYPE_SOA);
    ql = query(q, 5, "home.example.com", DNS_TYPE_NS, 0);
    size_t n = ask(q, ql, false);
    assert_int_equal(AN(out), 1);
    assert_int_equal(u16(out + ql + 2), DNS_TYPE_NS);
    assert_int_equal(u16(out + n - 2), 0xC00C); /* the apex names itself */
    /* Over TCP: over UDP this is more than four times the query. */
    ql = query(q, 5, "home.example.com", DNS_TYPE_ANY, 0);
    ask(q, ql, true);
    assert_int_equal(AN(out), 4); /* SOA, NS, A, AAAA */
    ask(q, ql, false);
    assert_true(TC(out));
}

static void test_dns_outside_the_zone_and_transfers_are_refused(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 6, "example.com", DNS_TYPE_A, 0);
    size_t n = ask(q, ql, false);
    assert_int_equal(RCODE(out), DNS_REFUSED);
    assert_false(AA(out));
    assert_int_equal(n, ql);
    ql = query(q, 6, "xhome.example.com", DNS_TYPE_A, 0); /* a suffix, but not at a label */
    ask(q, ql, false);
    assert_int_equal(RCODE(out), DNS_REFUSED);
    ql = query(q, 6, "home.example.com", DNS_TYPE_AXFR, 0);
    ask(q, ql, true);
    assert_int_equal(RCODE(out), DNS_REFUSED);
    ql = query(q, 6, "home.example.com", DNS_TYPE_A, 0);
    q[ql - 1] = 3; /* class CH */
    ask(q, ql, false);
    assert_int_equal(RCODE(out), DNS_REFUSED);
}

static void expect_formerr(const uint8_t *q, size_t ql)
{
    size_t n = ask(q, ql, false);
    assert_int_equal(n, 12);
    assert_int_equal(RCODE(out), DNS_FORMERR);
    assert_int_equal(QD(out), 0);
    assert_true(res.malformed);
    assert_int_equal(res.rkind, DNS_R_FORMERR);
}

static void test_dns_malformed_questions_get_formerr(void **state)
{
    uint8_t q[600];
    size_t ql = query(q, 7, "grafana.home.example.com", DNS_TYPE_A, 0);
    /* QDCOUNT 0 and 5 */
    q[5] = 0;
    expect_formerr(q, ql);
    q[5] = 5;
    expect_formerr(q, ql);
    q[5] = 1;
    /* an answer record in a query; a question cut short; bytes after it */
    q[7] = 1;
    expect_formerr(q, ql);
    q[7] = 0;
    expect_formerr(q, ql - 1);
    expect_formerr(q, 13);
    q[ql] = 0;
    expect_formerr(q, ql + 1);
    /* a pointer to itself, and one pointing forwards */
    const uint8_t self[] = {0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1};
    expect_formerr(self, sizeof self);
    const uint8_t fwd[] = {0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 14, 1, 'a', 0, 0, 1, 0, 1};
    expect_formerr(fwd, sizeof fwd);
    /* a pointer loop through a label: "a" then back to it */
    const uint8_t loop[] = {0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0xC0, 12, 0, 1, 0, 1};
    expect_formerr(loop, sizeof loop);
    /* a label of 64 bytes (0x40: a reserved label type) */
    uint8_t big[100] = {0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64};
    memset(big + 13, 'a', 64);
    big[77] = 0;
    big[79] = 1;
    big[81] = 1;
    expect_formerr(big, 82);
    /* a name of 256 bytes: 64 labels of 3 */
    size_t n = 12;
    memcpy(q, big, 12);
    for (int i = 0; i < 64; i++) {
        memcpy(q + n, "\003abc", 4);
        n += 4;
    }
    memcpy(q + n, "\0\0\1\0\1", 5);
    expect_formerr(q, n + 5);
}

static void test_dns_pointer_to_an_earlier_name_is_followed(void **state)
{
    /* The question's name is a pointer back to the header's last byte, a
     * 0: odd but well-formed (backwards, within the message), the root. */
    const uint8_t q[] = {0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 11, 0, 1, 0, 1};
    size_t n = ask(q, sizeof q, false);
    assert_true(n > 0);
    assert_int_equal(RCODE(out), DNS_REFUSED); /* the root is not ours */
    assert_int_equal(out[12], 0);              /* echoed uncompressed */
}

static void test_dns_short_messages_and_responses_dropped(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 9, "grafana.home.example.com", DNS_TYPE_A, 0);
    assert_int_equal(ask(q, 11, false), 0);
    assert_int_equal(res.drop, DNS_DROP_SHORT);
    assert_true(res.malformed);
    q[2] |= 0x80;
    assert_int_equal(ask(q, ql, false), 0);
    assert_int_equal(res.drop, DNS_DROP_RESPONSE);
}

static void test_dns_other_opcodes_not_implemented(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 10, "home.example.com", DNS_TYPE_SOA, 0);
    q[2] = (uint8_t)(q[2] | 5 << 3); /* UPDATE */
    assert_int_equal(ask(q, ql, false), 12);
    assert_int_equal(RCODE(out), DNS_NOTIMP);
    assert_int_equal((out[2] >> 3) & 0xF, 5);
}

static void test_dns_edns_answer_carries_our_udp_size(void **state)
{
    uint8_t q[512];
    size_t ql = query(q, 11, "grafana.home.example.com", DNS_TYPE_A, 4096);
    size_t n = ask(q, ql, false);
    assert_int_equal(AR(out), 1);
    const uint8_t *opt = out + n - 11;
    assert_int_equal(opt[0], 0);
    assert_int_equal(u16(opt + 1), DNS_TYPE_OPT);
    assert_int_equal(u16(opt + 3), LIMIT_DNS_UDP_SIZE);
    /* version 1: BADVERS (extended rcode 1 in the OPT, 0 in the header) */
    q[ql - 5] = 1;
    n = ask(q, ql, false);
    assert_int_equal(res.rkind, DNS_R_BADVERS);
    assert_int_equal(RCODE(out), 0);
    assert_int_equal(AN(out), 0);
    assert_int_equal(out[n - 11 + 5], 1);
    /* two OPT records: FORMERR */
    q[ql - 5] = 0;
    q[11] = 2;
    memcpy(q + ql, q + ql - 11, 11);
    expect_formerr(q, ql + 11);
}

static void test_dns_big_answers_truncated_over_udp_and_whole_over_tcp(void **state)
{
    for (size_t i = 0; i < 40; i++)
        v4[i] = (struct in_addr){htonl(0x64400000u + (uint32_t)i)};
    zone.nv4 = 40; /* 40 * 16 bytes: over 512 */
    uint8_t q[512];
    size_t ql = query(q, 12, "grafana.home.example.com", DNS_TYPE_A, 0);
    size_t n = ask(q, ql, false);
    assert_true(res.truncated);
    assert_true(TC(out));
    assert_int_equal(AN(out), 0);
    assert_int_equal(n, ql); /* header and question only */
    n = ask(q, ql, true);
    assert_false(TC(out));
    assert_int_equal(AN(out), 40);
    assert_int_equal(n, ql + 40 * 16);
    /* With EDNS, still no more than LIMIT_DNS_UDP_AMPLIFY times the query. */
    ql = query(q, 12, "grafana.home.example.com", DNS_TYPE_A, 4096);
    n = ask(q, ql, false);
    assert_true(TC(out));
    assert_true(n <= LIMIT_DNS_UDP_AMPLIFY * ql);
    zone.nv4 = 3; /* 3 * 16 fits */
    n = ask(q, ql, false);
    assert_false(TC(out));
    assert_int_equal(AN(out), 3);
    zone.nv4 = 1;
}

static void test_dns_udp_answers_never_amplify(void **state)
{
    for (size_t i = 0; i < LIMIT_DNS_ANSWERS; i++)
        v4[i] = (struct in_addr){htonl(0x64400000u + (uint32_t)i)};
    zone.nv4 = LIMIT_DNS_ANSWERS;
    const char *qn[] = {"home.example.com", "grafana.home.example.com", "nope.home.example.com",
                        "x.apps.home.example.com", "example.org"};
    const uint16_t qt[] = {DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_ANY, DNS_TYPE_SOA, 15};
    const uint16_t sizes[] = {0, 512, 1232, 65535};
    uint8_t q[512];
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 4; c++) {
                size_t ql = query(q, 13, qn[a], qt[b], sizes[c]);
                size_t n = ask(q, ql, false);
                assert_true(n > 0);
                assert_true(n <= LIMIT_DNS_UDP_AMPLIFY * ql);
                assert_true(n <= (sizes[c] ? LIMIT_DNS_UDP_SIZE : 512));
            }
    zone.nv4 = 1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_name_from_text_accepts_host_names_and_folds_case),
        cmocka_unit_test(test_dns_name_from_text_refuses_what_is_no_host_name),
        cmocka_unit_test(test_dns_a_answer_is_authoritative_with_the_case_echoed),
        cmocka_unit_test(test_dns_aaaa_and_wildcard_hosts_answered),
        cmocka_unit_test(test_dns_unknown_name_in_zone_is_nxdomain_with_soa),
        cmocka_unit_test(test_dns_other_types_and_empty_names_are_nodata),
        cmocka_unit_test(test_dns_apex_has_soa_ns_and_addresses),
        cmocka_unit_test(test_dns_outside_the_zone_and_transfers_are_refused),
        cmocka_unit_test(test_dns_malformed_questions_get_formerr),
        cmocka_unit_test(test_dns_pointer_to_an_earlier_name_is_followed),
        cmocka_unit_test(test_dns_short_messages_and_responses_dropped),
        cmocka_unit_test(test_dns_other_opcodes_not_implemented),
        cmocka_unit_test(test_dns_edns_answer_carries_our_udp_size),
        cmocka_unit_test(test_dns_big_answers_truncated_over_udp_and_whole_over_tcp),
        cmocka_unit_test(test_dns_udp_answers_never_amplify),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
