/* route.c - host table, host and path normalisation, path routes. */
#include "route.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "hex.h"
#include "limits.h"

struct route_entry {
    const char *name; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    void *value;
};

struct route_table {
    struct route_entry *slots;
    size_t mask; /* capacity - 1; capacity is a power of two, at most half full */
    size_t count;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    /* FNV-1a: the table is built from the configuration, never from client
     * input, so there is no flooding to defend against, and probes compare
     * the full hash before the bytes. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct route_table *route_table_new(size_t expected)
{
    struct route_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t cap = 16;
    while (cap < expected * 2 + 2)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->mask = cap - 1;
    return t;
}

void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

static struct route_entry *probe(const struct route_table *t, const char *name, size_t len,
                                 uint64_t h)
{
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        struct route_entry *e = &t->slots[i];
        if (!e->name || (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0))
            return e;
    }
}

static int grow(struct route_table *t)
{
    size_t cap = (t->mask + 1) * 2;
    struct route_entry *old = t->slots;
    size_t oldcap = t->mask + 1;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots) {
        t->slots = old;
        return -ENOMEM;
    }
    t->mask = cap - 1;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].name)
            *probe(t, old[i].name, old[i].len, old[i].hash) = old[i];
    free(old);
    return 0;
}

int route_table_add(struct route_table *t, const char *name, void *value, void **prev)
{
    if ((t->count + 1) * 2 > t->mask + 1 && grow(t) < 0)
        return -ENOMEM;
    size_t len = strlen(name);
    uint64_t h = hash_bytes(name, len);
    struct route_entry *e = probe(t, name, len, h);
    if (e->name) {
        if (prev)
            *prev = e->value;
        return -EEXIST;
    }
    e->name = name;
    e->len = len;
    e->hash = h;
    e->value = value;
    t->count++;
    return 0;
}

void *route_table_lookup(const struct route_table *t, const char *host, size_t len)
{
    const struct route_entry *e = probe(t, host, len, hash_bytes(host, len));
    if (e->name)
        return e->value;
    /* Wildcards: "*.b.c" for "a.b.c", then "*.c"; the most specific wins. */
    char key[LIMIT_HOST_LEN + 3];
    if (len > LIMIT_HOST_LEN)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (host[i] != '.')
            continue;
        size_t rest = len - i; /* ".b.c" */
        key[0] = '*';
        memcpy(key + 1, host + i, rest);
        e = probe(t, key, rest + 1, hash_bytes(key, rest + 1));
        if (e->name)
            return e->value;
    }
    return NULL;
}

size_t route_table_worst_probe(const struct route_table *t)
{
    size_t cap = t->mask + 1, start = 0, worst = 0;
    /* Runs may wrap around the end: start counting after an empty slot. */
    while (start < cap && t->slots[start].name)
        start++;
    if (start == cap)
        return cap; /* cannot happen: the table is never more than half full */
    size_t run = 0;
    for (size_t k = 1; k <= cap; k++) {
        if (t->slots[(start + k) & t->mask].name) {
            run++;
        } else {
            worst = run + 1 > worst ? run + 1 : worst;
            run = 0;
        }
    }
    return worst;
}

/* ---- host names ------------------------------------------------------------ */

static bool is_label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool labels_valid(const char *s, size_t len)
{
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (is_label_char(c)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

bool route_host_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > LIMIT_HOST_LEN)
        return false;
    if (len > 2 && name[0] == '*' && name[1] == '.')
        return labels_valid(name + 2, len - 2);
    return labels_valid(name, len);
}

