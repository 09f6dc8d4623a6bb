/* fuzz_dns.c - the DNS responder's answers (dns.c) to any bytes.
 *
 * Beyond "no crash": an answer fits the buffer and echoes the query's ID,
 * is a response (QR) with one question or none, and over UDP never
 * exceeds 512 bytes without EDNS, LIMIT_DNS_UDP_SIZE with it, or
 * LIMIT_DNS_UDP_AMPLIFY times the query; the same bytes over TCP are
 * answered the same way except for truncation. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <string.h>

#include "dns.h"
#include "limits.h"

static struct dns_name names[4];
static struct in_addr v4[LIMIT_DNS_ANSWERS];
static struct in6_addr v6[2];
static struct dns_zone zone;

static void setup(void)
{
    if (zone.nzones)
        return;
    dns_name_from_text("home.example.com", &names[0]);
    dns_name_from_text("grafana.home.example.com", &names[1]);
    dns_name_from_text("*.apps.home.example.com", &names[2]);
    dns_name_from_text("a.b.home.example.com", &names[3]);
    for (size_t i = 0; i < LIMIT_DNS_ANSWERS; i++)
        v4[i].s_addr = htonl(0x64400000u + (uint32_t)i);
    inet_pton(AF_INET6, "fd7a:115c:a1e0::1", &v6[0]);
    inet_pton(AF_INET6, "fd7a:115c:a1e0::2", &v6[1]);
    zone = (struct dns_zone){.zones = names,
                             .nzones = 1,
                             .hosts = names + 1,
                             .nhosts = 3,
                             .v4 = v4,
                             .nv4 = 1,
                             .v6 = v6,
                             .nv6 = 2,
                             .ttl_s = 60,
                             .serial = 1};
}

static void check(const uint8_t *q, size_t qlen, const uint8_t *a, size_t n,
                  const struct dns_result *r)
{
    if (n == 0) {
        FUZZ_CHECK(r->drop != DNS_DROP_NONE);
        return;
    }
    FUZZ_CHECK(r->drop == DNS_DROP_NONE);
    FUZZ_CHECK(n >= DNS_HEADER_LEN && n <= LIMIT_DNS_ANSWER_BYTES);
    FUZZ_CHECK(a[0] == q[0] && a[1] == q[1]);
    FUZZ_CHECK(a[2] & 0x80);
    FUZZ_CHECK(a[4] == 0 && a[5] <= 1);
    FUZZ_CHECK(r->qkind < DNS_QKINDS && r->rkind < DNS_RKINDS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t udp[LIMIT_DNS_ANSWER_BYTES], tcp[LIMIT_DNS_ANSWER_BYTES];
    setup();
    /* The first byte picks how many A records the zone answers with. */
    zone.nv4 = size ? 1 + data[0] % LIMIT_DNS_ANSWERS : 1;
    struct dns_result ru, rt;
    size_t nu = dns_answer(&zone, data, size, false, udp, sizeof udp, &ru);
    size_t nt = dns_answer(&zone, data, size, true, tcp, sizeof tcp, &rt);
    check(data, size, udp, nu, &ru);
    check(data, size, tcp, nt, &rt);
    FUZZ_CHECK(nu <= LIMIT_DNS_UDP_AMPLIFY * size);
    FUZZ_CHECK(nu <= LIMIT_DNS_UDP_SIZE);
    FUZZ_CHECK((nu == 0) == (nt == 0));
    FUZZ_CHECK(ru.rkind == rt.rkind && ru.qkind == rt.qkind && ru.malformed == rt.malformed);
    FUZZ_CHECK(!rt.truncated);
    if (nu && !ru.truncated)
        FUZZ_CHECK(nu == nt && memcmp(udp, tcp, nu) == 0);
    return 0;
}
