/* dns.c - parse one DNS query and write portico's authoritative answer
 * (see dns.h). Every read is bounded by the message's length and every
 * write by the answer's limit; nothing here allocates or blocks. */
#include "dns.h"

#include <string.h>

#include "limits.h"

#define FLAG_QR 0x8000
#define FLAG_AA 0x0400
#define FLAG_TC 0x0200
#define FLAG_RD 0x0100
#define FLAG_CD 0x0010

#define SOA_REFRESH 3600
#define SOA_RETRY   600
#define SOA_EXPIRE  604800
/* Most labels in a name: each takes at least two bytes of the 255. */
#define NAME_LABELS_MAX 128

static const char *const qkind_names[DNS_QKINDS] = {"none", "A",   "AAAA", "NS",
                                                    "SOA",  "ANY", "other"};
static const char *const rkind_names[DNS_RKINDS] = {"NOERROR", "FORMERR", "NXDOMAIN",
                                                    "NOTIMP",  "REFUSED", "BADVERS"};

const char *dns_qkind_name(enum dns_qkind k)
{
    return (unsigned)k < DNS_QKINDS ? qkind_names[k] : "other";
}

const char *dns_rkind_name(enum dns_rkind k)
{
    return (unsigned)k < DNS_RKINDS ? rkind_names[k] : "NOERROR";
}

static bool host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int dns_name_from_text(const char *text, struct dns_name *out)
{
    size_t len = strlen(text);
    out->len = 0;
    out->wildcard = false;
    if (len > 0 && text[len - 1] == '.')
        len--;
    if (len >= 2 && text[0] == '*' && text[1] == '.') {
        out->wildcard = true;
        text += 2;
        len -= 2;
    }
    if (len == 0 || len > LIMIT_HOST_LEN)
        return -1;
    size_t o = 0, i = 0;
    for (;;) {
        size_t n = 0;
        while (i + n < len && text[i + n] != '.')
            n++;
        if (n == 0 || n > 63)
            return -1;
        out->wire[o++] = (uint8_t)n;
        for (size_t k = 0; k < n; k++) {
            unsigned char c = (unsigned char)text[i + k];
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c + 32);
            if (!host_char(c))
                return -1;
            out->wire[o++] = c;
        }
        i += n;
        if (i == len)
            break;
        i++; /* the dot; a label must follow it */
    }
    out->wire[o++] = 0;
    out->len = (uint8_t)o;
    return 0;
}

/* ---- reading the query --------------------------------------------------- */

/* A name as read from a message: uncompressed, the case as sent (for the
 * answer's question) and folded (for matching), with where each label
 * starts. */
struct rname {
    uint8_t wire[DNS_NAME_MAX];
    uint8_t lower[DNS_NAME_MAX];
    size_t len;
    uint8_t label[NAME_LABELS_MAX];
    size_t nlabels;
};

/* Read the name at off; *end: the offset after it in the message (after
 * its first pointer, if any). Compression pointers must point strictly
 * backwards from where they are, which with the 255-byte bound on the name
 * rules out loops; labels over 63 bytes (and the extended label types) are
 * refused. 0, or -1 for a malformed name. */
static int read_name(const uint8_t *m, size_t mlen, size_t off, struct rname *n, size_t *end)
{
    size_t pos = off;
    bool jumped = false;
    n->len = 0;
    n->nlabels = 0;
    for (;;) {
        if (pos >= mlen)
            return -1;
        uint8_t c = m[pos];
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= mlen)
                return -1;
            size_t target = ((size_t)(c & 0x3F) << 8) | m[pos + 1];
            if (target >= pos)
                return -1;
            if (!jumped)
                *end = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (c & 0xC0)
            return -1;
        if (c == 0) {
            n->wire[n->len] = 0; /* room is kept below */
            n->lower[n->len] = 0;
            n->len++;
            if (!jumped)
                *end = pos + 1;
            return 0;
        }
        if (pos + 1 + c > mlen || n->len + 1 + c + 1 > DNS_NAME_MAX ||
            n->nlabels == NAME_LABELS_MAX)
            return -1;
        n->label[n->nlabels++] = (uint8_t)n->len;
        n->wire[n->len] = c;
        n->lower[n->len] = c;
        for (size_t k = 1; k <= c; k++) {
            uint8_t b = m[pos + k];
            n->wire[n->len + k] = b;
            n->lower[n->len + k] = b >= 'A' && b <= 'Z' ? (uint8_t)(b + 32) : b;
        }
        n->len += 1u + c;
        pos += 1u + c;
    }
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