int route_host_normalize(const char *in, size_t len, char *out, size_t cap)
{
    size_t hlen = len;
    if (len > 0 && in[0] == '[') {
        /* IPv6 literal: keep "[...]", drop a port after it. */
        const char *close = memchr(in, ']', len);
        if (!close)
            return -1;
        hlen = (size_t)(close - in) + 1;
        for (size_t i = 1; i + 1 < hlen; i++) {
            char c = in[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                return -1;
        }
    } else {
        const char *colon = memchr(in, ':', len);
        if (colon)
            hlen = (size_t)(colon - in);
    }
    if (hlen < len) {
        /* A port must be digits only (possibly empty, as RFC 3986 allows). */
        if (in[hlen] != ':')
            return -1;
        if (len - hlen - 1 > 5)
            return -1;
        for (size_t i = hlen + 1; i < len; i++)
            if (in[i] < '0' || in[i] > '9')
                return -1;
    }
    if (hlen > 1 && in[0] != '[' && in[hlen - 1] == '.')
        hlen--;
    if (hlen == 0 || hlen > LIMIT_HOST_LEN || hlen + 1 > cap)
        return -1;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[hlen] = '\0';
    if (out[0] != '[' && !labels_valid(out, hlen))
        return -1;
    return (int)hlen;
}

/* ---- paths ----------------------------------------------------------------- */

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int route_path_normalize(const char *in, size_t len, char *out, size_t cap)
{
    if (len == 0 || in[0] != '/' || cap == 0)
        return -1;
    size_t o = 0;
    size_t i = 0;
    while (i < len) {
        /* At a segment start: in[i] == '/'. Merge repeated slashes. */
        while (i < len && in[i] == '/')
            i++;
        /* Decode the segment into out after a '/'. */
        if (o + 1 >= cap)
            return -1;
        size_t seg_start = o;
        out[o++] = '/';
        while (i < len && in[i] != '/') {
            unsigned char c = (unsigned char)in[i];
            if (c < 0x20 || c == 0x7f)
                return -1;
            if (c == '%') {
                if (i + 2 >= len)
                    return -1;
                int hi = hex_digit_value((unsigned char)in[i + 1]),
                    lo = hex_digit_value((unsigned char)in[i + 2]);
                if (hi < 0 || lo < 0)
                    return -1;
                unsigned char d = (unsigned char)(hi * 16 + lo);
                if (d == 0)
                    return -1;
                if (is_unreserved(d)) {
                    if (o + 1 >= cap)
                        return -1;
                    out[o++] = (char)d;
                } else {
                    static const char hex[] = "0123456789ABCDEF";
                    if (o + 3 >= cap)
                        return -1;
                    out[o++] = '%';
                    out[o++] = hex[d >> 4];
                    out[o++] = hex[d & 15];
                }
                i += 3;
                continue;
            }
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)c;
            i++;
        }
        size_t seg_len = o - seg_start - 1;
        const char *seg = out + seg_start + 1;
        if (seg_len == 1 && seg[0] == '.') {
            o = seg_start; /* "/." -> nothing */
        } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
            if (seg_start == 0)
                return -1; /* above the root */
            /* Drop this segment and the previous one. */
            size_t p = seg_start;
            while (p > 0 && out[p - 1] != '/')
                p--;
            o = p > 0 ? p - 1 : 0;
        }
        if (i >= len && (seg_len == 0 || (seg_len == 1 && seg[0] == '.') ||
                         (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))) {
            /* A trailing "/", "/." or "/.." leaves a directory path: end with '/'. */
            if (o + 1 >= cap)
                return -1;
            if (o == 0 || out[o - 1] != '/')
                out[o++] = '/';
        }
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return (int)o;
}

/* One byte of a path as a reading sees it. */
enum unit_kind { U_CHAR, U_SEP, U_PARAM };

