/* sni.c - server name from a TLS ClientHello (see sni.h). */
#include "sni.h"

#include <stdbool.h>
#include <string.h>

#include "limits.h"

#define RECORD_HEADER  5
#define RECORD_MAX     16384 /* TLSPlaintext.length limit (RFC 8446 5.1) */
#define HS_CLIENTHELLO 1
#define EXT_SNI        0

size_t sni_peek_max(void)
{
    /* A hello of the maximum size in records of at least 512 bytes each
     * (smaller fragments are legal but nobody sends them; a client that does
     * simply needs more header bytes than this allows and is refused). */
    return LIMIT_CLIENT_HELLO_BYTES + 4 + RECORD_HEADER * (LIMIT_CLIENT_HELLO_BYTES / 512 + 1);
}

struct rd {
    const uint8_t *p;
    size_t n, off;
};

static bool take(struct rd *r, size_t k, const uint8_t **out)
{
    if (r->n - r->off < k)
        return false;
    *out = r->p + r->off;
    r->off += k;
    return true;
}

static bool u8(struct rd *r, size_t *v)
{
    const uint8_t *q;
    if (!take(r, 1, &q))
        return false;
    *v = q[0];
    return true;
}

static bool u16(struct rd *r, size_t *v)
{
    const uint8_t *q;
    if (!take(r, 2, &q))
        return false;
    *v = (size_t)q[0] << 8 | q[1];
    return true;
}

/* A vector with a length prefix of w bytes, as a sub-reader. */
static bool vec(struct rd *r, int w, size_t min, struct rd *out)
{
    size_t len;
    if (!(w == 1 ? u8(r, &len) : u16(r, &len)) || len < min)
        return false;
    const uint8_t *q;
    if (!take(r, len, &q))
        return false;
    *out = (struct rd){q, len, 0};
    return true;
}

/* server_name extension body (RFC 6066 3): the first host_name entry. */
static enum sni_result server_name(struct rd *ext, char *name, size_t cap)
{
    struct rd list;
    if (!vec(ext, 2, 1, &list) || ext->off != ext->n)
        return SNI_BAD;
    while (list.off < list.n) {
        size_t type;
        struct rd host;
        if (!u8(&list, &type) || !vec(&list, 2, 1, &host))
            return SNI_BAD;
        if (type != 0)
            continue;
        if (host.n > LIMIT_HOST_LEN + 1 || host.n >= cap)
            return SNI_BAD;
        size_t len = host.n;
        for (size_t i = 0; i < len; i++) {
            uint8_t c = host.p[i];
            if (c >= 'A' && c <= 'Z')
                c = (uint8_t)(c - 'A' + 'a');
            else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                       c == '_'))
                return SNI_BAD;
            if (c == '.' && i > 0 && name[i - 1] == '.')
                return SNI_BAD; /* an empty label: "a..b", or "a.." that would keep a dot */
            name[i] = (char)c;
        }
        if (len > 1 && name[len - 1] == '.')
            len--;
        if (len > LIMIT_HOST_LEN || name[0] == '.')
            return SNI_BAD;
        name[len] = '\0';
        return SNI_FOUND;
    }
    return SNI_BAD; /* a server_name extension without a host name */
}

static enum sni_result client_hello(struct rd *b, char *name, size_t cap)
{
    const uint8_t *skip;
    size_t version;
    struct rd sid, suites, comp, exts;
    if (!u16(b, &version) || (version >> 8) != 3 || !take(b, 32, &skip))
        return SNI_BAD;
    if (!vec(b, 1, 0, &sid) || sid.n > 32 || !vec(b, 2, 2, &suites) || suites.n % 2 ||
        !vec(b, 1, 1, &comp))
        return SNI_BAD;
    if (b->off == b->n)
        return SNI_NONE; /* no extensions at all (TLS 1.2 allows it) */
    if (!vec(b, 2, 0, &exts) || b->off != b->n)
        return SNI_BAD;
    enum sni_result found = SNI_NONE;
    uint64_t seen[2] = {0}; /* duplicates of the low extension types */
    while (exts.off < exts.n) {
        size_t type;
        struct rd body;
        if (!u16(&exts, &type) || !vec(&exts, 2, 0, &body))
            return SNI_BAD;
        if (type < 128) {
            if (seen[type / 64] & (1ull << (type % 64)))
                return SNI_BAD;
            seen[type / 64] |= 1ull << (type % 64);
        }
        if (type == EXT_SNI && (found = server_name(&body, name, cap)) == SNI_BAD)
            return SNI_BAD;
    }
    return found;
}

static enum sni_result parse(const uint8_t *p, size_t n, char *name, size_t cap)
{
    uint8_t hs[LIMIT_CLIENT_HELLO_BYTES + 4];
    size_t have = 0, want = 0; /* handshake bytes gathered; its full size once known */
    size_t off = 0;
    while (off < n) {
        if (n - off < RECORD_HEADER) {
            /* Refuse early what cannot be a handshake record. */
            if (p[off] != 22 || (n - off >= 2 && p[off + 1] != 3))
                return SNI_BAD;
            return SNI_MORE;
        }
        const uint8_t *h = p + off;
        size_t len = (size_t)h[3] << 8 | h[4];
        if (h[0] != 22 || h[1] != 3 || len == 0 || len > RECORD_MAX)
            return SNI_BAD;
        size_t avail = n - off - RECORD_HEADER;
        size_t k = avail < len ? avail : len;
        if (have + k > sizeof hs)
            return SNI_BAD;
        memcpy(hs + have, h + RECORD_HEADER, k);
        have += k;
        if (want == 0 && have >= 4) {
            if (hs[0] != HS_CLIENTHELLO)
                return SNI_BAD;
            want = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
            if (want > sizeof hs || want < 4 + 2 + 32 + 1 + 2 + 2 + 1 + 1)
                return SNI_BAD;
        }
        if (want && have >= want) {
            struct rd body = {hs + 4, want - 4, 0};
            return client_hello(&body, name, cap);
        }
        if (k < len)
            return SNI_MORE; /* the rest of this record has not arrived */
        off += RECORD_HEADER + len;
    }
    return SNI_MORE;
}

enum sni_result sni_parse(const uint8_t *p, size_t n, char *name, size_t cap)
{
    enum sni_result r = parse(p, n, name, cap);
    return r == SNI_MORE && n >= sni_peek_max() ? SNI_BAD : r;
}