struct query {
    uint16_t id, flags;
    struct rname name;
    uint16_t qtype, qclass;
    bool edns, edns_do;
    uint8_t edns_version;
    uint16_t edns_size;
};

/* The additional section: at most one OPT (owned by the root), other
 * records skipped; every record within the message, nothing after them. */
static int read_additional(const uint8_t *m, size_t mlen, size_t pos, unsigned count,
                           struct query *q)
{
    struct rname scratch;
    for (unsigned i = 0; i < count; i++) {
        size_t end;
        if (read_name(m, mlen, pos, &scratch, &end) < 0 || end + 10 > mlen)
            return -1;
        uint16_t type = get16(m + end), klass = get16(m + end + 2);
        uint16_t rdlen = get16(m + end + 8);
        if (end + 10 + rdlen > mlen)
            return -1;
        if (type == DNS_TYPE_OPT) {
            if (q->edns || scratch.len != 1)
                return -1;
            q->edns = true;
            q->edns_size = klass < 512 ? 512 : klass;
            q->edns_version = m[end + 5];
            q->edns_do = (m[end + 6] & 0x80) != 0;
        }
        pos = end + 10 + rdlen;
    }
    return pos == mlen ? 0 : -1;
}

/* ---- writing the answer -------------------------------------------------- */

struct out {
    uint8_t *b;
    size_t cap, len;
    bool over; /* something did not fit: the answer goes out truncated */
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->over || n > o->cap - o->len) {
        o->over = true;
        return;
    }
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

static void put16(struct out *o, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(o, b, 2);
}

static void put32(struct out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(o, b, 4);
}

/* A record's fixed part; owner is a compression pointer into the question. */
static void put_rr(struct out *o, uint16_t owner, uint16_t type, uint32_t ttl, uint16_t rdlen)
{
    put16(o, (uint16_t)(0xC000 | owner));
    put16(o, type);
    put16(o, DNS_CLASS_IN);
    put32(o, ttl);
    put16(o, rdlen);
}

static void put_soa(struct out *o, const struct dns_zone *z, uint16_t apex)
{
    static const uint8_t hostmaster[] = "\012hostmaster";
    put_rr(o, apex, DNS_TYPE_SOA, z->ttl_s, 2 + (sizeof hostmaster - 1) + 2 + 20);
    put16(o, (uint16_t)(0xC000 | apex)); /* MNAME: the apex, which NS names too */
    put(o, hostmaster, sizeof hostmaster - 1);
    put16(o, (uint16_t)(0xC000 | apex));
    put32(o, z->serial);
    put32(o, SOA_REFRESH);
    put32(o, SOA_RETRY);
    put32(o, SOA_EXPIRE);
    put32(o, z->ttl_s); /* negative answers are cached this long (RFC 2308) */
}

static void put_opt(struct out *o, const struct query *q, enum dns_rcode rcode)
{
    static const uint8_t root = 0;
    put(o, &root, 1);
    put16(o, DNS_TYPE_OPT);
    put16(o, LIMIT_DNS_UDP_SIZE);
    put32(o, ((uint32_t)(rcode >> 4) << 24) | (q->edns_do ? 0x8000u : 0));
    put16(o, 0);
}

static void put_header(struct out *o, const struct query *q, uint16_t flags, enum dns_rcode rcode,
                       uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
    o->len = 0;
    o->over = false;
    put16(o, q->id);
    put16(o,
          (uint16_t)(FLAG_QR | (q->flags & (0x7800 | FLAG_RD | FLAG_CD)) | flags | (rcode & 0xF)));
    put16(o, qd);
    put16(o, an);
    put16(o, ns);
    put16(o, ar);
}

static void put_question(struct out *o, const struct query *q)
{
    put(o, q->name.wire, q->name.len);
    put16(o, q->qtype);
    put16(o, q->qclass);
}

/* ---- looking the name up ------------------------------------------------- */

/* The label of n at which the name z starts (n is z or below it), or -1. */
static long suffix_label(const struct rname *n, const struct dns_name *z)
{
    for (size_t i = 0; i < n->nlabels; i++) {
        size_t off = n->label[i];
        if (n->len - off == z->len && memcmp(n->lower + off, z->wire, z->len) == 0)
            return (long)i;
    }
    return -1;
}