int route_path_read(const char *in, size_t len, unsigned how, char *out, size_t cap)
{
    if (len == 0 || in[0] != '/' || cap < 2)
        return -1;
    bool decode = how & ROUTE_READ_DECODE;
    bool params = how & (ROUTE_READ_PARAMS | ROUTE_READ_PARAMS_RAW);
    bool backslash = how & ROUTE_READ_BACKSLASH;
    size_t o = 0;   /* out[0..o) holds "/seg/seg" */
    size_t seg = 0; /* where the current segment starts in out (after its '/') */
    bool in_param = false, dir = false;
    out[o++] = '/';
    seg = o;
    for (size_t i = 0; i <= len;) {
        enum unit_kind kind = U_SEP; /* the end of the input closes the last segment */
        char buf[3];
        size_t n = 0;
        bool raw_sep = i == len;
        if (i < len) {
            unsigned char c = (unsigned char)in[i];
            if (c == '%') {
                int hi = i + 2 < len ? hex_digit_value((unsigned char)in[i + 1]) : -1;
                int lo = i + 2 < len ? hex_digit_value((unsigned char)in[i + 2]) : -1;
                if (hi < 0 || lo < 0)
                    return -1;
                unsigned char d = (unsigned char)(hi * 16 + lo);
                i += 3;
                if (decode || is_unreserved(d)) {
                    kind = d == '/' || (d == '\\' && backslash)    ? U_SEP
                           : d == ';' && (how & ROUTE_READ_PARAMS) ? U_PARAM
                                                                   : U_CHAR;
                    buf[n++] = (char)d;
                } else {
                    static const char hex[] = "0123456789ABCDEF";
                    kind = U_CHAR;
                    buf[n++] = '%';
                    buf[n++] = hex[d >> 4];
                    buf[n++] = hex[d & 15];
                }
            } else {
                i++;
                raw_sep = c == '/' || (c == '\\' && backslash);
                kind = raw_sep ? U_SEP : c == ';' && params ? U_PARAM : U_CHAR;
                buf[n++] = (char)c;
            }
            /* Tomcat takes parameters off the raw path before it decodes: there
             * only a raw '/' ends one. */
            if (kind == U_SEP && in_param && !raw_sep && (how & ROUTE_READ_PARAMS_RAW))
                kind = U_CHAR;
        } else {
            i++;
        }
        if (kind == U_PARAM) {
            in_param = true;
            continue;
        }
        if (kind == U_CHAR) {
            if (in_param)
                continue;
            if (o + n + 1 >= cap)
                return -1;
            memcpy(out + o, buf, n);
            o += n;
            continue;
        }
        /* A separator: settle the segment out[seg..o). */
        in_param = false;
        size_t sl = o - seg;
        if (sl == 0 || (sl == 1 && out[seg] == '.')) {
            o = seg;
            dir = true;
        } else if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            /* Back over the previous segment; at the root, stay there (what
             * origins that resolve dot-segments after decoding do). */
            o = seg - 1;
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o == 0)
                o = 1;
            dir = true;
        } else {
            if (o + 1 >= cap)
                return -1;
            out[o++] = '/';
            dir = false;
        }
        seg = o;
    }
    /* out ends with '/' after every kept segment: keep it only for a directory. */
    if (!dir && o > 1)
        o--;
    out[o] = '\0';
    return (int)o;
}

bool route_path_ambiguous(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ';' || c == '\\')
            return true;
        if (c == '%' && i + 2 < len) {
            char a = in[i + 1], b = (char)(in[i + 2] | 0x20);
            if ((a == '2' && b == 'f') || (a == '5' && b == 'c') || (a == '3' && b == 'b'))
                return true;
        }
    }
    return false;
}

const struct config_route *route_match(const struct config_service *svc, const char *path,
                                       size_t len)
{
    /* Routes are sorted longest prefix first, so the first match is the longest. */
    for (size_t i = 0; i < svc->nroutes; i++) {
        const struct config_route *r = &svc->routes[i];
        if (r->prefix_len <= len && memcmp(r->prefix, path, r->prefix_len) == 0)
            return r;
    }
    return NULL;
}

/* auth_skip and routes are decided on the normalised path, but the upstream
 * gets the raw one, and origins read "%2F", a backslash and ";" differently. A
 * prefix that let the request through (a skip entry, or a route with its
 * own upstream) must hold under every common reading, or the request is
 * refused: "/health/..%2fsecret" would be "/secret" to a server that
 * decodes before it resolves dot-segments. */
