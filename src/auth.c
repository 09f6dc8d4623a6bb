/* auth.c - forward auth subrequests, verdicts and the decision cache (see auth.h). */
#include "auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "config.h"
#include "headers.h"

/* ---- the subrequest ------------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->len < n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->full = true;
    else
        o->len += (size_t)n;
}

/* The client headers the provider sees: credentials, and what Authelia
 * uses to choose between a redirect and a 401. Nothing else the client
 * chose (its X-Forwarded-*, Forwarded, X-Real-IP, X-Original-*) goes. */
static bool passed_to_provider(struct http_slice name)
{
    static const char *const names[] = {"Cookie",         "Authorization", "Proxy-Authorization",
                                        "Accept",         "User-Agent",    "X-Requested-With",
                                        "Accept-Language"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (http_slice_eq(name, names[i]))
            return true;
    return false;
}

/* Host as the client addressed it: lower-case, with a non-default port. */
static void put_host(struct out *o, const struct auth_target *t)
{
    puts_(o, t->host);
    bool dflt = t->port == 0 || (t->port == 443 && strcmp(t->proto, "https") == 0) ||
                (t->port == 80 && strcmp(t->proto, "http") == 0);
    if (!dflt)
        putf(o, ":%d", t->port);
}

long auth_build_request(const struct config_auth *a, const struct http_request *req,
                        const struct auth_target *t, char *buf, size_t cap)
{
    struct out o = {buf, 0, cap, false};
    putf(&o, "GET %s HTTP/1.1\r\nHost: %s\r\n", a->path, a->host);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (!passed_to_provider(h->name))
            continue;
        put(&o, h->name.p, h->name.len);
        puts_(&o, ": ");
        put(&o, h->value.p, h->value.len);
        puts_(&o, "\r\n");
    }
    if (a->style == AUTH_REQUEST) {
        putf(&o, "X-Original-Method: %s\r\nX-Original-URL: %s://", t->method, t->proto);
        put_host(&o, t);
        put(&o, t->uri.p, t->uri.len);
        puts_(&o, "\r\n");
    }
    putf(&o, "X-Forwarded-Method: %s\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Host: ", t->method,
         t->proto);
    put_host(&o, t);
    puts_(&o, "\r\nX-Forwarded-Uri: ");
    put(&o, t->uri.p, t->uri.len);
    putf(&o, "\r\nX-Forwarded-For: %s\r\n\r\n", t->client);
    return o.full ? -1 : (long)o.len;
}

bool auth_skip_covers(const char *pre, const char *npath, size_t len)
{
    size_t pl = strlen(pre);
    if (len < pl || memcmp(npath, pre, pl) != 0)
        return false;
    /* "/hooks/" covers what is under it; "/health" also "/health" itself
     * (but not "/healthz"). */
    return pre[pl - 1] == '/' || len == pl || npath[pl] == '/';
}

int auth_skip_match(const struct config_service *svc, const char *npath, size_t len)
{
    for (size_t i = 0; i < svc->nauth_skip; i++)
        if (auth_skip_covers(svc->auth_skip[i], npath, len))
            return (int)i;
    return -1;
}

bool auth_skipped(const struct config_service *svc, const char *npath, size_t len)
{
    return auth_skip_match(svc, npath, len) >= 0;
}

/* ---- the verdict ----------------------------------------------------------------- */

static bool value_ok(struct http_slice v)
{
    if (v.len == 0 || v.len >= LIMIT_AUTH_VALUE_BYTES)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if (v.p[i] == '\r' || v.p[i] == '\n' || v.p[i] == '\0')
            return false;
    return true;
}

