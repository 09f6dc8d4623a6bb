/* proxyproto.c - the PROXY protocol, v1 and v2 (see proxyproto.h). */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char V2_SIG[12] = "\r\n\r\n\0\r\nQUIT\n";

static bool prefix_of(const char *buf, size_t len, const char *want, size_t wlen)
{
    size_t n = len < wlen ? len : wlen;
    return memcmp(buf, want, n) == 0;
}

/* A decimal port: 1 to 5 digits, no sign, no leading zero (except "0"). */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool parse_ip(int af, const char *s, size_t len, struct sockaddr_storage *ss,
                     socklen_t *sslen)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(ss, 0, sizeof *ss);
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        *sslen = sizeof *in;
        return inet_pton(AF_INET, tmp, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    *sslen = sizeof *in6;
    return inet_pton(AF_INET6, tmp, &in6->sin6_addr) == 1;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* "PROXY TCP4 src dst sport dport\r\n", single spaces, or "PROXY UNKNOWN...\r\n". */
static int parse_v1(const char *buf, size_t len, struct proxyproto_result *out)
{
    /* The CR of the longest line is its byte PROXYPROTO_V1_MAX - 2. */
    size_t scan = len < PROXYPROTO_V1_MAX - 1 ? len : PROXYPROTO_V1_MAX - 1;
    const char *cr = memchr(buf, '\r', scan);
    const char *lf = memchr(buf, '\n', scan);
    if (lf && (!cr || lf < cr))
        return -1; /* bare LF */
    if (!cr)
        return len >= PROXYPROTO_V1_MAX - 1 ? -1 : 0;
    if ((size_t)(cr - buf) + 1 >= len)
        return 0;
    if (cr[1] != '\n')
        return -1;
    int hlen = (int)(cr - buf) + 2;
    const char *p = buf + 6, *end = cr;
    memset(out, 0, sizeof *out);
    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' ')) {
        out->local = true;
        return hlen;
    }
    int af;
    if ((size_t)(end - p) > 5 && memcmp(p, "TCP4 ", 5) == 0)
        af = AF_INET;
    else if ((size_t)(end - p) > 5 && memcmp(p, "TCP6 ", 5) == 0)
        af = AF_INET6;
    else
        return -1;
    p += 5;
    const char *f[4];
    size_t fl[4];
    for (int i = 0; i < 4; i++) {
        const char *sp = i < 3 ? memchr(p, ' ', (size_t)(end - p)) : end;
        if (!sp || sp == p)
            return -1;
        f[i] = p;
        fl[i] = (size_t)(sp - p);
        p = sp + (i < 3);
    }
    if (memchr(f[3], ' ', fl[3]))
        return -1;
    uint16_t sport, dport;
    if (!parse_ip(af, f[0], fl[0], &out->src, &out->srclen) ||
        !parse_ip(af, f[1], fl[1], &out->dst, &out->dstlen) || !parse_port(f[2], fl[2], &sport) ||
        !parse_port(f[3], fl[3], &dport))
        return -1;
    set_port(&out->src, sport);
    set_port(&out->dst, dport);
    return hlen;
}

