/* dns.h - the authoritative DNS answers of split-DNS mode, as pure
 * functions over buffers: parse one query, write its answer into the
 * caller's buffer. No I/O (dnsserver.c owns the sockets), no allocation.
 *
 * portico answers for the zones in dns.zones: every service host under a
 * zone (wildcards included) and the zone's own name get A/AAAA records with
 * the dns.answer addresses; the apex also has SOA and NS (naming the apex);
 * other names under a zone are NXDOMAIN, other types NODATA (NOERROR, no
 * answer, the SOA in authority); names outside every zone are REFUSED.
 * Malformed queries get FORMERR or no answer at all; a UDP answer is never
 * more than LIMIT_DNS_UDP_AMPLIFY times the size of its query (a larger
 * one goes out truncated, TC set, so the client asks again over TCP). */
#ifndef PORTICO_DNS_H
#define PORTICO_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX   255 /* a name in wire form, root label included */
#define DNS_HEADER_LEN 12

enum {
    DNS_TYPE_A = 1,
    DNS_TYPE_NS = 2,
    DNS_TYPE_SOA = 6,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_OPT = 41,
    DNS_TYPE_IXFR = 251,
    DNS_TYPE_AXFR = 252,
    DNS_TYPE_ANY = 255,
    DNS_CLASS_IN = 1,
    DNS_CLASS_ANY = 255,
};

enum dns_rcode {
    DNS_NOERROR = 0,
    DNS_FORMERR = 1,
    DNS_SERVFAIL = 2,
    DNS_NXDOMAIN = 3,
    DNS_NOTIMP = 4,
    DNS_REFUSED = 5,
    DNS_BADVERS = 16, /* extended: 1 in the OPT record's upper bits */
};

/* A name in wire form, lower case (labels of letters, digits, '-', '_').
 * For a wildcard host "*.b.c", wire holds "b.c" and wildcard is set: it
 * matches every name strictly below b.c, as route.c's wildcards do. */
struct dns_name {
    uint8_t wire[DNS_NAME_MAX];
    uint8_t len; /* bytes of wire, the root's 0 included */
    bool wildcard;
};

/* What portico answers for; every array is owned by the caller. */
struct dns_zone {
    const struct dns_name *zones; /* apexes */
    size_t nzones;
    const struct dns_name *hosts; /* the service hosts under the zones */
    size_t nhosts;
    const struct in_addr *v4;
    size_t nv4;
    const struct in6_addr *v6;
    size_t nv6;
    uint32_t ttl_s;
    uint32_t serial; /* SOA serial: changes when the zone changes */
};

/* "a.b.c" or "*.b.c" (a trailing dot allowed, any case) into out. Returns
 * 0, or -1 when it is not a host name of at most 253 bytes. */
int dns_name_from_text(const char *text, struct dns_name *out);

/* Why a message got no answer at all. */
enum dns_drop {
    DNS_DROP_NONE,     /* answered */
    DNS_DROP_SHORT,    /* shorter than a header: nothing to answer to */
    DNS_DROP_RESPONSE, /* QR set: a response, never answered (no loops between servers) */
    DNS_DROPS
};

/* The question's type, as the metrics label it. */
enum dns_qkind {
    DNS_Q_NONE, /* no question could be read */
    DNS_Q_A,
    DNS_Q_AAAA,
    DNS_Q_NS,
    DNS_Q_SOA,
    DNS_Q_ANY,
    DNS_Q_OTHER,
    DNS_QKINDS
};
const char *dns_qkind_name(enum dns_qkind k);

/* The rcodes an answer can carry, as the metrics label them. */
enum dns_rkind {
    DNS_R_NOERROR,
    DNS_R_FORMERR,
    DNS_R_NXDOMAIN,
    DNS_R_NOTIMP,
    DNS_R_REFUSED,
    DNS_R_BADVERS,
    DNS_RKINDS
};
const char *dns_rkind_name(enum dns_rkind k);

struct dns_result {
    enum dns_drop drop;
    enum dns_qkind qkind;
    enum dns_rkind rkind;
    bool malformed; /* FORMERR, or dropped as too short */
    bool truncated; /* TC set: the answer did not fit */
};

/* Answer the query q (qlen bytes) for zone z into out (cap bytes; at least
 * LIMIT_DNS_ANSWER_BYTES for every answer to fit). tcp: the query came
 * over TCP, where the only bound is cap; over UDP the answer fits 512
 * bytes, or with EDNS the client's size up to LIMIT_DNS_UDP_SIZE, and
 * LIMIT_DNS_UDP_AMPLIFY times qlen. Returns the answer's length, or 0
 * when the message gets no answer (r->drop says why). */
size_t dns_answer(const struct dns_zone *z, const uint8_t *q, size_t qlen, bool tcp, uint8_t *out,
                  size_t cap, struct dns_result *r);

#endif