/* The provider's headers that reach the client on a denial or redirect. */
static bool relayed_to_client(struct http_slice name)
{
    static const char *const names[] = {"Location",           "Set-Cookie",   "WWW-Authenticate",
                                        "Proxy-Authenticate", "Content-Type", "Cache-Control",
                                        "Retry-After"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (http_slice_eq(name, names[i]))
            return true;
    return false;
}

static void error_verdict(struct auth_verdict *v, const char *why)
{
    v->result = AUTH_ERROR;
    v->status = 502;
    v->error = why;
}

/* Write a client response: status, headers from the provider that may
 * reach the client (or, for a synthesised redirect, Location only), body. */
static size_t client_response(const struct http_response *resp, int status, const char *location,
                              size_t loclen, const char *body, size_t blen, bool head_only,
                              bool close, char *buf, size_t cap)
{
    struct out o = {buf, 0, cap, false};
    putf(&o, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
    bool has_type = false, has_location = location != NULL;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct http_header *h = &resp->headers[i];
        bool is_location = http_slice_eq(h->name, "Location");
        /* One Location only: browsers refuse a redirect with several. */
        if (!relayed_to_client(h->name) || (is_location && has_location))
            continue;
        if (!value_ok(h->value) && !http_slice_eq(h->name, "Set-Cookie"))
            continue;
        has_location = has_location || is_location;
        has_type = has_type || http_slice_eq(h->name, "Content-Type");
        put(&o, h->name.p, h->name.len);
        puts_(&o, ": ");
        put(&o, h->value.p, h->value.len);
        puts_(&o, "\r\n");
    }
    if (location) {
        puts_(&o, "Location: ");
        put(&o, location, loclen);
        puts_(&o, "\r\n");
    }
    if (!has_type && blen)
        puts_(&o, "Content-Type: text/plain; charset=utf-8\r\n");
    putf(&o, "Content-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n", blen,
         close ? "Connection: close\r\n" : "");
    if (!head_only)
        put(&o, body, blen);
    return o.full ? 0 : o.len;
}

static const struct http_header *find(const struct http_response *r, const char *name)
{
    return http_find_header(r->headers, r->nheaders, name);
}

void auth_judge(const struct config_auth *a, const struct http_response *resp, const char *body,
                size_t blen, const struct auth_target *t, bool head_only, bool close,
                struct auth_verdict *v, char *out, size_t cap, size_t *outlen)
{
    /* The verdict is reused: clear everything but the copy[] storage, or
     * user could still point at an earlier answer's Remote-User. */
    memset(v, 0, offsetof(struct auth_verdict, copy));
    v->ncopy = 0;
    v->user = NULL;
    v->error = NULL;
    *outlen = 0;
    int st = resp->status;
    if (st >= 200 && st < 300) {
        v->result = AUTH_ALLOWED;
        v->status = st;
        /* Exactly the configured names, first value each, valid values only. */
        for (size_t i = 0; i < a->ncopy; i++) {
            const struct http_header *h = NULL;
            for (size_t j = 0; j < resp->nheaders && !h; j++)
                if (headers_name_alias_eq(resp->headers[j].name, a->copy_headers[i]))
                    h = &resp->headers[j];
            if (!h || !value_ok(h->value))
                continue;
            struct auth_header *c = &v->copy[v->ncopy++];
            snprintf(c->name, sizeof c->name, "%s", a->copy_headers[i]);
            memcpy(c->value, h->value.p, h->value.len);
            c->value[h->value.len] = '\0';
            c->len = h->value.len;
            if (strcasecmp(a->copy_headers[i], "Remote-User") == 0)
                v->user = c->value;
        }
        return;
    }
    const struct http_header *loc = find(resp, "Location");
    if (loc && !value_ok(loc->value))
        loc = NULL;
    int status = 0;
    const char *location = NULL;
    size_t loclen = 0;
    char portal[LIMIT_AUTH_VALUE_BYTES + 2048];
    if (st == 400) {
        /* Authelia's 400 means it cannot judge this target (wrong domain,
         * plain http): refuse, without its details. */
        v->result = AUTH_DENIED;
        v->status = 403;
        static const char msg[] = "forbidden: the auth provider refused this request\n";
        *outlen = client_response(&(struct http_response){0}, 403, NULL, 0, msg, sizeof msg - 1,
                                  head_only, close, out, cap);
        if (!*outlen)
            error_verdict(v, "the denial does not fit the response buffer");
        return;
    }
    if (a->style == AUTH_FORWARD) {
        if ((st >= 300 && st < 400 && st != 304) || st == 401 || st == 403) {
            status = st;
            v->result = st == 401 || st == 403 ? AUTH_DENIED : AUTH_REDIRECTED;
            if (st == 401 && loc)
                v->result = AUTH_REDIRECTED;
        }
    } else if (st == 401 && loc) {
        status = 302;
        v->result = AUTH_REDIRECTED;
        location = loc->value.p;
        loclen = loc->value.len;
    } else if (st == 401 && !find(resp, "WWW-Authenticate") && a->portal) {
        /* No Location and nothing to prompt for: send the browser to the
         * portal with the URL it wanted (percent-encoded). */
        struct out o = {portal, 0, sizeof portal, false};
        puts_(&o, a->portal);
        puts_(&o, strchr(a->portal, '?') ? "&rd=" : "?rd=");
        char url[LIMIT_AUTH_VALUE_BYTES];
        struct out u = {url, 0, sizeof url, false};
        putf(&u, "%s://", t->proto);
        put_host(&u, t);
        put(&u, t->uri.p, t->uri.len);
        for (size_t i = 0; i < u.len && !u.full; i++) {
            unsigned char ch = (unsigned char)url[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '-' || ch == '.' || ch == '_' || ch == '~')
                put(&o, (const char *)&ch, 1);
            else
                putf(&o, "%%%02X", ch);
        }
        if (o.full || u.full) {
            error_verdict(v, "the portal URL is too long");
            return;
        }
        status = 302;
        v->result = AUTH_REDIRECTED;
        location = portal;
        loclen = o.len;
    } else if (st == 401 || st == 403) {
        status = st;
        v->result = AUTH_DENIED;
    }
    if (!status) {
        const char *why =
            st >= 500 ? "the provider failed" : "the provider answered an unexpected status";
        error_verdict(v, why);
        return;
    }
    v->status = status;
    /* auth-request: the provider's body explains a 401 to nginx, not to users. */
    bool own_body = a->style == AUTH_FORWARD || status == 401 || status == 403;
    *outlen = client_response(resp, status, location, loclen, own_body ? body : "",
                              own_body ? blen : 0, head_only, close, out, cap);
    if (!*outlen)
        error_verdict(v, "the provider's answer does not fit the response buffer");
}

/* ---- the decision cache ------------------------------------------------------------ */

#define CACHE_BLOB_MAX 4096 /* a verdict's copied headers larger than this are not cached */

struct cache_entry {
    unsigned char digest[AUTH_DIGEST_BYTES];
    uint64_t expires_ms; /* 0: empty */
    size_t ncopy;
    unsigned short namelen[LIMIT_AUTH_COPY_HEADERS], valuelen[LIMIT_AUTH_COPY_HEADERS];
    char *blob; /* names and values, back to back; owned */
};

struct auth_cache {
    struct cache_entry e[LIMIT_AUTH_CACHE_ENTRIES];
};

struct auth_cache *auth_cache_new(void)
{
    return calloc(1, sizeof(struct auth_cache));
}

void auth_cache_free(struct auth_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < LIMIT_AUTH_CACHE_ENTRIES; i++)
        free(c->e[i].blob);
    free(c);
}

