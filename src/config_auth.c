/* config_auth.c - the "auth:" section: forward-auth providers. */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

/* A header name as written in copy_headers: an HTTP token. */
static bool header_name_valid(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static int parse_auth_provider(struct parser *p, struct config_auth *a, const yaml_node_t *k,
                               const yaml_node_t *v)
{
    static const char *const names[] = {"url",    "style", "timeout", "copy_headers",
                                        "portal", "cache", "tls_ca"};
    enum { A_URL, A_STYLE, A_TIMEOUT, A_COPY, A_PORTAL, A_CACHE, A_TLS_CA, A_N };
    static const char *const default_copy[] = {"Remote-User", "Remote-Groups", "Remote-Name",
                                               "Remote-Email"};
    yaml_node_t *vals[A_N] = {0};
    char what[LIMIT_SERVICE_NAME + 64], where[LIMIT_SERVICE_NAME + 48];
    const char *name = cfg_scalar(k);
    a->line = (int)k->start_mark.line + 1;
    a->timeout_ms = TIMEOUT_AUTH_MS_DEFAULT;
    if (!cfg_name_valid(name, k->data.scalar.length))
        return cfg_fail(p, k,
                        "invalid auth provider name \"%s\" (use 1 to %d lower-case letters, digits "
                        "and '-', not at either end)",
                        cfg_show(p, name), LIMIT_SERVICE_NAME);
    a->name = strdup(name);
    if (!a->name)
        return cfg_fail_oom(p);
    p->owner_kind = "auth provider";
    p->owner = a->name;
    snprintf(where, sizeof where, "in auth provider \"%s\"", name);
    snprintf(what, sizeof what, "auth.%s", name);
    if (cfg_want_mapping(p, v, what, false) < 0 ||
        cfg_map_collect(p, v, names, A_N, vals, where) < 0)
        return -1;
    if (!vals[A_URL])
        return cfg_fail(p, k, "auth provider \"%s\" has no url", name);

    const char *url;
    static __thread struct upstream_url u;
    snprintf(what, sizeof what, "auth.%s.url", name);
    p->svc_tls_ca = NULL;
    p->svc_tls_ca_node = vals[A_TLS_CA];
    p->svc_tls_insecure = false;
    if (vals[A_TLS_CA]) {
        char cawhat[LIMIT_SERVICE_NAME + 64];
        snprintf(cawhat, sizeof cawhat, "auth.%s.tls_ca", name);
        if (cfg_want_string(p, vals[A_TLS_CA], cawhat, &p->svc_tls_ca) < 0)
            return -1;
    }
    if (cfg_want_string(p, vals[A_URL], what, &url) < 0 ||
        cfg_read_upstream_url(p, vals[A_URL], url, what, true, &u) < 0)
        return -1;
    for (const char *q = u.path; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '#')
            return cfg_fail(p, vals[A_URL], "%s: invalid character in the path of \"%s\"", what,
                            cfg_show(p, url));
    const char *authority = strstr(url, "://") + 3;
    a->url = strdup(url);
    a->path = strdup(u.path[0] == '?' ? "/" : u.path);
    a->host = strndup(authority, strcspn(authority, "/?"));
    a->up.key = strdup(u.key);
    if (!a->url || !a->path || !a->host || !a->up.key)
        return cfg_fail_oom(p);
    if (u.path[0] == '?') /* "http://h:1?x" : the path is "/" and the query follows */
        return cfg_fail(p, vals[A_URL], "%s: write the path before the query in \"%s\"", what,
                        cfg_show(p, url));
    if (vals[A_TLS_CA] && u.kind != UPSTREAM_HTTPS)
        return cfg_fail(p, vals[A_TLS_CA], "auth.%s.tls_ca applies to an https:// url", name);
    a->up.kind = u.kind;
    a->up.addr = u.addr;
    if (u.kind == UPSTREAM_HTTPS) {
        a->up.tls_name = strdup(u.tls_name);
        if (!a->up.tls_name)
            return cfg_fail_oom(p);
        if (!(a->up.tls_ctx = cfg_client_ctx(p)))
            return -1;
    }

    if (vals[A_STYLE]) {
        const char *st;
        snprintf(what, sizeof what, "auth.%s.style", name);
        if (cfg_want_string(p, vals[A_STYLE], what, &st) < 0)
            return -1;
        if (strcmp(st, "forward-auth") == 0)
            a->style = AUTH_FORWARD;
        else if (strcmp(st, "auth-request") == 0)
            a->style = AUTH_REQUEST;
        else
            return cfg_fail(p, vals[A_STYLE],
                            "%s: expected forward-auth or auth-request, not \"%s\"", what,
                            cfg_show(p, st));
    }
    snprintf(what, sizeof what, "auth.%s.timeout", name);
    if (vals[A_TIMEOUT] && cfg_want_duration(p, vals[A_TIMEOUT], what, &a->timeout_ms) < 0)
        return -1;
    if (a->timeout_ms == 0)
        return cfg_fail(p, vals[A_TIMEOUT], "%s must be more than 0", what);
    if (a->timeout_ms < TIMEOUT_AUTH_MS_WARN)
        cfg_warn(p, vals[A_TIMEOUT],
                 "%s is under %ds: Authelia answers a failed Basic login only after at least 2s, "
                 "so those logins would get 504 instead of 401",
                 what, TIMEOUT_AUTH_MS_WARN / 1000);
    snprintf(what, sizeof what, "auth.%s.cache", name);
    if (vals[A_CACHE] && cfg_want_duration(p, vals[A_CACHE], what, &a->cache_ms) < 0)
        return -1;
    if (a->cache_ms > LIMIT_AUTH_CACHE_MS_MAX)
        return cfg_fail(p, vals[A_CACHE], "%s: at most 5m (a logout must not take longer to apply)",
                        what);
    if (vals[A_PORTAL]) {
        const char *portal;
        snprintf(what, sizeof what, "auth.%s.portal", name);
        if (cfg_want_string(p, vals[A_PORTAL], what, &portal) < 0)
            return -1;
        if (a->style != AUTH_REQUEST)
            return cfg_fail(p, vals[A_PORTAL], "%s applies to style: auth-request only", what);
        if (strncmp(portal, "https://", 8) != 0 && strncmp(portal, "http://", 7) != 0)
            return cfg_fail(p, vals[A_PORTAL],
                            "%s: expected an http:// or https:// URL, not \"%s\"", what,
                            cfg_show(p, portal));
        for (const char *q = portal; *q; q++)
            if ((unsigned char)*q <= ' ' || *q == 0x7f)
                return cfg_fail(p, vals[A_PORTAL], "%s: invalid character in \"%s\"", what,
                                cfg_show(p, portal));
        a->portal = strdup(portal);
        if (!a->portal)
            return cfg_fail_oom(p);
    }
    snprintf(what, sizeof what, "auth.%s.copy_headers", name);
    size_t ncopy = vals[A_COPY] ? 0 : 4;
    if (vals[A_COPY]) {
        if (cfg_want_sequence(p, vals[A_COPY], what) < 0)
            return -1;
        ncopy = cfg_seq_len(vals[A_COPY]);
        if (ncopy > LIMIT_AUTH_COPY_HEADERS)
            return cfg_fail(p, vals[A_COPY], "%s: at most %d names", what, LIMIT_AUTH_COPY_HEADERS);
    }
    a->copy_headers = calloc(ncopy ? ncopy : 1, sizeof *a->copy_headers);
    if (!a->copy_headers)
        return cfg_fail_oom(p);
    for (size_t i = 0; i < ncopy; i++) {
        const char *h = default_copy[i % 4];
        if (vals[A_COPY]) {
            const yaml_node_t *item = cfg_node(p, vals[A_COPY]->data.sequence.items.start[i]);
            if (cfg_want_string(p, item, what, &h) < 0)
                return -1;
            if (!header_name_valid(h))
                return cfg_fail(p, item, "%s: \"%s\" is not a header name", what, cfg_show(p, h));
        }
        a->copy_headers[a->ncopy] = strdup(h);
        if (!a->copy_headers[a->ncopy++])
            return cfg_fail_oom(p);
    }
    return 0;
}

/* "auth: {NAME: {url, style, timeout, copy_headers, portal, cache}}" */
int cfg_parse_auth(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    if (cfg_want_mapping(p, n, "auth", false) < 0)
        return -1;
    c->auths = calloc(cfg_map_len(n) ? cfg_map_len(n) : 1, sizeof *c->auths);
    if (!c->auths)
        return cfg_fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        struct config_auth *a = &c->auths[c->nauths];
        a->idx = c->nauths++;
        if (parse_auth_provider(p, a, cfg_node(p, pair->key), cfg_node(p, pair->value)) < 0)
            return -1;
    }
    return 0;
}