/* n is a strict ancestor of h (an empty non-terminal: NODATA, not NXDOMAIN,
 * RFC 8020). */
static bool ancestor_of(const struct rname *n, const struct dns_name *h)
{
    if (h->len <= n->len)
        return false;
    size_t at = 0;
    while (at < h->len - n->len && h->wire[at] != 0)
        at += 1u + h->wire[at];
    return at == (size_t)(h->len - n->len) && memcmp(h->wire + at, n->lower, n->len) == 0;
}

enum found { FOUND_NONE, FOUND_EMPTY, FOUND_HOST };

static enum found lookup(const struct dns_zone *z, const struct rname *n, size_t zone_label)
{
    enum found f = zone_label == 0 ? FOUND_HOST : FOUND_NONE; /* the apex answers too */
    for (size_t i = 0; i < z->nhosts && f != FOUND_HOST; i++) {
        const struct dns_name *h = &z->hosts[i];
        if (!h->wildcard && h->len == n->len && memcmp(h->wire, n->lower, n->len) == 0)
            return FOUND_HOST;
        if (h->wildcard) {
            long at = suffix_label(n, h);
            if (at > 0)
                return FOUND_HOST;
            if (at == 0)
                f = FOUND_EMPTY;
        }
        if (ancestor_of(n, h))
            f = FOUND_EMPTY;
    }
    return f;
}

static enum dns_qkind qkind_of(uint16_t t)
{
    switch (t) {
    case DNS_TYPE_A:
        return DNS_Q_A;
    case DNS_TYPE_AAAA:
        return DNS_Q_AAAA;
    case DNS_TYPE_NS:
        return DNS_Q_NS;
    case DNS_TYPE_SOA:
        return DNS_Q_SOA;
    case DNS_TYPE_ANY:
        return DNS_Q_ANY;
    default:
        return DNS_Q_OTHER;
    }
}

static enum dns_rkind rkind_of(enum dns_rcode rc)
{
    switch (rc) {
    case DNS_FORMERR:
        return DNS_R_FORMERR;
    case DNS_NXDOMAIN:
        return DNS_R_NXDOMAIN;
    case DNS_NOTIMP:
        return DNS_R_NOTIMP;
    case DNS_REFUSED:
        return DNS_R_REFUSED;
    case DNS_BADVERS:
        return DNS_R_BADVERS;
    default:
        return DNS_R_NOERROR;
    }
}

/* Header only (no question): for what could not be read as one query. */
static size_t answer_bare(struct out *o, const struct query *q, enum dns_rcode rc,
                          struct dns_result *r)
{
    put_header(o, q, 0, rc, 0, 0, 0, 0);
    r->rkind = rkind_of(rc);
    r->malformed = rc == DNS_FORMERR;
    return o->over ? 0 : o->len;
}

/* The question echoed, no records (REFUSED, BADVERS, or a truncated answer). */
static size_t answer_empty(struct out *o, const struct query *q, uint16_t flags, enum dns_rcode rc,
                           struct dns_result *r)
{
    put_header(o, q, flags, rc, 1, 0, 0, q->edns ? 1 : 0);
    put_question(o, q);
    if (q->edns)
        put_opt(o, q, rc);
    r->rkind = rkind_of(rc);
    r->truncated = (flags & FLAG_TC) != 0;
    return o->over ? 0 : o->len;
}