static void digest_part(EVP_MD_CTX *md, const void *p, size_t n)
{
    uint64_t len = n;
    EVP_DigestUpdate(md, &len, sizeof len); /* length-prefixed: no two tuples collide */
    EVP_DigestUpdate(md, p, n);
}

void auth_cache_digest(const struct config_auth *a, const struct http_request *req,
                       const struct auth_target *t, unsigned char d[AUTH_DIGEST_BYTES])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dl = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        /* No digest, no cache hit: a random-looking key never matches. */
        memset(d, 0xff, AUTH_DIGEST_BYTES);
        EVP_MD_CTX_free(md);
        return;
    }
    digest_part(md, a->name, strlen(a->name));
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (!passed_to_provider(h->name))
            continue;
        digest_part(md, h->name.p, h->name.len);
        digest_part(md, h->value.p, h->value.len);
    }
    digest_part(md, t->method, strlen(t->method));
    digest_part(md, t->proto, strlen(t->proto));
    digest_part(md, t->host, strlen(t->host));
    digest_part(md, &t->port, sizeof t->port);
    digest_part(md, t->uri.p, t->uri.len);
    digest_part(md, t->client, strlen(t->client));
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
}

static struct cache_entry *slot(struct auth_cache *c, const unsigned char d[AUTH_DIGEST_BYTES])
{
    uint64_t k;
    memcpy(&k, d, sizeof k);
    return &c->e[k % LIMIT_AUTH_CACHE_ENTRIES];
}

bool auth_cache_get(struct auth_cache *c, const unsigned char d[AUTH_DIGEST_BYTES], uint64_t now_ms,
                    struct auth_verdict *v)
{
    struct cache_entry *e = slot(c, d);
    if (!e->expires_ms || now_ms >= e->expires_ms || memcmp(e->digest, d, AUTH_DIGEST_BYTES) != 0)
        return false;
    memset(v, 0, offsetof(struct auth_verdict, copy));
    v->user = NULL;
    v->error = NULL;
    v->result = AUTH_ALLOWED;
    v->status = 200;
    v->ncopy = e->ncopy;
    const char *p = e->blob;
    for (size_t i = 0; i < e->ncopy; i++) {
        struct auth_header *h = &v->copy[i];
        memcpy(h->name, p, e->namelen[i]);
        h->name[e->namelen[i]] = '\0';
        p += e->namelen[i];
        memcpy(h->value, p, e->valuelen[i]);
        h->value[e->valuelen[i]] = '\0';
        h->len = e->valuelen[i];
        p += e->valuelen[i];
        if (strcasecmp(h->name, "Remote-User") == 0)
            v->user = h->value;
    }
    return true;
}

void auth_cache_put(struct auth_cache *c, const unsigned char d[AUTH_DIGEST_BYTES],
                    uint64_t expires_ms, const struct auth_verdict *v)
{
    size_t total = 0;
    for (size_t i = 0; i < v->ncopy; i++)
        total += strlen(v->copy[i].name) + v->copy[i].len;
    if (v->result != AUTH_ALLOWED || total > CACHE_BLOB_MAX)
        return;
    struct cache_entry *e = slot(c, d);
    char *blob = malloc(total ? total : 1);
    if (!blob)
        return;
    char *p = blob;
    for (size_t i = 0; i < v->ncopy; i++) {
        size_t nl = strlen(v->copy[i].name);
        memcpy(p, v->copy[i].name, nl);
        p += nl;
        memcpy(p, v->copy[i].value, v->copy[i].len);
        p += v->copy[i].len;
        e->namelen[i] = (unsigned short)nl;
        e->valuelen[i] = (unsigned short)v->copy[i].len;
    }
    free(e->blob);
    e->blob = blob;
    e->ncopy = v->ncopy;
    memcpy(e->digest, d, AUTH_DIGEST_BYTES);
    e->expires_ms = expires_ms;
}