static bool readings_agree(const struct config_service *svc, struct http_slice raw, int skip,
                           const struct config_route *route)
{
    static const unsigned readings[] = {
        ROUTE_READ_DECODE,
        ROUTE_READ_PARAMS,
        ROUTE_READ_PARAMS | ROUTE_READ_DECODE,
        ROUTE_READ_PARAMS_RAW | ROUTE_READ_DECODE,
        ROUTE_READ_BACKSLASH,
        ROUTE_READ_BACKSLASH | ROUTE_READ_DECODE,
        ROUTE_READ_BACKSLASH | ROUTE_READ_PARAMS,
        ROUTE_READ_BACKSLASH | ROUTE_READ_PARAMS | ROUTE_READ_DECODE,
        ROUTE_READ_BACKSLASH | ROUTE_READ_PARAMS_RAW | ROUTE_READ_DECODE,
    };
    static __thread char path[LIMIT_HEADER_BYTES_MAX + 2];
    for (size_t i = 0; i < sizeof readings / sizeof readings[0]; i++) {
        int n = route_path_read(raw.p, raw.len, readings[i], path, sizeof path);
        if (n < 0)
            return false;
        if (skip >= 0 && !auth_skip_covers(svc->auth_skip[skip], path, (size_t)n))
            return false;
        if (route &&
            ((size_t)n < route->prefix_len || memcmp(path, route->prefix, route->prefix_len) != 0))
            return false;
    }
    return true;
}

enum route_outcome route_resolve(const struct route_table *t, const struct route_request *rq,
                                 struct route_result *res)
{
    res->svc = NULL;
    res->route = NULL;
    res->up = NULL;
    res->auth = NULL;
    res->npath_len = 0;
    res->target.len = res->prefix.len = 0;
    int hl = rq->host.len
                 ? route_host_normalize(rq->host.p, rq->host.len, res->host, sizeof res->host)
                 : -2;
    res->host_len = hl > 0 ? hl : 0;
    if (hl == -1)
        return ROUTE_BAD_HOST;
    const struct config_service *svc = hl > 0 ? route_table_lookup(t, res->host, (size_t)hl) : NULL;
    const char *dot = hl > 0 ? memchr(res->host, '.', (size_t)hl) : NULL;
    if (!svc && rq->by_name && dot)
        svc = route_table_lookup(rq->by_name, res->host, (size_t)(dot - res->host));
    if (!svc || svc->passthrough)
        return ROUTE_NO_SERVICE; /* passthrough names are TLS only; no HTTP upstream to ask */
    res->svc = svc;

    /* Route on the normalised path, so "/api/../admin" and "/%61pi/" cannot
     * pick a route that the path does not really name. */
    int np = route_path_normalize(rq->path.p, rq->path.len, res->npath, sizeof res->npath);
    if (np < 0)
        return ROUTE_BAD_PATH;
    res->npath_len = (size_t)np;
    const struct config_route *route = route_match(svc, res->npath, res->npath_len);
    res->route = route;
    res->up = route ? route->upstream : svc->upstream;
    /* Client copies of the provider's headers go even where auth is skipped. */
    const struct config_auth *auth = svc->auth;
    int skip = auth ? auth_skip_match(svc, res->npath, res->npath_len) : -1;
    if ((skip >= 0 || route) && route_path_ambiguous(rq->path.p, rq->path.len) &&
        !readings_agree(svc, rq->path, skip, route))
        return ROUTE_AMBIGUOUS;
    res->auth = skip >= 0 ? NULL : auth;

    if (route && route->strip_prefix) {
        char *target = res->target_buf;
        const char *rest = res->npath + route->prefix_len;
        size_t rlen = res->npath_len - route->prefix_len;
        size_t n = 0;
        if (rlen == 0 || rest[0] != '/')
            target[n++] = '/';
        memcpy(target + n, rest, rlen);
        n += rlen;
        if (rq->query.len) {
            target[n++] = '?';
            memcpy(target + n, rq->query.p, rq->query.len);
            n += rq->query.len;
        }
        res->target.p = target;
        res->target.len = n;
        res->prefix.p = route->prefix;
        res->prefix.len = route->prefix_len;
        while (res->prefix.len && res->prefix.p[res->prefix.len - 1] == '/')
            res->prefix.len--;
    }
    return ROUTE_OK;
}