static size_t answer_zone(struct out *o, const struct dns_zone *z, const struct query *q,
                          size_t zone_label, struct dns_result *r)
{
    const struct rname *n = &q->name;
    uint16_t qname = DNS_HEADER_LEN, apex = (uint16_t)(DNS_HEADER_LEN + n->label[zone_label]);
    enum found f = lookup(z, n, zone_label);
    bool any = q->qtype == DNS_TYPE_ANY, at_apex = zone_label == 0;
    bool a = f == FOUND_HOST && (any || q->qtype == DNS_TYPE_A);
    bool aaaa = f == FOUND_HOST && (any || q->qtype == DNS_TYPE_AAAA);
    bool soa = at_apex && (any || q->qtype == DNS_TYPE_SOA);
    bool ns = at_apex && (any || q->qtype == DNS_TYPE_NS);
    size_t an = (size_t)soa + (size_t)ns + (a ? z->nv4 : 0) + (aaaa ? z->nv6 : 0);
    enum dns_rcode rc = f == FOUND_NONE ? DNS_NXDOMAIN : DNS_NOERROR;
    put_header(o, q, FLAG_AA, rc, 1, (uint16_t)an, an ? 0 : 1, q->edns ? 1 : 0);
    put_question(o, q);
    if (soa)
        put_soa(o, z, apex);
    if (ns) {
        put_rr(o, apex, DNS_TYPE_NS, z->ttl_s, 2);
        put16(o, (uint16_t)(0xC000 | apex));
    }
    for (size_t i = 0; a && i < z->nv4; i++) {
        put_rr(o, qname, DNS_TYPE_A, z->ttl_s, 4);
        put(o, &z->v4[i], 4);
    }
    for (size_t i = 0; aaaa && i < z->nv6; i++) {
        put_rr(o, qname, DNS_TYPE_AAAA, z->ttl_s, 16);
        put(o, &z->v6[i], 16);
    }
    if (!an) /* NXDOMAIN or NODATA: the SOA says how long to remember it */
        put_soa(o, z, apex);
    if (q->edns)
        put_opt(o, q, rc);
    if (o->over)
        return answer_empty(o, q, FLAG_AA | FLAG_TC, rc, r);
    r->rkind = rkind_of(rc);
    return o->len;
}

size_t dns_answer(const struct dns_zone *z, const uint8_t *m, size_t mlen, bool tcp, uint8_t *out,
                  size_t cap, struct dns_result *r)
{
    *r = (struct dns_result){.drop = DNS_DROP_NONE, .qkind = DNS_Q_NONE};
    if (mlen < DNS_HEADER_LEN) {
        r->drop = DNS_DROP_SHORT;
        r->malformed = true;
        return 0;
    }
    struct query q = {.id = get16(m), .flags = get16(m + 2)};
    if (q.flags & FLAG_QR) {
        r->drop = DNS_DROP_RESPONSE;
        return 0;
    }
    /* The transport's bound: TCP's is the buffer; UDP's is 512 bytes, or
     * the client's EDNS size up to ours, and never more than a small
     * multiple of the query (no amplification). EDNS is read below. */
    struct out o = {.b = out, .cap = cap};
    if ((q.flags >> 11 & 0xF) != 0)
        return answer_bare(&o, &q, DNS_NOTIMP, r);
    if (get16(m + 4) != 1 || get16(m + 6) != 0 || get16(m + 8) != 0)
        return answer_bare(&o, &q, DNS_FORMERR, r);
    size_t pos;
    if (read_name(m, mlen, DNS_HEADER_LEN, &q.name, &pos) < 0 || pos + 4 > mlen)
        return answer_bare(&o, &q, DNS_FORMERR, r);
    q.qtype = get16(m + pos);
    q.qclass = get16(m + pos + 2);
    if (read_additional(m, mlen, pos + 4, get16(m + 10), &q) < 0)
        return answer_bare(&o, &q, DNS_FORMERR, r);
    r->qkind = qkind_of(q.qtype);
    if (!tcp) {
        size_t lim =
            q.edns ? (q.edns_size < LIMIT_DNS_UDP_SIZE ? q.edns_size : LIMIT_DNS_UDP_SIZE) : 512;
        if (lim > LIMIT_DNS_UDP_AMPLIFY * mlen)
            lim = LIMIT_DNS_UDP_AMPLIFY * mlen;
        if (lim < o.cap)
            o.cap = lim;
    } else if (o.cap > 65535) {
        o.cap = 65535;
    }
    if (q.edns && q.edns_version != 0)
        return answer_empty(&o, &q, 0, DNS_BADVERS, r);
    if (q.qclass != DNS_CLASS_IN && q.qclass != DNS_CLASS_ANY)
        return answer_empty(&o, &q, 0, DNS_REFUSED, r);
    long best = -1;
    for (size_t i = 0; i < z->nzones; i++) {
        long at = suffix_label(&q.name, &z->zones[i]);
        if (at >= 0 && (best < 0 || at < best))
            best = at;
    }
    /* Outside the zones, or a zone transfer (not offered): refused. */
    if (best < 0 || q.qtype == DNS_TYPE_AXFR || q.qtype == DNS_TYPE_IXFR)
        return answer_empty(&o, &q, 0, DNS_REFUSED, r);
    return answer_zone(&o, z, &q, (size_t)best, r);
}