static int parse_v2(const unsigned char *b, size_t len, struct proxyproto_result *out)
{
    if (len < 16)
        return 0;
    unsigned ver = b[12] >> 4, cmd = b[12] & 15;
    if (ver != 2 || cmd > 1)
        return -1;
    size_t alen = ((size_t)b[14] << 8) | b[15];
    if (16 + alen > PROXYPROTO_V2_MAX)
        return -1;
    unsigned fam = b[13];
    size_t need;
    switch (fam) {
    case 0x00: /* UNSPEC */
        need = 0;
        break;
    case 0x11: /* TCP over IPv4 */
    case 0x12: /* UDP over IPv4 */
        need = 12;
        break;
    case 0x21:
    case 0x22:
        need = 36;
        break;
    case 0x31: /* Unix stream/dgram: the addresses mean nothing here */
    case 0x32:
        need = 216;
        break;
    default:
        return -1;
    }
    if (alen < need)
        return -1;
    if (len < 16 + alen)
        return 0;
    /* TLVs after the addresses must tile the rest exactly. */
    size_t off = 16 + need, end = 16 + alen;
    while (off < end) {
        if (end - off < 3)
            return -1;
        size_t tl = ((size_t)b[off + 1] << 8) | b[off + 2];
        if (end - off - 3 < tl)
            return -1;
        off += 3 + tl;
    }
    memset(out, 0, sizeof *out);
    if (cmd == 0 || (fam != 0x11 && fam != 0x21)) {
        out->local = true; /* LOCAL, or a family that carries no TCP address */
        return (int)end;
    }
    if (fam == 0x11) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src,
                           *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, b + 16, 4);
        memcpy(&d->sin_addr, b + 20, 4);
        memcpy(&s->sin_port, b + 24, 2);
        memcpy(&d->sin_port, b + 26, 2);
        out->srclen = out->dstlen = sizeof *s;
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, b + 16, 16);
        memcpy(&d->sin6_addr, b + 32, 16);
        memcpy(&s->sin6_port, b + 48, 2);
        memcpy(&d->sin6_port, b + 50, 2);
        out->srclen = out->dstlen = sizeof *s;
    }
    return (int)end;
}

int proxyproto_parse(const char *buf, size_t len, struct proxyproto_result *out)
{
    if (len == 0)
        return 0;
    if (prefix_of(buf, len, "PROXY ", 6))
        return len < 6 ? 0 : parse_v1(buf, len, out);
    if (prefix_of(buf, len, V2_SIG, sizeof V2_SIG))
        return len < sizeof V2_SIG ? 0 : parse_v2((const unsigned char *)buf, len, out);
    return -1;
}

static bool same_inet(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return a->ss_family == b->ss_family && (a->ss_family == AF_INET || a->ss_family == AF_INET6);
}

size_t proxyproto_build_v1(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                           char *out, size_t cap)
{
    int n;
    if (!same_inet(src, dst)) {
        n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
    } else if (src->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
        char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
        inet_ntop(AF_INET, &d->sin_addr, b, sizeof b);
        n = snprintf(out, cap, "PROXY TCP4 %s %s %u %u\r\n", a, b, ntohs(s->sin_port),
                     ntohs(d->sin_port));
    } else {
        const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
        inet_ntop(AF_INET6, &d->sin6_addr, b, sizeof b);
        n = snprintf(out, cap, "PROXY TCP6 %s %s %u %u\r\n", a, b, ntohs(s->sin6_port),
                     ntohs(d->sin6_port));
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t proxyproto_build_v2(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                           char *out, size_t cap)
{
    size_t alen = !same_inet(src, dst) ? 0 : src->ss_family == AF_INET ? 12 : 36;
    if (cap < 16 + alen)
        return 0;
    unsigned char *b = (unsigned char *)out;
    memcpy(b, V2_SIG, sizeof V2_SIG);
    b[12] = alen ? 0x21 : 0x20; /* v2 PROXY, or v2 LOCAL */
    b[13] = alen == 12 ? 0x11 : alen == 36 ? 0x21 : 0x00;
    b[14] = 0;
    b[15] = (unsigned char)alen;
    if (alen == 12) {
        const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
        memcpy(b + 16, &s->sin_addr, 4);
        memcpy(b + 20, &d->sin_addr, 4);
        memcpy(b + 24, &s->sin_port, 2);
        memcpy(b + 26, &d->sin_port, 2);
    } else if (alen == 36) {
        const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
        memcpy(b + 16, &s->sin6_addr, 16);
        memcpy(b + 32, &d->sin6_addr, 16);
        memcpy(b + 48, &s->sin6_port, 2);
        memcpy(b + 50, &d->sin6_port, 2);
    }
    return 16 + alen;
}
